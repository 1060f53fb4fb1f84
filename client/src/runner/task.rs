//! One trigger in one runner: a fetcher task that owns the group consumer, and the
//! dispatcher loop that invokes the function.
//!
//! ```text
//!   fetcher (Consumer in group trigger.<name>)          dispatcher (this task)
//!     poll ── Assigned(partitions) ──────────────────▶  Work.retain_partitions
//!          ── Records ───────────────────────────────▶  Work.add
//!          ── Ends(end offsets) ─────────────────────▶  Scaler (λ), lag
//!     ◀── Commit(points) / Hold(bool) / Stop ────────   every tick; Hold past the buffer
//!                                                       limit (pause: heartbeats go on)
//!   invocations (≤ Scaler target): call ─▶ output records published ─▶ complete
//!   dead letters: publish with coordinates, attempts and error ─▶ Work.done
//! ```

use super::invoke::{Answer, Invoker, encode_batch};
use super::metrics::{OutcomeLabels, RunnerMetrics, TriggerLabel};
use super::scale::Scaler;
use super::work::{Batch, Outcome, Pending, Work};
use super::{Settings, Stats, now_ms};
use crate::consumer::{ConsumedRecord, Consumer, ConsumerConfig, OffsetReset};
use crate::error::Error;
use crate::producer::{DeliveryFuture, Producer, ProducerRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Header names a dead-lettered record carries (besides its own headers).
pub mod dlq_headers {
    /// The trigger.
    pub const TRIGGER: &str = "paxlog.trigger";
    /// Original topic.
    pub const TOPIC: &str = "paxlog.topic";
    /// Original partition.
    pub const PARTITION: &str = "paxlog.partition";
    /// Original offset.
    pub const OFFSET: &str = "paxlog.offset";
    /// Original timestamp, ms.
    pub const TIMESTAMP: &str = "paxlog.timestamp_ms";
    /// Invocations that failed with it.
    pub const ATTEMPTS: &str = "paxlog.attempts";
    /// The last error.
    pub const ERROR: &str = "paxlog.error";
}

/// What a runner shares with its trigger tasks.
#[derive(Debug)]
pub struct Shared {
    /// The cluster.
    pub conn: Arc<crate::connection::Connection>,
    /// Idempotent producer for dead letters and outputs.
    pub producer: Producer,
    /// Calls functions.
    pub invoker: Invoker,
    /// This runner's id (in every batch, for the function's logs).
    pub runner: String,
    /// Metrics.
    pub metrics: Arc<RunnerMetrics>,
    /// Per-trigger stats for status records.
    pub stats: Mutex<BTreeMap<String, Stats>>,
}

/// Dead-letter publishes in flight: the record's coordinates once stored, else the record
/// and why (to try again).
type DeadLetters = JoinSet<Result<(u32, u64), (Pending, Error)>>;

enum FromFetcher {
    Assigned(BTreeSet<u32>),
    Records(Vec<ConsumedRecord>),
    Ends(BTreeMap<u32, u64>),
}

enum ToFetcher {
    Commit(Vec<(u32, u64)>),
    Hold(bool),
}

/// Most records a runner holds per trigger before it pauses fetching.
fn hold_limit(s: &Settings) -> usize {
    (s.batch_size as usize * s.concurrency_max as usize * 2).clamp(1_000, 100_000)
}

/// Runs `settings` until `stop` turns true; then finishes batches in flight, commits and
/// leaves the group.
pub async fn run(shared: Arc<Shared>, settings: Settings, mut stop: watch::Receiver<bool>) {
    let label = TriggerLabel {
        trigger: settings.name.clone(),
    };
    let partitions_total = loop {
        match shared
            .conn
            .topic_metadata(&settings.topic, Duration::from_secs(10))
            .await
        {
            Ok(t) => break t.partitions.len().max(1),
            Err(e) => {
                tracing::warn!(trigger = %settings.name, error = %e, "cannot look up the trigger's topic; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    let (to_dispatch, mut from_fetcher) = mpsc::channel(64);
    let (to_fetch, fetch_rx) = mpsc::unbounded_channel();
    let (fetch_stop_tx, fetch_stop) = watch::channel(false);
    let fetcher = tokio::spawn(fetch(
        shared.conn.clone(),
        settings.clone(),
        to_dispatch,
        fetch_rx,
        fetch_stop,
    ));

    let seed = now_ms() as u64 ^ u64::from(std::process::id());
    let mut work = Work::new(settings.policy.clone(), seed);
    let mut scaler = Scaler::new(settings.concurrency_max);
    let mut calls: JoinSet<(Batch, Answer, Duration)> = JoinSet::new();
    let mut dead: DeadLetters = JoinSet::new();
    let mut ends: BTreeMap<u32, u64> = BTreeMap::new();
    let mut held = false;
    let mut stopping = false;
    let mut fetcher_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = next_wake(&work, &settings);
        tokio::select! {
            // Drained while stopping too, so the fetcher never blocks on a full channel;
            // records that arrive then are left to the partition's next owner.
            msg = from_fetcher.recv(), if fetcher_open => match msg {
                Some(_) if stopping => {}
                Some(FromFetcher::Assigned(set)) => {
                    work.retain_partitions(&set);
                    ends.retain(|p, _| set.contains(p));
                    scaler.reset_end();
                    let share = (settings.concurrency_max as usize * set.len()).div_ceil(partitions_total);
                    scaler.set_limit(share.max(1) as u32);
                }
                Some(FromFetcher::Records(records)) => work.add(records, Instant::now()),
                Some(FromFetcher::Ends(e)) => {
                    ends = e;
                    scaler.observe_end(Instant::now(), ends.values().sum());
                }
                None => {
                    fetcher_open = false;
                    stopping = true;
                }
            },
            Some(joined) = calls.join_next() => {
                if let Ok((batch, answer, took)) = joined {
                    finish_call(&shared, &settings, &mut work, &mut scaler, &mut dead, batch, answer, took);
                }
            }
            Some(joined) = dead.join_next() => match joined {
                Ok(Ok((p, o))) => {
                    work.done(p, o);
                    shared.metrics.dead_letters.get_or_create(&label).inc();
                    bump(&shared, &settings.name, |s| s.dead_letters += 1);
                }
                Ok(Err((pending, e))) => {
                    tracing::warn!(trigger = %settings.name, error = %e, "dead-letter publish failed; retrying");
                    let shared = shared.clone();
                    let settings = settings.clone();
                    dead.spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        dead_letter(&shared, &settings, pending).await
                    });
                }
                Err(_) => {}
            },
            _ = sleep_until(wake) => {}
            _ = tick.tick() => {
                let commit = work.commit_points();
                let _ = to_fetch.send(ToFetcher::Commit(commit.clone()));
                let over = work.held() >= hold_limit(&settings);
                let under = work.held() < hold_limit(&settings) / 2;
                if over != held && (over || under) {
                    held = over;
                    let _ = to_fetch.send(ToFetcher::Hold(held));
                }
                report(&shared, &settings, &work, &scaler, &ends, &commit);
            }
            _ = stop.changed(), if !stopping => stopping = true,
        }
        let now = Instant::now();
        work.promote(now);
        if stopping {
            if calls.is_empty() && dead.is_empty() {
                break;
            }
            continue;
        }
        let backlog = lag(&ends, &work.commit_points());
        let target = scaler.target(backlog) as usize;
        while calls.len() < target && window_open(&work, &settings, now) {
            let Some(batch) = work.take_batch(settings.batch_size as usize) else {
                break;
            };
            calls.spawn(invoke(shared.clone(), settings.clone(), batch));
        }
    }
    // Everything in flight is answered: commit what is done, then leave.
    let _ = to_fetch.send(ToFetcher::Commit(work.commit_points()));
    let _ = fetch_stop_tx.send(true);
    let _ = fetcher.await;
    shared.metrics.forget(&settings.name);
    tracing::info!(trigger = %settings.name, "trigger stopped in this runner");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When a batch could be taken next without new input: a backoff ending, or the batching
/// window of the oldest ready record closing.
fn next_wake(work: &Work, s: &Settings) -> Option<Instant> {
    let window = (s.batch_window > Duration::ZERO)
        .then(|| work.oldest_ready().map(|t| t + s.batch_window))
        .flatten();
    match (work.next_wakeup(), window) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// With a batching window, a batch goes once it is full or its oldest record waited out
/// the window.
fn window_open(work: &Work, s: &Settings, now: Instant) -> bool {
    if s.batch_window == Duration::ZERO {
        return true;
    }
    work.waiting() >= s.batch_size as usize
        || work
            .oldest_ready()
            .is_some_and(|t| t + s.batch_window <= now)
}

async fn invoke(shared: Arc<Shared>, s: Settings, batch: Batch) -> (Batch, Answer, Duration) {
    let body = encode_batch(&s.name, &shared.runner, &batch.records);
    let started = Instant::now();
    let mut answer = shared
        .invoker
        .call(&s.name, &s.function, body, s.function_timeout)
        .await;
    if let (Outcome::Ok { .. }, Some(topic)) = (&answer.outcome, &s.output_topic)
        && !answer.output.is_empty()
        && let Err(e) = publish_output(&shared.producer, topic, &answer).await
    {
        answer.outcome = Outcome::Error(format!(
            "the function succeeded but its output could not be published to {topic:?}: {e}"
        ));
    }
    (batch, answer, started.elapsed())
}

/// Publishes a function's returned records; the batch counts as done only once they are.
async fn publish_output(producer: &Producer, topic: &str, answer: &Answer) -> Result<(), Error> {
    let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(answer.output.len());
    for r in &answer.output {
        let mut record = ProducerRecord::new(topic, r.value.clone().into_bytes());
        if let Some(k) = &r.key {
            record = record.key(k.clone().into_bytes());
        }
        for (name, value) in &r.headers {
            record = record.header(name.clone(), value.clone().into_bytes());
        }
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        d.await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish_call(
    shared: &Arc<Shared>,
    s: &Settings,
    work: &mut Work,
    scaler: &mut Scaler,
    dead: &mut DeadLetters,
    batch: Batch,
    answer: Answer,
    took: Duration,
) {
    let label = TriggerLabel {
        trigger: s.name.clone(),
    };
    let m = &shared.metrics;
    let records = batch.records.len();
    let outcome_name = match &answer.outcome {
        Outcome::Ok { failed } if failed.is_empty() => "ok",
        Outcome::Ok { .. } => "partial",
        Outcome::Error(_) => "error",
        Outcome::Throttled(_) => "throttled",
    };
    m.invocations
        .get_or_create(&OutcomeLabels {
            trigger: s.name.clone(),
            outcome: outcome_name.to_owned(),
        })
        .inc();
    m.duration.get_or_create(&label).observe(took.as_secs_f64());
    m.batch_records
        .get_or_create(&label)
        .observe(records as f64);
    let now = Instant::now();
    scaler.observe_call(now, took, records, outcome_name == "ok");
    let error = match &answer.outcome {
        Outcome::Ok { failed } if !failed.is_empty() => {
            Some(format!("{} records reported failed", failed.len()))
        }
        Outcome::Error(e) | Outcome::Throttled(e) => Some(e.clone()),
        Outcome::Ok { .. } => None,
    };
    if let Some(e) = &error {
        tracing::debug!(trigger = %s.name, error = %e, records, "invocation failed");
    }
    let completed = work.complete(batch, &answer.outcome, now);
    m.records_done
        .get_or_create(&label)
        .inc_by(completed.done as u64);
    m.retries
        .get_or_create(&label)
        .inc_by(completed.retried as u64);
    bump(shared, &s.name, |st| {
        st.invocations += 1;
        st.records_done += completed.done as u64;
        if let Some(e) = &error {
            st.errors += u64::from(outcome_name != "throttled");
            st.throttles += u64::from(outcome_name == "throttled");
            st.last_error = e.clone();
            st.last_error_ms = now_ms();
        }
    });
    for p in completed.dead {
        let shared = shared.clone();
        let s = s.clone();
        dead.spawn(async move { dead_letter(&shared, &s, p).await });
    }
}

/// Publishes a record to the dead-letter topic with its coordinates, attempts and error.
async fn dead_letter(
    shared: &Shared,
    s: &Settings,
    p: Pending,
) -> Result<(u32, u64), (Pending, Error)> {
    let at = (p.record.partition, p.record.offset);
    match send_dead_letter(&shared.producer, &s.name, &s.dead_letter_topic, &p).await {
        Ok(()) => {
            tracing::info!(trigger = %s.name, partition = at.0, offset = at.1, attempts = p.attempts,
                error = %p.last_error, "record sent to the dead-letter topic");
            Ok(at)
        }
        Err(e) => Err((p, e)),
    }
}

/// Stores `p` in `topic` with its original coordinates, attempts and last error as
/// headers ([`dlq_headers`]); returns once it is acknowledged.
pub async fn send_dead_letter(
    producer: &Producer,
    trigger: &str,
    topic: &str,
    p: &Pending,
) -> Result<(), Error> {
    let r = &p.record;
    let mut record = ProducerRecord::new(topic.to_owned(), r.value.clone());
    if !r.key.is_empty() {
        record = record.key(r.key.clone());
    }
    for (k, v) in &r.headers {
        record = record.header(k.clone(), v.clone());
    }
    use dlq_headers as h;
    let coordinates = [
        (h::TRIGGER, trigger.to_owned()),
        (h::TOPIC, r.topic.clone()),
        (h::PARTITION, r.partition.to_string()),
        (h::OFFSET, r.offset.to_string()),
        (h::TIMESTAMP, r.timestamp_ms.to_string()),
        (h::ATTEMPTS, p.attempts.to_string()),
        (h::ERROR, p.last_error.clone()),
    ];
    for (k, v) in coordinates {
        record = record.header(k, v.into_bytes());
    }
    producer.send_and_wait(record).await.map(|_| ())
}

fn bump(shared: &Shared, trigger: &str, f: impl FnOnce(&mut Stats)) {
    let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
    f(stats.entry(trigger.to_owned()).or_default());
}

/// Records not done yet: each partition's end offset minus its commit point (a partition
/// with no records held yet counts as caught up).
fn lag(ends: &BTreeMap<u32, u64>, commit: &[(u32, u64)]) -> u64 {
    let commit: BTreeMap<u32, u64> = commit.iter().copied().collect();
    ends.iter()
        .map(|(p, end)| end.saturating_sub(commit.get(p).copied().unwrap_or(*end)))
        .sum()
}

/// Gauges and the status snapshot.
fn report(
    shared: &Shared,
    s: &Settings,
    work: &Work,
    scaler: &Scaler,
    ends: &BTreeMap<u32, u64>,
    commit: &[(u32, u64)],
) {
    let label = TriggerLabel {
        trigger: s.name.clone(),
    };
    let lag = lag(ends, commit);
    let lag_s = work
        .oldest_timestamp_ms()
        .map_or(0.0, |t| (now_ms().saturating_sub(t)).max(0) as f64 / 1000.0);
    let target = scaler.target(lag);
    let m = &shared.metrics;
    m.lag_records.get_or_create(&label).set(lag as i64);
    m.lag_seconds.get_or_create(&label).set(lag_s);
    m.concurrency.get_or_create(&label).set(i64::from(target));
    m.in_flight
        .get_or_create(&label)
        .set(work.in_flight() as i64);
    m.arrival_rate.get_or_create(&label).set(scaler.arrival());
    bump(shared, &s.name, |st| {
        st.lag_records = lag;
        st.concurrency = target;
        st.in_flight = work.in_flight() as u32;
        st.partitions = ends.keys().copied().collect();
    });
}

/// Owns the group consumer: polls, reports assignment, records and end offsets, commits
/// and pauses on request; on stop, commits and leaves the group.
async fn fetch(
    conn: Arc<crate::connection::Connection>,
    s: Settings,
    out: mpsc::Sender<FromFetcher>,
    mut commands: mpsc::UnboundedReceiver<ToFetcher>,
    mut stop: watch::Receiver<bool>,
) {
    let config = ConsumerConfig {
        group: Some(s.group()),
        auto_offset_reset: if s.start_earliest {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        auto_commit: false,
        session_timeout: Duration::from_secs(10),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(conn, config);
    loop {
        match consumer.subscribe(&[s.topic.as_str()]).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(trigger = %s.name, error = %e, "cannot join the trigger's group; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
    let mut assigned: Option<BTreeSet<u32>> = None;
    let mut hold = false;
    let mut last_commit: Vec<(u32, u64)> = Vec::new();
    loop {
        let stopping = *stop.borrow();
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                ToFetcher::Commit(points) => last_commit = points,
                ToFetcher::Hold(h) => hold = h,
            }
        }
        commit(&mut consumer, &s, &last_commit).await;
        if stopping {
            if let Err(e) = consumer.close().await {
                tracing::warn!(trigger = %s.name, error = %e, "leaving the trigger's group failed");
            }
            return;
        }
        let now_assigned: BTreeSet<u32> =
            consumer.assignment().into_iter().map(|(_, p)| p).collect();
        for p in &now_assigned {
            match hold {
                true => consumer.pause(&s.topic, *p),
                false => consumer.resume(&s.topic, *p),
            }
        }
        let polled = tokio::select! {
            r = consumer.poll(Duration::from_millis(200)) => r,
            _ = stop.changed() => continue,
        };
        let after: BTreeSet<u32> = consumer.assignment().into_iter().map(|(_, p)| p).collect();
        if assigned.as_ref() != Some(&after) {
            tracing::info!(trigger = %s.name, partitions = ?after, "trigger partitions assigned to this runner");
            assigned = Some(after.clone());
            if out
                .send(FromFetcher::Assigned(after.clone()))
                .await
                .is_err()
            {
                return;
            }
        }
        match polled {
            Ok(records) if !records.is_empty() => {
                if out.send(FromFetcher::Records(records)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(trigger = %s.name, error = %e, "poll failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let ends = after
            .iter()
            .filter_map(|p| consumer.end_offset(&s.topic, *p).map(|e| (*p, e)))
            .collect();
        if out.send(FromFetcher::Ends(ends)).await.is_err() {
            return;
        }
    }
}

/// Commits the points of partitions this consumer still owns.
async fn commit(consumer: &mut Consumer, s: &Settings, points: &[(u32, u64)]) {
    let owned = consumer.assignment();
    let offsets: Vec<((String, u32), u64)> = points
        .iter()
        .map(|(p, o)| ((s.topic.clone(), *p), *o))
        .filter(|(tp, _)| owned.contains(tp))
        .collect();
    if let Err(e) = consumer.commit_offsets(&offsets).await {
        tracing::debug!(trigger = %s.name, error = %e, "commit failed; the next one carries it");
    }
}
