//! Function runners end to end: a real three-node cluster (`paxlog cluster up`), real
//! `paxlog runner` processes, triggers made with the CLI, and a real HTTP function served
//! by this test (it records every delivery). Checks: failing records reach the dead-letter
//! topic after their attempts while every other record is processed and nothing is
//! skipped; a runner killed -9 mid-batch is replaced and per-key order holds; concurrency
//! rises with load (Little's law) and falls when it stops; the word-count example counts
//! right.

mod common;

use bytes::Bytes;
use common::{
    ClusterUp, DEADLINE, assert_broker_built, free_base_port, local_brokers, paxlog_bin,
    run_paxlog, show,
};
use http_body_util::{BodyExt, Full};
use paxlog_client::{Client, ConsumedRecord, ConsumerConfig, OffsetReset, ProducerRecord};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Cluster {
    dir: tempfile::TempDir,
    up: ClusterUp,
    brokers: String,
    client: Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.up.signal_and_wait(Signal::TERM);
    }
}

async fn start() -> Cluster {
    assert_broker_built();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base_port();
    let seeds = local_brokers(base);
    let brokers = seeds.join(",");
    let mut up = ClusterUp::start(base, &dir.path().join("data"), dir.path().join("up.stderr"));
    up.wait_serving(&brokers);
    let client = Client::connect(seeds).await.expect("connect");
    Cluster {
        dir,
        up,
        brokers,
        client,
    }
}

impl Cluster {
    async fn topic(&self, name: &str, partitions: u32) {
        common::create_topic(&self.client, name, partitions).await;
    }

    /// `paxlog ARGS --brokers B`, which must succeed.
    fn cli(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--brokers", &self.brokers]);
        let out = run_paxlog(&all, "");
        assert!(out.status.success(), "paxlog {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn runner(&self, id: &str, metrics: Option<u16>) -> Runner {
        let log = self.dir.path().join(format!("{id}.log"));
        let mut cmd = Command::new(paxlog_bin());
        cmd.args(["runner", "--id", id, "--brokers", &self.brokers])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("runner log"));
        if let Some(port) = metrics {
            cmd.args(["--metrics", &format!("127.0.0.1:{port}")]);
        }
        Runner {
            child: cmd.spawn().expect("spawn paxlog runner"),
            log,
        }
    }

    /// Every record of `topic` from the start, once `expect` of them are there.
    async fn read_all(&self, topic: &str, partitions: u32, expect: usize) -> Vec<ConsumedRecord> {
        let mut consumer = self.client.consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        });
        consumer.assign(topic, 0..partitions);
        common::read_n(&mut consumer, expect).await
    }
}

struct Runner {
    child: Child,
    log: std::path::PathBuf,
}

impl Runner {
    fn kill9(&mut self) {
        kill_process(Pid::from_child(&self.child), Signal::KILL).expect("kill -9");
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
            let _ = self.child.wait();
        }
    }
}

/// One record as the function received it.
#[derive(Clone, Debug)]
struct Delivery {
    runner: String,
    id: String,
    key: String,
    value: String,
    attempt: u64,
}

/// The function: records deliveries, sleeps `delay` per call, fails records whose value
/// starts with "bad", tracks calls in flight.
#[derive(Default)]
struct Function {
    deliveries: Mutex<Vec<Delivery>>,
    delay_ms: std::sync::atomic::AtomicU64,
    /// Calls in flight by runner.
    busy: Mutex<BTreeMap<String, usize>>,
    /// Calls from this runner take a second (so a kill lands in the middle of one).
    slow_runner: Mutex<Option<String>>,
    /// Fails nothing (else every value starting with "bad").
    healthy: std::sync::atomic::AtomicBool,
    /// Answers this many next calls with 429 (too many requests).
    throttle_next: AtomicUsize,
    /// Calls answered 429.
    throttled: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Function {
    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("lock").clone()
    }

    /// Values delivered at least once.
    fn seen(&self) -> BTreeSet<String> {
        self.deliveries().into_iter().map(|d| d.value).collect()
    }

    /// Whether a call from `runner` is in flight.
    fn busy(&self, runner: &str) -> bool {
        self.busy
            .lock()
            .expect("lock")
            .get(runner)
            .is_some_and(|n| *n > 0)
    }

