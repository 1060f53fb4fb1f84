//! A partition's log on real RocksDB: the offset index, the read path and retention.

mod storage_common;

use paxlog_broker::partition::Trimmed;
use paxlog_broker::storage::{Cf, GroupStore, IndexEntry, StorageError};
use paxlog_consensus::Storage;
use storage_common::{Appender, records, reopen, temp_db};
use tempfile::TempDir;

const GROUP: u64 = 10;
const SIZE: usize = 100;

/// Offsets 0..3 in slot 1, a no-op in slot 2, 3..5 in slot 3, 5..9 in slot 4.
fn partition() -> (TempDir, Appender) {
    let (dir, db) = temp_db();
    let mut partition = Appender::new(db, GROUP);
    partition.append(3, SIZE);
    partition.noop();
    partition.append(2, SIZE);
    partition.append(4, SIZE);
    (dir, partition)
}

fn record_len() -> usize {
    records(0, 1, SIZE)[0].encoded_len()
}

fn offsets(read: &paxlog_broker::partition::ReadResult) -> Vec<u64> {
    read.records.iter().map(|(offset, _)| *offset).collect()
}

#[test]
fn reads_return_each_record_at_its_offset() {
    let (_dir, p) = partition();
    let read = p.db.read_records(GROUP, 0, 9, usize::MAX).expect("read");
    assert_eq!(offsets(&read), (0..9).collect::<Vec<_>>());
    assert_eq!(read.next_offset, 9);
    for (offset, record) in &read.records {
        assert_eq!(
            record,
            &records(*offset, 1, SIZE)[0],
            "record at offset {offset}"
        );
    }
}

#[test]
fn a_read_can_start_in_the_middle_of_a_batch() {
    let (_dir, p) = partition();
    let read = p.db.read_records(GROUP, 4, 9, usize::MAX).expect("read");
    assert_eq!(offsets(&read), vec![4, 5, 6, 7, 8]);
    let read = p.db.read_records(GROUP, 6, 9, usize::MAX).expect("read");
    assert_eq!(offsets(&read), vec![6, 7, 8]);
}

#[test]
fn reads_stop_at_the_high_watermark() {
    let (_dir, p) = partition();
    let read = p.db.read_records(GROUP, 0, 4, usize::MAX).expect("read");
    assert_eq!((offsets(&read), read.next_offset), (vec![0, 1, 2, 3], 4));
    let read = p.db.read_records(GROUP, 1, 2, usize::MAX).expect("read");
    assert_eq!(offsets(&read), vec![1]);
    // A watermark beyond what is indexed serves what is indexed.
    let read = p.db.read_records(GROUP, 7, 100, usize::MAX).expect("read");
    assert_eq!((offsets(&read), read.next_offset), (vec![7, 8], 9));
}

#[test]
fn max_bytes_bounds_a_read_but_one_record_always_comes_back() {
    let (_dir, p) = partition();
    let len = record_len();
    let read = p.db.read_records(GROUP, 0, 9, 2 * len + 1).expect("read");
    assert_eq!(offsets(&read), vec![0, 1]);
    let read =
        p.db.read_records(GROUP, 2, 9, 2 * len)
            .expect("across a batch boundary");
    assert_eq!((offsets(&read), read.next_offset), (vec![2, 3], 4));
    for max_bytes in [0, 1, len - 1] {
        let read = p.db.read_records(GROUP, 5, 9, max_bytes).expect("read");
        assert_eq!(offsets(&read), vec![5], "max_bytes {max_bytes}");
    }
}

#[test]
fn paging_by_next_offset_sees_every_record_once() {
    let (_dir, p) = partition();
    let len = record_len();
    for max_bytes in [0, len, len + 1, 3 * len, 5 * len - 1] {
        let (mut seen, mut next) = (Vec::new(), 0);
        while next < 9 {
            let read = p.db.read_records(GROUP, next, 9, max_bytes).expect("read");
            assert!(!read.records.is_empty(), "no progress at {next}");
            seen.extend(offsets(&read));
            next = read.next_offset;
        }
        assert_eq!(seen, (0..9).collect::<Vec<_>>(), "max_bytes {max_bytes}");
    }
}

