//! `paxlog`: the command-line tool. See `paxlog --help`.
//!
//! The only place that knows clap: it turns arguments into the library's option structs
//! and runs the library's commands (`paxlog_client::cli`, `cluster`, `status`).

mod logging;
mod signals;

use clap::{Args, Parser, Subcommand};
use paxlog_client::ConsumerConfig;
use paxlog_client::cli::consume::{self, ConsumeOptions, StartFrom};
use paxlog_client::cli::produce::{self, KeyMode, ProduceOptions};
use paxlog_client::cli::{group, topic, trigger, write_line};
use paxlog_client::cluster::{self, ClusterSpec, LocalCluster};
use paxlog_client::connection::{ConnectOptions, Connection};
use paxlog_client::security::{LocalTls, Security};
use paxlog_client::{DEFAULT_BASE_PORT, DEFAULT_BROKERS, DEFAULT_NODES, Error, status};
use signals::Signals;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// paxlog: a replicated log. Run a local cluster, manage topics, produce and consume records.
#[derive(Debug, Parser)]
#[command(name = "paxlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr (mostly `paxlog runner`'s): text, or json (one object per line)
    /// for log pipelines.
    #[arg(long, global = true, env = "PAXLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Move a partition's leadership.
    #[command(subcommand)]
    Partition(PartitionCommand),
    /// Publish stdin lines as records, in batches, to the partition leaders.
    Produce(ProduceArgs),
    /// Print a topic's records, from earliest, latest or an offset; with --group, as a
    /// member of a consumer group, from the group's committed offsets.
    Consume(ConsumeArgs),
    /// List and describe consumer groups (members, committed offsets, lag); reset offsets.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Function triggers: invoke an HTTP endpoint or a command for a topic's records, in
    /// batches, with retries and a dead-letter topic (run by `paxlog runner`).
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Run every trigger of the cluster (start one or many; they share the work) until
    /// Ctrl-C or SIGTERM.
    Runner(RunnerArgs),
    /// Show each broker's health, the metadata leader and each partition's leader (exit
    /// status 1 unless all brokers are SERVING).
    Status(StatusArgs),
}

#[derive(Debug, Subcommand)]
enum TriggerCommand {
    /// Create a trigger (and its dead-letter topic, NAME.dlq by default, if missing).
    Create(Box<TriggerCreateArgs>),
    /// List triggers.
    List(ClientArgs),
    /// Show a trigger's settings, state, lag, invocations, errors and runners.
    Describe(TriggerNameArgs),
    /// Stop invoking the function (runners finish their calls in flight and commit).
    Pause(TriggerNameArgs),
    /// Invoke the function again, from where the trigger stopped.
    Resume(TriggerNameArgs),
    /// Delete a trigger (its topics and its group's offsets stay).
    Delete(TriggerNameArgs),
    /// Replay the dead-letter topic into the function; what fails again goes back to it.
    Redrive(TriggerNameArgs),
}

#[derive(Debug, Args)]
struct TriggerNameArgs {
    /// Trigger name.
    name: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("function").required(true).args(["http", "command"])))]
