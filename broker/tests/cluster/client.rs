//! A careful producer, as a real client must be: it follows NOT_LEADER hints, retries only
//! what certainly was not written, and records every write whose outcome it cannot know.
//! And the checker of what a partition holds against what producers were told.

use super::harness::{DEADLINE, POLL, channel, record};
use paxlog_proto::v1 as pb;
use pb::producer_client::ProducerClient;
use prost::Message as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The `paxlog.v1.Error` a broker puts in every status's details; `None` when the status
/// did not come from a broker (transport failure, client-side deadline).
pub fn wire_error(status: &Status) -> Option<pb::Error> {
    if status.details().is_empty() {
        return None;
    }
    pb::Error::decode(status.details()).ok()
}

/// What a client may conclude from a failed publish.
#[derive(Debug)]
enum Failure {
    /// Not written: this broker does not lead; ask `hint` if given.
    NotLeader(Option<pb::LeaderHint>),
    /// Not written: the leader shed the request.
    Busy,
    /// May or may not be written: never retry (that could duplicate it).
    Unknown,
}

fn classify(status: &Status) -> Failure {
    let wire = wire_error(status);
    let code = wire.as_ref().map(|e| e.code());
    match (status.code(), code) {
        (Code::FailedPrecondition, Some(pb::ErrorCode::NotLeader)) => {
            Failure::NotLeader(wire.and_then(|e| e.leader))
        }
        (Code::Unavailable, Some(pb::ErrorCode::Throttled)) => Failure::Busy,
        // Outcome unknown (leadership changed), deadline exceeded, a connection that broke
        // with the request on it, a replica that stopped under it: anything else.
        _ => Failure::Unknown,
    }
}

/// The outcome of one publish as the client knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Acknowledged: the records start at this offset.
    Acked(u64),
    /// The outcome is unknown; the status says why.
    Unknown(String),
}

/// How often a producer was redirected or had to wait.
#[derive(Clone, Copy, Debug, Default)]
pub struct Redirects {
    /// NOT_LEADER with a hint, followed.
    pub hinted: u64,
    /// NOT_LEADER without a hint, or an unreachable broker: tried another one.
    pub blind: u64,
    /// THROTTLED: waited and retried.
    pub busy: u64,
}

/// Publishes to one partition, following leadership.
pub struct Producer {
    addrs: BTreeMap<u64, SocketAddr>,
    topic: String,
    partition: u32,
    /// The broker believed to lead.
    target: u64,
    clients: HashMap<u64, ProducerClient<Channel>>,
    /// Server-side deadline of each publish.
    timeout_ms: u32,
    /// An idempotent producer's id and epoch (from InitProducer).
    identity: Option<(u64, u32)>,
    pub redirects: Redirects,
}

impl Producer {
    /// A producer of `topic`/`partition` that tries `first` first.
    pub fn new(addrs: BTreeMap<u64, SocketAddr>, topic: &str, partition: u32, first: u64) -> Self {
        Self {
            addrs,
            topic: topic.to_owned(),
            partition,
            target: first,
            clients: HashMap::new(),
            timeout_ms: 5_000,
            identity: None,
            redirects: Redirects::default(),
        }
    }

    /// Makes the producer idempotent with this id and epoch.
    pub fn with_identity(mut self, producer_id: u64, epoch: u32) -> Self {
        self.identity = Some((producer_id, epoch));
        self
    }

