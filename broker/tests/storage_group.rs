//! The consensus storage of Paxos groups on real RocksDB: conformance, durability across
//! reopen, group commit, and corruption detection.

mod storage_common;

use bytes::Bytes;
use paxlog_broker::storage::{
    CommitStats, Db, GroupCommit, GroupReport, GroupStore, IDENTITY_KEY, IndexEntry, KvSpace,
    StorageError,
};
use paxlog_consensus::{Ballot, Entry, InitialState, Persist, Snapshot, Storage, Value};
use std::sync::Arc;
use storage_common::{Appender, NODE, assert_names, data_entry, flip_log_byte, reopen, temp_db};
use tempfile::TempDir;

/// Runs the consensus conformance suite on `group`, in databases where `neighbours` hold
/// data too (so a key range that leaks across groups fails it).
fn conformance_on(group: u64, neighbours: &[u64]) {
    let mut dirs: Vec<TempDir> = Vec::new();
    paxlog_consensus::conformance::run(
        || {
            let (dir, db) = temp_db();
            for &other in neighbours {
                let mut store = GroupStore::new(db.clone(), other);
                store
                    .write(&Persist {
                        promised: Some(Ballot::new(9, 9)),
                        entries: (1..=12)
                            .map(|s| (s, data_entry(9, b"other group")))
                            .collect(),
                        decided: Some(12),
                        snapshot: None,
                    })
                    .expect("write neighbour");
            }
            dirs.push(dir);
            GroupStore::new(db, group)
        },
        |store| {
            let group = store.group();
            let db = store.db().clone();
            drop(store);
            GroupStore::new(reopen(db), group)
        },
    );
}

#[test]
fn rocksdb_group_store_passes_the_conformance_suite() {
    conformance_on(1, &[]);
}

#[test]
fn conformance_holds_next_to_other_groups_and_at_the_key_space_edges() {
    conformance_on(7, &[6, 8]);
    conformance_on(0, &[1]);
    conformance_on(u64::MAX, &[u64::MAX - 1]);
}

#[test]
fn everything_written_survives_reopen() {
    let (_dir, db) = temp_db();
    let mut store = GroupStore::new(db.clone(), 3);
    let snapshot = Snapshot {
        slot: 2,
        data: Bytes::from_static(b"state@2"),
    };
    store
        .write(&Persist {
            promised: Some(Ballot::new(4, 2)),
            entries: (1..=5).map(|s| (s, data_entry(4, b"v"))).collect(),
            decided: Some(4),
            snapshot: None,
        })
        .expect("write");
    store
        .write(&Persist {
            snapshot: Some(snapshot.clone()),
            entries: vec![(
                6,
                Entry {
                    ballot: Ballot::new(4, 2),
                    value: Value::Noop,
                },
            )],
            ..Persist::default()
        })
        .expect("write snapshot");
    drop(store);
    let store = GroupStore::new(reopen(db), 3);
    assert_eq!(
        store.initial_state().expect("initial state"),
        InitialState {
            promised: Ballot::new(4, 2),
            decided: 4,
            snapshot: Some(snapshot),
            last_slot: 6,
        }
    );
    let slots: Vec<u64> = store
        .entries(0, 100)
        .expect("entries")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(slots, vec![3, 4, 5, 6]);
    assert_eq!(
        store.db().verify_group(3).expect("verify"),
        GroupReport {
            entries: 4,
            bytes: 3 * 22 + 21, // crc(4) + header(17) + payload
            last_slot: 6,
            index_entries: 0,
        }
    );
}