struct TriggerCreateArgs {
    /// Trigger name: 1 to 200 characters of [A-Za-z0-9._-].
    name: String,
    /// The topic whose records invoke the function.
    #[arg(long)]
    topic: String,
    /// POST each batch as JSON to this URL (2xx: success; 429/503: throttled).
    #[arg(long, value_name = "URL")]
    http: Option<String>,
    /// Run this with `sh -c`, the batch as JSON on stdin (exit 0: success; 75: throttled).
    #[arg(long, value_name = "CMD")]
    command: Option<String>,
    /// Most records per invocation [default: 100].
    #[arg(long, value_name = "N")]
    batch_size: Option<u32>,
    /// Wait up to this long to fill a batch [default: 0].
    #[arg(long, value_name = "MS")]
    batch_window_ms: Option<u32>,
    /// Where to start without committed offsets: earliest or latest [default: latest].
    #[arg(long, value_name = "WHERE")]
    start: Option<String>,
    /// Retries of a failing record before it is dead-lettered [default: 3].
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// First retry backoff, doubling with full jitter [default: 200].
    #[arg(long, value_name = "MS")]
    retry_backoff_ms: Option<u32>,
    /// Longest retry backoff [default: 30000].
    #[arg(long, value_name = "MS")]
    retry_backoff_max_ms: Option<u32>,
    /// Do not retry records older than this; dead-letter them [default: no limit].
    #[arg(long, value_name = "MS")]
    max_record_age_ms: Option<i64>,
    /// Split a failing batch in halves before retries count.
    #[arg(long)]
    bisect_on_error: bool,
    /// Dead-letter topic [default: NAME.dlq, created if missing].
    #[arg(long, value_name = "TOPIC")]
    dead_letter_topic: Option<String>,
    /// Most invocations in flight over all runners [default: 10].
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// Longest an invocation may take [default: 30000].
    #[arg(long, value_name = "MS")]
    timeout: Option<u32>,
    /// Publish the records the function returns to this topic.
    #[arg(long, value_name = "TOPIC")]
    output_topic: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct RunnerArgs {
    /// Brokers to contact first, host:port separated by commas [default: the local cluster].
    #[arg(long, env = "PAXLOG_BROKERS", default_value = DEFAULT_BROKERS)]
    brokers: String,
    /// This runner's id in status reports [default: runner-<hostname>-<pid>].
    #[arg(long)]
    id: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9300).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Run only these triggers, separated by commas [default: all].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    only: Vec<String>,
    #[command(flatten)]
    security: SecurityArgs,
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
    /// TLS on every connection (mutual between brokers) and token auth: makes a local CA,
    /// a broker certificate and an admin token in DATA/tls (kept for the next run) and
    /// prints how clients use them.
    #[arg(long)]
    tls: bool,
}

/// How commands reach a cluster that runs TLS and token auth.
#[derive(Debug, Args)]
struct SecurityArgs {
    /// CA certificate (PEM) that signed the brokers' certificates; turns TLS on
    /// [env: PAXLOG_TLS_CA].
    #[arg(long, env = "PAXLOG_TLS_CA", value_name = "FILE", hide_env = true)]
    tls_ca: Option<PathBuf>,
    /// Token sent on every call, for brokers with an auth file [env: PAXLOG_TOKEN].
    #[arg(long, env = "PAXLOG_TOKEN", hide_env = true, hide_env_values = true)]
    token: Option<String>,
}

impl SecurityArgs {
    fn security(&self) -> Result<Security, Error> {
        // An empty value (`PAXLOG_TOKEN=`) means none, as for the broker's variables.
        let mut security = Security::none();
        if let Some(ca) = self.tls_ca.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            security = security.with_ca_file(ca)?;
        }
        if let Some(token) = self.token.as_ref().filter(|t| !t.is_empty()) {
            security = security.with_token(token.clone());
        }
        Ok(security)
    }
}

/// Options of every command that talks to the cluster.
#[derive(Debug, Args)]
struct ClientArgs {
    /// Brokers to contact first, host:port separated by commas [default: the local cluster].
    #[arg(long, env = "PAXLOG_BROKERS", default_value = DEFAULT_BROKERS)]
    brokers: String,
    /// Print JSON: one document, or one object per line for produce and consume.
    #[arg(long)]
    json: bool,
    /// Give up on a request after this many milliseconds, retries included.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic (decided by the metadata group's leader).
    Create(CreateArgs),
    /// List topics.
    List(ClientArgs),
    /// Show a topic's partitions: leader, replicas, decided index, log start and end.
    Describe(TopicNameArgs),
    /// Delete a topic and all its records.
    Delete(TopicNameArgs),
}

#[derive(Debug, Subcommand)]
enum PartitionCommand {
    /// Make one replica the partition's leader (e.g. before maintenance on the current
    /// leader's broker); returns once it leads.
    Elect(ElectArgs),
}

