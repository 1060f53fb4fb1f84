//! In-process nodes for transport tests: a `PeerHub` plus a tonic server on a loopback
//! port, its inbound channel, and its metrics; and helpers that wait for conditions with a
//! deadline instead of sleeping.

use bytes::Bytes;
use paxlog_broker::metrics::Metrics;
use paxlog_broker::transport::{Inbound, PeerHub, PeerMetrics, TransportConfig};
use paxlog_consensus::{Ballot, Entry, Message, MessageBody, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// Longest wait for any condition (debug build, loaded CI machine).
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Messages are spread over this many Paxos groups.
pub const GROUPS: u64 = 5;
/// Inbound channel bound of test nodes.
const INBOUND: usize = 1024;

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=paxlog_broker=debug`).
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A port bound but not listening: dials to it are refused (as to a node that is down)
/// until [`Reserved::listen`], and no other process can take it meanwhile.
pub struct Reserved {
    socket: TcpSocket,
    pub addr: SocketAddr,
}

impl Reserved {
    pub fn new() -> Reserved {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let addr = socket.local_addr().expect("local addr");
        Reserved { socket, addr }
    }

    pub fn listen(self) -> TcpListener {
        self.socket.listen(128).expect("listen")
    }
}

/// The addresses of a cluster's nodes, reserved up front so every node gets the same
/// peer list before any of them starts.
pub struct Cluster {
    pub peers: BTreeMap<u64, String>,
    reserved: BTreeMap<u64, Reserved>,
}

impl Cluster {
    pub fn new(ids: &[u64]) -> Cluster {
        init_logs();
        let reserved: BTreeMap<u64, Reserved> =
            ids.iter().map(|&id| (id, Reserved::new())).collect();
        let peers = reserved
            .iter()
            .map(|(id, r)| (*id, r.addr.to_string()))
            .collect();
        Cluster { peers, reserved }
    }

    pub fn addr(&self, id: u64) -> SocketAddr {
        self.peers[&id].parse().expect("socket address")
    }

    /// Starts node `id` with default tunables.
    pub async fn start(&mut self, id: u64) -> Node {
        self.start_with(id, test_config()).await
    }

    /// Starts node `id` on its reserved port, or (after a stop) on the same port again.
    pub async fn start_with(&mut self, id: u64, config: TransportConfig) -> Node {
        let listener = match self.reserved.remove(&id) {
            Some(reserved) => reserved.listen(),
            None => TcpListener::bind(self.addr(id))
                .await
                .expect("rebind the node's port"),
        };
        Node::start(id, listener, self.peers.clone(), config)
    }
}

/// Defaults, with a short backoff cap so reconnect tests are quick.
pub fn test_config() -> TransportConfig {
    TransportConfig {
        backoff_max: Duration::from_millis(200),
        ..TransportConfig::default()
    }
}

/// One node: hub, gRPC server, inbound messages, metrics.
pub struct Node {
    pub id: u64,
    pub hub: PeerHub,
    pub inbound: mpsc::Receiver<Inbound>,
    pub metrics: Metrics,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Node {
    pub fn start(
        id: u64,
        listener: TcpListener,
        peers: BTreeMap<u64, String>,
        config: TransportConfig,
    ) -> Node {
        let mut metrics = Metrics::new(id);
        let peer_metrics = PeerMetrics::register(metrics.registry_mut());
        let (inbound_tx, inbound) = mpsc::channel(INBOUND);
        let hub = PeerHub::with_config(id, peers, inbound_tx, peer_metrics, config);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::builder()
                .add_service(hub.service())
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        Node {
            id,
            hub,
            inbound,
            metrics,
            stop,
            server,
        }
    }

    /// Stops hub and server, as a node shutting down does; returns once the port is free.
    pub async fn stop(self) {
        let Node {
            hub, stop, server, ..
        } = self;
        drop(hub);
        let _ = stop.send(());
        tokio::time::timeout(DEADLINE, server)
            .await
            .expect("the gRPC server stops once the hub is gone")
            .expect("server task")
            .expect("server ran without error");
    }

    /// Receives exactly `n` messages, panicking if they do not arrive in time.
    pub async fn recv(&mut self, n: usize) -> Vec<Inbound> {
        let deadline = Instant::now() + DEADLINE;
        let mut received = Vec::with_capacity(n);
        while received.len() < n {
            match tokio::time::timeout_at(deadline, self.inbound.recv()).await {
                Ok(Some(inbound)) => received.push(inbound),
                Ok(None) => panic!("node {}: inbound channel closed", self.id),
                Err(_) => panic!(
                    "node {}: received {} of {n} messages within {DEADLINE:?}\n{}",
                    self.id,
                    received.len(),
                    self.metrics_text()
                ),
            }
        }
        received
    }

    /// Nothing more is waiting in the inbound channel.
    pub fn assert_no_more(&mut self) {
        if let Ok(extra) = self.inbound.try_recv() {
            panic!("node {}: unexpected extra message {extra:?}", self.id);
        }
    }

    pub fn metrics_text(&self) -> String {
        self.metrics.encode().expect("encode metrics")
    }

    /// The value of the series `name` with every label in `labels` (node label implied).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let text = self.metrics_text();
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        text.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .find(|line| wanted.iter().all(|label| line.contains(label.as_str())))
            .and_then(|line| line.rsplit(' ').next())
            .map(|value| value.parse::<f64>().expect("numeric sample") as u64)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{text}"))
    }

    /// `metric` for a per-peer series.
    pub fn peer_metric(&self, name: &str, peer: u64) -> u64 {
        self.metric(name, &[("peer", &peer.to_string())])
    }

    /// Drops of messages for or from `peer` for `reason`.
    pub fn dropped(&self, peer: u64, reason: &str) -> u64 {
        let peer = peer.to_string();
        let labels = [("peer", peer.as_str()), ("reason", reason)];
        self.metric("paxlog_peer_messages_dropped_total", &labels)
    }
}

/// Polls `condition` until it holds, panicking with `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Message number `seq` from `from` to `to`: its group and content derive from `seq`
/// (every tenth one an `Accept` with a payload, the rest heartbeats), so a receiver can
/// check what, where and in which order it arrived.
pub fn numbered(from: u64, to: u64, seq: u64) -> (u64, Message) {
    let ballot = Ballot::new(1, from);
    let body = if seq.is_multiple_of(10) {
        let value = Value::Data(Bytes::from(vec![seq as u8; 512]));
        MessageBody::Accept {
            ballot,
            decided: seq,
            entries: vec![(seq + 1, Entry { ballot, value })],
        }
    } else {
        MessageBody::Heartbeat {
            ballot,
            decided: seq,
            last_slot: seq,
        }
    };
    (seq % GROUPS, Message { from, to, body })
}

/// A message of `payload` bytes (an `InstallSnapshot`), for byte bounds.
pub fn sized(from: u64, to: u64, seq: u64, payload: usize) -> (u64, Message) {
    let body = MessageBody::InstallSnapshot {
        slot: seq,
        data: Bytes::from(vec![0u8; payload]),
    };
    (0, Message { from, to, body })
}

/// Asserts that `received` is exactly `numbered(from, to, seq)` for `seq` in `seqs` from
/// each sender, in order per sender.
pub fn assert_numbered(to: u64, received: &[Inbound], senders: &[u64], seqs: std::ops::Range<u64>) {
    for &from in senders {
        let got: Vec<(u64, &Message)> = received
            .iter()
            .filter(|inbound| inbound.message.from == from)
            .map(|inbound| (inbound.group, &inbound.message))
            .collect();
        let expected: Vec<(u64, Message)> =
            seqs.clone().map(|seq| numbered(from, to, seq)).collect();
        let expected: Vec<(u64, &Message)> = expected.iter().map(|(g, m)| (*g, m)).collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "node {to}: messages from node {from}"
        );
        assert!(
            got == expected,
            "node {to}: messages from node {from} differ or are out of order"
        );
    }
}
