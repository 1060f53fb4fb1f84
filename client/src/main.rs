//! `paxlog`: the command-line tool. See `paxlog --help`.

use clap::{Args, Parser, Subcommand};
use paxlog_client::cluster::{self, ClusterSpec, LocalCluster};
use paxlog_client::{DEFAULT_BASE_PORT, DEFAULT_BROKERS, DEFAULT_NODES, Error, status};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// paxlog: a replicated log. Manage a local cluster and inspect brokers.
#[derive(Debug, Parser)]
#[command(name = "paxlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show whether each broker serves (exit status 1 unless all are SERVING).
    Status(StatusArgs),
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start brokers on 127.0.0.1 and keep them running until Ctrl-C or SIGTERM.
    Up(UpArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = DEFAULT_NODES)]
    nodes: u16,
    /// gRPC port of node 1; node N listens on base-port + N - 1.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    base_port: u16,
    /// Metrics port of node 1 [default: base-port + 2000].
    #[arg(long)]
    metrics_base_port: Option<u16>,
    /// Directory for the nodes' data (DATA/node-N) and logs (DATA/node-N.log); reused by
    /// the next `cluster up`.
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// The paxlog-broker executable [default: next to this paxlog executable].
    #[arg(long, value_name = "PATH")]
    broker_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Brokers to ask, host:port separated by commas [default: the local cluster].
    #[arg(long, env = "PAXLOG_BROKERS", default_value = DEFAULT_BROKERS)]
    brokers: String,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Per-broker limit for connecting and for the health call, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs often go to files (cluster up writes node logs).
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("paxlog: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Cluster(ClusterCommand::Up(args)) => cluster_up(args).await,
            Command::Status(args) => status(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(Error::Interrupted(signal)) => {
            eprintln!("paxlog: {}", Error::Interrupted(signal));
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("paxlog: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn cluster_up(args: UpArgs) -> Result<ExitCode, Error> {
    let broker_bin = cluster::locate_broker_binary(args.broker_bin)?;
    let mut spec = ClusterSpec::new(args.nodes, args.base_port, args.data, broker_bin)?;
    if let Some(port) = args.metrics_base_port {
        spec = ClusterSpec {
            metrics_base_port: port,
            ..spec
        }
        .validated()?;
    }
    // Before any node starts: a signal during startup must stop them, not orphan them.
    let mut signals = Signals::install()?;

    let mut cluster = LocalCluster::start(&spec).await?;
    eprintln!(
        "paxlog: starting {} nodes (logs in {}) ...",
        spec.nodes,
        spec.data.display()
    );
    let ready = tokio::select! {
        ready = cluster.wait_ready(cluster::STARTUP_DEADLINE) => ready,
        name = signals.recv() => Err(Error::Interrupted(name)),
    };
    if let Err(err) = ready {
        // The startup error is the one to report; stop problems are secondary.
        if let Err(stop_err) = cluster.stop().await {
            eprintln!("paxlog: {stop_err}");
        }
        return Err(err);
    }

    println!("paxlog: local cluster of {} nodes is up", spec.nodes);
    for node in &cluster.nodes {
        let spec = &node.spec;
        let pid = node
            .pid()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "  node {}  grpc {}  metrics http://{}/metrics  data {}  log {}  pid {pid}",
            spec.id,
            spec.grpc,
            spec.metrics,
            spec.data_dir.display(),
            spec.log.display()
        );
    }
    let brokers: Vec<&str> = cluster.nodes.iter().map(|n| n.spec.grpc.as_str()).collect();
    let brokers = brokers.join(",");
    if brokers == DEFAULT_BROKERS {
        println!("next: run `paxlog status` in another terminal; Ctrl-C here stops the cluster");
    } else {
        println!(
            "next: run `paxlog status --brokers {brokers}` in another terminal; Ctrl-C here stops the cluster"
        );
    }

    let outcome = cluster.run_until(signals.recv_any()).await;
    let how = match &outcome {
        Ok(()) => "stopping all nodes",
        Err(_) => "a node failed; stopping the others",
    };
    eprintln!("paxlog: {how} ...");
    let stopped = cluster.stop().await;
    outcome?;
    stopped?;
    eprintln!(
        "paxlog: all nodes stopped cleanly; data kept in {}",
        spec.data.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> Result<ExitCode, Error> {
    let brokers = paxlog_client::parse_brokers(&args.brokers)?;
    let report = status::check_brokers(&brokers, Duration::from_millis(args.timeout_ms)).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(if report.all_serving() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP (terminal closed) all mean "stop the cluster".
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, Error> {
        let install = |kind| signal(kind).map_err(Error::Signals);
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }

    /// Waits for the next signal, reporting it on stderr.
    async fn recv_any(&mut self) {
        let name = self.recv().await;
        eprintln!("paxlog: received {name}");
    }
}
