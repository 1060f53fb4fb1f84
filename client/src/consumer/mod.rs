//! The consumer: reads partitions from positions it keeps, standalone (assigned
//! partitions) or as a member of a consumer group (partitions the coordinator assigns).
//!
//! ```text
//!   poll(max_wait)
//!     group mode: heartbeat when due ── REBALANCE / UNKNOWN_MEMBER ─▶ rejoin, new assignment
//!     positions missing ─▶ committed offset (FetchOffsets) or auto_offset_reset
//!     Fetch (long-poll) on every assigned partition's leader, concurrently
//!     OFFSET_OUT_OF_RANGE ─▶ auto_offset_reset
//!     auto-commit when due (positions = next offsets to read)
//!   close(): commit (if auto_commit), leave the group
//! ```
//!
//! Delivery is at-least-once: a position is committed after the records before it were
//! returned by `poll`; records polled but not committed before a crash are read again by
//! whoever owns the partition next.

mod group;

use crate::connection::{CallKind, Connection};
use crate::error::Error;
use bytes::Bytes;
use group::Membership;
use paxlog_proto::v1::{self as pb, ErrorCode, consumer_client::ConsumerClient};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Where to start reading a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The oldest retained record.
    Earliest,
    /// After the newest record (only what is written from now on).
    Latest,
    /// This offset.
    Offset(u64),
    /// The first record at or after this time (ms since the epoch); the end if none is.
    Timestamp(i64),
}

/// What to do when a partition has no committed offset, or the position is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    /// Start from the oldest retained record.
    Earliest,
    /// Start after the newest record.
    Latest,
    /// Fail the poll.
    Error,
}

/// Settings of a [`Consumer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The consumer group (required for `subscribe` and for committing).
    pub group: Option<String>,
    /// Where to start without a committed offset (and after OFFSET_OUT_OF_RANGE).
    pub auto_offset_reset: OffsetReset,
    /// Commit positions every `auto_commit_interval` during `poll`, and on `close`.
    pub auto_commit: bool,
    /// See `auto_commit`.
    pub auto_commit_interval: Duration,
    /// A member that stops heartbeating for this long is removed from its group.
    pub session_timeout: Duration,
    /// How the coordinator spreads partitions.
    pub strategy: pb::AssignmentStrategy,
    /// Most record bytes one fetch returns per partition.
    pub fetch_max_bytes: u32,
    /// Longest time one request may take, retries included.
    pub request_timeout: Duration,
    /// Ask brokers to compress fetched records on the wire.
    pub compression: crate::producer::Compression,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group: None,
            auto_offset_reset: OffsetReset::Earliest,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            strategy: pb::AssignmentStrategy::Range,
            fetch_max_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            compression: crate::producer::Compression::None,
        }
    }
}

/// A record as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Key (empty: none).
    pub key: Bytes,
    /// Payload.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Timestamp in ms since the epoch.
    pub timestamp_ms: i64,
}

/// `(topic, partition)`.
pub type TopicPartition = (String, u32);

/// Reads records; see the module docs.
#[derive(Debug)]
pub struct Consumer {
    conn: Arc<Connection>,
    config: ConsumerConfig,
    /// Assigned partitions and the next offset to read (unknown until resolved).
    positions: BTreeMap<TopicPartition, Option<u64>>,
    membership: Option<Membership>,
    last_commit: Instant,
    /// Positions as last committed, to skip commits that change nothing.
    committed: BTreeMap<TopicPartition, u64>,
    /// Partitions `poll` does not fetch for now (see [`Consumer::pause`]).
    paused: BTreeSet<TopicPartition>,
    /// Each partition's high watermark as of its last fetch.
    end_offsets: BTreeMap<TopicPartition, u64>,
}

impl Consumer {
    /// A consumer over `conn`.
    pub fn new(conn: Arc<Connection>, config: ConsumerConfig) -> Consumer {
        Consumer {
            conn,
            config,
            positions: BTreeMap::new(),
            membership: None,
            last_commit: Instant::now(),
            committed: BTreeMap::new(),
            paused: BTreeSet::new(),
            end_offsets: BTreeMap::new(),
        }
    }

