//! The node's lifecycle: open storage, bind the two ports, serve until shut down.
//!
//! ```text
//!   run(config, shutdown)
//!     ├─ Db::open(data_dir, id)           refuses another node's directory
//!     ├─ bind listen (gRPC) and metrics (HTTP)
//!     ├─ PeerHub: dial lower-id peers; inbound messages ──▶ bounded mpsc (drained for now)
//!     ├─ serve ──▶ gRPC: health, reflection, paxlog.v1 services (Peer from the hub)
//!     │        ├─▶ HTTP: GET /metrics
//!     │        └─▶ group series of the groups this node coordinates (on a tick)
//!     └─ on shutdown: health NOT_SERVING, hand every leadership over (bounded), stop
//!        the hub and accepting, drain (bounded), sync storage
//!
//!   security (TLS files, auth file) is loaded before storage opens; accepted connections
//!   pass connections::incoming (limits) and client services the Authenticator
//! ```

use crate::config::Config;
use crate::connections::{self, ConnectionLimits, ConnectionMetrics};
use crate::error::{Error, Fatal};
use crate::metrics::{self, Metrics};
use crate::node::{Driver, DriverConfig, DriverHandle};
use crate::security::{Authenticator, TlsError, TlsMaterial, Tokens};
use crate::service::SERVICE_NAMES;
use crate::service::{ClientApi, Limits};
use crate::storage::Db;
use crate::transport::{PeerHub, PeerMetrics, TransportConfig};
use paxlog_proto::v1::{
    admin_server::AdminServer, consumer_server::ConsumerServer, groups_server::GroupsServer,
    metadata_server::MetadataServer, producer_server::ProducerServer,
    triggers_server::TriggersServer,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::Instrument;

/// How long shutdown waits for open gRPC calls and streams to finish before closing them.
/// Long-lived streams (peer streams, health watches) never finish on their own.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bound of the channel of Paxos messages from peers to the node. When it is full, peer
/// streams stop being read and HTTP/2 flow control slows the peers down.
pub const INBOUND_MESSAGES: usize = 16 * 1024;

/// Capacity of the driver's command queue (proposals from the client services). When full,
/// services wait: backpressure on producers instead of unbounded memory.
pub const COMMANDS: usize = 4096;

/// The node's two bound sockets. Binding separately from serving lets tests bind port 0
/// and learn the address before the node starts.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (client API, peer API, health, reflection).
    pub grpc: TcpListener,
    /// Prometheus `/metrics`.
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds `config.listen` and the metrics address.
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let grpc = bind("gRPC", config.listen, "--listen").await?;
        let metrics = bind("metrics", config.metrics_addr()?, "--metrics").await?;
        Ok(Listeners { grpc, metrics })
    }
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
    flag: &'static str,
) -> Result<TcpListener, Fatal> {
    TcpListener::bind(addr).await.map_err(|source| Fatal::Bind {
        what,
        addr,
        flag,
        source,
    })
}

/// Runs a node until `shutdown` completes (then stops gracefully) or a fatal error occurs.
///
/// Opens storage first, so that a data directory of another node is refused before any
/// port is taken.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    config.validate()?;
    let span = tracing::info_span!("broker", node = config.id);
    async move {
        let security = load_security(&config)?;
        let storage = open_storage(&config).await?;
        let listeners = Listeners::bind(&config).await?;
        serve(&config, security, storage, listeners, shutdown).await
    }
    .instrument(span)
    .await
}

/// Like [`run`], on sockets the caller bound.
pub async fn run_with_listeners(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let span = tracing::info_span!("broker", node = config.id);
    async move {
        let security = load_security(&config)?;
        let storage = open_storage(&config).await?;
        serve(&config, security, storage, listeners, shutdown).await
    }
    .instrument(span)
    .await
}

async fn open_storage(config: &Config) -> Result<Arc<Db>, Fatal> {
    let (data_dir, id) = (config.data_dir(), config.id);
    tokio::task::spawn_blocking(move || Db::open(&data_dir, id).map(Arc::new))
        .await
        .map_err(|source| Fatal::Task {
            task: "open storage",
            source,
        })?
}

