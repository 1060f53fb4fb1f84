//! `paxlog-bench`: load generator for a running paxlog cluster. See `paxlog-bench --help`
//! and `benches/README.md`.
//!
//! The only place that knows clap: it turns arguments into the library's configs
//! (`paxlog_benches::load`), runs them, and prints the report.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use paxlog_benches::calibrate::{self, CalibrateConfig};
use paxlog_benches::failover::{self, FailoverConfig};
use paxlog_benches::load::consume::{self, ConsumeConfig};
use paxlog_benches::load::produce::{self, ProduceConfig};
use paxlog_benches::load::progress::{Live, Progress};
use paxlog_benches::load::report::{ConsumeReport, ProduceReport, describe_until};
use paxlog_benches::load::{Stop, Until, parse_duration};
use paxlog_benches::plot;
use paxlog_client::cli::consume::StartFrom;
use paxlog_client::cluster::locate_broker_binary;
use paxlog_client::{DEFAULT_BROKERS, parse_brokers};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Load generator for a running paxlog cluster: publish or read records and report
/// throughput, latency percentiles (HDR histogram) and errors by kind.
#[derive(Debug, Parser)]
#[command(name = "paxlog-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish fixed-size records and measure acknowledged latency and throughput.
    Produce(ProduceArgs),
    /// Read a topic and measure throughput, fetch latency and record age.
    Consume(ConsumeArgs),
    /// Measure this machine's limits (synced appends and bandwidth of a disk, loopback
    /// TCP), so results can be stated as a fraction of them.
    Calibrate(CalibrateArgs),
    /// Start a local cluster, kill -9 a partition's leader again and again, and measure the
    /// time from each kill to the first acknowledged write.
    Failover(FailoverArgs),
    /// Draw SVG charts (one per sweep) from the JSON lines `benches/sweep.sh` writes.
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// The sweep's JSON lines.
    input: std::path::PathBuf,
    /// Directory the charts (SWEEP.svg) are written to.
    #[arg(long, default_value = ".")]
    out: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    /// Leader kills.
    #[arg(long, default_value_t = 20)]
    kills: u32,
    /// Nodes of the cluster the benchmark starts.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Writers, each with one publish in flight.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Deadline of one publish, the SDK's retries included.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    publish_timeout: Duration,
    /// The broker executable [default: paxlog-broker next to this program].
    #[arg(long)]
    broker_bin: Option<std::path::PathBuf>,
    /// Parent of the nodes' data directories and logs, kept at the end [default: a new
    /// directory under the system's temporary directory, deleted at the end].
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// gRPC port of node 1 (node n: +n-1; metrics ports +2000), apart from a local
    /// cluster's default 7001 so both can run.
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
    /// Print one JSON object (one line) for scripts instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CalibrateArgs {
    /// A directory on the disk the brokers' data directories use (a scratch file is
    /// written there and removed).
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// How long each of the four measurements runs.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    duration: Duration,
    /// Replicas that share this disk (a local cluster of three: 3).
    #[arg(long, default_value_t = 3)]
    replicas: u32,
    /// Print one JSON object (one line) for scripts instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of both commands.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Brokers to contact first, host:port separated by commas [default: the local cluster].
    #[arg(long, env = "PAXLOG_BROKERS", default_value = DEFAULT_BROKERS)]
    brokers: String,
    /// Topic.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Measure for this long (after the warmup), e.g. 30s, 2m [produce default: 30s].
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Measure this many records (after the warmup) instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Deadline of one request, retries by the SDK included.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    timeout: Duration,
    /// Print one JSON object (one line) for scripts instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar (it is shown only when stderr is a terminal anyway).
    #[arg(long)]
    quiet: bool,
}

