//! Retention: which front batches of a partition are past the topic's limits, and what a
//! trim removes.
//!
//! ```text
//!   leader, about once a second:  retention_cut(log bytes, now, settings) ─▶ Some(offset)
//!        └─▶ propose Trim{offset} ─▶ decided in the same slot on every replica
//!   every replica, at apply:      trim_cut(offset) ─▶ last batch L ─▶ Replica::compact(L.slot,
//!        snapshot{next offset after L, producers}) ─▶ log, index ≤ L deleted (one synced write)
//! ```
//!
//! The leader decides with its own clock and its own size count, but every replica cuts at
//! the same batch because the cut is a function of the offset alone and the offset index
//! is the same everywhere. Only whole batches go; offsets never move backwards.

use crate::metadata::TopicSettings;
use crate::storage::layout;
use crate::storage::{Cf, Db, IndexEntry, StorageError};

/// Most batches one retention check looks at, so a check never stalls the driver; a
/// partition far past its limits is trimmed in several steps, a second apart.
pub const MAX_BATCHES_PER_CHECK: usize = 4096;

/// The batches a trim up to some offset removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimCut {
    /// The last batch removed: the log then starts at its end offset, and every slot up
    /// to its slot is gone.
    pub last: IndexEntry,
    /// Stored bytes of the removed batches.
    pub bytes: u64,
}

impl Db {
    /// The offset to trim partition `group` up to, or `None` when nothing is due: the end
    /// of the longest run of front batches each of which is older than `retention_ms`
    /// (its newest record) or must go to bring `log_bytes` down to `retention_bytes`.
    /// Reads at most [`MAX_BATCHES_PER_CHECK`] batches.
    pub fn retention_cut(
        &self,
        group: u64,
        log_bytes: u64,
        now_ms: i64,
        settings: &TopicSettings,
    ) -> Result<Option<u64>, StorageError> {
        if settings.retains_forever() {
            return Ok(None);
        }
        let too_old = settings
            .retention_ms
            .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
        let mut excess = settings
            .retention_bytes
            .map_or(0, |limit| log_bytes.saturating_sub(limit));
        let mut up_to = None;
        for entry in self
            .index_entries(group, (0, u64::MAX), None)?
            .take(MAX_BATCHES_PER_CHECK)
        {
            let entry = entry?;
            let size = self.stored_len(group, entry.slot)?;
            let over_size = excess > 0;
            let over_age = match too_old {
                Some(cutoff) => self
                    .batch_max_timestamp(group, &entry)?
                    .is_some_and(|ts| ts < cutoff),
                None => false,
            };
            if !over_size && !over_age {
                break;
            }
            excess = excess.saturating_sub(size);
            up_to = Some(entry.end_offset());
        }
        Ok(up_to)
    }

    /// The batches of partition `group` that end at or below `up_to_offset` (a batch
    /// straddling it stays), or `None` when there are none.
    pub fn trim_cut(&self, group: u64, up_to_offset: u64) -> Result<Option<TrimCut>, StorageError> {
        let mut cut: Option<TrimCut> = None;
        for entry in self.index_entries(group, (0, u64::MAX), None)? {
            let entry = entry?;
            if entry.end_offset() > up_to_offset {
                break;
            }
            let bytes = cut.map_or(0, |c| c.bytes) + self.stored_len(group, entry.slot)?;
            cut = Some(TrimCut { last: entry, bytes });
        }
        Ok(cut)
    }

    /// Stored bytes of the log entry at `slot` (0 if there is none).
    fn stored_len(&self, group: u64, slot: u64) -> Result<u64, StorageError> {
        let key = layout::pair_key(group, slot);
        Ok(self
            .read_value(Cf::Log, &key, None, ("sizing a log entry", group))?
            .map_or(0, |v| v.len() as u64))
    }

