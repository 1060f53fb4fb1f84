//! A partition's log as consumers see it: records by offset, read through the offset index
//! from the stored log entries, and trimmed from the front by retention.
//!
//! ```text
//!   read_records(group, from, end)
//!     offsets: floor(group | from) ──▶ (base, slot, count) ─┬─▶ log: group | slot (CRC) ──▶ decode
//!                next index entries ──────────────────────────┘     records [from, end) ≤ max_bytes
//! ```
//!
//! Every read runs on one RocksDB snapshot, so a concurrent trim or commit cannot show it a
//! half-updated index. `end_offset` is the caller's high watermark: consumers read only
//! what is decided (and applied).
//!
//! Retention ([`Db::trim_partition`]) deletes whole batches from the front of the log and
//! the index with `delete_range`. For partitions the log *is* the data, so retention and
//! consensus compaction are the same cut: after trimming up to [`Trimmed::last_slot`], the
//! driver compacts the replica to that slot (its snapshot carries the partition state), so
//! a lagging peer that needs the deleted slots receives the snapshot.

use super::codec::{PartitionCommand, Record};
use crate::storage::layout;
use crate::storage::{Cf, Db, IndexEntry, Location, StorageError};
use paxlog_consensus::{Slot, Value};
use rocksdb::WriteBatch;

/// Records read from a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// `(offset, record)`, in offset order, without gaps.
    pub records: Vec<(u64, Record)>,
    /// Where the next read continues: after the last record returned, or the requested
    /// offset when nothing was returned.
    pub next_offset: u64,
}

/// What [`Db::trim_partition`] deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    /// Batches deleted.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// The slot of the last deleted batch: every slot up to it is gone from the log.
    pub last_slot: Slot,
    /// The partition's first offset after the trim.
    pub log_start_offset: u64,
}

