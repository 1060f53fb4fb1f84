//! What a runner holds of one trigger: records waiting per key, batches in flight, retries,
//! and how far each partition may be committed. Pure bookkeeping (time is passed in), so
//! every rule is unit-tested without a cluster.
//!
//! ```text
//!   add(records) ──▶ key queues (one per partition and key; a keyless record is its own key)
//!   take_batch ──▶ heads of ready keys, oldest first; a key is in at most one batch at a time
//!   complete(batch, outcome)
//!     ok ─────────▶ done (a listed failure fails the rest of its key in the batch too)
//!     error ──────▶ bisect (halve the batch limit of its records) or attempt+1 and backoff,
//!                   or dead-letter after max_retries / max_record_age
//!     throttled ──▶ back to the queue with backoff; attempts unchanged
//!   commit_points: per partition, the lowest offset not done (else one past the last added)
//! ```

use crate::consumer::ConsumedRecord;
use bytes::Bytes;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// The retry rules of a trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed attempts after the first before a record is dead-lettered.
    pub max_retries: u32,
    /// First backoff.
    pub backoff: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Records older than this are dead-lettered instead of retried.
    pub max_record_age: Option<Duration>,
    /// Split failing batches before counting attempts.
    pub bisect: bool,
}

impl RetryPolicy {
    /// The longest backoff before retry `attempt` (from 1): base·2^(attempt-1), capped.
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.backoff
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max)
    }
}

/// A record the runner holds until it is done.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The record.
    pub record: ConsumedRecord,
    /// Invocations with this record that failed (throttles not counted).
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// Invocations with this record that were throttled (they back off longer each time).
    throttles: u32,
    /// Most records of a batch this record may be in (bisection halves it).
    batch_limit: usize,
    /// When the runner received it.
    received: Instant,
}

impl Pending {
    /// A record not tried yet.
    pub fn new(record: ConsumedRecord) -> Pending {
        Pending {
            record,
            attempts: 0,
            last_error: String::new(),
            throttles: 0,
            batch_limit: usize::MAX,
            received: Instant::now(),
        }
    }

    /// The id functions see and report failures by: `topic/partition/offset`.
    pub fn id(&self) -> String {
        record_id(&self.record)
    }
}

/// `topic/partition/offset`: a record's id, stable across redeliveries (an idempotency key).
pub fn record_id(r: &ConsumedRecord) -> String {
    format!("{}/{}/{}", r.topic, r.partition, r.offset)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyId {
    Key(Bytes),
    /// A keyless record: no order to keep, so it is its own key.
    Unkeyed(u64),
}

type KeyRef = (u32, KeyId);

#[derive(Debug, Default)]
struct KeyQueue {
    records: VecDeque<Pending>,
    in_flight: bool,
    not_before: Option<Instant>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Offsets added and not done yet.
    outstanding: BTreeSet<u64>,
    /// One past the highest offset added.
    next: Option<u64>,
    /// Bumped when the partition is revoked, so late completions are ignored.
    epoch: u64,
}

/// Records handed to one invocation.
#[derive(Debug)]
pub struct Batch {
    /// The records, grouped by key in key order.
    pub records: Vec<Pending>,
    keys: Vec<(KeyRef, usize)>,
    epochs: BTreeMap<u32, u64>,
}

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success; the listed record ids failed (partial batch failure).
    Ok {
        /// Ids of failed records.
        failed: BTreeSet<String>,
    },
    /// The whole batch failed.
    Error(String),
    /// The function asked to slow down.
    Throttled(String),
}

/// What the caller must do after a completion.
#[derive(Debug, Default)]
pub struct Completed {
    /// Records done now.
    pub done: usize,
    /// Records that failed and will be retried.
    pub retried: usize,
    /// Records to publish to the dead-letter topic; call [`Work::done`] once each is stored.
    pub dead: Vec<Pending>,
}

/// One trigger's records in a runner; see the module docs.
#[derive(Debug)]
pub struct Work {
    policy: RetryPolicy,
    keys: HashMap<KeyRef, KeyQueue>,
    /// Keys with records, not in flight, not backing off, in the order they became ready.
    ready: VecDeque<KeyRef>,
    /// Keys backing off until the instant.
    delayed: Vec<(Instant, KeyRef)>,
    progress: BTreeMap<u32, Progress>,
    held: usize,
    in_flight: usize,
    rng: ChaCha8Rng,
}