#[test]
fn offsets_outside_the_log_are_out_of_range() {
    let (_dir, p) = partition();
    let caught_up =
        p.db.read_records(GROUP, 9, 9, usize::MAX)
            .expect("caught up");
    assert_eq!((caught_up.records.len(), caught_up.next_offset), (0, 9));
    let err =
        p.db.read_records(GROUP, 10, 9, usize::MAX)
            .expect_err("beyond");
    assert!(
        matches!(
            err,
            StorageError::OffsetOutOfRange {
                requested: 10,
                log_start: 0,
                high_watermark: 9,
                ..
            }
        ),
        "{err}"
    );
    let (_dir2, db) = temp_db();
    let empty = db
        .read_records(GROUP, 0, 0, usize::MAX)
        .expect("empty partition");
    assert!(empty.records.is_empty());
}

#[test]
fn trimming_deletes_only_whole_batches_below_the_offset() {
    let (_dir, p) = partition();
    let db = p.db.clone();
    assert_eq!(
        db.trim_partition(GROUP, 4).expect("trim"),
        Some(Trimmed {
            batches: 1,
            records: 3,
            last_slot: 1,
            log_start_offset: 3,
        }),
        "offsets 3..5 straddle 4 and stay"
    );
    assert_eq!(db.log_start_offset(GROUP).expect("start"), 3);
    let store = GroupStore::new(db.clone(), GROUP);
    let slots: Vec<u64> = store
        .entries(0, 10)
        .expect("entries")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(slots, vec![2, 3, 4]);
    let err = db
        .read_records(GROUP, 2, 9, usize::MAX)
        .expect_err("trimmed offset");
    assert!(
        matches!(err, StorageError::OffsetOutOfRange { log_start: 3, .. }),
        "{err}"
    );
    assert_eq!(
        offsets(&db.read_records(GROUP, 3, 9, usize::MAX).expect("read")),
        (3..9).collect::<Vec<_>>()
    );

    // Offsets never move backwards.
    assert_eq!(db.trim_partition(GROUP, 2).expect("trim below start"), None);
    assert_eq!(db.trim_partition(GROUP, 3).expect("trim at start"), None);
    assert_eq!(db.log_start_offset(GROUP).expect("start"), 3);
}

#[test]
fn a_partition_trimmed_empty_keeps_its_next_offset_across_restarts() {
    let (_dir, mut p) = partition();
    let trimmed =
        p.db.trim_partition(GROUP, 100)
            .expect("trim")
            .expect("something trimmed");
    assert_eq!(
        (
            trimmed.batches,
            trimmed.records,
            trimmed.last_slot,
            trimmed.log_start_offset
        ),
        (3, 9, 4, 9)
    );
    let last = Some(IndexEntry {
        base_offset: 5,
        slot: 4,
        count: 4,
    });
    assert_eq!(p.db.last_indexed(GROUP).expect("last"), last);

    p.db = reopen(p.db);
    assert_eq!(p.db.last_indexed(GROUP).expect("last after reopen"), last);
    assert_eq!(p.db.log_start_offset(GROUP).expect("start"), 9);
    assert_eq!(p.db.next_offset(GROUP).expect("next"), 9);
    assert!(
        p.db.read_records(GROUP, 9, 9, usize::MAX)
            .expect("empty")
            .records
            .is_empty()
    );
    assert!(
        GroupStore::new(p.db.clone(), GROUP)
            .entries(0, 10)
            .expect("entries")
            .is_empty()
    );

    // Appending continues where the log ended.
    p.append(2, SIZE);
    assert_eq!(
        offsets(&p.db.read_records(GROUP, 9, 11, usize::MAX).expect("read")),
        vec![9, 10]
    );
    assert_eq!(p.db.log_start_offset(GROUP).expect("start"), 9);
    assert_eq!(p.db.verify_group(GROUP).expect("verify").index_entries, 1);
}

