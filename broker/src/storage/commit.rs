//! Group commit: the `Persist`s of many Paxos groups plus apply-time writes, as one
//! `WriteBatch` and (when `sync`) one fsync.
//!
//! ```text
//!   replica driver round:  for each group: Ready.persist ─┐
//!                          applied batches: index(...)  ──┼─▶ GroupCommit ─▶ Db::commit(sync)
//!                          consumer offsets: put(...)   ──┘      one WriteBatch, one fsync
//! ```
//!
//! This is the one place a `Persist` is encoded ([`GroupStore::write`](super::GroupStore)
//! is a commit of one group). Per group, `Persist`s apply in the order added, each as its
//! doc says: the snapshot first (if newer than the stored one; it deletes the entries and
//! index entries it covers), then entries (skipping covered slots; the last write of a slot
//! wins), then promised and decided, which never move backwards.

use super::layout::{self, HardState, IndexEntry, TAG_HARD_STATE, TAG_SNAPSHOT, TAG_TRIM_MARKER};
use super::{Cf, Db, IDENTITY_KEY, Location, StorageError};
use bytes::Bytes;
use paxlog_consensus::{Persist, Slot};
use rocksdb::WriteBatch;
use std::collections::BTreeMap;

/// Column families whose keys callers choose, for small application state written at
/// apply time (consumer offsets, node-local metadata). Values are CRC-sealed like all others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvSpace {
    /// The `consumer_offsets` column family.
    ConsumerOffsets,
    /// The `meta` column family (except the reserved node identity key).
    Meta,
    /// The `producers` column family: keys are `group | producer id` (big-endian).
    Producers,
}

impl KvSpace {
    pub(crate) fn cf(self) -> Cf {
        match self {
            KvSpace::ConsumerOffsets => Cf::ConsumerOffsets,
            KvSpace::Meta => Cf::Meta,
            KvSpace::Producers => Cf::Producers,
        }
    }
}

/// Writes of many groups, collected for one [`Db::commit`].
#[derive(Clone, Debug, Default)]
pub struct GroupCommit {
    persists: Vec<(u64, Persist)>,
    index: Vec<(u64, IndexEntry)>,
    /// `None` deletes the key.
    kv: Vec<(KvSpace, Vec<u8>, Option<Vec<u8>>)>,
    /// Trim markers to set, after the persists' own.
    markers: Vec<(u64, IndexEntry)>,
}

impl GroupCommit {
    /// An empty commit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `Ready`'s persist of `group`. Several per group are applied in order.
    pub fn persist(&mut self, group: u64, persist: Persist) -> &mut Self {
        if !persist.is_empty() {
            self.persists.push((group, persist));
        }
        self
    }

    /// Indexes an applied batch of partition `group`: records `[base_offset, base_offset +
    /// count)` are in the log entry of `slot`. Batches must be indexed in offset order,
    /// contiguously, and only once their slot is decided.
    pub fn index(&mut self, group: u64, base_offset: u64, slot: Slot, count: u32) -> &mut Self {
        let entry = IndexEntry {
            base_offset,
            slot,
            count,
        };
        self.index.push((group, entry));
        self
    }

    /// Puts a small value (the commit fails if `key` is reserved, see [`KvSpace::Meta`]).
    pub fn put(&mut self, space: KvSpace, key: impl Into<Vec<u8>>, value: &[u8]) -> &mut Self {
        self.kv.push((space, key.into(), Some(value.to_vec())));
        self
    }

    /// Deletes a value written with [`GroupCommit::put`].
    pub fn delete(&mut self, space: KvSpace, key: impl Into<Vec<u8>>) -> &mut Self {
        self.kv.push((space, key.into(), None));
        self
    }

    /// Sets partition `group`'s trim marker: the log now starts at `entry.end_offset()`
    /// and holds nothing of the slots up to `entry.slot` (a replica installing a snapshot
    /// may never have indexed what the snapshot covers, so the persist's own cut cannot
    /// say where its log starts).
    pub fn trim_marker(&mut self, group: u64, entry: IndexEntry) -> &mut Self {
        self.markers.push((group, entry));
        self
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.persists.is_empty()
            && self.index.is_empty()
            && self.kv.is_empty()
            && self.markers.is_empty()
    }
}

/// What a [`Db::commit`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Groups whose `Persist`s were written.
    pub groups: usize,
    /// Log entries written.
    pub entries: usize,
    /// Size of the write batch (keys, values and RocksDB's framing).
    pub bytes: usize,
}

