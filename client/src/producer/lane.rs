//! One partition's lane: gathers records into batches (size and linger) and sends them
//! one at a time, so the partition's order is the order of `send`.

use super::{Delivered, Shared, batch_error};
use crate::error::Error;
use paxlog_proto::v1 as pb;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;

/// A record waiting in a lane.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) record: pb::Record,
    pub(crate) size: usize,
    /// Buffer space, given back when the record is answered.
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) reply: oneshot::Sender<Result<Delivered, Error>>,
}

pub(crate) struct Lane {
    shared: Arc<Shared>,
    topic: String,
    partition: u32,
    /// The next idempotent sequence of this partition.
    next_sequence: u64,
}

impl Lane {
    pub(crate) fn new(shared: Arc<Shared>, topic: String, partition: u32) -> Self {
        Self {
            shared,
            topic,
            partition,
            next_sequence: 0,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let config = self.shared.config.clone();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let mut bytes = batch[0].size;
            let deadline = Instant::now() + config.linger;
            while batch.len() < config.batch_max_records && bytes < config.batch_max_bytes {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => {
                        bytes += p.size;
                        batch.push(p);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.deliver(batch).await;
        }
    }

    async fn deliver(&mut self, batch: Vec<Pending>) {
        let n = batch.len();
        let result = self.publish(&batch).await;
        for (i, p) in batch.into_iter().enumerate() {
            let answer = match &result {
                Ok(base) => Ok(Delivered {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    offset: base.map(|b| b + i as u64),
                }),
                Err(e) => Err(batch_error(e)),
            };
            let _ = p.reply.send(answer);
        }
        self.shared.answered(n);
    }

    /// Publishes the batch; `Ok(Some(base offset))`, or `Ok(None)` when written long ago.
    async fn publish(&mut self, batch: &[Pending]) -> Result<Option<u64>, Error> {
        let config = &self.shared.config;
        let deadline = Instant::now() + config.delivery_timeout;
        let (producer_id, producer_epoch, base_sequence) = if config.idempotent {
            let (id, epoch) = self.shared.identity().await?;
            let base = self.next_sequence;
            self.next_sequence += batch.len() as u64;
            (id, epoch, base)
        } else {
            (0, 0, 0)
        };
        let request = pb::PublishRequest {
            topic: self.topic.clone(),
            partition: Some(self.partition),
            records: batch.iter().map(|p| p.record.clone()).collect(),
            producer_id,
            producer_epoch,
            base_sequence,
            timeout_ms: 0,
        };
        let zstd = config.compression == super::Compression::Zstd;
        match super::publish_until(&self.shared.conn, &request, deadline, zstd).await {
            Ok(written) => Ok(written.map(|r| r.base_offset)),
            Err(e) => {
                // Refused, so certainly not written: its sequences are free again (the lane
                // has one batch in flight, so they are the last ones handed out).
                if config.idempotent && matches!(e, Error::Server { .. }) {
                    self.next_sequence = base_sequence;
                }
                Err(e)
            }
        }
    }
}
