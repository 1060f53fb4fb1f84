//! Everything the node stores, on its one RocksDB instance ([`Db`]), shared as `Arc<Db>`.
//!
//! ```text
//!   data_dir/ (RocksDB)
//!     acceptor          per Paxos group: hard state, snapshot, partition trim marker
//!     log               accepted entries per group and slot (the stored record batches)
//!     offsets           offset index of each partition: (group, base offset) -> slot
//!     consumer_offsets  committed offsets of consumer groups (GroupCommit::put)
//!     meta              node identity, format version, node-local metadata
//! ```
//!
//! Writers: a [`GroupStore`] is the consensus [`Storage`](paxlog_consensus::Storage) of one
//! group, and [`GroupCommit`] writes the `Persist`s of many groups plus apply-time writes
//! (offset index, small puts) as one synced `WriteBatch`: one fsync per round of the replica
//! driver, however many partitions it serves. Readers: [`GroupStore`] for consensus,
//! [`Db::read_records`] for consumers (in [`crate::partition::log`]).
//!
//! ## Layouts
//! Keys are big-endian, so iteration follows numeric order and one group's keys are
//! contiguous. Every value starts with a CRC32 of the rest, checked on every read and by
//! [`Db::verify_group`]; a mismatch is a [`StorageError::Corrupt`] naming what and where.
//!
//! ```text
//!   cf        key                        value
//!   acceptor  group(8) | 0x01            crc(4) | round(8) | node(8) | decided(8) | snapshot slot(8)
//!   acceptor  group(8) | 0x02            crc(4) | slot(8) | snapshot data
//!   acceptor  group(8) | 0x03            crc(4) | base offset(8) | slot(8) | count(4)   last trimmed batch
//!   log       group(8) | slot(8)         crc(4) | round(8) | node(8) | kind(1) 0 noop/1 data | payload
//!   offsets   group(8) | base offset(8)  crc(4) | slot(8) | count(4)
//!   consumer_offsets / meta  any         crc(4) | value      (through GroupCommit::put)
//!   meta      "node_identity"            see NodeIdentity (its own checksum)
//! ```
//!
//! A partition's log payload is the encoded [`PartitionCommand`](crate::partition::codec):
//! the record bytes are written once, in the log entry, and the offset index only points
//! at slots.
//!
//! Opening refuses a directory that belongs to another node: two nodes sharing acceptor
//! state would break Paxos's safety, so a mixed-up `--data-dir` must stop the start.

mod commit;
mod error;
mod group;
mod identity;
mod index;
pub(crate) mod layout;
mod tuning;

pub use commit::{CommitStats, GroupCommit, KvSpace};
pub use error::{Location, StorageError};
pub use group::{GroupReport, GroupStore};
pub use identity::{FORMAT_VERSION, IDENTITY_KEY, NodeIdentity};
pub use layout::IndexEntry;

use crate::config::NodeId;
use crate::error::Fatal;
use layout::HardState;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBIterator, DBRecoveryMode, IteratorMode,
    ReadOptions, WriteOptions,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The column families, by purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Promised ballots and acceptor state.
    Acceptor,
    /// Accepted log entries.
    Log,
    /// Offset index.
    Offsets,
    /// Consumer group offsets.
    ConsumerOffsets,
    /// Node identity and node-local metadata.
    Meta,
    /// Idempotent producers' state per partition (group | producer id).
    Producers,
}

impl Cf {
    /// Every column family, created on open if missing.
    pub const ALL: [Cf; 6] = [
        Cf::Acceptor,
        Cf::Log,
        Cf::Offsets,
        Cf::ConsumerOffsets,
        Cf::Meta,
        Cf::Producers,
    ];

    /// The column family's name in RocksDB.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Acceptor => "acceptor",
            Cf::Log => "log",
            Cf::Offsets => "offsets",
            Cf::ConsumerOffsets => "consumer_offsets",
            Cf::Meta => "meta",
            Cf::Producers => "producers",
        }
    }
}

/// An open RocksDB instance that belongs to this node. Share it as `Arc<Db>`: every
/// method takes `&self`, and writes serialise internally.
#[derive(Debug)]
pub struct Db {
    db: DB,
    data_dir: PathBuf,
    identity: NodeIdentity,
    /// The commit lock, and the hard state of every group written or read by a commit.
    /// Writes that read before they write (promised and decided only move forward, trims)
    /// hold it, so they cannot interleave; caching the hard state spares a read per group
    /// per commit. Only commits write hard states, so the cache cannot go stale.
    hard_states: Mutex<HashMap<u64, HardState>>,
}