#[test]
fn one_commit_writes_many_groups_and_index_entries_atomically() {
    let (_dir, db) = temp_db();
    let mut commit = GroupCommit::new();
    for group in [1, 2, 3] {
        commit.persist(
            group,
            Persist {
                promised: Some(Ballot::new(group, 1)),
                entries: vec![
                    (1, data_entry(group, b"batch-a")),
                    (2, data_entry(group, b"batch-b")),
                ],
                decided: Some(2),
                snapshot: None,
            },
        );
        commit.index(group, 0, 1, 3).index(group, 3, 2, 2);
    }
    // Empty persists add nothing (the driver hands over every Ready's).
    commit.persist(4, Persist::default());
    commit.put(KvSpace::ConsumerOffsets, b"g1/topic/0".to_vec(), b"42");
    commit.put(KvSpace::Meta, b"cluster_id".to_vec(), b"c-1");
    let stats = db.commit(commit, true).expect("commit");
    assert_eq!((stats.groups, stats.entries), (3, 6));
    assert!(stats.bytes > 6 * 7, "{stats:?}");

    let db = reopen(db);
    for group in [1, 2, 3] {
        let store = GroupStore::new(db.clone(), group);
        let init = store.initial_state().expect("initial state");
        assert_eq!(
            (init.promised, init.decided, init.last_slot),
            (Ballot::new(group, 1), 2, 2)
        );
        assert_eq!(
            store.entries(1, 2).expect("entries")[1].1,
            data_entry(group, b"batch-b")
        );
        assert_eq!(
            db.last_indexed(group).expect("index"),
            Some(IndexEntry {
                base_offset: 3,
                slot: 2,
                count: 2,
            })
        );
    }
    assert_eq!(
        GroupStore::new(db.clone(), 4)
            .initial_state()
            .expect("init"),
        InitialState::default()
    );
    assert_eq!(
        db.get(KvSpace::ConsumerOffsets, b"g1/topic/0")
            .expect("get"),
        Some(Bytes::from_static(b"42"))
    );
    assert_eq!(
        db.scan_prefix(KvSpace::Meta, b"").expect("scan"),
        vec![(b"cluster_id".to_vec(), Bytes::from_static(b"c-1"))],
        "the node identity is not a user value"
    );
}

#[test]
fn persists_of_one_group_in_one_commit_apply_in_order() {
    let (_dir, db) = temp_db();
    let mut commit = GroupCommit::new();
    commit
        .persist(
            5,
            Persist {
                promised: Some(Ballot::new(3, 1)),
                entries: vec![(1, data_entry(3, b"first"))],
                ..Persist::default()
            },
        )
        .persist(
            5,
            Persist {
                promised: Some(Ballot::new(2, 1)), // lower: ignored
                entries: vec![(1, data_entry(3, b"second"))],
                decided: Some(1),
                snapshot: None,
            },
        );
    let stats = db.commit(commit, false).expect("commit");
    assert_eq!((stats.groups, stats.entries), (1, 2));
    let store = GroupStore::new(db, 5);
    let init = store.initial_state().expect("initial state");
    assert_eq!((init.promised, init.decided), (Ballot::new(3, 1), 1));
    assert_eq!(
        store.entries(1, 1).expect("entries"),
        vec![(1, data_entry(3, b"second"))]
    );
}

#[test]
fn an_empty_commit_writes_nothing() {
    let (_dir, db) = temp_db();
    assert_eq!(
        db.commit(GroupCommit::new(), true).expect("commit"),
        CommitStats::default()
    );
}

#[test]
fn a_snapshot_cuts_the_offset_index_it_covers() {
    let (_dir, db) = temp_db();
    let mut partition = Appender::new(db.clone(), 9);
    partition.append(2, 10); // slot 1, offsets 0..2
    partition.noop(); // slot 2
    partition.append(3, 10); // slot 3, offsets 2..5
    partition.append(1, 10); // slot 4, offset 5
    let mut store = GroupStore::new(db.clone(), 9);
    store
        .write(&Persist {
            snapshot: Some(Snapshot {
                slot: 3,
                data: Bytes::from_static(b"partition state"),
            }),
            ..Persist::default()
        })
        .expect("snapshot");
    let slots: Vec<u64> = store
        .entries(0, 10)
        .expect("entries")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(slots, vec![4]);
    assert_eq!(db.log_start_offset(9).expect("start"), 5);
    let read = db.read_records(9, 5, 6, 1 << 20).expect("read");
    assert_eq!(read.records.len(), 1);
    drop((partition, store));
    let db = reopen(db);
    assert_eq!(db.next_offset(9).expect("next"), 6);
    assert_eq!(db.verify_group(9).expect("verify").index_entries, 1);
}