impl Work {
    /// Empty bookkeeping under `policy`.
    pub fn new(policy: RetryPolicy, seed: u64) -> Work {
        Work {
            policy,
            keys: HashMap::new(),
            ready: VecDeque::new(),
            delayed: Vec::new(),
            progress: BTreeMap::new(),
            held: 0,
            in_flight: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Records held (waiting, backing off or in flight).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Invocations in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records waiting that could go into a batch now.
    pub fn ready_keys(&self) -> usize {
        self.ready.len()
    }

    /// Takes polled records (in offset order per partition).
    pub fn add(&mut self, records: Vec<ConsumedRecord>, now: Instant) {
        for record in records {
            let p = record.partition;
            let progress = self.progress.entry(p).or_default();
            if progress.next.is_some_and(|n| record.offset < n) {
                continue; // already held or done
            }
            progress.next = Some(record.offset + 1);
            progress.outstanding.insert(record.offset);
            let id = match record.key.is_empty() {
                true => KeyId::Unkeyed(record.offset),
                false => KeyId::Key(record.key.clone()),
            };
            let key = (p, id);
            let queue = self.keys.entry(key.clone()).or_default();
            let was_idle = queue.records.is_empty() && !queue.in_flight;
            queue.records.push_back(Pending {
                record,
                attempts: 0,
                last_error: String::new(),
                throttles: 0,
                batch_limit: usize::MAX,
                received: now,
            });
            self.held += 1;
            if was_idle && queue.not_before.is_none() {
                self.ready.push_back(key);
            }
        }
    }

    /// Records waiting in ready keys (not in flight, not backing off).
    pub fn waiting(&self) -> usize {
        self.ready
            .iter()
            .filter_map(|k| self.keys.get(k))
            .map(|q| q.records.len())
            .sum()
    }

    /// The timestamp of the oldest record waiting (ms since the epoch).
    pub fn oldest_timestamp_ms(&self) -> Option<i64> {
        self.keys
            .values()
            .filter_map(|q| q.records.front())
            .map(|p| p.record.timestamp_ms)
            .min()
    }

    /// When the oldest ready record arrived, if any is ready.
    pub fn oldest_ready(&self) -> Option<Instant> {
        self.ready
            .iter()
            .filter_map(|k| self.keys.get(k)?.records.front().map(|p| p.received))
            .min()
    }

    /// The next instant a backing-off key becomes ready.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.delayed.iter().map(|(t, _)| *t).min()
    }

    /// Moves keys whose backoff ended to the ready queue.
    pub fn promote(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(t, _)| *t <= now);
        self.delayed = later;
        for (_, key) in due {
            if let Some(q) = self.keys.get_mut(&key) {
                q.not_before = None;
                if !q.in_flight && !q.records.is_empty() {
                    self.ready.push_back(key);
                }
            }
        }
    }

    /// Up to `max` records from the ready keys, oldest first, each key's records in order.
    pub fn take_batch(&mut self, max: usize) -> Option<Batch> {
        let mut batch = Batch {
            records: Vec::new(),
            keys: Vec::new(),
            epochs: BTreeMap::new(),
        };
        let mut limit = max.max(1);
        let mut skipped = VecDeque::new();
        while batch.records.len() < limit {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(q) = self.keys.get_mut(&key) else {
                continue;
            };
            if q.in_flight || q.records.is_empty() {
                continue;
            }
            let head_limit = q.records.front().map_or(usize::MAX, |p| p.batch_limit);
            if !batch.records.is_empty() && head_limit < batch.records.len() + 1 {
                // Bisected records go in small batches of their own.
                skipped.push_back(key);
                continue;
            }
            limit = limit.min(head_limit);
            // A record being retried goes alone for its key: the records behind it wait
            // instead of being delivered again and again with it.
            let key_limit = match q.records.front().is_some_and(|p| p.attempts > 0) {
                true => 1,
                false => usize::MAX,
            };
            let mut taken = 0;
            while batch.records.len() < limit && taken < key_limit {
                let Some(p) = q.records.front() else { break };
                limit = limit.min(p.batch_limit.max(batch.records.len() + 1));
                if batch.records.len() >= limit {
                    break;
                }
                let p = q.records.pop_front().unwrap_or_else(|| unreachable!());
                batch.records.push(p);
                taken += 1;
            }
            q.in_flight = true;
            let epoch = self.progress.get(&key.0).map_or(0, |p| p.epoch);
            batch.epochs.insert(key.0, epoch);
            batch.keys.push((key, taken));
        }
        // Keys skipped for a smaller batch keep their place at the front.
        while let Some(k) = skipped.pop_back() {
            self.ready.push_front(k);
        }
        if batch.records.is_empty() {
            return None;
        }
        self.in_flight += 1;
        Some(batch)
    }