#[derive(Debug, Args)]
struct ElectArgs {
    /// Topic name.
    topic: String,
    /// Partition number.
    partition: u32,
    /// Node id of the replica that should lead.
    #[arg(long, value_name = "NODE")]
    to: u64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Topic name: 1 to 249 characters of [A-Za-z0-9._-].
    name: String,
    /// Number of partitions (at least 1; fixed for the topic's life).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,
    /// Replicas per partition, at most the number of brokers [default: the broker's].
    #[arg(long, value_name = "R")]
    replication: Option<u32>,
    /// A topic setting, e.g. retention.ms=86400000; repeat for more.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct TopicNameArgs {
    /// Topic name.
    name: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Key of every record [default: none; records spread over partitions round-robin].
    #[arg(long, value_name = "K", conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each line at the first SEP into key and value; equal keys share a partition.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Write every record to this partition instead of choosing by key.
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Most records per publish.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Send a partial batch once no line arrived for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    linger_ms: u64,
    /// Plain publishes: stop on an unknown outcome instead of retrying idempotently.
    #[arg(long)]
    no_idempotence: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Read only this partition [default: all].
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Where to start in each partition: earliest, latest, or an offset.
    #[arg(long, value_name = "WHERE", default_value = "earliest")]
    from: StartFrom,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end of every partition.
    #[arg(long)]
    follow: bool,
    /// Longest wait of one fetch for new records (long-poll), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    max_wait_ms: u64,
    /// Read as a member of this consumer group: the coordinator assigns partitions, reading
    /// starts at the group's committed offsets (--from earliest|latest where it has none),
    /// and the offsets of printed records are committed.
    #[arg(long, value_name = "G", conflicts_with = "partition")]
    group: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List consumer groups.
    List(ClientArgs),
    /// Show a group's members, assignment, and per partition committed offset, end and lag.
    Describe(GroupNameArgs),
    /// Set a group's committed offsets for every partition of a topic (the group must have
    /// no members).
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Args)]
struct GroupNameArgs {
    /// Group name.
    group: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct ResetArgs {
    /// Group name.
    group: String,
    /// Topic whose partitions to reset.
    #[arg(long)]
    topic: String,
    /// The new committed offset of every partition: earliest, latest, or an offset.
    #[arg(long, value_name = "WHERE")]
    to: StartFrom,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Brokers to ask, host:port separated by commas [default: the local cluster].
    #[arg(long, env = "PAXLOG_BROKERS", default_value = DEFAULT_BROKERS)]
    brokers: String,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Per-broker limit for connecting, for the health call and for each metadata request,
    /// in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    #[command(flatten)]
    security: SecurityArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format == LogFormat::Json);
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
            Command::Topic(command) => topic_command(command).await,
            Command::Partition(PartitionCommand::Elect(args)) => elect(args).await,
            Command::Produce(args) => produce(args).await,
            Command::Consume(args) => consume(args).await,
            Command::Group(command) => group_command(command).await,
            Command::Trigger(command) => trigger_command(command).await,
            Command::Runner(args) => runner(args).await,
            Command::Status(args) => status(args).await,
        }
    });
    match result {
        Ok(code) => code,
        // The reader went away (`paxlog consume ... | head`): not a failure of ours.
        Err(Error::Stream { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
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
    let tls = match args.tls {
        true => Some(LocalTls::prepare(&spec.data.join("tls"))?),
        false => None,
    };
    if let Some(tls) = &tls {
        spec = spec.with_local_tls(tls)?;
    }
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
    if let Some(tls) = &tls {
        println!(
            "TLS (mutual between brokers) and token auth are on; in other terminals run:\n  export PAXLOG_TLS_CA={} PAXLOG_TOKEN=$(cat {})",
            tls.ca.display(),
            tls.token_file.display()
        );
    }
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

impl ClientArgs {
    fn connect(&self) -> Result<Connection, Error> {
        let brokers = paxlog_client::parse_brokers(&self.brokers)?;
        Connection::secured(
            brokers,
            ConnectOptions::default(),
            self.security.security()?,
        )
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

async fn elect(args: ElectArgs) -> Result<ExitCode, Error> {
    let conn = args.client.connect()?;
    let budget = args.client.timeout();
    let leader = topic::elect_leader(&conn, &args.topic, args.partition, args.to, budget).await?;
    let text = if args.client.json {
        serde_json::json!({ "topic": args.topic, "partition": args.partition, "leader": leader })
            .to_string()
    } else {
        format!(
            "partition {}/{} is led by node {leader}",
            args.topic, args.partition
        )
    };
    write_line(&mut std::io::stdout().lock(), &text)?;
    Ok(ExitCode::SUCCESS)
}

async fn topic_command(command: TopicCommand) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match command {
        TopicCommand::Create(args) => {
            let conn = args.client.connect()?;
            let request = topic::CreateTopic {
                name: args.name,
                partitions: args.partitions,
                replication: args.replication.unwrap_or(0),
                config: topic::parse_config(&args.config)?,
            };
            let created = topic::create(&conn, request, args.client.timeout()).await?;
            if args.client.json {
                write_line(&mut out, &created.to_json())?;
            } else {
                write_line(&mut out, &format!("created topic {:?}", created.name))?;
                write_line(&mut out, created.to_table().trim_end())?;
            }
        }
        TopicCommand::List(client) => {
            let list = topic::list(&client.connect()?, client.timeout()).await?;
            let text = if client.json {
                list.to_json()
            } else {
                list.to_table()
            };
            write_line(&mut out, text.trim_end())?;
        }
        TopicCommand::Describe(args) => {
            let conn = args.client.connect()?;
            let view = topic::describe_at_leaders(&conn, &args.name, args.client.timeout()).await?;
            let text = if args.client.json {
                view.to_json()
            } else {
                view.to_table()
            };
            write_line(&mut out, text.trim_end())?;
        }
        TopicCommand::Delete(args) => {
            let conn = args.client.connect()?;
            topic::delete(&conn, &args.name, args.client.timeout()).await?;
            let text = if args.client.json {
                serde_json::json!({ "deleted": args.name }).to_string()
            } else {
                format!("deleted topic {:?}", args.name)
            };
            write_line(&mut out, &text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn produce(args: ProduceArgs) -> Result<ExitCode, Error> {
    let conn = args.client.connect()?;
    let keys = match (args.key, args.key_separator) {
        (Some(key), _) => KeyMode::Fixed(key.into_bytes().into()),
        (None, Some(sep)) if sep.is_empty() => {
            return Err(Error::InvalidArgument(
                "--key-separator must not be empty".to_owned(),
            ));
        }
        (None, Some(sep)) => KeyMode::Separator(sep),
        (None, None) => KeyMode::None,
    };
    let opts = ProduceOptions {
        topic: args.topic,
        partition: args.partition,
        keys,
        batch: args.batch as usize,
        linger: Duration::from_millis(args.linger_ms),
        json: args.client.json,
        timeout: args.client.timeout(),
        idempotent: !args.no_idempotence,
    };
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut out = std::io::stdout();
    let summary = produce::run(&conn, &opts, stdin, &mut out).await?;
    eprintln!("paxlog: {}", summary.describe(&opts.topic));
    Ok(ExitCode::SUCCESS)
}

async fn group_command(command: GroupCommand) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    let admin = |client: &ClientArgs| -> Result<paxlog_client::Admin, Error> {
        let conn = Arc::new(client.connect()?);
        Ok(paxlog_client::Client::from_connection(conn, client.timeout()).admin())
    };
    match command {
        GroupCommand::List(client) => group::list(&admin(&client)?, client.json, &mut out).await?,
        GroupCommand::Describe(args) => {
            let admin = admin(&args.client)?;
            group::describe(&admin, &args.group, args.client.json, &mut out).await?
        }
        GroupCommand::ResetOffsets(args) => {
            let admin = admin(&args.client)?;
            group::reset_offsets(
                &admin,
                &args.group,
                &args.topic,
                args.to,
                args.client.json,
                &mut out,
            )
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn consume(args: ConsumeArgs) -> Result<ExitCode, Error> {
    let conn = Arc::new(args.client.connect()?);
    if let Some(group_name) = args.group {
        let config = ConsumerConfig {
            group: Some(group_name.clone()),
            auto_offset_reset: group::reset_of(&args.from)?,
            auto_commit: false,
            request_timeout: args.client.timeout(),
            ..ConsumerConfig::default()
        };
        let consumer = paxlog_client::Consumer::new(conn, config);
        let mut out = std::io::stdout();
        let idle = Duration::from_millis(args.max_wait_ms);
        let printed = group::consume(
            consumer,
            &args.topic,
            args.max,
            args.follow,
            idle,
            args.client.json,
            &mut out,
        )
        .await?;
        eprintln!(
            "paxlog: consumed {printed} records from {:?} as a member of group {group_name:?}",
            args.topic
        );
        return Ok(ExitCode::SUCCESS);
    }
    let opts = ConsumeOptions {
        topic: args.topic,
        partition: args.partition,
        from: args.from,
        max: args.max,
        follow: args.follow,
        json: args.client.json,
        max_wait: Duration::from_millis(args.max_wait_ms),
        timeout: args.client.timeout(),
    };
    let mut out = std::io::stdout();
    let printed = consume::run(conn, &opts, &mut out).await?;
    eprintln!("paxlog: consumed {printed} records from {:?}", opts.topic);
    Ok(ExitCode::SUCCESS)
}

async fn trigger_command(command: TriggerCommand) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match command {
        TriggerCommand::Create(a) => {
            let conn = a.client.connect()?;
            let wire = paxlog_proto::v1::Trigger {
                name: a.name,
                topic: a.topic,
                http_url: a.http.unwrap_or_default(),
                command: a.command.unwrap_or_default(),
                batch_size: a.batch_size,
                batch_window_ms: a.batch_window_ms,
                start_position: a.start,
                max_retries: a.max_retries,
                retry_backoff_ms: a.retry_backoff_ms,
                retry_backoff_max_ms: a.retry_backoff_max_ms,
                max_record_age_ms: a.max_record_age_ms,
                bisect_on_error: a.bisect_on_error.then_some(true),
                dead_letter_topic: a.dead_letter_topic,
                concurrency_max: a.concurrency,
                function_timeout_ms: a.timeout,
                output_topic: a.output_topic,
                paused: false,
            };
            let created = trigger::create(&conn, wire, a.client.timeout()).await?;
            if a.client.json {
                write_line(&mut out, &trigger::settings_json(&created).to_string())?;
            } else {
                write_line(&mut out, &format!("created trigger {:?}", created.name))?;
                trigger::print_list(&[created], false, &mut out)?;
            }
        }
        TriggerCommand::List(client) => {
            let list = trigger::list(&client.connect()?, client.timeout()).await?;
            trigger::print_list(&list, client.json, &mut out)?;
        }
        TriggerCommand::Describe(a) => {
            let conn = Arc::new(a.client.connect()?);
            let view = trigger::describe(&conn, &a.name, a.client.timeout()).await?;
            trigger::print_view(&view, a.client.json, &mut out)?;
        }
        TriggerCommand::Pause(a) => {
            trigger::set_paused(&a.client.connect()?, &a.name, true, a.client.timeout()).await?;
            write_line(&mut out, &format!("paused trigger {:?}", a.name))?;
        }
        TriggerCommand::Resume(a) => {
            trigger::set_paused(&a.client.connect()?, &a.name, false, a.client.timeout()).await?;
            write_line(&mut out, &format!("resumed trigger {:?}", a.name))?;
        }
        TriggerCommand::Delete(a) => {
            trigger::delete(&a.client.connect()?, &a.name, a.client.timeout()).await?;
            write_line(&mut out, &format!("deleted trigger {:?}", a.name))?;
        }
        TriggerCommand::Redrive(a) => {
            let conn = Arc::new(a.client.connect()?);
            let t = trigger::get(&conn, &a.name, a.client.timeout()).await?;
            let settings = paxlog_client::runner::Settings::from_wire(&t);
            let summary = paxlog_client::runner::redrive::redrive(conn, &settings).await?;
            let text = if a.client.json {
                serde_json::to_string(&summary).unwrap_or_default()
            } else {
                format!(
                    "redrove {} dead letters of {:?}: {} processed, {} failed again and are back in {}",
                    summary.read,
                    a.name,
                    summary.succeeded,
                    summary.dead_again,
                    settings.dead_letter_topic
                )
            };
            write_line(&mut out, &text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn runner(args: RunnerArgs) -> Result<ExitCode, Error> {
    let brokers = paxlog_client::parse_brokers(&args.brokers)?;
    let conn = Arc::new(Connection::secured(
        brokers,
        ConnectOptions::default(),
        args.security.security()?,
    )?);
    let id = args.id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("runner-{}-{}", host.trim(), std::process::id())
    });
    let mut signals = Signals::install()?;
    eprintln!("paxlog: runner {id} started; Ctrl-C stops it after the calls in flight");
    let opts = paxlog_client::runner::RunnerOptions {
        id,
        metrics_addr: args.metrics,
        only: args.only,
    };
    paxlog_client::runner::run(conn, opts, signals.recv_any()).await?;
    eprintln!("paxlog: runner stopped");
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> Result<ExitCode, Error> {
    let brokers = paxlog_client::parse_brokers(&args.brokers)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    // Each attempt gets the per-broker limit; each request may try every broker once.
    let security = args.security.security()?;
    let conn = Connection::secured(
        brokers.clone(),
        ConnectOptions {
            connect_timeout: timeout,
            read_timeout: timeout,
            ..ConnectOptions::default()
        },
        security.clone(),
    )?;
    let budget = timeout.saturating_mul(u32::try_from(brokers.len()).unwrap_or(u32::MAX));
    let (mut report, cluster) = tokio::join!(
        status::check_brokers(&brokers, timeout, &security),
        status::cluster_view(&conn, budget)
    );
    report.cluster = cluster;
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

#[cfg(test)]
mod tests;
