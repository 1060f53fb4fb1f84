//! What the services may read of the driver's state, without asking it.

use crate::config::NodeId;
use crate::metadata::MetadataState;
use std::collections::BTreeMap;
use std::sync::RwLock;
use tokio::sync::watch;

/// A group's state as last published by the driver.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    /// The leader this replica follows (itself when leading).
    pub leader: Option<NodeId>,
    /// The decided index.
    pub decided: u64,
    /// For partitions: the next offset to be assigned, i.e. the exclusive end of what
    /// consumers may read (the high watermark). Watch it to wake long-polls.
    pub high_watermark: watch::Receiver<u64>,
    /// The first offset still stored.
    pub log_start: u64,
    /// Set when the replica stopped (storage failure, corrupt data): why.
    pub stopped: Option<String>,
    /// This replica leads and has applied everything earlier leaders may have had decided
    /// (its barrier): it may check sequences and coordinate groups.
    pub ready: bool,
}

/// Shared, read-mostly state: metadata and the status of every local group.
#[derive(Debug)]
pub struct View {
    meta: RwLock<MetadataState>,
    groups: RwLock<BTreeMap<u64, GroupStatus>>,
    meta_version: watch::Sender<u64>,
}

impl View {
    /// A view over `meta`.
    pub fn new(meta: MetadataState) -> Self {
        let (meta_version, _) = watch::channel(meta.applied);
        Self {
            meta: RwLock::new(meta),
            groups: RwLock::new(BTreeMap::new()),
            meta_version,
        }
    }

    /// A copy of the metadata.
    pub fn metadata(&self) -> MetadataState {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for metadata to reach `slot` (applied here).
    pub fn metadata_updates(&self) -> watch::Receiver<u64> {
        self.meta_version.subscribe()
    }

    pub(super) fn set_metadata(&self, meta: MetadataState) {
        let applied = meta.applied;
        *self.meta.write().unwrap_or_else(|p| p.into_inner()) = meta;
        self.meta_version.send_replace(applied);
    }

    /// The status of a local group.
    pub fn group(&self, group: u64) -> Option<GroupStatus> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group)
            .cloned()
    }

    /// Every local group's status.
    pub fn groups(&self) -> BTreeMap<u64, GroupStatus> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn update_group(
        &self,
        group: u64,
        f: impl FnOnce(Option<&mut GroupStatus>) -> Option<GroupStatus>,
    ) {
        let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
        match groups.get_mut(&group) {
            Some(s) => {
                if let Some(new) = f(Some(s)) {
                    *s = new;
                }
            }
            None => {
                if let Some(new) = f(None) {
                    groups.insert(group, new);
                }
            }
        }
    }

    pub(super) fn remove_group(&self, group: u64) {
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group);
    }
}
