//! `paxlog.v1.Consumer`: fetch by offset with long-poll, and a server stream.
//!
//! Any replica serves reads, up to its own high watermark (the end of what it knows is
//! decided), so consumers never see an undecided record.

use super::ClientApi;
use crate::convert::records::record_to_wire;
use crate::error::Error;
use crate::metadata::PartitionInfo;
use crate::security::{Action, Principal};
use paxlog_proto::v1::{self as pb, consumer_server::Consumer};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Default and largest bytes per fetch.
const DEFAULT_MAX_BYTES: u32 = 1 << 20;
const MAX_MAX_BYTES: u32 = 64 << 20;
/// Longest long-poll wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Records read, with the partition's bounds at that time.
struct Fetched {
    records: Vec<pb::StoredRecord>,
    bytes: usize,
    high_watermark: u64,
    log_start: u64,
}

impl ClientApi {
    fn local_partition(&self, topic: &str, partition: u32) -> Result<PartitionInfo, Error> {
        let t = self.topic(topic)?;
        let p = self.partition(&t, partition)?;
        if !p.replicas.contains(&self.inner.node) {
            return Err(self.not_leader(p.replicas.first().copied()));
        }
        Ok(p)
    }

    /// This replica's state of `p`, unless it stopped serving it (corrupt data).
    fn serving(&self, p: &PartitionInfo) -> Result<crate::node::GroupStatus, Error> {
        let status = self
            .inner
            .view
            .group(p.group)
            .ok_or_else(|| self.not_leader(None))?;
        match status.stopped {
            Some(why) => Err(Error::ReplicaStopped(why)),
            None => Ok(status),
        }
    }

    /// Reads from `offset`, waiting until `min_bytes` are available or `deadline` passes.
    async fn fetch_records(
        &self,
        p: &PartitionInfo,
        offset: u64,
        min_bytes: usize,
        max_bytes: u32,
        deadline: Instant,
    ) -> Result<Fetched, Error> {
        let mut hwm_rx = self.serving(p)?.high_watermark;
        loop {
            let hwm = *hwm_rx.borrow_and_update();
            let log_start = self.inner.db.log_start_offset(p.group)?;
            let leading = self.leader_of(p.group) == Some(self.inner.node);
            if offset < log_start || (offset > hwm && leading) {
                return Err(Error::OffsetOutOfRange {
                    offset,
                    start: log_start,
                    end: hwm,
                });
            }
            let mut fetched = Fetched {
                records: Vec::new(),
                bytes: 0,
                high_watermark: hwm,
                log_start,
            };
            if offset < hwm {
                let db = self.inner.db.clone();
                let group = p.group;
                let read = tokio::task::spawn_blocking(move || {
                    db.read_records(group, offset, hwm, max_bytes as usize)
                })
                .await
                .map_err(|e| Error::ReplicaStopped(e.to_string()))?
                // The one mapping decides: corrupt data, an offset a trim just removed, ...
                .map_err(Error::Storage)?;
                for (off, rec) in read.records {
                    fetched.bytes += rec.encoded_len();
                    fetched.records.push(record_to_wire(off, rec));
                }
            }
            if fetched.bytes >= min_bytes.max(1) || Instant::now() >= deadline {
                self.inner
                    .metrics
                    .fetched(fetched.records.len() as u64, fetched.bytes as u64);
                return Ok(fetched);
            }
            // Long-poll: wake when the high watermark moves, or at the deadline.
            if tokio::time::timeout_at(deadline, hwm_rx.changed())
                .await
                .is_err()
            {
                continue; // deadline: one last read above, then return
            }
        }
    }

    /// Counts a failed fetch by its outcome.
    fn fetch_failed(&self, e: Error) -> Status {
        let status = Status::from(e);
        self.inner
            .metrics
            .fetch_request(&super::outcome_of(&status));
        status
    }
}

fn max_bytes_of(requested: u32) -> u32 {
    if requested == 0 {
        DEFAULT_MAX_BYTES
    } else {
        requested.min(MAX_MAX_BYTES)
    }
}

#[tonic::async_trait]
impl Consumer for ClientApi {
    type SubscribeStream = ReceiverStream<Result<pb::SubscribeResponse, Status>>;

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require(Action::Consume, &r.topic)?;
        let p = self
            .local_partition(&r.topic, r.partition)
            .map_err(|e| self.fetch_failed(e))?;
        let wait = Duration::from_millis(r.max_wait_ms as u64).min(MAX_WAIT);
        let deadline = Instant::now() + wait;
        let f = self
            .fetch_records(
                &p,
                r.offset,
                r.min_bytes as usize,
                max_bytes_of(r.max_bytes),
                deadline,
            )
            .await
            .map_err(|e| self.fetch_failed(e))?;
        self.inner.metrics.fetch_request("ok");
        Ok(Response::new(pb::FetchResponse {
            error: None,
            records: f.records,
            high_watermark: f.high_watermark,
            log_start_offset: f.log_start,
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require(Action::Consume, &r.topic)?;
        let p = self.local_partition(&r.topic, r.partition)?;
        let status = self.serving(&p)?;
        let end = *status.high_watermark.borrow();
        let (offset, timestamp_ms) = match pb::OffsetSpec::try_from(r.spec) {
            Ok(pb::OffsetSpec::Latest) => (end, 0),
            Ok(pb::OffsetSpec::Timestamp) => {
                let db = self.inner.db.clone();
                let (group, at) = (p.group, r.timestamp_ms);
                tokio::task::spawn_blocking(move || db.offset_for_time(group, at, end))
                    .await
                    .map_err(|e| Error::ReplicaStopped(e.to_string()))?
                    .map_err(Error::Storage)?
                    .unwrap_or((end, 0))
            }
            _ => (status.log_start, 0),
        };
        Ok(Response::new(pb::ListOffsetsResponse {
            error: None,
            offset,
            timestamp_ms,
        }))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require(Action::Consume, &r.topic)?;
        let p = self.local_partition(&r.topic, r.partition)?;
        let max_bytes = max_bytes_of(r.max_bytes);
        // Small buffer: a slow subscriber holds at most a few batches, then reads pause.
        let (tx, rx) = mpsc::channel(4);
        let api = self.clone();
        tokio::spawn(async move {
            let mut offset = r.offset;
            loop {
                let deadline = Instant::now() + Duration::from_secs(1);
                let item = match api.fetch_records(&p, offset, 1, max_bytes, deadline).await {
                    Ok(f) if f.records.is_empty() => {
                        if tx.is_closed() {
                            return;
                        }
                        continue;
                    }
                    Ok(f) => {
                        offset = f.records.last().map_or(offset, |r| r.offset + 1);
                        Ok(pb::SubscribeResponse {
                            error: None,
                            records: f.records,
                            high_watermark: f.high_watermark,
                            log_start_offset: f.log_start,
                        })
                    }
                    Err(e) => Err(Status::from(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