impl Db {
    /// Opens (creating if needed) the database at `data_dir` for node `node_id`.
    ///
    /// On first start it records the node's identity; later starts must use the same id,
    /// and a format this build does not know is refused. Blocking: call it off the async
    /// runtime's worker threads (`spawn_blocking`).
    pub fn open(data_dir: &Path, node_id: NodeId) -> Result<Db, Fatal> {
        std::fs::create_dir_all(data_dir).map_err(|source| Fatal::Io {
            action: "create data directory",
            path: data_dir.to_owned(),
            source,
        })?;
        let direct_io = tuning::direct_io_supported(data_dir);
        tracing::info!(data_dir = %data_dir.display(), direct_io,
            "opening storage (flushes and compactions use direct I/O where the file system takes it)");
        let mut options = tuning::db_options(direct_io);
        // RocksDB's default recovery replays the write-ahead log up to its first damaged
        // record and silently drops the synced writes behind it: promises and accepted
        // entries a majority counted on. Damage before the end stops the open instead; an
        // incomplete last record (a crash in mid-write, never acknowledged) is still fine.
        options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        // Closed logs' sizes go into the MANIFEST: a missing or shortened one stops the open.
        options.set_track_and_verify_wals_in_manifest(true);
        let families = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), tuning::cf_options(*cf)));
        let db = DB::open_cf_descriptors(&options, data_dir, families).map_err(|source| {
            let action = match source.kind() {
                rocksdb::ErrorKind::Corruption => {
                    "opening the database: its files are damaged, so the node stops rather \
                     than serve or vote with lost data (restore this data directory or replace \
                     the node)"
                }
                _ => "opening the database (is another broker using this directory?)",
            };
            storage_error(action, data_dir, source)
        })?;
        let identity = check_identity(&db, data_dir, node_id)?;
        verify_node_wide(&db, data_dir)?;
        Ok(Db {
            db,
            data_dir: data_dir.to_owned(),
            identity,
            hard_states: Mutex::new(HashMap::new()),
        })
    }

    /// The node this directory belongs to (equal to the id it was opened with).
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id
    }

    /// The identity record as stored.
    pub fn identity(&self) -> NodeIdentity {
        self.identity
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The raw RocksDB handle. Writing through it bypasses checksums and invariants: for
    /// tools and tests (e.g. injecting corruption) only.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Makes everything written so far durable (the WAL is synced) before the node stops.
    pub fn flush(&self) -> Result<(), Fatal> {
        self.db
            .flush_wal(true)
            .map_err(|source| storage_error("syncing the write-ahead log", &self.data_dir, source))
    }

    /// The handle of a column family.
    pub(crate) fn cf(&self, cf: Cf) -> Result<&ColumnFamily, StorageError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError::MissingColumnFamily {
                cf: cf.name(),
                data_dir: self.data_dir.clone(),
            })
    }

    /// Maps a RocksDB error of `action` on `group`. RocksDB checks its own block checksums:
    /// a failure there is corruption like ours, and is reported the same way.
    pub(crate) fn rocks(
        &self,
        action: &'static str,
        group: impl Into<Option<u64>>,
    ) -> impl FnOnce(rocksdb::Error) -> StorageError + '_ {
        let group = group.into();
        move |source| {
            if source.kind() == rocksdb::ErrorKind::Corruption {
                return self.corrupt(Location::Files { group }, format!("{action}: {source}"));
            }
            StorageError::Rocks {
                action,
                group,
                data_dir: self.data_dir.clone(),
                source,
            }
        }
    }

    /// Reports (and logs) damaged data at `location`.
    pub(crate) fn corrupt(&self, location: Location, reason: impl Into<String>) -> StorageError {
        let reason = reason.into();
        tracing::error!(
            group = location.group(),
            %location,
            data_dir = %self.data_dir.display(),
            %reason,
            "corrupt data found"
        );
        StorageError::Corrupt {
            location,
            data_dir: self.data_dir.clone(),
            reason,
        }
    }

    /// An iterator over the keys `[start, end)` of `cf`, in order or (`reverse`) backwards,
    /// reading from `snapshot` if given.
    pub(crate) fn range<'a>(
        &'a self,
        cf: Cf,
        (start, end): (Vec<u8>, Vec<u8>),
        reverse: bool,
        snapshot: Option<&rocksdb::Snapshot<'a>>,
    ) -> Result<DBIterator<'a>, StorageError> {
        let handle = self.cf(cf)?;
        let mut options = ReadOptions::default();
        if let Some(snapshot) = snapshot {
            options.set_snapshot(snapshot);
        }
        options.set_iterate_lower_bound(start);
        options.set_iterate_upper_bound(end);
        let mode = if reverse {
            IteratorMode::End
        } else {
            IteratorMode::Start
        };
        Ok(self.db.iterator_cf_opt(handle, options, mode))
    }

    /// Reads one value of `cf`, from `snapshot` if given.
    pub(crate) fn read_value(
        &self,
        cf: Cf,
        key: &[u8],
        snapshot: Option<&rocksdb::Snapshot<'_>>,
        (action, group): (&'static str, impl Into<Option<u64>>),
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let handle = self.cf(cf)?;
        let mut options = ReadOptions::default();
        if let Some(snapshot) = snapshot {
            options.set_snapshot(snapshot);
        }
        self.db
            .get_cf_opt(handle, key, &options)
            .map_err(self.rocks(action, group))
    }

    /// Takes the commit lock. A panic while it was held leaves nothing half-done in the
    /// cache (it is updated only after a successful write), so poisoning is ignored.
    pub(crate) fn lock_commits(&self) -> MutexGuard<'_, HashMap<u64, HardState>> {
        self.hard_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write options: `sync` makes the write durable (fsync of the WAL) before it returns.
    pub(crate) fn write_options(sync: bool) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(sync && !crate::planted::is(crate::planted::Bug::NoFsync));
        options
    }
}