    /// The answer's HTTP status and body.
    async fn handle(&self, body: Bytes) -> (u16, String) {
        let throttle = self
            .throttle_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttle {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return (429, "slow down".into());
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let batch: Value = serde_json::from_slice(&body).expect("batch JSON");
        let runner = batch["runner"].as_str().unwrap_or_default().to_owned();
        *self
            .busy
            .lock()
            .expect("lock")
            .entry(runner.clone())
            .or_default() += 1;
        let mut failed = Vec::new();
        {
            let mut log = self.deliveries.lock().expect("lock");
            for r in batch["records"].as_array().expect("records") {
                let d = Delivery {
                    runner: batch["runner"].as_str().expect("runner").to_owned(),
                    id: r["id"].as_str().expect("id").to_owned(),
                    key: r["key"].as_str().unwrap_or_default().to_owned(),
                    value: r["value"].as_str().expect("value").to_owned(),
                    attempt: r["attempt"].as_u64().expect("attempt"),
                };
                if d.value.starts_with("bad") && !self.healthy.load(Ordering::SeqCst) {
                    failed.push(d.id.clone());
                }
                log.push(d);
            }
        }
        let slow = self.slow_runner.lock().expect("lock").as_deref() == Some(runner.as_str());
        let delay = match slow {
            true => 1_000,
            false => self.delay_ms.load(Ordering::SeqCst),
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        *self.busy.lock().expect("lock").entry(runner).or_default() -= 1;
        (200, json!({ "failed": failed }).to_string())
    }
}

/// Serves `f` at `http://127.0.0.1:PORT/fn`; returns the URL.
async fn serve(f: Arc<Function>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let f = f.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let f = f.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, answer) = f.handle(body).await;
                            let mut response = hyper::Response::new(Full::new(Bytes::from(answer)));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(status).unwrap_or_default();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/fn")
}

/// A cluster with topic `topic`, the test's HTTP function (`delay_ms` per call) and
/// trigger `trigger` on them (`--start earliest` and `extra` settings).
async fn with_trigger(
    topic: &str,
    partitions: u32,
    delay_ms: u64,
    trigger: &str,
    extra: &[&str],
) -> (Cluster, Arc<Function>) {
    let c = start().await;
    c.topic(topic, partitions).await;
    let f = Arc::new(Function::default());
    f.delay_ms.store(delay_ms, Ordering::SeqCst);
    let url = serve(f.clone()).await;
    let mut args = vec![
        "trigger", "create", trigger, "--topic", topic, "--http", &url, "--start", "earliest",
    ];
    args.extend(extra);
    c.cli(&args);
    (c, f)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For each key, the values in order of their first delivery.
fn first_delivery_order(deliveries: &[Delivery]) -> BTreeMap<String, Vec<u64>> {
    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in deliveries {
        if seen.insert(d.value.clone()) {
            let n = d
                .value
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .expect("n");
            order.entry(d.key.clone()).or_default().push(n);
        }
    }
    order
}

fn assert_key_order(deliveries: &[Delivery]) {
    for (key, values) in first_delivery_order(deliveries) {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "key {key}: first deliveries out of order: {values:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_records_are_dead_lettered_after_their_attempts_and_all_others_processed() {
    let (c, f) = with_trigger(
        "orders",
        3,
        0,
        "bill",
        &[
            "--max-retries",
            "2",
            "--retry-backoff-ms",
            "20",
            "--batch-size",
            "10",
        ],
    )
    .await;
    let runner = c.runner("r1", None);
    let producer = c.client.producer(Default::default()).expect("producer");
    let mut bad = BTreeSet::new();
    for i in 0..300u32 {
        let key = format!("k{}", i % 12);
        let value = match i % 60 == 7 {
            true => format!("bad{i}"),
            false => format!("v{i}"),
        };
        if value.starts_with("bad") {
            bad.insert(value.clone());
        }
        producer
            .send(ProducerRecord::new("orders", value.into_bytes()).key(key.into_bytes()))
            .await
            .expect("send");
    }
    producer.flush().await;
    let good: BTreeSet<String> = (0..300u32)
        .map(|i| format!("v{i}"))
        .filter(|v| !bad.contains(&v.replacen('v', "bad", 1)))
        .collect();
    assert_eq!(good.len() + bad.len(), 300);

    let dlq = c.read_all("bill.dlq", 1, bad.len()).await;
    wait_until("every good record delivered", || good.is_subset(&f.seen())).await;
    let deliveries = f.deliveries();
    let redelivered = deliveries.len() - f.seen().len();
    eprintln!(
        "{} deliveries of 300 records ({redelivered} repeated)",
        deliveries.len()
    );
    for b in &bad {
        let tries: Vec<u64> = deliveries
            .iter()
            .filter(|d| &d.value == b)
            .map(|d| d.attempt)
            .collect();
        assert_eq!(
            tries,
            vec![1, 2, 3],
            "{b}: 1 call + 2 retries, numbered\nrunner log:\n{}",
            runner.log()
        );
    }
    let stored: BTreeSet<String> = dlq
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_eq!(stored, bad, "exactly the failing records are dead-lettered");
    for r in &dlq {
        let h: BTreeMap<&str, String> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        assert_eq!(h["paxlog.topic"], "orders");
        assert_eq!(h["paxlog.attempts"], "3");
        assert_eq!(h["paxlog.trigger"], "bill");
        let id = format!("orders/{}/{}", h["paxlog.partition"], h["paxlog.offset"]);
        let original = deliveries
            .iter()
            .find(|d| d.id == id)
            .expect("original coordinates");
        assert_eq!(original.value.as_bytes(), r.value.as_ref());
        assert!(
            h["paxlog.error"].contains("failed"),
            "{:?}",
            h["paxlog.error"]
        );
    }
    // A failing record blocked only its key: the rest of the key went on after it.
    assert_key_order(&deliveries);

    // describe: dead letters and invocations reported, the group catches up to lag 0.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = c.cli(&["trigger", "describe", "bill", "--json"]);
        let v: Value = serde_json::from_str(&out).expect("describe JSON");
        if v["lag_records"] == 0 && v["dead_letters"] == bad.len() as u64 && v["state"] == "running"
        {
            assert!(v["invocations"].as_u64().expect("invocations") >= 30);
            assert!(v["errors"].as_u64().expect("errors") >= bad.len() as u64);
            assert!(
                v["last_error"]
                    .as_str()
                    .expect("last error")
                    .contains("failed")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "describe never settled: {out}\nrunner log:\n{}",
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Redrive with the function fixed: every dead letter is processed, with its old id.
    let before = f.deliveries().len();
    let fixed = Arc::new(Function::default());
    fixed.healthy.store(true, Ordering::SeqCst);
    let fixed_url = serve(fixed.clone()).await;
    c.cli(&["trigger", "pause", "bill"]);
    c.cli(&["trigger", "delete", "bill"]);
    c.cli(&[
        "trigger", "create", "bill", "--topic", "orders", "--http", &fixed_url, "--start",
        "earliest",
    ]);
    // Every record of the first trigger is committed in the same group: nothing is redelivered.
    let out = c.cli(&["trigger", "redrive", "bill", "--json"]);
    let summary: Value = serde_json::from_str(&out).expect("redrive JSON");
    assert_eq!(summary["read"], bad.len() as u64, "{out}");
    assert_eq!(summary["dead_again"], 0, "{out}");
    let redriven: BTreeSet<String> = fixed.deliveries().into_iter().map(|d| d.value).collect();
    assert!(bad.is_subset(&redriven), "{redriven:?}");
    assert_eq!(f.deliveries().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_batch_is_replaced_and_nothing_is_skipped() {
    let (c, f) = with_trigger(
        "events",
        4,
        30,
        "audit",
        &["--batch-size", "5", "--concurrency", "4"],
    )
    .await;
    let mut a = c.runner("a", None);
    let b = c.runner("b", None);
    // A steady stream of keyed records while the runners work, and after one dies.
    const N: u32 = 1200;
    let producer = c.client.producer(Default::default()).expect("producer");
    let feed = tokio::spawn(async move {
        for i in 0..N {
            let r = ProducerRecord::new("events", format!("v{i}").into_bytes())
                .key(format!("k{}", i % 16).into_bytes());
            producer.send(r).await.expect("send");
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        producer.flush().await;
    });
    // Both runners work (each owns partitions); a dies while one of its calls is running.
    let by = |runner: &str| f.deliveries().iter().filter(|d| d.runner == runner).count();
    wait_until("both runners invoke the function", || {
        by("a") >= 20 && by("b") >= 20
    })
    .await;
    *f.slow_runner.lock().expect("lock") = Some("a".into());
    wait_until("a call of runner a in flight", || f.busy("a")).await;
    a.kill9();
    let delivered_by_a = by("a");
    feed.await.expect("producer task");
    let all: BTreeSet<String> = (0..N).map(|i| format!("v{i}")).collect();
    wait_until("every record delivered after the kill", || {
        all.is_subset(&f.seen())
    })
    .await;
    assert_eq!(by("a"), delivered_by_a, "a is dead");
    let deliveries = f.deliveries();
    eprintln!(
        "{} deliveries of {N} records after a kill -9",
        deliveries.len()
    );
    assert_key_order(&deliveries);
    // The group committed everything: lag 0 on every partition.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let g = c
            .client
            .admin()
            .describe_group("trigger.audit")
            .await
            .expect("describe");
        if g.partitions.iter().all(|p| p.lag == 0) && g.partitions.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag never reached 0: {g:?}\nrunner b:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A graceful stop (SIGTERM) commits and leaves the group at once.
    let mut b = b;
    kill_process(Pid::from_child(&b.child), Signal::TERM).expect("SIGTERM");
    let status = b.child.wait().expect("wait");
    assert!(status.success(), "runner b: {status}\n{}", b.log());
    let g = c
        .client
        .admin()
        .describe_group("trigger.audit")
        .await
        .expect("describe");
    assert!(g.members.is_empty(), "b left the group: {g:?}\n{}", b.log());
}

/// Throttling (HTTP 429) backs off without spending retries: with no retries allowed at
/// all, a burst of throttled calls still sends nothing to the dead-letter topic, and every
/// record is processed once the function accepts calls again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_spend_no_retries() {
    let (c, f) = with_trigger(
        "calls",
        2,
        0,
        "limited",
        &[
            "--max-retries",
            "0",
            "--retry-backoff-ms",
            "20",
            "--retry-backoff-max-ms",
            "200",
        ],
    )
    .await;
    f.throttle_next.store(40, Ordering::SeqCst);
    let runner = c.runner("r", None);
    let producer = c.client.producer(Default::default()).expect("producer");
    for i in 0..200u32 {
        let r = ProducerRecord::new("calls", format!("v{i}").into_bytes())
            .key(format!("k{}", i % 10).into_bytes());
        producer.send(r).await.expect("send");
    }
    producer.flush().await;
    let all: BTreeSet<String> = (0..200u32).map(|i| format!("v{i}")).collect();
    wait_until("every record processed after the throttling", || {
        all.is_subset(&f.seen())
    })
    .await;
    assert_eq!(
        f.throttled.load(Ordering::SeqCst),
        40,
        "every 429 was answered"
    );
    let dlq = c
        .client
        .admin()
        .describe_topic("limited.dlq")
        .await
        .expect("dead-letter topic");
    let dead: u64 = dlq.partitions.iter().map(|p| p.log_end_offset).sum();
    assert_eq!(dead, 0, "throttling spent a retry:\n{}", runner.log());
    assert_key_order(&f.deliveries());
}

/// One series of the runner's `/metrics`, e.g. `paxlog_trigger_concurrency{trigger="t"}`.
async fn metric(port: u16, series: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let needle = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
}

/// The runner's concurrency target for `trigger`.
async fn concurrency_gauge(port: u16, trigger: &str) -> Option<u64> {
    let series = format!("paxlog_trigger_concurrency{{trigger=\"{trigger}\"}}");
    metric(port, &series).await.map(|v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_rises_with_load_and_falls_when_it_stops() {
    let (c, f) = with_trigger(
        "jobs",
        2,
        100,
        "work",
        &["--batch-size", "1", "--concurrency", "30"],
    )
    .await;
    let port = free_base_port();
    let _runner = c.runner("scaler", Some(port));
    wait_until("the runner serves metrics", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    // ~150 keyless records/s for 100 ms calls of one record: Little's law says ~15.
    let producer = c.client.producer(Default::default()).expect("producer");
    let mut peak = 0;
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_secs(12) {
        for _ in 0..15 {
            producer
                .send(ProducerRecord::new("jobs", format!("v{sent}").into_bytes()))
                .await
                .expect("send");
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(n) = concurrency_gauge(port, "work").await {
            peak = peak.max(n);
        }
    }
    producer.flush().await;
    let in_flight_peak = f.max_in_flight.load(Ordering::SeqCst);
    eprintln!("sent {sent}; concurrency target peak {peak}; calls in flight peak {in_flight_peak}");
    assert!(
        peak >= 6,
        "the target should rise toward λ·t ≈ 15, peaked at {peak}"
    );
    assert!(peak <= 30, "the limit caps it: {peak}");
    assert!(
        in_flight_peak >= 6,
        "calls in flight peaked at {in_flight_peak}"
    );
    let all: BTreeSet<String> = (0..sent).map(|i| format!("v{i}")).collect();
    wait_until("every job processed", || all.is_subset(&f.seen())).await;
    let mut last = None;
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        last = concurrency_gauge(port, "work").await;
        if last.is_some_and(|n| n <= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        last.is_some_and(|n| n <= 2),
        "concurrency did not fall back after the load stopped: {last:?}"
    );
    // What an operator graphs: one call per record (batch size 1), all processed, no lag.
    let sent = f64::from(sent);
    let m = |name: &str| format!("paxlog_trigger_{name}{{trigger=\"work\"}}");
    let ok = metric(
        port,
        "paxlog_trigger_invocations_total{trigger=\"work\",outcome=\"ok\"}",
    )
    .await;
    assert!(
        ok.is_some_and(|n| n >= sent),
        "{ok:?} invocations for {sent}"
    );
    let calls = metric(port, &m("duration_seconds_count")).await;
    assert!(calls.is_some_and(|n| n >= sent), "{calls:?} timed calls");
    let done = metric(port, &m("records_done_total")).await;
    assert!(done.is_some_and(|n| n >= sent), "{done:?} records done");
    let deadline = Instant::now() + DEADLINE;
    while metric(port, &m("lag_records")).await != Some(0.0) {
        assert!(Instant::now() < deadline, "lag_records never reached 0");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn wordcount_bin() -> std::path::PathBuf {
    let bin = paxlog_bin().with_file_name("examples").join("wordcount");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test --workspace` builds the examples",
        bin.display()
    );
    bin
}

fn report(bin: &Path, brokers: &str) -> BTreeMap<String, u64> {
    let out = Command::new(bin)
        .args(["report", "--brokers", brokers])
        .output()
        .expect("report");
    assert!(out.status.success(), "report: {}", show(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (w, n) = l.rsplit_once(' ')?;
            Some((w.to_owned(), n.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_word_count_example_counts_right() {
    let bin = wordcount_bin();
    let c = start().await;
    c.topic("lines", 2).await;
    c.topic("words", 3).await;
    c.topic("counts", 1).await;
    let wc = bin.display().to_string();
    c.cli(&[
        "trigger",
        "create",
        "wc-map",
        "--topic",
        "lines",
        "--command",
        &format!("{wc} map"),
        "--output-topic",
        "words",
        "--start",
        "earliest",
    ]);
    c.cli(&[
        "trigger",
        "create",
        "wc-reduce",
        "--topic",
        "words",
        "--command",
        &format!("{wc} reduce"),
        "--output-topic",
        "counts",
        "--start",
        "earliest",
        "--batch-window-ms",
        "200",
    ]);
    let _runner = c.runner("wc", None);
    let text = [
        "the quick brown fox jumps over the lazy dog",
        "The dog sleeps; the fox runs.",
        "a b a b a",
        "over and over and over",
    ];
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let producer = c.client.producer(Default::default()).expect("producer");
    for round in 0..25 {
        for line in text {
            for w in line
                .split(|ch: char| !ch.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *expected.entry(w.to_lowercase()).or_default() += 1;
            }
            let r = ProducerRecord::new("lines", line.as_bytes().to_vec())
                .key(format!("doc{round}").into_bytes());
            producer.send(r).await.expect("send");
        }
    }
    producer.flush().await;
    let brokers = c.brokers.clone();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = report(&bin, &brokers);
        if got == expected {
            break;
        }
        let short: u64 =
            expected.values().sum::<u64>() - got.values().sum::<u64>().min(expected.values().sum());
        assert!(
            got.iter()
                .all(|(w, n)| expected.get(w).is_some_and(|e| n <= e)),
            "counted more than written (a duplicate): {got:?} vs {expected:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{short} words missing: {got:?} vs {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
