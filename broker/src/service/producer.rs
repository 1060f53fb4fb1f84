//! `paxlog.v1.Producer`: publish record batches to partition leaders.

use super::{ClientApi, now_ms, timeout_of};
use crate::convert::records::record_from_wire;
use crate::error::Error;
use crate::metadata::{Applied, MetaCommand, Topic};
use crate::node::{IdempotentBatch, Proposed};
use crate::partition::codec::{AppendBatch, PartitionCommand, ProducerSeq};
use crate::security::{Action, Principal};
use paxlog_proto::v1::{self as pb, producer_server::Producer};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tonic::{Request, Response, Status};

impl ClientApi {
    /// The partition a request goes to: the one given, else the hash of the first record's
    /// key (stable, so one key always lands in one partition), else, as the wire contract
    /// says, one this broker leads (round-robin among them), so a keyless publish is not
    /// bounced to another broker; round-robin over all when it leads none.
    fn choose_partition(&self, r: &pb::PublishRequest, topic: &Topic) -> u32 {
        let count = topic.partitions.len() as u32;
        if let Some(p) = r.partition {
            return p;
        }
        if let Some(key) = r.records.first().map(|rec| &rec.key)
            && !key.is_empty()
        {
            return crc32fast::hash(key) % count;
        }
        let turn = self.inner.round_robin.fetch_add(1, Ordering::Relaxed);
        let led: Vec<u32> = topic
            .partitions
            .iter()
            .filter(|p| self.leader_of(p.group) == Some(self.inner.node))
            .map(|p| p.index)
            .collect();
        match led.len() {
            0 => (turn % u64::from(count)) as u32,
            n => led[(turn % n as u64) as usize],
        }
    }
}

/// Longest a publish waits for this broker to learn a producer epoch that InitProducer
/// (decided through the metadata group, maybe on another broker) just handed out.
const PRODUCER_PROPAGATION: Duration = Duration::from_secs(2);

impl ClientApi {
    /// The idempotent identity of a publish, checked for shape; `None` for a plain one.
    fn idempotent_batch(r: &pb::PublishRequest) -> Result<Option<IdempotentBatch>, Error> {
        if r.producer_id == 0 {
            return Ok(None);
        }
        if r.partition.is_none() {
            return Err(Error::InvalidRequest(
                "an idempotent publish (producer_id set) must name its partition: sequences are per partition".into(),
            ));
        }
        let count = r.records.len() as u64;
        let base_sequence = u32::try_from(r.base_sequence)
            .ok()
            .filter(|b| u64::from(*b) + count <= u64::from(u32::MAX) + 1)
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "base_sequence {} with {count} records passes 2^32: call InitProducer again for a new epoch, whose sequences restart at 0",
                    r.base_sequence
                ))
            })?;
        Ok(Some(IdempotentBatch {
            seq: ProducerSeq {
                producer_id: r.producer_id,
                epoch: r.producer_epoch,
                base_sequence,
            },
            count: count as u32,
        }))
    }

    /// Waits until this broker's metadata knows `epoch` of `producer_id` (or a newer one),
    /// so a publish right after InitProducer is not refused for propagation lag.
    async fn await_producer(&self, producer_id: u64, epoch: u32, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout.min(PRODUCER_PROPAGATION);
        let mut updates = self.inner.view.metadata_updates();
        loop {
            let known = self.inner.view.metadata().producer_epoch(producer_id);
            if known.is_some_and(|k| k >= epoch) {
                return;
            }
            if tokio::time::timeout_at(deadline, updates.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Publish bytes held against the partition's and the node's in-flight budgets until
/// dropped (when the publish is answered, whatever the outcome).
struct Held {
    _partition: tokio::sync::OwnedSemaphorePermit,
    _node: tokio::sync::OwnedSemaphorePermit,
    bytes: i64,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec_by(self.bytes);
    }
}

impl ClientApi {
    /// Takes `bytes` of `group`'s and of the node's in-flight budgets, or refuses the
    /// publish at once: waiting would hold its bytes anyway, and a refusal (THROTTLED) makes
    /// producers back off. The partition's share keeps one hot partition from throttling
    /// all others.
    fn hold_inflight(&self, group: u64, bytes: usize) -> Result<Held, Error> {
        let (node_budget, partition_budget) = (
            self.inner.max_inflight_bytes,
            self.inner.max_partition_inflight,
        );
        let wanted = bytes as u64;
        if wanted > partition_budget {
            return Err(Error::InvalidRequest(format!(
                "a publish of {wanted} encoded bytes is more than this broker ever holds at once for a partition (max_inflight_bytes_per_partition = {partition_budget}): send smaller batches"
            )));
        }
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        let partition = {
            let mut map = self
                .inner
                .partition_inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(group)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(partition_budget as usize)))
                .clone()
        };
        let partition_permit =
            partition
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| Error::Overloaded {
                    scope: "this partition",
                    setting: "max_inflight_bytes_per_partition",
                    held: partition_budget.saturating_sub(partition.available_permits() as u64),
                    budget: partition_budget,
                    wanted,
                })?;
        let node_permit = self
            .inner
            .inflight
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Error::Overloaded {
                scope: "this broker",
                setting: "max_inflight_bytes",
                held: node_budget.saturating_sub(self.inner.inflight.available_permits() as u64),
                budget: node_budget,
                wanted,
            })?;
        let gauge = self.inner.metrics.publish_inflight_bytes.clone();
        let bytes = bytes as i64;
        gauge.inc_by(bytes);
        Ok(Held {
            _partition: partition_permit,
            _node: node_permit,
            bytes,
            gauge,
        })
    }
}