    /// An idempotent publish of `records` from `base_sequence`: unlike [`Producer::send`],
    /// an unknown outcome is retried with the identical batch, which the partition leader
    /// deduplicates. Returns the acknowledged base offset and how many attempts ended
    /// unknown first.
    pub async fn send_idempotent(
        &mut self,
        records: Vec<pb::Record>,
        base_sequence: u64,
    ) -> (u64, u32) {
        assert!(self.identity.is_some(), "with_identity first");
        let mut unknown = 0;
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(
                Instant::now() < deadline,
                "sequence {base_sequence} not acknowledged within {DEADLINE:?}"
            );
            match self.send_with(records.clone(), base_sequence).await {
                Sent::Acked(offset) => return (offset, unknown),
                Sent::Unknown(why) => {
                    unknown += 1;
                    eprintln!("sequence {base_sequence}: unknown ({why}); retrying");
                    self.next_target();
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// The broker tried after `self.target`, in id order.
    fn next_target(&mut self) {
        let next = self
            .addrs
            .range(self.target + 1..)
            .next()
            .or_else(|| self.addrs.iter().next());
        self.target = next.map_or(self.target, |(id, _)| *id);
    }

    /// A connected client of `node`; `None` when it cannot be reached (nothing was sent).
    async fn client(&mut self, node: u64) -> Option<ProducerClient<Channel>> {
        if let Some(c) = self.clients.get(&node) {
            return Some(c.clone());
        }
        let ch = channel(self.addrs[&node]).await.ok()?;
        let c = ProducerClient::new(ch);
        self.clients.insert(node, c.clone());
        Some(c)
    }

    /// Publishes `records` to the partition's leader. Retries only failures that prove
    /// nothing was written; returns `Unknown` (never retried) for any other failure.
    pub async fn send(&mut self, records: Vec<pb::Record>) -> Sent {
        self.send_with(records, 0).await
    }

    async fn send_with(&mut self, records: Vec<pb::Record>, base_sequence: u64) -> Sent {
        let (producer_id, producer_epoch) = self.identity.unwrap_or((0, 0));
        let deadline = Instant::now() + DEADLINE;
        let mut backoff = Duration::from_millis(5);
        loop {
            assert!(
                Instant::now() < deadline,
                "partition {}: no broker accepted a publish for {DEADLINE:?}",
                self.partition
            );
            let node = self.target;
            let Some(mut client) = self.client(node).await else {
                self.redirects.blind += 1;
                self.next_target();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
                continue;
            };
            let request = pb::PublishRequest {
                topic: self.topic.clone(),
                partition: Some(self.partition),
                records: records.clone(),
                timeout_ms: self.timeout_ms,
                producer_id,
                producer_epoch,
                base_sequence,
            };
            let status = match client.publish(request).await {
                Ok(r) => {
                    let r = r.into_inner();
                    assert_eq!(r.partition, self.partition);
                    assert_eq!(
                        r.last_offset + 1 - r.base_offset,
                        records.len() as u64,
                        "last_offset: {r:?}"
                    );
                    return Sent::Acked(r.base_offset);
                }
                Err(status) => status,
            };
            match classify(&status) {
                Failure::NotLeader(Some(hint)) => {
                    self.redirects.hinted += 1;
                    assert_eq!(
                        Some(&hint.address),
                        self.addrs
                            .get(&hint.node_id)
                            .map(|a| a.to_string())
                            .as_ref(),
                        "the hint names node {} at the wrong address",
                        hint.node_id
                    );
                    if hint.node_id == node {
                        // Leading in the hinter's view but not yet in its own: wait a little.
                        tokio::time::sleep(backoff).await;
                    }
                    self.target = hint.node_id;
                }
                Failure::NotLeader(None) => {
                    self.redirects.blind += 1;
                    self.next_target();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Failure::Busy => {
                    self.redirects.busy += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Failure::Unknown => {
                    if wire_error(&status).is_none() {
                        // The connection may be dead (node killed): connect afresh next time.
                        self.clients.remove(&node);
                    }
                    return Sent::Unknown(format!(
                        "node {node}: {:?}: {}",
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
    }
}

/// Publishes `count` records with the unique values `{prefix}-{i:05}`, one per publish and
/// one publish at a time, counting each finished write in `done`.
pub async fn produce_sequence(
    mut producer: Producer,
    prefix: String,
    count: usize,
    done: Arc<AtomicUsize>,
) -> (History, Redirects) {
    let mut history = History::default();
    for i in 0..count {
        let value = format!("{prefix}-{i:05}");
        let sent = producer.send(vec![record("k", &value)]).await;
        if let Sent::Unknown(why) = &sent {
            eprintln!("{value} has an unknown outcome: {why}");
        }
        history.record(&[value], &sent);
        done.fetch_add(1, Ordering::Relaxed);
    }
    (history, producer.redirects)
}

/// Waits until `done` reaches `at_least` (producers make progress), panicking after
/// [`DEADLINE`] with `context`.
pub async fn wait_progress(done: &AtomicUsize, at_least: usize, context: impl Fn() -> String) {
    let deadline = Instant::now() + DEADLINE;
    while done.load(Ordering::Relaxed) < at_least {
        assert!(
            Instant::now() < deadline,
            "producers stalled at {} records\n{}",
            done.load(Ordering::Relaxed),
            context()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// What producers were told about a partition's records, identified by unique values.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Acknowledged records and their offsets, in the order the producer sent them.
    pub acked: Vec<(String, u64)>,
    /// Records whose publish had an unknown outcome.
    pub unknown: Vec<String>,
}

impl History {
    /// Records a publish of `values` (one record each, in order) and its outcome.
    pub fn record(&mut self, values: &[String], sent: &Sent) {
        match sent {
            Sent::Acked(base) => {
                self.acked.extend(values.iter().cloned().zip(*base..));
            }
            Sent::Unknown(_) => self.unknown.extend(values.iter().cloned()),
        }
    }
}

/// The figures of one partition's check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records in the partition.
    pub stored: usize,
    /// Acknowledged records (all present, at their offsets).
    pub acked: usize,
    /// Writes with an unknown outcome.
    pub unknown: usize,
    /// Of those, how many are stored (once).
    pub unknown_stored: usize,
}

/// Checks a partition's full log (`(offset, value)` from offset 0) against what its
/// producers were told, one `History` per producer that wrote one record at a time:
/// offsets dense from 0; no value twice; every acknowledged record at the offset it was
/// acknowledged with, each producer's in the order it sent them; nothing stored that was
/// neither acknowledged nor of unknown outcome. Panics listing every violation.
pub fn check(partition: u32, producers: &[History], log: &[(u64, String)]) -> Tally {
    let mut violations = Vec::new();
    for (i, (offset, _)) in log.iter().enumerate() {
        if *offset != i as u64 {
            violations.push(format!(
                "offsets not dense: position {i} holds offset {offset}"
            ));
            break;
        }
    }
    let mut at: HashMap<&str, u64> = HashMap::new();
    for (offset, value) in log {
        if let Some(first) = at.insert(value, *offset) {
            violations.push(format!(
                "duplicated: {value} at offsets {first} and {offset}"
            ));
        }
    }
    let mut written: HashSet<&str> = HashSet::new();
    let mut tally = Tally {
        stored: log.len(),
        ..Tally::default()
    };
    for history in producers {
        let mut last = None;
        for (value, offset) in &history.acked {
            match at.get(value.as_str()) {
                None => violations.push(format!(
                    "lost: acknowledged {value} at offset {offset} is not stored"
                )),
                Some(o) if o != offset => violations.push(format!(
                    "moved: {value} acknowledged at offset {offset}, stored at {o}"
                )),
                Some(_) => {}
            }
            if last.is_some_and(|l| l >= *offset) {
                violations.push(format!(
                    "out of order: {value} acknowledged at {offset} after {last:?}"
                ));
            }
            last = Some(*offset);
            written.insert(value);
        }
        written.extend(history.unknown.iter().map(String::as_str));
        tally.acked += history.acked.len();
        tally.unknown += history.unknown.len();
        tally.unknown_stored += history
            .unknown
            .iter()
            .filter(|v| at.contains_key(v.as_str()))
            .count();
    }
    for (offset, value) in log {
        if !written.contains(value.as_str()) {
            violations.push(format!(
                "foreign: {value} at offset {offset} was never written"
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "partition {partition}: {} violations:\n{}",
        violations.len(),
        violations
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    tally
}