impl Db {
    /// Writes `commit` as one atomic `WriteBatch`; with `sync`, durable (fsync) on return.
    /// Consensus needs `sync` for every `Persist` before the `Ready`'s messages go out.
    ///
    /// An error leaves nothing written; it is fatal for the replicas of the groups involved.
    /// A damaged hard state of any group in the commit fails all of it: the driver checks
    /// its groups when they start ([`Db::verify_group`]) and keeps damaged ones out.
    pub fn commit(&self, commit: GroupCommit, sync: bool) -> Result<CommitStats, StorageError> {
        if commit.is_empty() {
            return Ok(CommitStats::default());
        }
        let mut cache = self.lock_commits();
        let mut batch = WriteBatch::default();
        let mut stats = CommitStats::default();
        // (state before this commit, state after it), per group.
        let mut states: BTreeMap<u64, (HardState, HardState)> = BTreeMap::new();
        for (group, persist) in &commit.persists {
            let group = *group;
            let (_, state) = match states.get_mut(&group) {
                Some(state) => state,
                None => {
                    let stored = match cache.get(&group) {
                        Some(state) => *state,
                        None => self.hard_state(group)?,
                    };
                    states.entry(group).or_insert((stored, stored))
                }
            };
            stats.entries += self.encode_persist(&mut batch, group, persist, state)?;
        }
        stats.groups = states.len();
        let acceptor = self.cf(Cf::Acceptor)?;
        for (group, (before, after)) in &states {
            if before != after {
                let key = layout::group_key(*group, TAG_HARD_STATE);
                batch.put_cf(acceptor, key, after.encode());
            }
        }
        let offsets = self.cf(Cf::Offsets)?;
        for (group, entry) in &commit.index {
            let key = layout::pair_key(*group, entry.base_offset);
            batch.put_cf(offsets, key, entry.encode_value());
        }
        for (space, key, value) in &commit.kv {
            if *space == KvSpace::Meta && key.as_slice() == IDENTITY_KEY {
                return Err(StorageError::ReservedKey {
                    cf: Cf::Meta.name(),
                    key: String::from_utf8_lossy(key).into_owned(),
                });
            }
            let cf = self.cf(space.cf())?;
            match value {
                Some(value) => batch.put_cf(
                    cf,
                    key,
                    layout::seal(value.len(), |out| {
                        out.extend_from_slice(value);
                    }),
                ),
                None => batch.delete_cf(cf, key),
            }
        }
        for (group, entry) in &commit.markers {
            batch.put_cf(
                acceptor,
                layout::group_key(*group, TAG_TRIM_MARKER),
                entry.encode_marker(),
            );
        }
        stats.bytes = batch.size_in_bytes();
        let single = (states.len() == 1)
            .then(|| states.keys().next().copied())
            .flatten();
        self.db
            .write_opt(batch, &Db::write_options(sync))
            .map_err(self.rocks("writing a group commit", single))?;
        cache.extend(states.into_iter().map(|(group, (_, after))| (group, after)));
        tracing::trace!(
            groups = stats.groups,
            entries = stats.entries,
            bytes = stats.bytes,
            sync,
            "group commit written"
        );
        Ok(stats)
    }

    /// Adds one `Persist` of `group` to `batch`, advancing `state`; returns the number of
    /// entries written.
    fn encode_persist(
        &self,
        batch: &mut WriteBatch,
        group: u64,
        persist: &Persist,
        state: &mut HardState,
    ) -> Result<usize, StorageError> {
        if let Some(snapshot) = &persist.snapshot
            && snapshot.slot > state.snapshot_slot
        {
            let key = layout::group_key(group, TAG_SNAPSHOT);
            batch.put_cf(
                self.cf(Cf::Acceptor)?,
                key,
                layout::encode_snapshot(snapshot),
            );
            let (start, end) = layout::pair_range(group, 0, snapshot.slot);
            batch.delete_range_cf(self.cf(Cf::Log)?, start, end);
            // A partition's index must not point at the slots just deleted.
            if let Some(cut) = self.plan_cut(group, None, |e| e.slot <= snapshot.slot)? {
                self.write_cut(batch, group, &cut)?;
            }
            state.snapshot_slot = snapshot.slot;
            state.decided = state.decided.max(snapshot.slot);
        }
        let log = self.cf(Cf::Log)?;
        let mut written = 0;
        for (slot, entry) in &persist.entries {
            if *slot > state.snapshot_slot {
                batch.put_cf(
                    log,
                    layout::pair_key(group, *slot),
                    layout::encode_entry(entry),
                );
                written += 1;
            }
        }
        if let Some(promised) = persist.promised {
            state.promised = state.promised.max(promised);
        }
        if let Some(decided) = persist.decided {
            state.decided = state.decided.max(decided);
        }
        Ok(written)
    }

    /// Reads a value written with [`GroupCommit::put`], checking its CRC.
    pub fn get(&self, space: KvSpace, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        let Some(value) = self.read_value(space.cf(), key, None, ("reading a value", None))? else {
            return Ok(None);
        };
        self.unseal_kv(space, key, value).map(Some)
    }

    /// Every value of `space` whose key starts with `prefix`, in key order, CRC-checked.
    pub fn scan_prefix(
        &self,
        space: KvSpace,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Bytes)>, StorageError> {
        let handle = self.cf(space.cf())?;
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(handle, prefix) {
            let (key, value) = item.map_err(self.rocks("scanning values", None))?;
            if !key.starts_with(prefix) {
                break;
            }
            if space == KvSpace::Meta && &*key == IDENTITY_KEY {
                continue;
            }
            let value = self.unseal_kv(space, &key, value.into_vec())?;
            out.push((key.into_vec(), value));
        }
        Ok(out)
    }

    fn unseal_kv(&self, space: KvSpace, key: &[u8], value: Vec<u8>) -> Result<Bytes, StorageError> {
        match layout::unseal(&value) {
            Ok(_) => Ok(Bytes::from(value).slice(4..)),
            Err(reason) => Err(self.corrupt(
                Location::Key {
                    cf: space.cf().name(),
                    key: String::from_utf8_lossy(key).into_owned(),
                },
                reason,
            )),
        }
    }
}
