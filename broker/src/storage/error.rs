//! The storage layer's error: what went wrong, where in the data directory, and what the
//! node does about it.
//!
//! Corruption is reported, never served: a value whose checksum does not match (or that does
//! not decode) becomes [`StorageError::Corrupt`], and the replica of that group stops serving
//! it until it is repaired from its peers. Other groups on the same node are unaffected.

use paxlog_consensus::Slot;
use std::fmt;
use std::path::PathBuf;

/// Where a damaged value was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A group's hard state (promised ballot, decided index).
    HardState {
        /// The Paxos group.
        group: u64,
    },
    /// A group's stored snapshot.
    Snapshot {
        /// The Paxos group.
        group: u64,
    },
    /// A log entry.
    Slot {
        /// The Paxos group.
        group: u64,
        /// The slot.
        slot: Slot,
    },
    /// An offset index entry of a partition.
    Index {
        /// The Paxos group of the partition.
        group: u64,
        /// The base offset the entry is keyed by.
        base_offset: u64,
    },
    /// The record of the last batch a partition trimmed.
    TrimMarker {
        /// The Paxos group of the partition.
        group: u64,
    },
    /// RocksDB's own files (a block checksum RocksDB verifies failed).
    Files {
        /// The group being read or written, if the operation concerned one.
        group: Option<u64>,
    },
    /// A value written through [`crate::storage::GroupCommit::put`].
    Key {
        /// The column family.
        cf: &'static str,
        /// The key, lossily shown as text.
        key: String,
    },
}

impl Location {
    /// The Paxos group the damaged value belongs to, if it belongs to one.
    pub fn group(&self) -> Option<u64> {
        match *self {
            Location::HardState { group }
            | Location::Snapshot { group }
            | Location::Slot { group, .. }
            | Location::Index { group, .. }
            | Location::TrimMarker { group } => Some(group),
            Location::Files { group } => group,
            Location::Key { .. } => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::HardState { group } => write!(f, "hard state of group {group}"),
            Location::Snapshot { group } => write!(f, "snapshot of group {group}"),
            Location::Slot { group, slot } => {
                write!(f, "log entry of group {group} at slot {slot}")
            }
            Location::Index { group, base_offset } => {
                write!(
                    f,
                    "offset index entry of group {group} at offset {base_offset}"
                )
            }
            Location::TrimMarker { group } => write!(f, "trim marker of group {group}"),
            Location::Files { group: Some(group) } => {
                write!(f, "RocksDB files holding group {group}")
            }
            Location::Files { group: None } => f.write_str("RocksDB files"),
            Location::Key { cf, key } => write!(f, "{cf} value of key {key:?}"),
        }
    }
}

/// What the node does about a damaged value, for the operator reading the message.
struct Consequence<'a>(&'a Location);

impl fmt::Display for Consequence<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.group() {
            Some(0) => f.write_str(
                "this replica stops serving the cluster metadata (group 0); it will be repaired from its peers",
            ),
            Some(group) => write!(
                f,
                "this replica stops serving this partition (group {group}); it will be repaired from its peers"
            ),
            None if matches!(self.0, Location::Key { .. }) => f.write_str("the value is not served"),
            None => f.write_str(
                "the groups stored there stop serving on this replica; they will be repaired from their peers",
            ),
        }
    }
}

/// " (group N)", or nothing for operations spanning groups.
struct OfGroup(Option<u64>);

impl fmt::Display for OfGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(group) => write!(f, " (group {group})"),
            None => Ok(()),
        }
    }
}

/// A storage failure of one operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A stored value failed its checksum or does not decode.
    #[error(
        "corrupt data in {}: {location}: {reason}; {}",
        data_dir.display(),
        Consequence(location)
    )]
    Corrupt {
        /// What is damaged.
        location: Location,
        /// The data directory.
        data_dir: PathBuf,
        /// What is wrong with it, e.g. "checksum mismatch".
        reason: String,
    },
    /// RocksDB failed.
    #[error(
        "storage failure while {action}{} in {}: {source}",
        OfGroup(*group),
        data_dir.display()
    )]
    Rocks {
        /// What the broker was doing, e.g. "writing a group commit".
        action: &'static str,
        /// The group concerned; `None` for writes spanning several groups.
        group: Option<u64>,
        /// The data directory.
        data_dir: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A read asked for an offset the partition does not hold.
    #[error(
        "offset {requested} of group {group} is out of range: offsets [{log_start}, {high_watermark}) are readable; reset to the earliest or latest offset"
    )]
    OffsetOutOfRange {
        /// The partition's Paxos group.
        group: u64,
        /// The offset asked for.
        requested: u64,
        /// The first offset still stored.
        log_start: u64,
        /// The end of the readable range (exclusive).
        high_watermark: u64,
    },
    /// A key reserved for the storage layer was written through the generic put.
    #[error("key {key:?} of column family {cf} is reserved for the storage layer")]
    ReservedKey {
        /// The column family.
        cf: &'static str,
        /// The key, lossily shown as text.
        key: String,
    },
    /// A column family is missing (cannot happen after a successful open).
    #[error("column family {cf} is missing in {}", data_dir.display())]
    MissingColumnFamily {
        /// The column family.
        cf: &'static str,
        /// The data directory.
        data_dir: PathBuf,
    },
}

impl StorageError {
    /// Whether stored data is damaged: the replica of [`StorageError::group`] must stop
    /// serving and be repaired from its peers.
    pub fn is_corruption(&self) -> bool {
        matches!(self, StorageError::Corrupt { .. })
    }

    /// The Paxos group the error concerns, if it concerns one.
    pub fn group(&self) -> Option<u64> {
        match self {
            StorageError::Corrupt { location, .. } => location.group(),
            StorageError::Rocks { group, .. } => *group,
            StorageError::OffsetOutOfRange { group, .. } => Some(*group),
            StorageError::ReservedKey { .. } | StorageError::MissingColumnFamily { .. } => None,
        }
    }
}

/// Consensus sees storage errors as opaque and fatal for the replica; the message keeps the
/// group, location and data directory for the operator.
impl From<StorageError> for paxlog_consensus::StorageError {
    fn from(err: StorageError) -> Self {
        paxlog_consensus::StorageError(err.to_string())
    }
}