/// What `max_record_bytes` limits: the bytes a producer controls (key, value, header names
/// and values), as the wire contract says; not the stored framing around them.
fn record_size(r: &pb::Record) -> usize {
    let headers: usize = r.headers.iter().map(|h| h.key.len() + h.value.len()).sum();
    r.key.len() + r.value.len() + headers
}

#[tonic::async_trait]
impl Producer for ClientApi {
    async fn init_producer(
        &self,
        request: Request<pb::InitProducerRequest>,
    ) -> Result<Response<pb::InitProducerResponse>, Status> {
        Principal::of(&request)?.require_any(Action::Produce)?;
        let r = request.into_inner();
        let cmd = MetaCommand::InitProducer {
            producer_id: r.producer_id,
        };
        match self.change_metadata(cmd, super::DEFAULT_TIMEOUT).await? {
            Applied::Producer { producer_id, epoch } => {
                Ok(Response::new(pb::InitProducerResponse {
                    error: None,
                    producer_id,
                    producer_epoch: epoch,
                }))
            }
            Applied::Refused(e) => Err(Error::Meta(e).into()),
            Applied::Created(_) | Applied::Deleted(_) | Applied::Trigger(_) => {
                Err(Error::InvalidRequest("unexpected result".into()).into())
            }
        }
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let started = std::time::Instant::now();
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let records = r.records.len() as u64;
        let bytes: u64 = r.records.iter().map(|rec| record_size(rec) as u64).sum();
        let result = match caller.require(Action::Produce, &r.topic) {
            Ok(()) => self.publish_records(r).await,
            Err(denied) => Err(denied.into()),
        };
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(status) => super::outcome_of(status),
        };
        self.inner
            .metrics
            .publish(&outcome, records, bytes, started.elapsed().as_secs_f64());
        result
    }
}

impl ClientApi {
    /// Publish, without the metrics.
    async fn publish_records(
        &self,
        r: pb::PublishRequest,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let topic = self.topic(&r.topic)?;
        if r.topic == crate::groups::OFFSETS_TOPIC {
            return Err(Error::InvalidRequest(format!(
                "{} is internal: commit offsets through the Groups service",
                r.topic
            ))
            .into());
        }
        if r.records.is_empty() {
            return Err(Error::InvalidRequest("a publish needs at least one record".into()).into());
        }
        // A malformed request is refused wherever it lands, before any routing: a client must
        // not be sent to the leader only to be refused there.
        for (index, rec) in r.records.iter().enumerate() {
            let size = record_size(rec);
            if size > self.inner.max_record_bytes as usize {
                return Err(Error::RecordTooLarge {
                    index,
                    size,
                    max: self.inner.max_record_bytes,
                }
                .into());
            }
        }
        let idempotent = Self::idempotent_batch(&r)?;
        let partition = self.choose_partition(&r, &topic);
        let p = self.partition(&topic, partition)?;
        if !p.replicas.contains(&self.inner.node) {
            return Err(self.not_leader(p.replicas.first().copied()).into());
        }
        let leader = self.leader_of(p.group);
        if leader != Some(self.inner.node) {
            return Err(self.not_leader(leader).into());
        }
        let now = now_ms();
        let timeout = timeout_of(r.timeout_ms);
        if let Some(batch) = &idempotent {
            self.await_producer(batch.seq.producer_id, batch.seq.epoch, timeout)
                .await;
        }
        let records: Vec<_> = r
            .records
            .into_iter()
            .map(|rec| record_from_wire(rec, now))
            .collect();
        let payload = PartitionCommand::Append(AppendBatch {
            producer: idempotent.map(|b| b.seq),
            records,
        })
        .encode();
        let _held = self.hold_inflight(p.group, payload.len())?;
        let propose = self
            .inner
            .driver
            .propose_checked(p.group, payload, idempotent);
        let applied = match tokio::time::timeout(timeout, propose).await {
            Err(_) => return Err(Error::Timeout(timeout.as_millis() as u64).into()),
            Ok(Err(e)) => return Err(self.propose_error(e).into()),
            Ok(Ok(Proposed::Append(a))) => a,
            Ok(Ok(Proposed::Meta(_) | Proposed::Done)) => {
                return Err(Error::InvalidRequest("not a partition result".into()).into());
            }
        };
        Ok(Response::new(pb::PublishResponse {
            error: None,
            partition,
            base_offset: applied.base_offset,
            last_offset: applied.base_offset + applied.count.saturating_sub(1) as u64,
        }))
    }
}
