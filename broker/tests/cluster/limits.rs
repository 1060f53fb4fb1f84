//! Overload protection on real brokers: request size, connections per address, and
//! subscribers that stop reading.

use super::harness::{Cluster, DEADLINE, POLL, record};
use super::metrics::{scrape, wait_metrics};
use paxlog_proto::v1 as pb;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;

const MIB: usize = 1 << 20;

fn publish(topic: &str, values: &[usize]) -> pb::PublishRequest {
    pb::PublishRequest {
        topic: topic.to_owned(),
        partition: Some(0),
        records: values
            .iter()
            .map(|&size| record("k", &"x".repeat(size)))
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_up_to_max_request_bytes_are_taken_and_larger_ones_refused_unread() {
    // Records of up to 6 MiB; requests of up to 8 MiB.
    let c = Cluster::start_with(
        1,
        &[
            ("PAXLOG_MAX_RECORD_BYTES", "6291456"),
            ("PAXLOG_MAX_REQUEST_BYTES", "8388608"),
        ],
    )
    .await;
    c.create_topic("big", 1, 1).await;
    let mut producer = c.producer(1).await.max_encoding_message_size(usize::MAX);

    // One 5 MiB record: above gRPC's usual 4 MiB, within both limits.
    let stored = producer
        .publish(publish("big", &[5 * MIB]))
        .await
        .expect("a record within max_record_bytes and max_request_bytes");
    assert_eq!(stored.into_inner().base_offset, 0);

    // Two records of 4.5 MiB: each allowed, together over max_request_bytes.
    let refused = producer
        .publish(publish("big", &[9 * MIB / 2, 9 * MIB / 2]))
        .await
        .expect_err("a request over max_request_bytes");
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    assert!(
        refused.message().contains("message length too large"),
        "{refused:?}"
    );

    // Nothing of the refused request was stored.
    let mut consumer = c.consumer(1).await.max_decoding_message_size(usize::MAX);
    let end = consumer
        .list_offsets(pb::ListOffsetsRequest {
            topic: "big".to_owned(),
            partition: 0,
            spec: pb::OffsetSpec::Latest as i32,
            ..Default::default()
        })
        .await
        .expect("list offsets")
        .into_inner()
        .offset;
    assert_eq!(end, 1);
}

/// A TCP connection to `addr` from `local` (an address of 127.0.0.0/8 other than the
/// peers' 127.0.0.1, so the limits apply to it).
async fn connect_from(local: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// Dials from a chosen local address (tonic's own connector cannot bind one).
#[derive(Clone)]
struct FromAddress(&'static str);

impl tonic::codegen::Service<tonic::codegen::http::Uri> for FromAddress {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::codegen::http::Uri) -> Self::Future {
        let local = self.0;
        Box::pin(async move {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default();
            let addr: SocketAddr = authority.parse().map_err(std::io::Error::other)?;
            Ok(hyper_util::rt::TokioIo::new(
                connect_from(local, addr).await,
            ))
        })
    }
}

/// Whether a health check over a new connection from `local` gets SERVING.
async fn serving_from(local: &'static str, addr: SocketAddr) -> bool {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .timeout(std::time::Duration::from_secs(5));
    let Ok(channel) = endpoint.connect_with_connector(FromAddress(local)).await else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest::default();
    matches!(health.check(request).await, Ok(r) if r.get_ref().status == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_closed_and_counted_while_peers_stay() {
    let c = Cluster::start_with(3, &[("PAXLOG_MAX_CONNECTIONS_PER_IP", "3")]).await;
    let addr = c.node(1).grpc;
    let refused = |s: &super::metrics::text::Scrape| {
        s.value(
            "paxlog_connections_refused_total",
            &[("reason", "max_connections_per_ip")],
        )
        .unwrap_or(0.0)
    };

    // Three connections from 127.0.0.2 are admitted; the fourth is closed at once, and a
    // gRPC call on a fifth fails.
    let mut admitted = Vec::new();
    for _ in 0..3 {
        admitted.push(connect_from("127.0.0.2", addr).await);
    }
    let mut fourth = connect_from("127.0.0.2", addr).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, fourth.read(&mut buf))
        .await
        .expect("the refused connection is closed, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    wait_metrics(&c, 1, "the refusal counted", |s| refused(s) >= 1.0).await;
    assert!(!serving_from("127.0.0.2", addr).await);

    // Another address has its own allowance.
    assert!(serving_from("127.0.0.3", addr).await);

    // A closed connection frees its place (once the broker saw it close).
    drop(admitted.pop());
    let deadline = Instant::now() + DEADLINE;
    while !serving_from("127.0.0.2", addr).await {
        assert!(
            Instant::now() < deadline,
            "the closed connection's place never freed"
        );
        tokio::time::sleep(POLL).await;
    }

    // Peers (127.0.0.1, more than three connections among the nodes and the harness) are
    // never refused: the cluster still decides.
    c.create_topic("after", 1, 3).await;
    drop(admitted);
}

/// The node's resident memory, in bytes.
fn rss(c: &Cluster, id: u64) -> u64 {
    let pid = c.node(id).pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_stop_reading_hold_a_bounded_amount_of_broker_memory() {
    const SUBSCRIBERS: usize = 16;
    const RECORD: usize = 64 << 10;
    const BATCHES: usize = 48;
    let c = Cluster::start(1).await;
    c.create_topic("stalled", 1, 1).await;
    // 48 MiB in the log.
    let mut producer = c.producer(1).await;
    for _ in 0..BATCHES {
        producer
            .publish(publish("stalled", &[RECORD; 16]))
            .await
            .expect("publish");
    }
    let fetched =
        |s: &super::metrics::text::Scrape| s.value("paxlog_fetch_bytes_total", &[]).unwrap_or(0.0);
    let before = fetched(&scrape(c.node(1).metrics).await);
    let rss_before = rss(&c, 1);

    // Subscribers from the start, 1 MiB per batch: each reads one batch, then stops.
    let mut stalled = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut stream = c
            .consumer(1)
            .await
            .subscribe(pb::SubscribeRequest {
                topic: "stalled".to_owned(),
                partition: 0,
                offset: 0,
                max_bytes: MIB as u32,
            })
            .await
            .expect("subscribe")
            .into_inner();
        let first = stream.next().await.expect("a batch").expect("records");
        assert!(!first.records.is_empty());
        stalled.push(stream);
    }

    // Meanwhile a reader that keeps up reads the whole log, 48 MiB, from the same broker.
    let mut consumer = c.consumer(1).await.max_decoding_message_size(usize::MAX);
    let (mut offset, end) = (0, (BATCHES * 16) as u64);
    while offset < end {
        let response = consumer
            .fetch(pb::FetchRequest {
                topic: "stalled".to_owned(),
                partition: 0,
                offset,
                max_bytes: 4 * MIB as u32,
                ..Default::default()
            })
            .await
            .expect("fetch")
            .into_inner();
        offset = response.records.last().map_or(offset, |r| r.offset + 1);
    }

    // The stalled subscriptions each read at most their buffer (4 batches), the batch in
    // hand, and what HTTP/2 holds for them (the client's 2 MiB stream window, the server's
    // send buffer): under 12 MiB each, 192 MiB for all, against 768 MiB had they read on.
    let read_for_stalled = fetched(&scrape(c.node(1).metrics).await) - before - (48 * MIB) as f64;
    let bound = (SUBSCRIBERS * 12 * MIB) as f64;
    assert!(
        read_for_stalled <= bound,
        "stalled subscribers made the broker read {read_for_stalled} bytes (bound {bound})"
    );
    let grown = rss(&c, 1).saturating_sub(rss_before);
    assert!(
        grown < 256 * MIB as u64,
        "the broker grew by {grown} bytes of memory for {SUBSCRIBERS} stalled subscribers"
    );
    drop(stalled);
}