impl CommonArgs {
    fn until(&self) -> Option<Until> {
        match (self.duration, self.count) {
            (Some(d), _) => Some(Until::Duration(d)),
            (None, Some(n)) => Some(Until::Count(n)),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Partitions, if the topic has to be created.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Replication factor, if the topic has to be created.
    #[arg(long, default_value_t = 3)]
    replication: u32,
    /// Producers, each with its own connection to the cluster.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per publish request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Publishes outstanding per producer: 1 waits for each acknowledgement, more pipeline.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Target records per second over all producers; 0 is as fast as acknowledgements come.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Publish this long before measuring (connections, leader caches).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    warmup: Duration,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Consumers, each with its own connection; partitions are shared out among them.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Where to start in each partition: earliest, latest or an offset. Without --duration
    /// or --count, reading stops at the end each partition had at the start.
    #[arg(long, default_value = "earliest")]
    from: StartFrom,
    /// Most record bytes per fetch; 0 is the broker's default (1 MiB).
    #[arg(long, default_value_t = 0)]
    fetch_bytes: u32,
    /// Longest a fetch waits for new records at the end of a partition.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    max_wait: Duration,
    /// Read this long before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("paxlog-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("paxlog-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stop = Stop::default();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("paxlog-bench: interrupted; finishing requests in flight and reporting");
            on_signal.stop();
        }
    });
    let live = Arc::new(Live::default());
    let (output, records) = match cli.command {
        Command::Calibrate(args) => {
            let cfg = CalibrateConfig {
                dir: args.dir,
                duration: args.duration,
                replicas: args.replicas,
            };
            if !args.json {
                eprintln!(
                    "calibrating {} ({:.0} s per measurement, 4 measurements)",
                    cfg.dir.display(),
                    cfg.duration.as_secs_f64()
                );
            }
            let c = tokio::task::spawn_blocking(move || calibrate::run(&cfg))
                .await?
                .context("calibrate")?;
            let output = if args.json { c.json() } else { c.text() };
            (output, c.small_synced.latency.count)
        }
        Command::Plot(args) => {
            let text = std::fs::read_to_string(&args.input)
                .with_context(|| format!("reading {}", args.input.display()))?;
            let points =
                plot::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            let mut written = Vec::new();
            for (sweep, svg) in plot::charts(&points) {
                let path = args.out.join(format!("{sweep}.svg"));
                std::fs::write(&path, svg)
                    .with_context(|| format!("writing {}", path.display()))?;
                written.push(path.display().to_string());
            }
            (written.join("\n"), written.len() as u64)
        }
        Command::Failover(args) => {
            let cfg = FailoverConfig {
                kills: args.kills,
                nodes: args.nodes,
                writers: args.writers,
                publish_timeout: args.publish_timeout,
                broker_bin: locate_broker_binary(args.broker_bin)?,
                keep_data: args.data.is_some(),
                data: args.data.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("paxlog-failover-{}", std::process::id()))
                }),
                base_port: args.base_port,
            };
            if !args.json {
                eprintln!(
                    "failover: {} leader kills in a {}-node cluster under {}",
                    cfg.kills,
                    cfg.nodes,
                    cfg.data.display()
                );
            }
            let report = failover::run(&cfg).await.context("failover")?;
            let output = if args.json {
                report.json()
            } else {
                report.text()
            };
            (output, report.kills.len() as u64)
        }
        Command::Produce(args) => {
            let c = &args.common;
            let cfg = ProduceConfig {
                topic: c.topic.clone(),
                partitions: args.partitions,
                replication: args.replication,
                producers: args.producers,
                record_size: args.record_size,
                batch: args.batch,
                in_flight: args.in_flight,
                rate: args.rate,
                until: c.until().unwrap_or(ProduceConfig::default().until),
                warmup: args.warmup,
                timeout: c.timeout,
            };
            let seeds = parse_brokers(&c.brokers)?;
            if !c.json {
                eprintln!(
                    "producing to {:?} {} after a {:.1} s warmup",
                    cfg.topic,
                    describe_until(Some(cfg.until)),
                    cfg.warmup.as_secs_f64()
                );
            }
            let progress = Progress::start(
                live.clone(),
                "produce",
                Some(cfg.until),
                cfg.warmup,
                !c.quiet,
            );
            let outcome = produce::run(&seeds, &cfg, live, stop).await;
            progress.finish();
            let report = ProduceReport::new(&cfg, &outcome.context("produce")?);
            let output = if c.json { report.json() } else { report.text() };
            (output, report.records)
        }
        Command::Consume(args) => {
            let c = &args.common;
            let cfg = ConsumeConfig {
                topic: c.topic.clone(),
                consumers: args.consumers,
                from: args.from,
                until: c.until(),
                warmup: args.warmup,
                fetch_bytes: args.fetch_bytes,
                max_wait: args.max_wait,
                timeout: c.timeout,
            };
            let seeds = parse_brokers(&c.brokers)?;
            if !c.json {
                eprintln!("consuming {:?} {}", cfg.topic, describe_until(cfg.until));
            }
            let progress =
                Progress::start(live.clone(), "consume", cfg.until, cfg.warmup, !c.quiet);
            let outcome = consume::run(&seeds, &cfg, live, stop).await;
            progress.finish();
            let report = ConsumeReport::new(&cfg, &outcome.context("consume")?);
            let output = if c.json { report.json() } else { report.text() };
            (output, report.records)
        }
    };
    println!("{}", output.trim_end());
    // Errors alone are results (reported by kind); a run that measured nothing is not.
    Ok(if records > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