#[test]
fn the_index_survives_a_restart() {
    let (_dir, mut p) = partition();
    p.db = reopen(p.db);
    assert_eq!(
        p.db.last_indexed(GROUP).expect("last"),
        Some(IndexEntry {
            base_offset: 5,
            slot: 4,
            count: 4,
        })
    );
    assert_eq!(
        p.db.read_records(GROUP, 0, 9, usize::MAX)
            .expect("read")
            .records
            .len(),
        9
    );
    assert_eq!(p.db.last_indexed(GROUP + 1).expect("other partition"), None);
    assert_eq!(p.db.next_offset(GROUP + 1).expect("other partition"), 0);
}

#[test]
fn retention_inputs_are_cheap_to_read() {
    let (_dir, p) = partition();
    assert_eq!(
        p.db.oldest_batch_timestamp(GROUP).expect("oldest"),
        Some(1_002)
    );
    p.db.trim_partition(GROUP, 3).expect("trim");
    assert_eq!(
        p.db.oldest_batch_timestamp(GROUP).expect("oldest"),
        Some(1_004)
    );
    assert_eq!(p.db.oldest_batch_timestamp(GROUP + 1).expect("empty"), None);

    let log = p.db.db().cf_handle(Cf::Log.name()).expect("log cf");
    p.db.db().flush_cf(log).expect("flush");
    let size = p.db.partition_size_bytes(GROUP).expect("size");
    assert!(size > 0, "flushed data has a size");
    assert_eq!(p.db.partition_size_bytes(GROUP + 1).expect("size"), 0);
}

#[test]
fn records_are_stored_once_in_the_log_entry() {
    let (_dir, p) = partition();
    // The log value is crc + header + the encoded command; the index holds no record bytes.
    let store = GroupStore::new(p.db.clone(), GROUP);
    let (_, entry) = store.entries(4, 4).expect("entries").remove(0);
    let paxlog_consensus::Value::Data(payload) = entry.value else {
        panic!("slot 4 holds data");
    };
    assert!(payload.len() > 4 * SIZE);
    let offsets_cf = p.db.db().cf_handle(Cf::Offsets.name()).expect("offsets cf");
    for item in
        p.db.db()
            .iterator_cf(offsets_cf, rocksdb::IteratorMode::Start)
    {
        let (_, value) = item.expect("index item");
        assert_eq!(value.len(), 16, "crc + slot + count");
    }
}

/// Flushed and compacted table and blob files (written with direct I/O where the file
/// system takes it) read back whole, across a reopen; record payloads are stored as sent,
/// uncompressed (these values would shrink a hundredfold under LZ4).
#[test]
fn flushed_and_compacted_tables_read_back_whole_and_uncompressed() {
    const BATCHES: u64 = 64;
    const PER_BATCH: u64 = 4;
    const BIG: usize = 2_000;
    let (dir, db) = temp_db();
    let mut p = Appender::new(db, GROUP);
    for _ in 0..BATCHES {
        p.append(PER_BATCH, BIG);
    }
    let raw = p.db.db();
    for cf in ["log", "offsets"] {
        raw.flush_cf(raw.cf_handle(cf).expect("cf")).expect("flush");
    }
    let log = raw.cf_handle("log").expect("log cf");
    raw.compact_range_cf(log, None::<&[u8]>, None::<&[u8]>);
    let db = reopen(p.db);
    let end = BATCHES * PER_BATCH;
    let read = db.read_records(GROUP, 0, end, usize::MAX).expect("read");
    assert_eq!(read.records.len() as u64, end);
    for (i, (offset, record)) in read.records.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(record, &records(*offset, 1, BIG)[0]);
    }
    let tables: u64 = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "sst" || x == "blob")
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(
        tables >= end * BIG as u64,
        "table and blob files hold {tables} bytes for {} bytes of values",
        end * BIG as u64
    );
}
