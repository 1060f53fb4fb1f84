//! The producer: records in, batches per partition out, each batch acknowledged once a
//! majority of the partition's replicas fsynced it.
//!
//! ```text
//!   send(record) ─▶ buffer permits (backpressure) ─▶ partition (explicit | key hash | sticky)
//!      │                                                   │
//!      └── DeliveryFuture ◀── one lane task per partition ◀┘ batches by size and linger,
//!                              one batch in flight per partition (order kept), retried:
//!                              idempotent: the same batch with the same sequence until
//!                              the delivery timeout; otherwise only when surely not written
//! ```
//!
//! Idempotence is on by default: the producer gets an id from `InitProducer` and numbers
//! the records of each partition; the partition leader answers a retried batch with the
//! first write's offsets instead of writing it again (see the `Producer` service in
//! `client.proto`). Records are compressed on disk by the brokers (RocksDB, LZ4).

mod lane;

use crate::connection::{CallKind, Connection};
use crate::error::{Error, ServerError};
use crate::partitioner::partition_for_key;
use bytes::Bytes;
use lane::{Lane, Pending};
use paxlog_proto::v1::{self as pb, producer_client::ProducerClient};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OnceCell, Semaphore, mpsc, oneshot};

/// A record to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic name.
    pub topic: String,
    /// Partition; `None`: by key hash, or spread over partitions when the key is empty.
    pub partition: Option<u32>,
    /// Key (empty: none). Equal keys go to the same partition.
    pub key: Bytes,
    /// Payload.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Creation time in ms since the epoch; 0: the leader stamps its clock.
    pub timestamp_ms: i64,
}

impl ProducerRecord {
    /// A record of `value` for `topic`.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: value.into(),
            ..Self::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = key.into();
        self
    }

    /// Sends to this partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Bytes the broker's record size limit counts: key, value, header names and values.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.key.len() + self.value.len() + headers
    }
}

/// Where a record was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset; `None` only when a retry found the batch written so long ago that the
    /// broker no longer remembers where (DUPLICATE_SEQUENCE): stored, offset unknown.
    pub offset: Option<u64>,
}

/// Compression of record batches on the wire (gRPC message compression). Brokers store
/// batches compressed either way (RocksDB, LZ4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// None: the least CPU, the most bytes.
    #[default]
    None,
    /// zstd: far fewer bytes for text and JSON, some CPU on both ends.
    Zstd,
}

/// Settings of a [`Producer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// Most records in one batch.
    pub batch_max_records: usize,
    /// Most bytes (key, value, headers) in one batch.
    pub batch_max_bytes: usize,
    /// Most bytes of records sent and not yet acknowledged; `send` waits beyond it.
    pub buffer_max_bytes: usize,
    /// Idempotent delivery: retries never write a record twice.
    pub idempotent: bool,
    /// How long a record may take from `send` to acknowledgement, retries included.
    pub delivery_timeout: Duration,
    /// Compression of batches on the wire.
    pub compression: Compression,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger: Duration::from_millis(5),
            batch_max_records: 500,
            batch_max_bytes: 1 << 20,
            buffer_max_bytes: 32 << 20,
            idempotent: true,
            delivery_timeout: Duration::from_secs(60),
            compression: Compression::None,
        }
    }
}

impl ProducerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::InvalidArgument(format!("producer config: {why}")));
        if self.batch_max_records == 0 || self.batch_max_bytes == 0 {
            return bad("batch_max_records and batch_max_bytes must be at least 1".into());
        }
        if self.buffer_max_bytes < self.batch_max_bytes {
            return bad(format!(
                "buffer_max_bytes ({}) must be at least batch_max_bytes ({})",
                self.buffer_max_bytes, self.batch_max_bytes
            ));
        }
        if self.buffer_max_bytes > u32::MAX as usize {
            return bad("buffer_max_bytes must fit in 32 bits".into());
        }
        if self.delivery_timeout.is_zero() {
            return bad("delivery_timeout must be positive".into());
        }
        Ok(())
    }
}

/// A record's acknowledgement, to await.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<Delivered, Error>>,
}

impl std::future::Future for DeliveryFuture {
    type Output = Result<Delivered, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Interrupted("the producer was dropped"))))
    }
}

/// What the lanes share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) conn: Arc<Connection>,
    pub(crate) config: ProducerConfig,
    /// The producer id and epoch, once InitProducer answered.
    identity: OnceCell<(u64, u32)>,
    /// Records sent and not yet answered.
    outstanding: AtomicUsize,
    idle: Notify,
}

impl Shared {
    /// The idempotent identity, asked for once.
    pub(crate) async fn identity(&self) -> Result<(u64, u32), Error> {
        self.identity
            .get_or_try_init(|| init_producer(&self.conn, self.config.delivery_timeout))
            .await
            .copied()
    }

    pub(crate) fn answered(&self, records: usize) {
        if self.outstanding.fetch_sub(records, Ordering::AcqRel) == records {
            self.idle.notify_waiters();
        }
    }
}

/// The lane of each partition written so far.
type Lanes = HashMap<(String, u32), mpsc::Sender<Pending>>;

/// Sends records to partition leaders in batches. Cheap to clone; [`Producer::close`]
/// (or dropping every clone) ends its lanes once they are drained.
#[derive(Clone, Debug)]
pub struct Producer {
    shared: Arc<Shared>,
    buffer: Arc<Semaphore>,
    lanes: Arc<Mutex<Lanes>>,
    partitions: Arc<Mutex<HashMap<String, u32>>>,
    sticky: Arc<AtomicU64>,
}

