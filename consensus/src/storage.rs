//! The durable state of one replica, behind a trait the broker implements on RocksDB.
//!
//! The replica never writes storage itself: every change it needs is described by the
//! [`Persist`] part of a [`crate::Ready`], which the driver writes (possibly together with
//! other replicas' changes, as one synced batch) before it sends that `Ready`'s messages.
//! The replica reads storage only when it starts and when a lagging peer needs decided
//! entries it no longer keeps in memory.

use crate::types::{Ballot, Entry, Slot, Snapshot};

/// A storage failure. Fatal for the replica: it stops instead of guessing.
#[derive(Debug, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StorageError(pub String);

/// What a replica finds in storage when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The highest ballot promised.
    pub promised: Ballot,
    /// Every slot up to this one is decided (and applied by the application, or covered by
    /// `snapshot`).
    pub decided: Slot,
    /// The latest snapshot, if the log was ever compacted.
    pub snapshot: Option<Snapshot>,
    /// The highest slot with a stored entry (0 when none).
    pub last_slot: Slot,
}

/// Changes to make durable, atomically, before any message of the same `Ready` is sent.
///
/// Apply in this order: `snapshot` (then drop entries at or below its slot), `entries`
/// (overwriting a slot's previous entry; skip slots covered by the snapshot), `promised`,
/// `decided`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// A new promised ballot.
    pub promised: Option<Ballot>,
    /// Entries accepted or learned, in the order they were produced (a slot may repeat; the
    /// last write wins).
    pub entries: Vec<(Slot, Entry)>,
    /// A new decided index (never lower than the stored one).
    pub decided: Option<Slot>,
    /// A snapshot to store; entries up to its slot are no longer needed.
    pub snapshot: Option<Snapshot>,
}

impl Persist {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.promised.is_none()
            && self.entries.is_empty()
            && self.decided.is_none()
            && self.snapshot.is_none()
    }
}

/// Durable state of one replica.
///
/// Implementations must make `write` atomic and durable (fsync) before returning, and must
/// report corruption as an error rather than return bad data.
pub trait Storage {
    /// Reads the state a replica starts from.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// Reads the stored entries with `from <= slot <= to`, in slot order. Slots without an
    /// entry are skipped; slots covered by the snapshot are not returned.
    fn entries(&self, from: Slot, to: Slot) -> Result<Vec<(Slot, Entry)>, StorageError>;

    /// Makes `persist` durable, atomically.
    fn write(&mut self, persist: &Persist) -> Result<(), StorageError>;
}
