//! `paxlog-broker`: runs one paxlog node.
//!
//! Settings come from defaults, then `--config FILE` (TOML), then `PAXLOG_*` environment
//! variables, then flags; see `paxlog_broker::config`. SIGTERM or Ctrl-C stop it gracefully.
//! Exit status: 0 after a graceful stop, 2 for an invalid configuration, 1 for any other
//! error (e.g. a data directory of another node).

use clap::Parser;
use paxlog_broker::config::{self, Config, ConfigPatch, NodeId};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};

/// Runs one paxlog broker node.
#[derive(Debug, Parser)]
#[command(name = "paxlog-broker", version, about)]
struct Args {
    /// TOML config file; flags and PAXLOG_* variables override it.
    #[arg(long, env = "PAXLOG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's id (>= 1), unique in the cluster [env: PAXLOG_ID].
    #[arg(long)]
    id: Option<NodeId>,
    /// gRPC listen address [env: PAXLOG_LISTEN] [default: 127.0.0.1:7001].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Every node of the cluster, this one included, e.g. 1=127.0.0.1:7001,2=127.0.0.1:7002;
    /// give every node the same list [env: PAXLOG_PEERS] [default: just this node].
    #[arg(long, value_name = "ID=HOST:PORT,...", value_parser = parse_peers)]
    peers: Option<BTreeMap<NodeId, String>>,
    /// RocksDB data directory [env: PAXLOG_DATA_DIR] [default: ./data/node-<id>].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Prometheus /metrics address [env: PAXLOG_METRICS] [default: listen port + 2000].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Largest record a producer may publish, in bytes [env: PAXLOG_MAX_RECORD_BYTES]
    /// [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_record_bytes: Option<u32>,
    /// Bytes of publishes this broker holds while they await consensus; past it, publishes
    /// are refused with THROTTLED [env: PAXLOG_MAX_INFLIGHT_BYTES] [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    max_inflight_bytes: Option<u64>,
    /// The part of --max-inflight-bytes one partition may hold
    /// [env: PAXLOG_MAX_INFLIGHT_BYTES_PER_PARTITION] [default: a quarter of it].
    #[arg(long, value_name = "BYTES")]
    max_inflight_bytes_per_partition: Option<u64>,
    /// Largest gRPC request a client may send, in bytes [env: PAXLOG_MAX_REQUEST_BYTES]
    /// [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    max_request_bytes: Option<u32>,
    /// Most connections open on the gRPC port; peers are never refused
    /// [env: PAXLOG_MAX_CONNECTIONS] [default: 4096].
    #[arg(long, value_name = "N")]
    max_connections: Option<u32>,
    /// Most connections open from one IP address [env: PAXLOG_MAX_CONNECTIONS_PER_IP]
    /// [default: 1024].
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<u32>,
    /// This node's TLS certificate chain (PEM); with --tls-key and --tls-ca turns TLS on,
    /// mutual between brokers [env: PAXLOG_TLS_CERT].
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM) [env: PAXLOG_TLS_KEY].
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM), which signed every broker's certificate
    /// [env: PAXLOG_TLS_CA].
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Tokens and their per-topic permissions (TOML); clients must then send a token.
    /// Needs TLS [env: PAXLOG_AUTH_FILE].
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Log lines on stderr: text for people, or json (one object per line, with the span
    /// fields node, partition, topic, ballot) for log pipelines. A process setting, not
    /// part of the node's configuration file.
    #[arg(long, env = "PAXLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_peers(input: &str) -> Result<BTreeMap<NodeId, String>, String> {
    config::parse_peers(input).map_err(|err| err.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);

    let flags = ConfigPatch {
        id: args.id,
        listen: args.listen,
        peers: args.peers,
        data_dir: args.data_dir,
        metrics: args.metrics,
        max_record_bytes: args.max_record_bytes,
        max_inflight_bytes: args.max_inflight_bytes,
        max_inflight_bytes_per_partition: args.max_inflight_bytes_per_partition,
        max_request_bytes: args.max_request_bytes,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_ca: args.tls_ca,
        auth_file: args.auth_file,
    };
    let config = match Config::load(args.config.as_deref(), std::env::vars(), flags) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("paxlog-broker: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("paxlog-broker: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM during startup must stop the node gracefully, not kill it.
        let shutdown =
            shutdown_signal().map_err(|err| format!("cannot install signal handlers: {err}"))?;
        paxlog_broker::run(config, shutdown)
            .await
            .map_err(|err| err.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("paxlog-broker: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the process's subscriber: `RUST_LOG` filters (default `info`), stderr, in `format`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours only on a terminal: logs often go to files (cluster up writes node logs).
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The event's fields at the top level (`message`, `listen`, ...); `span` is the
        // innermost span's fields and `spans` every open span's, outermost first, so a
        // replica's line carries node, partition, topic and ballot.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    })
}
