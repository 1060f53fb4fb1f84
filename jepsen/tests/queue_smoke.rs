//! A first end-to-end run of the harness's pieces: a queue workload through the SDK
//! against a real local cluster, one node killed (-9) and restarted mid-run, a final read
//! of every partition from the start, and the checker over the recorded history: no
//! anomaly of any kind.

use paxlog_client::cli::topic::CreateTopic;
use paxlog_client::cluster::{ClusterSpec, LocalCluster};
use paxlog_client::{Client, ConsumerConfig, Position, ProducerConfig, ProducerRecord};
use paxlog_jepsen::checker;
use paxlog_jepsen::history::{Function, History, Op, OpType, OpValue, Polled};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

/// Appends operations with their time since the run started.
#[derive(Clone)]
struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
    start: Instant,
}

impl Recorder {
    fn record(&self, process: u64, kind: OpType, f: Function, value: OpValue) {
        let time = self.start.elapsed().as_nanos() as u64;
        self.ops.lock().expect("history").push(Op {
            process,
            kind,
            f,
            value,
            time,
        });
    }
}

/// A base port P with P..P+2 and P+2000..P+2002 free, below the ephemeral range.
fn free_base_port() -> u16 {
    let start = 12_000 + (std::process::id() % 2_000) as u16 * 3;
    (0..2_000u16)
        .map(|i| start.wrapping_add(i * 3) % 18_000 + 10_000)
        .find(|&base| {
            (0..3).all(|i| {
                TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && TcpListener::bind(("127.0.0.1", base + 2_000 + i)).is_ok()
            })
        })
        .expect("free ports")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_workload_through_a_node_kill_has_no_anomalies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let broker = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join("paxlog-broker"))
        .filter(|p| p.is_file())
        .expect("paxlog-broker is built by `cargo test --workspace`");
    let base = free_base_port();
    let spec = ClusterSpec::new(3, base, dir.path().join("data"), broker).expect("spec");
    let mut cluster = LocalCluster::start(&spec).await.expect("start");
    cluster.wait_ready(DEADLINE).await.expect("ready");
    let seeds: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let client = Client::connect(seeds).await.expect("connect");
    client
        .admin()
        .create_topic(CreateTopic {
            name: "queue".into(),
            partitions: 3,
            replication: 3,
            config: Default::default(),
        })
        .await
        .expect("create");

    let recorder = Recorder {
        ops: Arc::default(),
        start: Instant::now(),
    };
    let done = Arc::new(AtomicUsize::new(0));
    const PER_PRODUCER: usize = 300;
    let mut producers = Vec::new();
    for process in 0..2u64 {
        let producer = client
            .producer(ProducerConfig::default())
            .expect("producer");
        let (recorder, done) = (recorder.clone(), done.clone());
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                let value = format!("{process}-{i}");
                let key = format!("k{}", i % 7);
                let sent = OpValue {
                    key: Some(key.clone()),
                    value: Some(value.clone()),
                    ..OpValue::default()
                };
                recorder.record(process, OpType::Invoke, Function::Send, sent.clone());
                let result = producer
                    .send_and_wait(ProducerRecord::new("queue", value).key(key))
                    .await;
                match result {
                    Ok(d) => {
                        let acked = OpValue {
                            partition: Some(d.partition),
                            offset: d.offset,
                            ..sent
                        };
                        recorder.record(process, OpType::Ok, Function::Send, acked);
                    }
                    // Not known to have failed: unknown.
                    Err(_) => recorder.record(process, OpType::Info, Function::Send, sent),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            producer.close().await;
        }));
    }

    // The nemesis: kill -9 node 1 a third of the way in, restart it at two thirds.
    let wait_done = |n: usize| {
        let done = done.clone();
        async move {
            let deadline = Instant::now() + DEADLINE;
            while done.load(Ordering::Relaxed) < n {
                assert!(Instant::now() < deadline, "producers stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_done(2 * PER_PRODUCER / 3).await;
    cluster.kill(1).await.expect("kill");
    wait_done(4 * PER_PRODUCER / 3).await;
    cluster.restart(1).expect("restart");
    for p in producers {
        p.await.expect("producer");
    }
    cluster.wait_ready(DEADLINE).await.expect("ready again");

    // Final read: every partition from the start to its end.
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign("queue", 0..3);
    let mut ends = Vec::new();
    for p in 0..3 {
        consumer
            .seek("queue", p, Position::Latest)
            .await
            .expect("end");
        ends.push(consumer.position("queue", p).expect("end offset"));
        consumer
            .seek("queue", p, Position::Earliest)
            .await
            .expect("start");
    }
    let final_reader = 100;
    let deadline = Instant::now() + DEADLINE;
    while (0..3).any(|p| consumer.position("queue", p) < Some(ends[p as usize])) {
        assert!(
            Instant::now() < deadline,
            "the final read did not reach the end"
        );
        let records = consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll");
        let polled = OpValue {
            records: records
                .iter()
                .map(|r| Polled {
                    partition: r.partition,
                    offset: r.offset,
                    value: String::from_utf8_lossy(&r.value).into_owned(),
                })
                .collect(),
            ..OpValue::default()
        };
        recorder.record(final_reader, OpType::Ok, Function::Poll, polled);
    }
    cluster.stop().await.expect("stop");

    let history = History {
        ops: recorder.ops.lock().expect("history").clone(),
    };
    let acked = history.completed(Function::Send, OpType::Ok).count();
    let unknown = history.completed(Function::Send, OpType::Info).count();
    let violations = checker::check(&history);
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        acked >= PER_PRODUCER,
        "too few acknowledged to mean anything: {acked}"
    );
    eprintln!("{acked} acknowledged, {unknown} unknown, 0 anomalies across a node kill");
}