fn storage_error(action: &'static str, data_dir: &Path, source: rocksdb::Error) -> Fatal {
    Fatal::Storage {
        action,
        data_dir: data_dir.to_owned(),
        source,
    }
}

/// Reads every block of the node-wide column families (acceptor state, identity, consumer
/// offsets, producers), so RocksDB checks their checksums before the node answers anyone:
/// damage there concerns many groups at once and stops the start. The partitions' logs and
/// offset indexes are checked group by group when their replicas open
/// ([`Db::verify_group`]), where damage takes only that replica out of service.
fn verify_node_wide(db: &DB, data_dir: &Path) -> Result<(), Fatal> {
    for cf in [Cf::Acceptor, Cf::Meta, Cf::ConsumerOffsets, Cf::Producers] {
        let handle = cf_handle(db, cf, data_dir)?;
        for item in db.iterator_cf(handle, IteratorMode::Start) {
            item.map_err(|source| {
                storage_error(
                    "checking the node-wide data (acceptor state, consumer offsets, producers); \
                     the node stops: restore this data directory or replace the node",
                    data_dir,
                    source,
                )
            })?;
        }
    }
    Ok(())
}

/// Reads the identity record, writing it on a fresh directory, and checks it matches.
fn check_identity(db: &DB, data_dir: &Path, node_id: NodeId) -> Result<NodeIdentity, Fatal> {
    let meta = cf_handle(db, Cf::Meta, data_dir)?;
    let read_error = |source| storage_error("reading the node identity", data_dir, source);
    let Some(stored) = db.get_cf(meta, IDENTITY_KEY).map_err(read_error)? else {
        return initialise_identity(db, data_dir, node_id);
    };
    let identity = NodeIdentity::decode(&stored).map_err(|reason| Fatal::CorruptIdentity {
        data_dir: data_dir.to_owned(),
        reason,
    })?;
    if identity.format_version > FORMAT_VERSION {
        return Err(Fatal::UnsupportedFormat {
            data_dir: data_dir.to_owned(),
            found: identity.format_version,
            supported: FORMAT_VERSION,
        });
    }
    if identity.node_id != node_id {
        return Err(Fatal::WrongNode {
            data_dir: data_dir.to_owned(),
            found: identity.node_id,
            expected: node_id,
        });
    }
    Ok(identity)
}

/// Claims a fresh directory for `node_id`. A directory that holds data but no identity was
/// damaged or assembled by hand: claiming it could hand one node's promises to another.
fn initialise_identity(db: &DB, data_dir: &Path, node_id: NodeId) -> Result<NodeIdentity, Fatal> {
    for cf in Cf::ALL {
        let handle = cf_handle(db, cf, data_dir)?;
        if db.iterator_cf(handle, IteratorMode::Start).next().is_some() {
            return Err(Fatal::CorruptIdentity {
                data_dir: data_dir.to_owned(),
                reason: format!(
                    "column family {} holds data but no identity record exists",
                    cf.name()
                ),
            });
        }
    }
    let identity = NodeIdentity::new(node_id);
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.put_cf_opt(
        cf_handle(db, Cf::Meta, data_dir)?,
        IDENTITY_KEY,
        identity.encode(),
        &sync,
    )
    .map_err(|source| storage_error("writing the node identity", data_dir, source))?;
    tracing::info!(node = node_id, data_dir = %data_dir.display(), format = FORMAT_VERSION, "initialised new data directory");
    Ok(identity)
}

fn cf_handle<'a>(db: &'a DB, cf: Cf, data_dir: &Path) -> Result<&'a rocksdb::ColumnFamily, Fatal> {
    // Unreachable after a successful open (every family is created), but a missing handle
    // must not panic a node.
    db.cf_handle(cf.name())
        .ok_or_else(|| Fatal::CorruptIdentity {
            data_dir: data_dir.to_owned(),
            reason: format!("column family {} is missing", cf.name()),
        })
}

#[cfg(test)]
mod tests;