    /// Stops fetching `topic`/`partition` until [`Consumer::resume`]: `poll` still keeps the
    /// group membership alive (Kafka's pause), so a slow application can hold records back
    /// without losing its partitions.
    pub fn pause(&mut self, topic: &str, partition: u32) {
        self.paused.insert((topic.to_owned(), partition));
    }

    /// Fetches `topic`/`partition` again.
    pub fn resume(&mut self, topic: &str, partition: u32) {
        self.paused.remove(&(topic.to_owned(), partition));
    }

    /// The partition's high watermark (the offset its next record gets) as of the last
    /// fetch, if it was fetched since it was assigned.
    pub fn end_offset(&self, topic: &str, partition: u32) -> Option<u64> {
        self.end_offsets
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    /// Reads these partitions of `topic` (standalone mode), from their committed offsets
    /// when a group is set, else per `auto_offset_reset` (or a later `seek`).
    pub fn assign(&mut self, topic: &str, partitions: impl IntoIterator<Item = u32>) {
        for p in partitions {
            self.positions.entry((topic.to_owned(), p)).or_insert(None);
        }
    }

    /// Joins the configured group for `topics`; the coordinator assigns partitions.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<(), Error> {
        let group = self.config.group.clone().ok_or_else(|| {
            Error::InvalidArgument(
                "subscribe needs a consumer group (ConsumerConfig::group)".into(),
            )
        })?;
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let membership = Membership::join(&self.conn, &self.config, group, topics, None).await?;
        self.take_assignment(&membership);
        self.membership = Some(membership);
        Ok(())
    }

    /// The partitions read now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// The group generation and member id, in group mode.
    pub fn member(&self) -> Option<(String, u64)> {
        self.membership
            .as_ref()
            .map(|m| (m.member_id.clone(), m.generation))
    }

