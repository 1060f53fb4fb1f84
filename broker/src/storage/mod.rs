//! The node's one RocksDB instance, its column families, and the node identity check.
//!
//! ```text
//!   data_dir/ (RocksDB)
//!     acceptor          promised ballot and acceptor state per Paxos group
//!     log               accepted entries per group and slot (the stored record batches)
//!     offsets           offset index: (partition, offset) -> slot
//!     consumer_offsets  committed offsets of consumer groups
//!     meta              node identity, format version, node-local metadata
//! ```
//!
//! Opening refuses a directory that belongs to another node: two nodes sharing acceptor
//! state would break Paxos's safety, so a mixed-up `--data-dir` must stop the start.

mod identity;

pub use identity::{FORMAT_VERSION, IDENTITY_KEY, NodeIdentity};

use crate::config::NodeId;
use crate::error::Fatal;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteOptions};
use std::path::{Path, PathBuf};

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
}

impl Cf {
    /// Every column family, created on open if missing.
    pub const ALL: [Cf; 5] = [
        Cf::Acceptor,
        Cf::Log,
        Cf::Offsets,
        Cf::ConsumerOffsets,
        Cf::Meta,
    ];

    /// The column family's name in RocksDB.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Acceptor => "acceptor",
            Cf::Log => "log",
            Cf::Offsets => "offsets",
            Cf::ConsumerOffsets => "consumer_offsets",
            Cf::Meta => "meta",
        }
    }
}

/// An open RocksDB instance that belongs to this node.
#[derive(Debug)]
pub struct Storage {
    db: DB,
    data_dir: PathBuf,
    identity: NodeIdentity,
}

impl Storage {
    /// Opens (creating if needed) the database at `data_dir` for node `node_id`.
    ///
    /// On first start it records the node's identity; later starts must use the same id,
    /// and a format this build does not know is refused. Blocking: call it off the async
    /// runtime's worker threads (`spawn_blocking`).
    pub fn open(data_dir: &Path, node_id: NodeId) -> Result<Storage, Fatal> {
        std::fs::create_dir_all(data_dir).map_err(|source| Fatal::Io {
            action: "create data directory",
            path: data_dir.to_owned(),
            source,
        })?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        let db = DB::open_cf_descriptors(&options, data_dir, families).map_err(|source| {
            storage_error(
                "opening the database (is another broker using this directory?)",
                data_dir,
                source,
            )
        })?;
        let identity = check_identity(&db, data_dir, node_id)?;
        Ok(Storage {
            db,
            data_dir: data_dir.to_owned(),
            identity,
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

    /// The RocksDB handle, for the storage modules built on it.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Makes everything written so far durable (the WAL is synced) before the node stops.
    pub fn flush(&self) -> Result<(), Fatal> {
        self.db
            .flush_wal(true)
            .map_err(|source| storage_error("syncing the write-ahead log", &self.data_dir, source))
    }
}

fn storage_error(action: &'static str, data_dir: &Path, source: rocksdb::Error) -> Fatal {
    Fatal::Storage {
        action,
        data_dir: data_dir.to_owned(),
        source,
    }
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