#[test]
fn a_flipped_byte_is_reported_with_group_slot_and_directory() {
    let (dir, db) = temp_db();
    let mut damaged = Appender::new(db.clone(), 2);
    let mut healthy = Appender::new(db.clone(), 3);
    for _ in 0..4 {
        damaged.append(2, 50);
        healthy.append(2, 50);
    }
    flip_log_byte(&db, 2, 3, 40);
    let needles = [
        "group 2",
        "slot 3",
        "checksum mismatch",
        "stops serving this partition",
        "repaired from its peers",
    ];

    let store = GroupStore::new(db.clone(), 2);
    let err = store
        .entries(1, 4)
        .expect_err("entries must not serve bad data");
    assert_names(&err, dir.path(), &needles);
    // Slots before the damage still read.
    assert_eq!(
        store
            .entries(1, 2)
            .expect("entries before the damage")
            .len(),
        2
    );

    let err = db.verify_group(2).expect_err("recovery scan");
    assert!(err.is_corruption() && err.group() == Some(2), "{err}");
    assert_names(&err, dir.path(), &needles);

    let err = db.read_records(2, 4, 8, 1 << 20).expect_err("read_records");
    assert_names(&err, dir.path(), &needles);
    assert_eq!(
        db.read_records(2, 0, 4, 1 << 20)
            .expect("batches before")
            .records
            .len(),
        4
    );

    // Other groups are not affected.
    assert_eq!(db.verify_group(3).expect("healthy group").entries, 4);
    assert_eq!(
        db.read_records(3, 0, 8, 1 << 20)
            .expect("healthy read")
            .records
            .len(),
        8
    );
    let healthy_store = GroupStore::new(db.clone(), 3);
    assert_eq!(
        healthy_store.entries(1, 4).expect("healthy entries").len(),
        4
    );

    // Through the consensus trait the message survives, for the operator.
    let consensus_err = <GroupStore as Storage>::entries(&store, 3, 3).expect_err("trait");
    assert_names(&consensus_err, dir.path(), &needles);

    // And it is still there after a restart.
    drop((store, healthy_store, damaged, healthy));
    let db = reopen(db);
    assert!(
        db.verify_group(2)
            .expect_err("after reopen")
            .is_corruption()
    );
}