    /// The newest record timestamp of the batch `entry` indexes.
    fn batch_max_timestamp(
        &self,
        group: u64,
        entry: &IndexEntry,
    ) -> Result<Option<i64>, StorageError> {
        let records = self.read_indexed_batch(group, entry)?;
        Ok(records.iter().map(|r| r.timestamp_ms).max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::codec::{AppendBatch, PartitionCommand, Record};
    use crate::storage::GroupCommit;
    use paxlog_consensus::{Ballot, Entry, Persist, Value};

    const GROUP: u64 = 3;

    /// Stores and indexes `batches` (record timestamps) from offset 0, one slot each.
    fn partition(batches: &[Vec<i64>]) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), 1).expect("open");
        let mut commit = GroupCommit::new();
        let mut persist = Persist::default();
        let mut offset = 0;
        for (i, stamps) in batches.iter().enumerate() {
            let slot = i as u64 + 1;
            let records = stamps
                .iter()
                .map(|&timestamp_ms| Record {
                    value: bytes::Bytes::from(vec![7u8; 100]),
                    timestamp_ms,
                    ..Record::default()
                })
                .collect();
            let value = PartitionCommand::Append(AppendBatch {
                producer: None,
                records,
            })
            .encode();
            persist.entries.push((
                slot,
                Entry {
                    ballot: Ballot::new(1, 1),
                    value: Value::Data(value),
                },
            ));
            commit.index(GROUP, offset, slot, stamps.len() as u32);
            offset += stamps.len() as u64;
        }
        persist.decided = Some(batches.len() as u64);
        commit.persist(GROUP, persist);
        db.commit(commit, true).expect("commit");
        (dir, db)
    }

    fn settings(retention_ms: Option<u64>, retention_bytes: Option<u64>) -> TopicSettings {
        TopicSettings {
            retention_ms,
            retention_bytes,
        }
    }

    #[test]
    fn age_cuts_the_run_of_old_front_batches() {
        let (_dir, db) = partition(&[vec![10, 20], vec![30], vec![500], vec![40]]);
        let s = settings(Some(100), None);
        // Cutoff 450: the first two batches are older; the third is not, so the fourth
        // (older again) stays behind it.
        assert_eq!(db.retention_cut(GROUP, 0, 550, &s).expect("cut"), Some(3));
        assert_eq!(db.retention_cut(GROUP, 0, 25, &s).expect("cut"), None);
        assert_eq!(
            db.retention_cut(GROUP, 0, 10_000, &settings(None, None))
                .expect("cut"),
            None
        );
    }

    #[test]
    fn size_cuts_until_the_partition_fits() {
        let (_dir, db) = partition(&[vec![1], vec![1], vec![1], vec![1]]);
        let one = db.trim_cut(GROUP, 1).expect("cut").expect("a batch").bytes;
        let total = db.trim_cut(GROUP, 4).expect("cut").expect("all").bytes;
        assert_eq!(total, 4 * one);
        let s = settings(None, Some(2 * one));
        assert_eq!(db.retention_cut(GROUP, total, 0, &s).expect("cut"), Some(2));
        let s = settings(None, Some(2 * one + 1));
        assert_eq!(db.retention_cut(GROUP, total, 0, &s).expect("cut"), Some(2));
        let s = settings(None, Some(total));
        assert_eq!(db.retention_cut(GROUP, total, 0, &s).expect("cut"), None);
    }

    #[test]
    fn a_trim_removes_only_whole_batches() {
        let (_dir, db) = partition(&[vec![1, 1], vec![1, 1], vec![1]]);
        assert_eq!(db.trim_cut(GROUP, 1).expect("cut"), None);
        let cut = db.trim_cut(GROUP, 3).expect("cut").expect("one batch");
        assert_eq!(cut.last.slot, 1);
        assert_eq!(cut.last.end_offset(), 2);
        let cut = db.trim_cut(GROUP, 5).expect("cut").expect("all");
        assert_eq!(cut.last.slot, 3);
    }
}