impl Db {
    /// Reads records of partition `group` in `[from_offset, end_offset)`, where `end_offset`
    /// is the high watermark (exclusive), up to `max_bytes` of
    /// [`Record::encoded_len`], but always at least one record if one is available: a
    /// record larger than `max_bytes` must not stall its consumer (Kafka's rule).
    ///
    /// `from_offset == end_offset` returns nothing (the consumer is caught up). An offset
    /// below the log start or above `end_offset` is [`StorageError::OffsetOutOfRange`].
    /// Every log entry read is CRC-checked; damage is [`StorageError::Corrupt`].
    pub fn read_records(
        &self,
        group: u64,
        from_offset: u64,
        end_offset: u64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        let snapshot = self.db().snapshot();
        let snap = Some(&snapshot);
        let (log_start, next_offset) = self.offset_bounds(group, snap)?;
        if from_offset < log_start || from_offset > end_offset {
            return Err(StorageError::OffsetOutOfRange {
                group,
                requested: from_offset,
                log_start,
                high_watermark: end_offset,
            });
        }
        // Serve only what is both below the watermark and indexed.
        let end = end_offset.min(next_offset);
        let mut out = ReadResult {
            records: Vec::new(),
            next_offset: from_offset,
        };
        if from_offset >= end {
            return Ok(out);
        }
        let first_base = self
            .index_floor(group, from_offset, snap)?
            .map_or(from_offset, |entry| entry.base_offset);
        let mut bytes = 0usize;
        'batches: for entry in self.index_entries(group, (first_base, u64::MAX), snap)? {
            let entry = entry?;
            if entry.base_offset >= end {
                break;
            }
            if entry.end_offset() <= from_offset {
                continue;
            }
            let records = self.read_batch(group, &entry, snap)?;
            for (offset, record) in (entry.base_offset..).zip(records) {
                if offset < from_offset {
                    continue;
                }
                if offset >= end {
                    break 'batches;
                }
                let size = record.encoded_len();
                if !out.records.is_empty() && bytes.saturating_add(size) > max_bytes {
                    break 'batches;
                }
                bytes = bytes.saturating_add(size);
                out.records.push((offset, record));
                out.next_offset = offset + 1;
            }
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// The first offset partition `group` still stores (0 for a new partition). After a
    /// trim that emptied the log, it is the next offset to be written.
    pub fn log_start_offset(&self, group: u64) -> Result<u64, StorageError> {
        Ok(self.offset_bounds(group, None)?.0)
    }

    /// The offset the next appended record of partition `group` gets, as far as the index
    /// knows (0 for a new partition).
    pub fn next_offset(&self, group: u64) -> Result<u64, StorageError> {
        Ok(self.offset_bounds(group, None)?.1)
    }

    /// Deletes the batches of partition `group` that lie entirely below `up_to_offset`
    /// (a batch straddling it is kept whole), from the log and the offset index, with
    /// `delete_range`, in one synced write. Returns `None` when no batch qualifies.
    ///
    /// Offsets never move backwards: trimming below the current start does nothing, and
    /// the last deleted batch is recorded so the next offset survives an empty log. Every
    /// slot up to [`Trimmed::last_slot`] is deleted (no-ops between batches too); those
    /// slots are decided, since only applied batches are indexed.
    pub fn trim_partition(
        &self,
        group: u64,
        up_to_offset: u64,
    ) -> Result<Option<Trimmed>, StorageError> {
        // Serialises with commits: the index must not change between plan and write.
        let _commits = self.lock_commits();
        let Some(cut) = self.plan_cut(group, None, |e| e.end_offset() <= up_to_offset)? else {
            return Ok(None);
        };
        let mut batch = WriteBatch::default();
        let (start, end) = layout::pair_range(group, 0, cut.last.slot);
        batch.delete_range_cf(self.cf(Cf::Log)?, start, end);
        self.write_cut(&mut batch, group, &cut)?;
        self.db()
            .write_opt(batch, &Db::write_options(true))
            .map_err(self.rocks("trimming a partition", group))?;
        let trimmed = Trimmed {
            batches: cut.batches,
            records: cut.records,
            last_slot: cut.last.slot,
            log_start_offset: cut.last.end_offset(),
        };
        tracing::info!(
            group,
            slot = trimmed.last_slot,
            batches = trimmed.batches,
            records = trimmed.records,
            log_start_offset = trimmed.log_start_offset,
            "partition trimmed"
        );
        Ok(Some(trimmed))
    }

    /// Deletes everything stored for `group`: its log, offset index and acceptor state.
    /// Used when a topic is deleted (a replica found corrupt is taken out of service and
    /// keeps its data for inspection; rejoining empty waits for membership changes).
    pub fn wipe_group(&self, group: u64) -> Result<(), StorageError> {
        let mut cache = self.lock_commits();
        let mut batch = WriteBatch::default();
        for cf in [Cf::Log, Cf::Offsets] {
            let (start, end) = layout::pair_range(group, 0, u64::MAX);
            batch.delete_range_cf(self.cf(cf)?, start, end);
        }
        let start = layout::group_key(group, 0).to_vec();
        let end = layout::successor(&layout::group_key(group, u8::MAX));
        batch.delete_range_cf(self.cf(Cf::Acceptor)?, start, end);
        let producers = group.to_be_bytes();
        batch.delete_range_cf(
            self.cf(Cf::Producers)?,
            producers.to_vec(),
            layout::successor(&producers),
        );
        self.db()
            .write_opt(batch, &Db::write_options(true))
            .map_err(self.rocks("wiping a group", group))?;
        cache.remove(&group);
        tracing::warn!(group, "all data of the group deleted");
        Ok(())
    }

    /// Approximate bytes partition `group`'s log takes on disk, for size-based retention.
    /// Cheap (no scan), but it counts only data already flushed from the memtable, after
    /// compression.
    pub fn partition_size_bytes(&self, group: u64) -> Result<u64, StorageError> {
        let (start, end) = layout::pair_range(group, 0, u64::MAX);
        let sizes = self
            .db()
            .get_approximate_sizes_cf(self.cf(Cf::Log)?, &[rocksdb::Range::new(&start, &end)]);
        Ok(sizes.into_iter().sum())
    }

    /// The newest record timestamp of partition `group`'s oldest batch, for age-based
    /// retention (the batch may go once this is older than the retention time); `None`
    /// when the log is empty. Reads one index entry and one log entry.
    pub fn oldest_batch_timestamp(&self, group: u64) -> Result<Option<i64>, StorageError> {
        let Some(first) = self.index_entries(group, (0, u64::MAX), None)?.next() else {
            return Ok(None);
        };
        let records = self.read_batch(group, &first?, None)?;
        Ok(records.iter().map(|r| r.timestamp_ms).max())
    }

    /// `(log start, next offset)` of partition `group`.
    fn offset_bounds(
        &self,
        group: u64,
        snapshot: Option<&rocksdb::Snapshot<'_>>,
    ) -> Result<(u64, u64), StorageError> {
        let first = self
            .index_entries(group, (0, u64::MAX), snapshot)?
            .next()
            .transpose()?;
        let last = self.index_floor(group, u64::MAX, snapshot)?;
        let trimmed_to = self.trim_marker(group, snapshot)?.map(|m| m.end_offset());
        let start = first.map(|e| e.base_offset).or(trimmed_to).unwrap_or(0);
        let next = last.map(|e| e.end_offset()).or(trimmed_to).unwrap_or(0);
        Ok((start, next))
    }

    /// The records of the batch `entry` indexes (latest state), checked against the index.
    pub(crate) fn read_indexed_batch(
        &self,
        group: u64,
        entry: &IndexEntry,
    ) -> Result<Vec<Record>, StorageError> {
        self.read_batch(group, entry, None)
    }

    /// The records of the batch `entry` indexes, checked against the index.
    fn read_batch(
        &self,
        group: u64,
        entry: &IndexEntry,
        snapshot: Option<&rocksdb::Snapshot<'_>>,
    ) -> Result<Vec<Record>, StorageError> {
        let slot = entry.slot;
        let base_offset = entry.base_offset;
        let Some(stored) = self.entry(group, slot, snapshot)? else {
            return Err(self.corrupt(
                Location::Index { group, base_offset },
                format!("points at slot {slot}, which holds no log entry"),
            ));
        };
        let payload = match stored.value {
            Value::Data(payload) => payload,
            Value::Noop => {
                return Err(self.corrupt(
                    Location::Index { group, base_offset },
                    format!("points at slot {slot}, which holds a no-op"),
                ));
            }
        };
        let command = PartitionCommand::decode_bytes(payload).map_err(|err| {
            self.corrupt(
                Location::Slot { group, slot },
                format!("record batch does not decode: {err}"),
            )
        })?;
        let PartitionCommand::Append(batch) = command else {
            return Err(self.corrupt(
                Location::Index { group, base_offset },
                format!("points at slot {slot}, which holds no record batch"),
            ));
        };
        if batch.records.len() != entry.count as usize {
            return Err(self.corrupt(
                Location::Index { group, base_offset },
                format!(
                    "says {} records at slot {slot}, the batch holds {}",
                    entry.count,
                    batch.records.len()
                ),
            ));
        }
        Ok(batch.records)
    }
}
