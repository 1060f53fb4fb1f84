//! [`GroupStore`]: the consensus [`Storage`] of one Paxos group on the shared [`Db`], and
//! the reads behind it, including the recovery scan [`Db::verify_group`].
//!
//! ```text
//!   Replica<GroupStore> ──initial_state/entries──▶ Db (acceptor, log)   every value CRC-checked
//!          │ Ready.persist
//!          └──────write──▶ GroupCommit of one group ──▶ Db::commit (synced WriteBatch)
//! ```
//!
//! Group 0 is the cluster metadata; partitions have non-zero group ids. A replica driver
//! serving many groups writes them together with [`GroupCommit`] instead of calling
//! [`GroupStore::write`] per group; both encode a `Persist` in the same place.

use super::layout::{self, HardState, IndexEntry, TAG_HARD_STATE, TAG_SNAPSHOT, TAG_TRIM_MARKER};
use super::{Cf, Db, GroupCommit, Location, StorageError};
use paxlog_consensus::{Entry, InitialState, Persist, Slot, Snapshot, Storage};
use std::sync::Arc;

/// The durable state of one Paxos group: a cheap handle (`Arc<Db>` and the group id).
#[derive(Clone, Debug)]
pub struct GroupStore {
    db: Arc<Db>,
    group: u64,
}

impl GroupStore {
    /// The store of `group` (0 = cluster metadata, otherwise a partition) in `db`.
    pub fn new(db: Arc<Db>, group: u64) -> Self {
        Self { db, group }
    }

    /// The Paxos group this store belongs to.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// The shared database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }
}

impl Storage for GroupStore {
    fn initial_state(&self) -> Result<InitialState, paxlog_consensus::StorageError> {
        Ok(self.db.initial_state(self.group)?)
    }

    fn entries(
        &self,
        from: Slot,
        to: Slot,
    ) -> Result<Vec<(Slot, Entry)>, paxlog_consensus::StorageError> {
        Ok(self.db.entries(self.group, from, to)?)
    }

    /// One synced batch of one group. Cloning the `Persist` copies no payload (`Bytes`).
    fn write(&mut self, persist: &Persist) -> Result<(), paxlog_consensus::StorageError> {
        let mut commit = GroupCommit::new();
        commit.persist(self.group, persist.clone());
        self.db.commit(commit, true)?;
        Ok(())
    }
}

/// What the recovery scan of one group found, all checksums good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupReport {
    /// Log entries stored.
    pub entries: u64,
    /// Bytes of the stored log values (checksums and headers included).
    pub bytes: u64,
    /// The highest slot with a stored entry (0 when none).
    pub last_slot: Slot,
    /// Offset index entries stored (0 for groups that are not partitions).
    pub index_entries: u64,
}

impl Db {
    /// Reads `group`'s hard state; a group never written has the zero state.
    pub(crate) fn hard_state(&self, group: u64) -> Result<HardState, StorageError> {
        let key = layout::group_key(group, TAG_HARD_STATE);
        match self.read_value(Cf::Acceptor, &key, None, ("reading the hard state", group))? {
            None => Ok(HardState::default()),
            Some(value) => HardState::decode(&value)
                .map_err(|reason| self.corrupt(Location::HardState { group }, reason)),
        }
    }

    /// Reads `group`'s snapshot, if it has one.
    fn stored_snapshot(&self, group: u64) -> Result<Option<Snapshot>, StorageError> {
        let key = layout::group_key(group, TAG_SNAPSHOT);
        let Some(value) =
            self.read_value(Cf::Acceptor, &key, None, ("reading the snapshot", group))?
        else {
            return Ok(None);
        };
        layout::decode_snapshot(value)
            .map(Some)
            .map_err(|reason| self.corrupt(Location::Snapshot { group }, reason))
    }