impl Producer {
    /// A producer over `conn`.
    pub fn new(conn: Arc<Connection>, config: ProducerConfig) -> Result<Producer, Error> {
        config.validate()?;
        let buffer = Arc::new(Semaphore::new(config.buffer_max_bytes));
        Ok(Producer {
            shared: Arc::new(Shared {
                conn,
                config,
                identity: OnceCell::new(),
                outstanding: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
            buffer,
            lanes: Arc::default(),
            partitions: Arc::default(),
            sticky: Arc::default(),
        })
    }

    /// Queues `record`; waits while the buffer is full (backpressure). The returned future
    /// resolves once the record is acknowledged (or failed for good).
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let size = record.size().max(1);
        let cap = self.shared.config.buffer_max_bytes;
        let permits = size.min(cap) as u32;
        let permit = self
            .buffer
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Interrupted("the producer is closed"))?;
        let partition = self.partition_of(&record).await?;
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            record: pb::Record {
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(key, value)| pb::Header { key, value })
                    .collect(),
                timestamp_ms: record.timestamp_ms,
            },
            size,
            _permit: permit,
            reply,
        };
        let lane = self.lane(&record.topic, partition);
        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError(p)) = lane.send(pending).await {
            self.shared.answered(1);
            let _ = p
                .reply
                .send(Err(Error::Interrupted("the producer is closed")));
        }
        Ok(DeliveryFuture { rx })
    }

    /// Sends `record` and waits for its acknowledgement.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<Delivered, Error> {
        self.send(record).await?.await
    }

    /// Waits until every record sent so far is answered.
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Flushes, then ends the lanes.
    pub async fn close(self) {
        self.flush().await;
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.buffer.close();
    }

    async fn partition_of(&self, record: &ProducerRecord) -> Result<u32, Error> {
        if let Some(p) = record.partition {
            return Ok(p);
        }
        let count = self.partition_count(&record.topic).await?;
        if !record.key.is_empty() {
            return Ok(partition_for_key(&record.key, count));
        }
        // Keyless: stay on one partition for a batch's worth, then move on (fuller batches
        // than one record per partition in turn).
        let n = self.sticky.fetch_add(1, Ordering::Relaxed);
        let per = self.shared.config.batch_max_records.max(1) as u64;
        Ok(((n / per) % u64::from(count)) as u32)
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        if let Some(n) = self
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(*n);
        }
        let meta = self
            .shared
            .conn
            .topic_metadata(topic, self.shared.config.delivery_timeout)
            .await?;
        let n = (meta.partitions.len() as u32).max(1);
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), n);
        Ok(n)
    }

    fn lane(&self, topic: &str, partition: u32) -> mpsc::Sender<Pending> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(1024);
                let lane = Lane::new(self.shared.clone(), topic.to_owned(), partition);
                tokio::spawn(lane.run(rx));
                tx
            })
            .clone()
    }
}

/// A new idempotent producer identity `(id, epoch)` from the cluster (InitProducer, at
/// the metadata leader).
pub async fn init_producer(conn: &Connection, budget: Duration) -> Result<(u64, u32), Error> {
    let response = conn
        .call_leader(CallKind::Admin, budget, |channel| async move {
            ProducerClient::new(channel)
                .init_producer(pb::InitProducerRequest { producer_id: 0 })
                .await
        })
        .await
        .map_err(|e| e.with_what("initialise an idempotent producer"))?;
    Ok((response.producer_id, response.producer_epoch))
}

/// Publishes `request` at its partition's leader until `deadline`. An idempotent request
/// (producer id set) whose outcome is unknown (leader change, broken connection) is sent
/// again, identical: the leader writes it at most once and answers a retry with the first
/// write's offsets. `Ok(None)`: the broker reports it written so long ago that it no longer
/// knows where (DUPLICATE_SEQUENCE). A plain request is never retried after an unknown
/// outcome.
pub async fn publish_until(
    conn: &Connection,
    request: &pb::PublishRequest,
    deadline: tokio::time::Instant,
    zstd: bool,
) -> Result<Option<pb::PublishResponse>, Error> {
    let kind = CallKind::Publish {
        topic: request.topic.clone(),
        partition: request.partition.unwrap_or(0),
    };
    let idempotent = request.producer_id != 0;
    loop {
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = conn
            .call_leader(kind.clone(), budget, |channel| {
                let request = request.clone();
                let mut client = ProducerClient::new(channel);
                if zstd {
                    client = client.send_compressed(tonic::codec::CompressionEncoding::Zstd);
                }
                async move { client.publish(request).await }
            })
            .await;
        match result {
            Ok(r) => return Ok(Some(r)),
            Err(e) if e.server_code() == Some(pb::ErrorCode::DuplicateSequence) => {
                return Ok(None);
            }
            Err(Error::OutcomeUnknown { .. })
                if idempotent && tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(topic = %request.topic, partition = ?request.partition,
                    base_sequence = request.base_sequence, "outcome unknown; retrying the same batch");
            }
            Err(e) => return Err(e),
        }
    }
}

/// The failure a whole batch gets when it cannot be delivered.
pub(crate) fn batch_error(error: &Error) -> Error {
    match error {
        Error::Server { what, error } => Error::Server {
            what: what.clone(),
            error: Box::new(ServerError::clone(error)),
        },
        Error::OutcomeUnknown { what, last } => Error::OutcomeUnknown {
            what: what.clone(),
            last: last.clone(),
        },
        Error::GaveUp {
            what,
            attempts,
            elapsed,
            address,
            last,
        } => Error::GaveUp {
            what: what.clone(),
            attempts: *attempts,
            elapsed: *elapsed,
            address: address.clone(),
            last: last.clone(),
        },
        other => Error::InvalidArgument(other.to_string()),
    }
}
