//! The offset index of a partition: which slot holds the batch starting at an offset.
//!
//! ```text
//!   offsets  group(8) | base offset(8)  ->  crc(4) | slot(8) | count(4)
//!   acceptor group(8) | 0x03            ->  crc(4) | base offset(8) | slot(8) | count(4)
//! ```
//!
//! Entries are written at apply time ([`GroupCommit::index`](super::GroupCommit::index)),
//! so only decided batches are indexed, in offset (and slot) order. The index is only ever
//! cut at its start, by retention or by a snapshot; the cut records its last batch as the
//! *trim marker*, so that a partition trimmed empty still knows its next offset and slot
//! (offsets never move backwards, even across restarts).

use super::layout::{self, IndexEntry, TAG_TRIM_MARKER};
use super::{Cf, Db, Location, StorageError};
use rocksdb::WriteBatch;

/// A key and value as RocksDB's iterators yield them.
type KeyValue = (Box<[u8]>, Box<[u8]>);

/// A prefix of the index to delete: every batch up to and including `last`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cut {
    /// The last batch deleted.
    pub last: IndexEntry,
    /// Batches deleted.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
}

impl Db {
    /// Decodes one item of an index iterator.
    fn index_item(
        &self,
        group: u64,
        item: Result<KeyValue, rocksdb::Error>,
    ) -> Result<IndexEntry, StorageError> {
        let (key, value) = item.map_err(self.rocks("reading the offset index", group))?;
        let base_offset = layout::split_pair_key(&key).map_or(0, |(_, offset)| offset);
        IndexEntry::decode_value(base_offset, &value)
            .map_err(|reason| self.corrupt(Location::Index { group, base_offset }, reason))
    }

    /// The index entries of `group` with base offsets in `from..=to`, in order.
    pub(crate) fn index_entries<'a>(
        &'a self,
        group: u64,
        (from, to): (u64, u64),
        snapshot: Option<&rocksdb::Snapshot<'a>>,
    ) -> Result<impl Iterator<Item = Result<IndexEntry, StorageError>> + 'a, StorageError> {
        let iter = self.range(
            Cf::Offsets,
            layout::pair_range(group, from, to),
            false,
            snapshot,
        )?;
        Ok(iter.map(move |item| self.index_item(group, item)))
    }

    /// The last index entry of `group` with a base offset `<= at_most`.
    pub(crate) fn index_floor(
        &self,
        group: u64,
        at_most: u64,
        snapshot: Option<&rocksdb::Snapshot<'_>>,
    ) -> Result<Option<IndexEntry>, StorageError> {
        let mut iter = self.range(
            Cf::Offsets,
            layout::pair_range(group, 0, at_most),
            true,
            snapshot,
        )?;
        iter.next()
            .map(|item| self.index_item(group, item))
            .transpose()
    }

    /// The latest batch `group` indexed: the last index entry or, when retention deleted
    /// them all, the last batch it deleted. A restarted node continues at its
    /// [`end_offset`](IndexEntry::end_offset) and re-indexes the decided slots after its
    /// `slot`. `None` for a partition that never indexed a batch.
    pub fn last_indexed(&self, group: u64) -> Result<Option<IndexEntry>, StorageError> {
        match self.index_floor(group, u64::MAX, None)? {
            Some(entry) => Ok(Some(entry)),
            None => self.trim_marker(group, None),
        }
    }

    /// Finds the longest prefix of `group`'s index whose batches all satisfy `cut`.
    pub(crate) fn plan_cut(
        &self,
        group: u64,
        snapshot: Option<&rocksdb::Snapshot<'_>>,
        cut: impl Fn(&IndexEntry) -> bool,
    ) -> Result<Option<Cut>, StorageError> {
        let mut plan: Option<Cut> = None;
        for entry in self.index_entries(group, (0, u64::MAX), snapshot)? {
            let entry = entry?;
            if !cut(&entry) {
                break;
            }
            let (batches, records) = plan.map_or((0, 0), |p| (p.batches, p.records));
            plan = Some(Cut {
                last: entry,
                batches: batches + 1,
                records: records + u64::from(entry.count),
            });
        }
        Ok(plan)
    }

    /// Adds the deletion of `cut` (and the new trim marker) to `batch`.
    pub(crate) fn write_cut(
        &self,
        batch: &mut WriteBatch,
        group: u64,
        cut: &Cut,
    ) -> Result<(), StorageError> {
        let (start, end) = layout::pair_range(group, 0, cut.last.base_offset);
        batch.delete_range_cf(self.cf(Cf::Offsets)?, start, end);
        batch.put_cf(
            self.cf(Cf::Acceptor)?,
            layout::group_key(group, TAG_TRIM_MARKER),
            cut.last.encode_marker(),
        );
        Ok(())
    }
}