    /// The next offset `poll` reads from `topic`/`partition`, once known.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions
            .get(&(topic.to_owned(), partition))
            .copied()
            .flatten()
    }

    /// Moves the position of an assigned partition.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: Position) -> Result<(), Error> {
        let key = (topic.to_owned(), partition);
        if !self.positions.contains_key(&key) {
            return Err(Error::InvalidArgument(format!(
                "{topic}/{partition} is not assigned to this consumer"
            )));
        }
        let offset = self.bound(topic, partition, to).await?;
        self.positions.insert(key, Some(offset));
        Ok(())
    }

    /// Waits up to `max_wait` for records of the assigned partitions; returns what came
    /// (possibly nothing), in offset order per partition.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>, Error> {
        self.keep_membership().await?;
        self.resolve_positions().await?;
        let mut tasks = tokio::task::JoinSet::new();
        for ((topic, partition), position) in &self.positions {
            let Some(offset) = *position else { continue };
            if self.paused.contains(&(topic.clone(), *partition)) {
                continue;
            }
            let conn = self.conn.clone();
            let (topic, partition) = (topic.clone(), *partition);
            let budget = self.config.request_timeout;
            let max_bytes = self.config.fetch_max_bytes;
            let zstd = self.config.compression == crate::producer::Compression::Zstd;
            tasks.spawn(async move {
                let limits = (max_wait, max_bytes, budget, zstd);
                let result = fetch(&conn, &topic, partition, offset, limits).await;
                ((topic, partition), result)
            });
        }
        if tasks.is_empty() {
            // Nothing to fetch (all paused, or no partitions yet): wait as a long poll would.
            tokio::time::sleep(max_wait).await;
        }
        let mut out = Vec::new();
        // A failed partition must not cost the records of the others, whose positions
        // already moved past them: they are returned, and the error only when nothing came.
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            let Ok((key, result)) = joined else { continue };
            match result {
                Ok((records, end)) => {
                    self.end_offsets.insert(key.clone(), end);
                    if let Some(last) = records.last() {
                        self.positions.insert(key.clone(), Some(last.offset + 1));
                    }
                    out.extend(records);
                }
                Err(e) if e.server_code() == Some(ErrorCode::OffsetOutOfRange) => {
                    let reset = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => Position::Earliest,
                        OffsetReset::Latest => Position::Latest,
                        OffsetReset::Error => {
                            failure.get_or_insert(e);
                            continue;
                        }
                    };
                    match self.bound(&key.0, key.1, reset).await {
                        Ok(offset) => {
                            tracing::info!(topic = %key.0, partition = key.1, offset, "position out of range; reset");
                            self.positions.insert(key, Some(offset));
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            if out.is_empty() {
                return Err(e);
            }
            tracing::warn!(error = %e, "a partition's fetch failed; returning the others' records");
        }
        if self.config.auto_commit
            && self.config.group.is_some()
            && self.last_commit.elapsed() >= self.config.auto_commit_interval
            && let Err(e) = self.commit().await
        {
            // The records are returned all the same; the next auto-commit carries the
            // positions (as Kafka's consumer does).
            tracing::warn!(error = %e, "auto-commit failed; retrying with the next poll");
        }
        Ok(out)
    }

    /// Commits these offsets (each the next offset to process) of assigned partitions, for
    /// applications that finish records out of poll order; positions do not move.
    pub async fn commit_offsets(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), Error> {
        let Some(group) = self.config.group.clone() else {
            return Err(Error::InvalidArgument(
                "commit needs a consumer group (ConsumerConfig::group)".into(),
            ));
        };
        let offsets: Vec<(TopicPartition, u64)> = offsets
            .iter()
            .filter(|(k, o)| self.committed.get(k) != Some(o))
            .cloned()
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = self.member().unwrap_or_default();
        group::commit(
            &self.conn,
            &self.config,
            &group,
            &member_id,
            generation,
            &offsets,
        )
        .await?;
        self.committed.extend(offsets);
        Ok(())
    }

    /// Commits the current positions (the next offsets to read) of the assigned partitions.
    pub async fn commit(&mut self) -> Result<(), Error> {
        let offsets: Vec<(TopicPartition, u64)> = self
            .positions
            .iter()
            .filter_map(|(k, p)| p.map(|p| (k.clone(), p)))
            .collect();
        self.last_commit = Instant::now();
        self.commit_offsets(&offsets).await
    }

    /// Commits (with auto-commit on) and leaves the group.
    pub async fn close(mut self) -> Result<(), Error> {
        let committed = if self.config.auto_commit && self.config.group.is_some() {
            self.commit().await
        } else {
            Ok(())
        };
        if let Some(m) = self.membership.take() {
            m.leave(&self.conn, &self.config).await?;
        }
        committed
    }

    /// Records as a stream (the consumer moves into a task; drop the stream to stop it).
    pub fn stream(
        mut self,
        max_wait: Duration,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<ConsumedRecord, Error>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                match self.poll(max_wait).await {
                    Ok(records) => {
                        for r in records {
                            if tx.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// Heartbeats when due; rejoins when the group moved on, taking the new assignment.
    async fn keep_membership(&mut self) -> Result<(), Error> {
        let Some(m) = self.membership.as_mut() else {
            return Ok(());
        };
        if m.heartbeat_due() && m.heartbeat(&self.conn, &self.config).await? {
            return Ok(());
        }
        if !m.needs_rejoin {
            return Ok(());
        }
        let (group, topics) = (m.group.clone(), m.topics.clone());
        let id = m.member_id.clone();
        let rejoined = Membership::join(&self.conn, &self.config, group, topics, Some(id)).await?;
        self.take_assignment(&rejoined);
        self.membership = Some(rejoined);
        Ok(())
    }

    /// Keeps positions of partitions still assigned; new ones start unresolved.
    fn take_assignment(&mut self, m: &Membership) {
        let assigned: BTreeSet<TopicPartition> = m.assignment.iter().cloned().collect();
        self.positions.retain(|k, _| assigned.contains(k));
        self.committed.retain(|k, _| assigned.contains(k));
        self.end_offsets.retain(|k, _| assigned.contains(k));
        for k in assigned {
            self.positions.entry(k).or_insert(None);
        }
    }

    /// Positions of newly assigned partitions: the group's committed offsets, else the
    /// reset policy.
    async fn resolve_positions(&mut self) -> Result<(), Error> {
        let missing: Vec<TopicPartition> = self
            .positions
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = match &self.config.group {
            Some(group) => group::fetch_offsets(&self.conn, &self.config, group, &missing).await?,
            None => BTreeMap::new(),
        };
        for key in missing {
            let offset = match committed.get(&key) {
                Some(o) => *o,
                None => {
                    let to = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => Position::Earliest,
                        OffsetReset::Latest => Position::Latest,
                        OffsetReset::Error => {
                            return Err(Error::InvalidArgument(format!(
                                "{}/{} has no committed offset and auto_offset_reset is Error: seek first",
                                key.0, key.1
                            )));
                        }
                    };
                    self.bound(&key.0, key.1, to).await?
                }
            };
            if let Some(c) = committed.get(&key) {
                self.committed.insert(key.clone(), *c);
            }
            self.positions.insert(key, Some(offset));
        }
        Ok(())
    }

    /// The offset `to` names in the partition (log start, end, or the first record at or
    /// after a time), from its leader.
    async fn bound(&self, topic: &str, partition: u32, to: Position) -> Result<u64, Error> {
        let (spec, timestamp_ms) = match to {
            Position::Earliest => (pb::OffsetSpec::Earliest, 0),
            Position::Latest => (pb::OffsetSpec::Latest, 0),
            Position::Timestamp(ts) => (pb::OffsetSpec::Timestamp, ts),
            Position::Offset(o) => return Ok(o),
        };
        let request = pb::ListOffsetsRequest {
            topic: topic.to_owned(),
            partition,
            spec: spec as i32,
            timestamp_ms,
        };
        let kind = CallKind::Fetch {
            topic: topic.to_owned(),
            partition,
        };
        let response = self
            .conn
            .call_leader(kind, self.config.request_timeout, |channel| {
                let request = request.clone();
                async move { ConsumerClient::new(channel).list_offsets(request).await }
            })
            .await
            .map_err(|e| e.with_what(format!("look up an offset of {topic}/{partition}")))?;
        Ok(response.offset)
    }
}

/// One long-poll fetch of `topic`/`partition` from `offset` at its leader.
async fn fetch(
    conn: &Connection,
    topic: &str,
    partition: u32,
    offset: u64,
    (max_wait, max_bytes, budget, zstd): (Duration, u32, Duration, bool),
) -> Result<(Vec<ConsumedRecord>, u64), Error> {
    let request = pb::FetchRequest {
        topic: topic.to_owned(),
        partition,
        offset,
        max_wait_ms: max_wait.as_millis() as u32,
        min_bytes: 1,
        max_bytes,
    };
    let kind = CallKind::Fetch {
        topic: topic.to_owned(),
        partition,
    };
    let attempt = conn.options().read_timeout + max_wait;
    let response = conn
        .call_leader_with(kind, budget.max(attempt), attempt, |channel| {
            let request = request.clone();
            let mut client = ConsumerClient::new(channel);
            if zstd {
                client = client.accept_compressed(tonic::codec::CompressionEncoding::Zstd);
            }
            async move { client.fetch(request).await }
        })
        .await?;
    let end = response.high_watermark;
    let records = response
        .records
        .into_iter()
        .map(|r| {
            let record = r.record.unwrap_or_default();
            ConsumedRecord {
                topic: topic.to_owned(),
                partition,
                offset: r.offset,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect(),
                timestamp_ms: record.timestamp_ms,
            }
        })
        .collect();
    Ok((records, end))
}
