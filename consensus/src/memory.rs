//! An in-memory [`Storage`], for tests and the deterministic simulation only.

use crate::storage::{InitialState, Persist, Storage, StorageError};
use crate::types::{Ballot, Entry, Slot, Snapshot};
use std::collections::BTreeMap;

/// Keeps everything in memory; `write` is "durable" for as long as the value lives, which is
/// what the simulation needs: a crashed replica is rebuilt from its `MemStorage`, and whatever
/// it had not written yet is lost.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    promised: Ballot,
    decided: Slot,
    snapshot: Option<Snapshot>,
    entries: BTreeMap<Slot, Entry>,
    fail_writes: bool,
    writes: u64,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `write` fail, to exercise the fatal path.
    pub fn fail_writes(&mut self, fail: bool) {
        self.fail_writes = fail;
    }

    /// How many writes succeeded.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The stored entry of `slot`, if any.
    pub fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(&slot)
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let snap_slot = self.snapshot.as_ref().map_or(0, |s| s.slot);
        Ok(InitialState {
            promised: self.promised,
            decided: self.decided,
            snapshot: self.snapshot.clone(),
            last_slot: self
                .entries
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .max(snap_slot),
        })
    }

    fn entries(&self, from: Slot, to: Slot) -> Result<Vec<(Slot, Entry)>, StorageError> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range(from..=to)
            .map(|(s, e)| (*s, e.clone()))
            .collect())
    }

    fn write(&mut self, persist: &Persist) -> Result<(), StorageError> {
        if self.fail_writes {
            return Err(StorageError("injected write failure".into()));
        }
        if let Some(snap) = &persist.snapshot
            && self.snapshot.as_ref().is_none_or(|s| s.slot < snap.slot)
        {
            self.entries = self.entries.split_off(&(snap.slot + 1));
            self.decided = self.decided.max(snap.slot);
            self.snapshot = Some(snap.clone());
        }
        let floor = self.snapshot.as_ref().map_or(0, |s| s.slot);
        for (slot, entry) in &persist.entries {
            if *slot > floor {
                self.entries.insert(*slot, entry.clone());
            }
        }
        if let Some(p) = persist.promised {
            self.promised = self.promised.max(p);
        }
        if let Some(d) = persist.decided {
            self.decided = self.decided.max(d);
        }
        self.writes += 1;
        Ok(())
    }
}
