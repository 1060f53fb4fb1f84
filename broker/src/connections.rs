//! Connection limits on the gRPC port: at most `max_connections` open at once, and at most
//! `max_connections_per_ip` from one address, so that a misbehaving client (or many) cannot
//! exhaust the broker's file descriptors and memory. The cluster's own brokers are exempt:
//! a flood of clients must not keep peers from reconnecting.
//!
//! ```text
//!   TcpListener ─accept─▶ peer broker's address? ── yes ─────────────────┐
//!                              │ no                                       ▼
//!                              ├─ over max_connections_per_ip ─▶ close  Counted(stream)
//!                              ├─ over max_connections        ─▶ close    │ counts drop
//!                              └─ else ─────────────────────────────────▶ │ when closed
//!                                                                         ▼
//!                                                          bounded channel ─▶ tonic
//! ```
//!
//! A refused connection is closed at once (the client sees the connection reset and
//! retries elsewhere or later, with backoff); each refusal is counted by reason.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How often the peers' host names are resolved again (their addresses may change, and in
/// Kubernetes they resolve only once the pods exist).
const RESOLVE_EVERY: Duration = Duration::from_secs(10);
/// Accepted connections waiting for the gRPC server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once (peers' not refused, but counted).
    pub max_connections: usize,
    /// Most connections open at once from one IP address (peers' exempt).
    pub max_per_ip: usize,
}

/// `paxlog_connections_*`.
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    open: Gauge,
    refused: Family<RefusedLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

impl ConnectionMetrics {
    /// Registers `paxlog_connections_open` and `paxlog_connections_refused_total{reason}`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "connections_open",
            "Connections open on the gRPC port (clients and peers)",
            m.open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept: reason max_connections or max_connections_per_ip",
            m.refused.clone(),
        );
        m
    }
}

/// Open connections, in total and by address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Accepts on `listener` within `limits` until `shutdown`; the stream for tonic's
/// `serve_with_incoming_shutdown`. `peers` are the cluster's `host:port` addresses, whose
/// IP addresses are exempt.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    peers: Vec<String>,
    metrics: ConnectionMetrics,
    shutdown: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<Counted>> {
    let exempt = Arc::new(RwLock::new(HashSet::new()));
    tokio::spawn(resolve_peers(peers, exempt.clone(), shutdown.clone()));
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(accept_loop(listener, limits, exempt, metrics, tx, shutdown));
    ReceiverStream::new(rx)
}

async fn resolve_peers(
    peers: Vec<String>,
    exempt: Arc<RwLock<HashSet<IpAddr>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut found = HashSet::new();
        for peer in &peers {
            // An unresolvable peer (not started yet) is tried again next round.
            if let Ok(addrs) = tokio::net::lookup_host(peer.as_str()).await {
                found.extend(addrs.map(|a| a.ip()));
            }
        }
        *exempt.write().unwrap_or_else(PoisonError::into_inner) = found;
        tokio::select! {
            () = tokio::time::sleep(RESOLVE_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    limits: ConnectionLimits,
    exempt: Arc<RwLock<HashSet<IpAddr>>>,
    metrics: ConnectionMetrics,
    tx: mpsc::Sender<io::Result<Counted>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: the listener stays usable.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = remote.ip();
        let is_peer = exempt
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&ip);
        let admitted = {
            let mut c = counts.lock().unwrap_or_else(PoisonError::into_inner);
            let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
            let refused = match () {
                () if is_peer => None,
                () if from_ip >= limits.max_per_ip => Some("max_connections_per_ip"),
                () if c.total >= limits.max_connections => Some("max_connections"),
                () => None,
            };
            if refused.is_none() {
                c.total += 1;
                *c.by_ip.entry(ip).or_default() += 1;
            }
            refused
        };
        if let Some(reason) = admitted {
            metrics
                .refused
                .get_or_create(&RefusedLabels { reason })
                .inc();
            tracing::debug!(%remote, reason, "refused a connection");
            continue;
        }
        metrics.open.inc();
        // Small requests (acks, heartbeats) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let counted = Counted {
            stream,
            _guard: Guard {
                counts: counts.clone(),
                ip,
                open: metrics.open.clone(),
            },
        };
        if tx.send(Ok(counted)).await.is_err() {
            return;
        }
    }
}

/// Takes a connection off the counts when it closes.
#[derive(Debug)]
struct Guard {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
    open: Gauge,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
        self.open.dec();
    }
}

/// An admitted connection; counted until dropped.
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    _guard: Guard,
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