    /// Applies an invocation's outcome to its batch.
    pub fn complete(&mut self, batch: Batch, outcome: &Outcome, now: Instant) -> Completed {
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut out = Completed::default();
        let Batch {
            records,
            keys,
            epochs,
        } = batch;
        let mut records = records.into_iter();
        let whole = records.len();
        for (key, n) in keys {
            let mine: Vec<Pending> = records.by_ref().take(n).collect();
            let current = self.progress.get(&key.0).map(|p| p.epoch) == epochs.get(&key.0).copied();
            if !current {
                // Revoked meanwhile: the partition's new owner processes these again.
                self.held = self.held.saturating_sub(mine.len());
                continue;
            }
            let mut back = Vec::new();
            let bisected = matches!(outcome, Outcome::Error(_)) && self.policy.bisect && whole > 1;
            match outcome {
                Outcome::Ok { failed } => {
                    let first_failed = mine.iter().position(|p| failed.contains(&p.id()));
                    let split = first_failed.unwrap_or(mine.len());
                    let mut mine = mine;
                    let rest = mine.split_off(split);
                    for p in mine {
                        self.finish(p.record.partition, p.record.offset);
                        out.done += 1;
                    }
                    // The rest of the key goes back behind its first failure (and is
                    // delivered again after it, to keep the key's order); every listed
                    // record spent an attempt.
                    for mut p in rest {
                        if failed.contains(&p.id()) {
                            p.attempts += 1;
                            p.last_error = "the function reported this record as failed".into();
                        }
                        back.push(p);
                    }
                }
                Outcome::Error(e) if bisected => {
                    let half = whole.div_ceil(2);
                    for mut p in mine {
                        p.batch_limit = half;
                        p.last_error = e.clone();
                        back.push(p);
                    }
                }
                Outcome::Error(e) => {
                    for mut p in mine {
                        p.attempts += 1;
                        p.last_error = e.clone();
                        back.push(p);
                    }
                }
                Outcome::Throttled(e) => {
                    for mut p in mine {
                        p.last_error = e.clone();
                        p.throttles += 1;
                        back.push(p);
                    }
                }
            }
            // A head that is out of attempts (or too old to retry) leaves for the
            // dead-letter topic; the key goes on with its next record.
            while let Some(head) = back.first() {
                let exhausted = head.attempts > self.policy.max_retries;
                let too_old = head.attempts > 0 && self.too_old(&head.record);
                if !(exhausted || too_old) {
                    break;
                }
                out.dead.push(back.remove(0));
            }
            let delay = match (outcome, back.first()) {
                (_, None) => None,
                (Outcome::Throttled(_), Some(head)) => Some(self.backoff(head.throttles)),
                (_, Some(head)) if head.attempts > 0 && !bisected => {
                    Some(self.backoff(head.attempts))
                }
                _ => None,
            };
            out.retried += back.len();
            let q = self.keys.entry(key.clone()).or_default();
            for p in back.into_iter().rev() {
                q.records.push_front(p);
            }
            q.in_flight = false;
            if q.records.is_empty() {
                self.keys.remove(&key);
                continue;
            }
            match delay {
                Some(d) => {
                    q.not_before = Some(now + d);
                    self.delayed.push((now + d, key));
                }
                None => self.ready.push_back(key),
            }
        }
        out
    }

    /// Marks a dead-lettered record as done (once the dead-letter topic holds it).
    pub fn done(&mut self, partition: u32, offset: u64) {
        self.finish(partition, offset);
    }

    fn finish(&mut self, partition: u32, offset: u64) {
        if let Some(p) = self.progress.get_mut(&partition)
            && p.outstanding.remove(&offset)
        {
            self.held = self.held.saturating_sub(1);
        }
    }

    fn too_old(&self, r: &ConsumedRecord) -> bool {
        self.policy.max_record_age.is_some_and(|age| {
            let now = crate::runner::now_ms();
            now.saturating_sub(r.timestamp_ms) > age.as_millis() as i64
        })
    }

    /// Exponential backoff with full jitter: uniform in (0, min(max, base·2^(attempt-1))].
    fn backoff(&mut self, attempt: u32) -> Duration {
        let ms = self.policy.backoff_ceiling(attempt).as_millis().max(1) as u64;
        Duration::from_millis(self.rng.random_range(1..=ms))
    }

    /// For each partition, the offset to commit: the lowest one not done, else one past
    /// the last added.
    pub fn commit_points(&self) -> Vec<(u32, u64)> {
        self.progress
            .iter()
            .filter_map(|(p, pr)| {
                let at = pr.outstanding.first().copied().or(pr.next)?;
                Some((*p, at))
            })
            .collect()
    }

    /// Forgets partitions no longer assigned: their records are dropped and their batches
    /// in flight no longer count.
    pub fn retain_partitions(&mut self, keep: &BTreeSet<u32>) {
        let dropped: Vec<u32> = self
            .progress
            .keys()
            .filter(|p| !keep.contains(p))
            .copied()
            .collect();
        if dropped.is_empty() {
            return;
        }
        for p in &dropped {
            if let Some(pr) = self.progress.get_mut(p) {
                // Keep the epoch (bumped) so completions of old batches are recognised.
                pr.epoch += 1;
                pr.outstanding.clear();
                pr.next = None;
            }
        }
        let mut queued = 0;
        self.keys.retain(|(p, _), q| {
            let keep = keep.contains(p);
            if !keep {
                queued += q.records.len();
            }
            keep
        });
        self.ready.retain(|(p, _)| keep.contains(p));
        self.delayed.retain(|(_, (p, _))| keep.contains(p));
        // Records in flight stay counted in `held` until their batch completes.
        self.held = self.held.saturating_sub(queued);
    }
}

#[cfg(test)]
mod tests;