#[test]
fn a_damaged_hard_state_or_value_is_reported() {
    let (dir, db) = temp_db();
    let mut store = GroupStore::new(db.clone(), 4);
    store
        .write(&Persist {
            promised: Some(Ballot::new(1, 1)),
            ..Persist::default()
        })
        .expect("write");
    let mut commit = GroupCommit::new();
    commit.put(KvSpace::ConsumerOffsets, b"g/t/0".to_vec(), b"7");
    db.commit(commit, true).expect("commit");

    let acceptor = db.db().cf_handle("acceptor").expect("cf");
    let key = [4u64.to_be_bytes().as_slice(), &[1]].concat();
    let mut value = db
        .db()
        .get_cf(acceptor, &key)
        .expect("get")
        .expect("hard state");
    value[10] ^= 1;
    db.db().put_cf(acceptor, &key, value).expect("put");
    let err = store.initial_state().expect_err("hard state");
    assert_names(
        &err,
        dir.path(),
        &["hard state of group 4", "checksum mismatch"],
    );

    let offsets = db.db().cf_handle("consumer_offsets").expect("cf");
    db.db()
        .put_cf(offsets, b"g/t/0", b"\0\0\0\0x")
        .expect("put");
    let err = db.get(KvSpace::ConsumerOffsets, b"g/t/0").expect_err("kv");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn the_identity_key_cannot_be_overwritten_through_a_commit() {
    let (dir, db) = temp_db();
    let mut commit = GroupCommit::new();
    commit.put(KvSpace::Meta, IDENTITY_KEY.to_vec(), b"mine");
    let err = db.commit(commit, true).expect_err("reserved");
    assert!(matches!(err, StorageError::ReservedKey { .. }), "{err}");
    drop(db);
    Db::open(dir.path(), NODE).expect("identity intact");
}

#[test]
fn groups_share_one_database_handle() {
    let (_dir, db) = temp_db();
    let stores: Vec<GroupStore> = (0..3)
        .map(|g| GroupStore::new(Arc::clone(&db), g))
        .collect();
    assert_eq!(Arc::strong_count(&db), 4);
    assert!(stores.iter().all(|s| Arc::ptr_eq(s.db(), &db)));
}

/// Flipped bytes in the middle of the largest table file (its data blocks, the keys since
/// record batches moved to blob files), as a bad disk or the jepsen nemesis would.
#[test]
fn a_damaged_file_on_disk_is_reported_as_corruption() {
    file_damage_is_reported("sst", |path| flip_middle(path, 8));
}

/// Record batches live in blob files (see `storage/tuning.rs`): damage there is caught by
/// the scan a replica's open runs, like damage in a table file.
#[test]
fn a_damaged_blob_file_is_reported_as_corruption() {
    file_damage_is_reported("blob", |path| flip_middle(path, 8));
}

#[test]
fn a_blob_file_cut_short_is_reported_as_corruption() {
    file_damage_is_reported("blob", |path| {
        let len = std::fs::metadata(path).expect("metadata").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open")
            .set_len(len / 2)
            .expect("cut");
    });
}

/// Writes partition 2, flushes it to files, applies `damage` to the largest `.ext` file,
/// and checks that the open's scan of the partition reports corruption naming it.
fn file_damage_is_reported(ext: &str, damage: impl FnOnce(&std::path::Path)) {
    let (dir, db) = temp_db();
    let mut partition = Appender::new(db.clone(), 2);
    for _ in 0..64 {
        partition.append(4, 500);
    }
    let log = db.db().cf_handle("log").expect("log cf");
    db.db().flush_cf(log).expect("flush");
    drop(partition);
    let db = Arc::into_inner(db).expect("only reference");
    drop(db);

    damage(&largest_file(dir.path(), ext));

    let db = Db::open(dir.path(), NODE).expect("open does not read every block");
    let err = db.verify_group(2).expect_err("the scan reads every block");
    assert!(err.is_corruption() && err.group() == Some(2), "{err}");
    assert_names(
        &err,
        dir.path(),
        &["group 2", "stops serving this partition"],
    );
}

/// The biggest file of `dir` whose name ends in `ext`.
fn largest_file(dir: &std::path::Path, ext: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("list data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap_or_else(|| panic!("no .{ext} file in {}", dir.display()))
}

/// XORs `n` bytes in the middle of `path`.
fn flip_middle(path: &std::path::Path, n: usize) {
    let mut bytes = std::fs::read(path).expect("read file");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + n] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).expect("write file");
}

/// RocksDB's default recovery replays the write-ahead log up to the first damaged record
/// and silently drops the synced writes behind it (promises and accepted entries a
/// majority counted on). A damaged write-ahead log must stop the open instead.
#[test]
fn a_damaged_write_ahead_log_stops_the_open() {
    let (dir, db) = temp_db();
    let mut partition = Appender::new(db.clone(), 2);
    for _ in 0..64 {
        partition.append(4, 500);
    }
    drop(partition);
    drop(Arc::into_inner(db).expect("only reference"));

    flip_middle(&largest_file(dir.path(), "log"), 8);

    let err = Db::open(dir.path(), NODE).expect_err("a damaged log must not open");
    let text = err.to_string();
    assert!(
        text.contains("Corruption")
            && text.contains("files are damaged")
            && text.contains(&dir.path().display().to_string()),
        "{text}"
    );
}

/// Node-wide column families (consumer offsets, producers, acceptor state, identity) are
/// read in full when the database opens: damage there stops the node before it answers.
#[test]
fn a_damaged_node_wide_table_stops_the_open() {
    let (dir, db) = temp_db();
    for batch in 0..20u32 {
        let mut commit = GroupCommit::new();
        for i in 0..200u32 {
            let key = format!("group-{batch}-{i:05}");
            commit.put(KvSpace::ConsumerOffsets, key.into_bytes(), &[7u8; 64]);
        }
        db.commit(commit, true).expect("commit");
    }
    let offsets = db.db().cf_handle("consumer_offsets").expect("cf");
    db.db().flush_cf(offsets).expect("flush");
    drop(Arc::into_inner(db).expect("only reference"));

    flip_middle(&largest_file(dir.path(), "sst"), 8);

    let err = Db::open(dir.path(), NODE).expect_err("damaged offsets must not open");
    let text = err.to_string();
    assert!(
        text.contains("Corruption") && text.contains("checking"),
        "{text}"
    );
}
