//! Helpers for the storage tests: databases in temporary directories, partition batches.

#![allow(dead_code)] // each test file uses a different subset

use bytes::Bytes;
use paxlog_broker::partition::{AppendBatch, PartitionCommand, Record};
use paxlog_broker::storage::{Cf, Db, GroupCommit};
use paxlog_consensus::{Ballot, Entry, Persist, Slot, Value};
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;

/// The node id every test database belongs to.
pub const NODE: u64 = 1;

/// A fresh database in its own temporary directory (removed when `TempDir` drops).
pub fn temp_db() -> (TempDir, Arc<Db>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Db::open(dir.path(), NODE).expect("open db"));
    (dir, db)
}

/// Closes `db` (it must be the last reference) and opens its directory again.
pub fn reopen(db: Arc<Db>) -> Arc<Db> {
    let dir = db.data_dir().to_owned();
    let db = Arc::into_inner(db).expect("the test holds the only reference");
    drop(db);
    Arc::new(Db::open(&dir, NODE).expect("reopen db"))
}

/// An entry accepted under ballot `(round, 1)`.
pub fn data_entry(round: u64, payload: &[u8]) -> Entry {
    Entry {
        ballot: Ballot::new(round, 1),
        value: Value::Data(Bytes::copy_from_slice(payload)),
    }
}

/// `n` records whose values say which offset they should land at, `size` bytes each.
pub fn records(first_offset: u64, n: u64, size: usize) -> Vec<Record> {
    (first_offset..first_offset + n)
        .map(|offset| {
            let mut value = format!("offset-{offset}:").into_bytes();
            value.resize(size.max(value.len()), b'.');
            Record {
                key: Bytes::from(format!("k{offset}")),
                value: Bytes::from(value),
                headers: vec![("h".to_owned(), Bytes::from_static(b"v"))],
                timestamp_ms: 1_000 + offset as i64,
            }
        })
        .collect()
}

/// A partition being appended to the way the replica driver will: each batch is the
/// decided entry of its slot, indexed when applied, in one group commit.
pub struct Appender {
    pub db: Arc<Db>,
    pub group: u64,
    pub next_offset: u64,
    pub next_slot: Slot,
}

impl Appender {
    pub fn new(db: Arc<Db>, group: u64) -> Self {
        Self {
            db,
            group,
            next_offset: 0,
            next_slot: 1,
        }
    }

    /// Appends a batch of `n` records of `size` bytes; returns its slot.
    pub fn append(&mut self, n: u64, size: usize) -> Slot {
        let batch = AppendBatch {
            producer: None,
            records: records(self.next_offset, n, size),
        };
        let payload = PartitionCommand::Append(batch).encode();
        let slot = self.next_slot;
        let mut commit = GroupCommit::new();
        commit
            .persist(
                self.group,
                Persist {
                    entries: vec![(slot, data_entry(1, &payload))],
                    decided: Some(slot),
                    ..Persist::default()
                },
            )
            .index(self.group, self.next_offset, slot, n as u32);
        self.db.commit(commit, true).expect("commit");
        self.next_offset += n;
        self.next_slot += 1;
        slot
    }

    /// Decides a no-op in the next slot (a gap a new leader filled).
    pub fn noop(&mut self) -> Slot {
        let slot = self.next_slot;
        let entry = Entry {
            ballot: Ballot::new(1, 1),
            value: Value::Noop,
        };
        let mut commit = GroupCommit::new();
        commit.persist(
            self.group,
            Persist {
                entries: vec![(slot, entry)],
                decided: Some(slot),
                ..Persist::default()
            },
        );
        self.db.commit(commit, true).expect("commit");
        self.next_slot += 1;
        slot
    }
}

/// Flips one bit of the stored log value of `group` at `slot`, behind the storage layer's
/// back (what a bad disk does).
pub fn flip_log_byte(db: &Db, group: u64, slot: Slot, at: usize) {
    let mut key = group.to_be_bytes().to_vec();
    key.extend_from_slice(&slot.to_be_bytes());
    let cf = db.db().cf_handle(Cf::Log.name()).expect("log cf");
    let mut value = db
        .db()
        .get_cf(cf, &key)
        .expect("get")
        .expect("entry exists");
    let at = at.min(value.len() - 1);
    value[at] ^= 0x10;
    db.db().put_cf(cf, &key, value).expect("put");
}

/// Asserts the error text names what an operator needs.
pub fn assert_names(err: &impl std::fmt::Display, dir: &Path, needles: &[&str]) {
    let text = err.to_string();
    assert!(
        text.contains(&dir.display().to_string()),
        "data dir missing: {text}"
    );
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
}