    /// The state a replica of `group` starts from.
    pub(crate) fn initial_state(&self, group: u64) -> Result<InitialState, StorageError> {
        let hard = self.hard_state(group)?;
        let snapshot = self.stored_snapshot(group)?;
        // Both are written in one batch; disagreeing means one of them was damaged.
        let snapshot_slot = snapshot.as_ref().map_or(0, |s| s.slot);
        if snapshot_slot != hard.snapshot_slot {
            return Err(self.corrupt(
                Location::Snapshot { group },
                format!(
                    "snapshot covers slot {snapshot_slot} but the hard state says {}",
                    hard.snapshot_slot
                ),
            ));
        }
        let mut last = self.range(Cf::Log, layout::pair_range(group, 0, u64::MAX), true, None)?;
        let last_entry = match last.next() {
            None => 0,
            Some(item) => {
                let (key, _) = item.map_err(self.rocks("finding the last slot", group))?;
                layout::split_pair_key(&key).map_or(0, |(_, slot)| slot)
            }
        };
        Ok(InitialState {
            promised: hard.promised,
            decided: hard.decided,
            snapshot,
            last_slot: last_entry.max(snapshot_slot),
        })
    }

    /// The stored entries of `group` with `from <= slot <= to`, in slot order, each
    /// checked against its CRC.
    pub(crate) fn entries(
        &self,
        group: u64,
        from: Slot,
        to: Slot,
    ) -> Result<Vec<(Slot, Entry)>, StorageError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.range(Cf::Log, layout::pair_range(group, from, to), false, None)? {
            let (key, value) = item.map_err(self.rocks("reading log entries", group))?;
            let slot = layout::split_pair_key(&key).map_or(0, |(_, slot)| slot);
            let entry = layout::decode_entry(value.into_vec())
                .map_err(|reason| self.corrupt(Location::Slot { group, slot }, reason))?;
            out.push((slot, entry));
        }
        Ok(out)
    }

    /// The entry of `group` at `slot`, CRC-checked, read from `snapshot` if given.
    pub(crate) fn entry(
        &self,
        group: u64,
        slot: Slot,
        snapshot: Option<&rocksdb::Snapshot<'_>>,
    ) -> Result<Option<Entry>, StorageError> {
        let key = layout::pair_key(group, slot);
        let Some(value) =
            self.read_value(Cf::Log, &key, snapshot, ("reading a log entry", group))?
        else {
            return Ok(None);
        };
        layout::decode_entry(value)
            .map(Some)
            .map_err(|reason| self.corrupt(Location::Slot { group, slot }, reason))
    }

    /// The recovery scan: checks the CRC of every value `group` has (hard state, snapshot,
    /// log entries, offset index, trim marker). The first damaged value is returned as
    /// [`StorageError::Corrupt`]: the replica must then start as repairing (it does not
    /// vote) and catch up from its peers instead of serving what it holds.
    pub fn verify_group(&self, group: u64) -> Result<GroupReport, StorageError> {
        self.initial_state(group)?;
        let mut report = GroupReport::default();
        for item in self.range(Cf::Log, layout::pair_range(group, 0, u64::MAX), false, None)? {
            let (key, value) = item.map_err(self.rocks("scanning the log", group))?;
            let slot = layout::split_pair_key(&key).map_or(0, |(_, slot)| slot);
            report.bytes += value.len() as u64;
            layout::decode_entry(value.into_vec())
                .map_err(|reason| self.corrupt(Location::Slot { group, slot }, reason))?;
            report.entries += 1;
            report.last_slot = slot;
        }
        let index = self.range(
            Cf::Offsets,
            layout::pair_range(group, 0, u64::MAX),
            false,
            None,
        )?;
        for item in index {
            let (key, value) = item.map_err(self.rocks("scanning the offset index", group))?;
            let base_offset = layout::split_pair_key(&key).map_or(0, |(_, offset)| offset);
            IndexEntry::decode_value(base_offset, &value)
                .map_err(|reason| self.corrupt(Location::Index { group, base_offset }, reason))?;
            report.index_entries += 1;
        }
        self.trim_marker(group, None)?;
        tracing::debug!(
            group,
            entries = report.entries,
            last_slot = report.last_slot,
            "group verified"
        );
        Ok(report)
    }

    /// The last batch `group` trimmed, if any.
    pub(crate) fn trim_marker(
        &self,
        group: u64,
        snapshot: Option<&rocksdb::Snapshot<'_>>,
    ) -> Result<Option<IndexEntry>, StorageError> {
        let key = layout::group_key(group, TAG_TRIM_MARKER);
        let Some(value) = self.read_value(
            Cf::Acceptor,
            &key,
            snapshot,
            ("reading the trim marker", group),
        )?
        else {
            return Ok(None);
        };
        IndexEntry::decode_marker(&value)
            .map(Some)
            .map_err(|reason| self.corrupt(Location::TrimMarker { group }, reason))
    }
}
