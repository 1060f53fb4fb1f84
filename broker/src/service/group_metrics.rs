//! The consumer group series of the groups this broker coordinates (see
//! [`crate::metrics::groups`]), refreshed on a tick rather than on every commit.
//!
//! ```text
//!   every GROUP_METRICS_INTERVAL:
//!     offsets partitions this node leads and is ready on (= coordinates)
//!       └─ group records (ConsumerOffsets CF, as applied here)
//!            committed offsets ──────────────────────────▶ committed_offset
//!            end/log start of partitions hosted here ────▶ lag_records
//!            live membership (sessions not expired) ─────▶ members
//!     GroupMetrics::show(snapshot)   series of groups not in it are removed
//! ```
//!
//! Lag needs the partition's end, which a broker knows only for partitions it hosts (a
//! follower's may trail its leader's by the records still being applied). For the others
//! no lag series is exported; Prometheus computes it from the high watermark every
//! replica exports (see the README).

use super::{ClientApi, now_ms};
use crate::error::Error;
use crate::groups::{GroupRecord, LiveGroup, OFFSETS_TOPIC};
use crate::metadata::MetadataState;
use crate::metrics::{GroupLabels, GroupPartitionLabels, GroupsSnapshot};
use crate::node::View;
use std::time::Duration;
use tokio::sync::watch;

/// How often the coordinator refreshes its group series: cheap (a prefix scan of the group
/// records of at most a few partitions), and finer than usual scrape intervals.
pub const GROUP_METRICS_INTERVAL: Duration = Duration::from_secs(2);

impl ClientApi {
    /// Refreshes the group series every [`GROUP_METRICS_INTERVAL`] until `shutdown` turns
    /// true.
    pub async fn export_group_metrics(self, mut shutdown: watch::Receiver<bool>) {
        // The watch guard `wait_for` yields is not `Send`; drop it inside this future.
        let stopped = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(GROUP_METRICS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = &mut stopped => return,
                _ = tick.tick() => {}
            }
            match self.groups_snapshot() {
                Ok(snapshot) => self.inner.metrics.groups.show(snapshot),
                // Keep the last values; the next tick tries again.
                Err(err) => tracing::warn!(node = self.inner.node, error = %err,
                    "reading group records for metrics failed"),
            }
        }
    }

    /// The series of every group whose offsets partition this node coordinates.
    fn groups_snapshot(&self) -> Result<GroupsSnapshot, Error> {
        let mut snapshot = GroupsSnapshot::default();
        let meta = self.inner.view.metadata();
        let Some(offsets) = meta.topic(OFFSETS_TOPIC) else {
            return Ok(snapshot);
        };
        let now = now_ms();
        for p in &offsets.partitions {
            let coordinates = self
                .inner
                .view
                .group(p.group)
                .is_some_and(|s| s.ready && s.leader == Some(self.inner.node));
            if !coordinates {
                continue;
            }
            for (name, record) in self.group_records(p.group)? {
                let members = self.live_members(&name, &record, now);
                group_series(
                    &name,
                    &record,
                    members,
                    &meta,
                    &self.inner.view,
                    &mut snapshot,
                );
            }
        }
        Ok(snapshot)
    }

    /// Members of `group` whose session has not expired, as its live membership says; the
    /// replicated record's members when this broker holds no (or an older) membership, or
    /// a request holds it right now.
    fn live_members(&self, group: &str, record: &GroupRecord, now: i64) -> u64 {
        let slot = self
            .inner
            .live_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .cloned();
        let live = slot.as_ref().and_then(|slot| slot.try_lock().ok());
        match live.as_deref() {
            Some(Some(live)) if live.generation >= record.generation => unexpired(live, now),
            _ => record.members.len() as u64,
        }
    }
}

/// Members of `live` heard from within their session.
fn unexpired(live: &LiveGroup, now: i64) -> u64 {
    let alive = live
        .members
        .values()
        .filter(|m| now.saturating_sub(m.last_heard_ms) <= i64::from(m.record.session_timeout_ms));
    alive.count() as u64
}

/// Adds `group`'s series to `out`: a committed offset per partition it committed, a lag
/// per partition it committed or its members subscribe to (where this node hosts the
/// partition, as `group describe` computes it), and its member count. Topics deleted since
/// are left out.
fn group_series(
    group: &str,
    record: &GroupRecord,
    members: u64,
    meta: &MetadataState,
    view: &View,
    out: &mut GroupsSnapshot,
) {
    let mut topics: Vec<&String> = record.offsets.keys().collect();
    topics.extend(record.members.iter().flat_map(|m| m.topics.iter()));
    topics.sort();
    topics.dedup();
    for topic in topics {
        let Some(t) = meta.topic(topic) else {
            continue;
        };
        for p in &t.partitions {
            let labels = GroupPartitionLabels {
                group: group.to_owned(),
                topic: topic.clone(),
                partition: p.index,
            };
            let committed = record.committed(topic, p.index).map(|c| c.offset);
            if let Some(status) = view.group(p.group) {
                let end = *status.high_watermark.borrow();
                let from = committed.unwrap_or(status.log_start).max(status.log_start);
                out.lag.insert(labels.clone(), end.saturating_sub(from));
            }
            if let Some(offset) = committed {
                out.committed.insert(labels, offset);
            }
        }
    }
    let labels = GroupLabels {
        group: group.to_owned(),
    };
    out.members.insert(labels, members);
}
