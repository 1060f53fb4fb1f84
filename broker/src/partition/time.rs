//! Finding offsets by time: the first record at or after a timestamp.
//!
//! Record timestamps are set by producers (or stamped by the leader), so they need not
//! grow with offsets; the answer is the lowest offset whose timestamp is at or after the
//! one asked for, found by reading batches from the log start. The cost grows with the
//! partition; a time index written at apply is the way to make it logarithmic (left for
//! the performance work).

use crate::storage::{Db, StorageError};

impl Db {
    /// The first `(offset, timestamp)` of partition `group` below `end_offset` whose
    /// timestamp is at or after `timestamp_ms`; `None` when no record is.
    pub fn offset_for_time(
        &self,
        group: u64,
        timestamp_ms: i64,
        end_offset: u64,
    ) -> Result<Option<(u64, i64)>, StorageError> {
        for entry in self.index_entries(group, (0, u64::MAX), None)? {
            let entry = entry?;
            if entry.base_offset >= end_offset {
                break;
            }
            let records = self.read_indexed_batch(group, &entry)?;
            for (offset, record) in (entry.base_offset..).zip(records) {
                if offset >= end_offset {
                    return Ok(None);
                }
                if record.timestamp_ms >= timestamp_ms {
                    return Ok(Some((offset, record.timestamp_ms)));
                }
            }
        }
        Ok(None)
    }
}