async fn serve(
    config: &Config,
    (tls, authenticator): (Option<TlsMaterial>, Authenticator),
    storage: Arc<Db>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // The bound addresses differ from the configured ones when those use port 0.
    let grpc_addr = listeners.grpc.local_addr().unwrap_or(config.listen);
    let metrics_addr = listeners
        .metrics
        .local_addr()
        .unwrap_or(config.metrics_addr()?);
    let transport = TransportConfig {
        tls: tls.clone(),
        ..TransportConfig::default()
    };
    let mut metrics = Metrics::new(config.id);
    let peer_metrics = PeerMetrics::register(metrics.registry_mut());
    let node_metrics = Arc::new(metrics::NodeMetrics::register(metrics.registry_mut()));
    let connection_metrics = ConnectionMetrics::register(metrics.registry_mut());
    let metrics = Arc::new(metrics);
    let (inbound, inbound_rx) = mpsc::channel(INBOUND_MESSAGES);
    let hub = Arc::new(PeerHub::with_config(
        config.id,
        config.members(),
        inbound,
        peer_metrics,
        transport.clone(),
    ));
    let (commands, commands_rx) = mpsc::channel(COMMANDS);
    let driver_handle = DriverHandle::new(commands);
    let mut driver_config =
        DriverConfig::new(config.id, config.members().keys().copied().collect());
    driver_config.metrics = node_metrics.clone();
    let (driver, view) = {
        let (db, hub) = (storage.clone(), hub.clone());
        tokio::task::spawn_blocking(move || {
            Driver::open(driver_config, db, hub, inbound_rx, commands_rx)
        })
        .await
        .map_err(|source| Fatal::Task {
            task: "recover replicas",
            source,
        })??
    };
    let api = ClientApi::new(
        config.id,
        config.members(),
        driver_handle.clone(),
        view,
        storage.clone(),
        Limits {
            max_record_bytes: config.max_record_bytes,
            max_inflight_bytes: config.max_inflight_bytes,
            max_inflight_bytes_per_partition: config.partition_inflight_limit(),
        },
        node_metrics,
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;

    // Health's descriptors too, so reflection clients can call it by name.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(paxlog_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Fatal::from)?;
    // v1alpha as well: older grpcurl and grpcui speak only that.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(paxlog_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(Fatal::from)?;

    let (stop, stopped) = watch::channel(false);
    let metrics_task = tokio::spawn(
        metrics::http::serve(listeners.metrics, metrics.clone(), stopped.clone()).in_current_span(),
    );
    // Ends with the stop signal; nothing waits for it (it writes nothing).
    tokio::spawn(
        api.clone()
            .export_group_metrics(stopped.clone())
            .in_current_span(),
    );
    let driver_task = tokio::spawn(driver.run(stopped.clone()).in_current_span());
    tokio::pin!(driver_task);
    let mut grpc_stopped = stopped.clone();
    let request_limit = config.request_limit() as usize;
    let mut server = Server::builder();
    if let Some(tls) = &tls {
        server = server
            .tls_config(tls.server())
            .map_err(|err| Fatal::Tls(TlsError::Refused(chain(&err))))?;
    }
    // Every client service passes the authenticator first; health, reflection and the
    // peer service (mutual TLS) do not.
    let grpc = server
        // Pings let the accepting side of a peer stream notice a peer that vanished.
        .http2_keepalive_interval(Some(transport.keepalive_interval))
        .http2_keepalive_timeout(Some(transport.keepalive_timeout))
        // Fixed, large windows rather than adaptive ones: peer batches are up to megabytes,
        // and with an adaptive (initially small) window h2 closed a client connection with
        // GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames" under 256 publishes in flight,
        // failing every one of them (seen with paxlog-bench; fixed windows: no errors).
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(4 << 20))
        // Requests in flight per connection: more wait in the client (HTTP/2 flow), so one
        // connection cannot pile up unbounded work in the broker.
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            AdminServer::new(api.clone()).max_decoding_message_size(request_limit),
            authenticator.clone(),
        ))
        .add_service(InterceptedService::new(
            MetadataServer::new(api.clone()).max_decoding_message_size(request_limit),
            authenticator.clone(),
        ))
        // zstd message compression when the client asks for it (SDK: `compression`); the
        // broker stores batches as they come (see storage/tuning.rs).
        .add_service(InterceptedService::new(
            ProducerServer::new(api.clone())
                .max_decoding_message_size(request_limit)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Zstd),
            authenticator.clone(),
        ))
        .add_service(InterceptedService::new(
            ConsumerServer::new(api.clone())
                .max_decoding_message_size(request_limit)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Zstd),
            authenticator.clone(),
        ))
        .add_service(InterceptedService::new(
            GroupsServer::new(api.clone()).max_decoding_message_size(request_limit),
            authenticator.clone(),
        ))
        .add_service(InterceptedService::new(
            TriggersServer::new(api).max_decoding_message_size(request_limit),
            authenticator.clone(),
        ))
        .add_service(hub.service())
        .serve_with_incoming_shutdown(
            connections::incoming(
                listeners.grpc,
                ConnectionLimits {
                    max_connections: config.max_connections as usize,
                    max_per_ip: config.max_connections_per_ip as usize,
                },
                config.members().into_values().collect(),
                connection_metrics,
                stopped.clone(),
            ),
            async move {
                // An error means the sender is gone, which also means stop.
                let _ = grpc_stopped.wait_for(|stop| *stop).await;
            },
        );
    tokio::pin!(grpc);

    metrics.set_up(true);
    tracing::info!(
        listen = %grpc_addr,
        metrics = %format!("http://{metrics_addr}/metrics"),
        data_dir = %storage.data_dir().display(),
        peers = ?config.members(),
        "broker serving"
    );

    let mut driver_result = None;
    let early_exit = tokio::select! {
        result = &mut grpc => Some(result),
        result = &mut driver_task => {
            driver_result = Some(result);
            None
        }
        () = shutdown => None,
    };
    tracing::info!("shutting down");
    metrics.set_up(false);
    set_health(&health, ServingStatus::NotServing).await;
    if early_exit.is_none() && driver_result.is_none() {
        // A graceful stop: peers take over what this node leads first, so its in-flight
        // writes finish and clients move on at once instead of after an election timeout.
        match tokio::time::timeout(HAND_OFF_GRACE, driver_handle.hand_off()).await {
            Ok(Ok(())) => tracing::info!("handed every leadership over"),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(grace = ?HAND_OFF_GRACE, "some leaderships were not handed over; stopping anyway")
            }
        }
    }
    stop.send_replace(true);
    // Peer streams never end on their own; stopping the hub ends them, so the graceful
    // drain below does not wait for them.
    hub.shutdown();
    let grpc_result = match early_exit {
        Some(result) => result,
        None => match tokio::time::timeout(SHUTDOWN_GRACE, &mut grpc).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "open gRPC streams did not finish; closing them");
                Ok(())
            }
        },
    };
    drop(hub);
    let driver_result = match driver_result {
        Some(result) => result,
        None => driver_task.await,
    };
    driver_result.map_err(|source| Fatal::Task {
        task: "replica driver",
        source,
    })??;
    let metrics_result = metrics_task.await.map_err(|source| Fatal::Task {
        task: "metrics",
        source,
    })?;

    // Sync and close RocksDB off the async workers; both may block on disk.
    tokio::task::spawn_blocking(move || storage.flush())
        .await
        .map_err(|source| Fatal::Task {
            task: "close storage",
            source,
        })??;
    grpc_result.map_err(Fatal::from)?;
    metrics_result?;
    tracing::info!("broker stopped");
    Ok(())
}

/// The node's TLS material and the client services' authenticator, from the files the
/// configuration names; read and checked once, before storage opens, so that a node with
/// unusable files stops before it starts anything.
fn load_security(config: &Config) -> Result<(Option<TlsMaterial>, Authenticator), Fatal> {
    let tls = match config.tls_files()? {
        Some(files) => Some(TlsMaterial::load(&files)?),
        None => None,
    };
    if let Some(tls) = &tls {
        // Builds rustls's server config: a key that is not the certificate's fails here.
        Server::builder()
            .tls_config(tls.server())
            .map_err(|err| Fatal::Tls(TlsError::Refused(chain(&err))))?;
    }
    let authenticator = match &config.auth_file {
        Some(path) => Authenticator::with_tokens(Tokens::load(path)?),
        None => Authenticator::open(),
    };
    Ok((tls, authenticator))
}

/// `err` and its sources: tonic's outer message alone does not say what rustls refused.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// How long a graceful stop waits for peers to take over what this node leads.
pub const HAND_OFF_GRACE: Duration = Duration::from_secs(3);

/// Most requests in flight on one client connection (HTTP/2 concurrent streams).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// Reports `status` for the whole server ("") and every paxlog service.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(name, status).await;
    }
}
