//! `paxlog-jepsen run`: one fault-injection run against a fresh local cluster; prints the
//! report and exits 1 when the checker found an anomaly. See `paxlog_jepsen::run`.

use clap::{Parser, Subcommand};
use paxlog_jepsen::run::{Nemesis, RunConfig, run};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// paxlog's fault-injection harness.
#[derive(Debug, Parser)]
#[command(name = "paxlog-jepsen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster, run the queue workload under faults, check the history, report.
    Run(RunArgs),
    /// Check a recorded history (history.jsonl) again and print what the checker finds.
    Check {
        /// The history file.
        history: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Brokers.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Fault kinds to mix, separated by commas: kill, pause, partition, netem (these two
    /// need --network), disk (a damaged data file on one node, then out of the run), crash
    /// (kill -9 losing unsynced writes: data directories on FUSE mounts, needs root).
    #[arg(long, value_delimiter = ',', default_value = "kill,pause")]
    nemesis: Vec<Nemesis>,
    /// Seed of the nemesis's and the workload's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The run's directory (data, node logs, history.jsonl, report.txt, report.json)
    /// [default: jepsen-runs/seed-S].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First gRPC port of the cluster (metrics on the same + 2000).
    #[arg(long, default_value_t = 23001)]
    base_port: u16,
    /// The paxlog-broker executable [default: next to this one].
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Plant a bug in the brokers to see the harness catch it: skip-recovery (new leaders
    /// ignore the values their phase-1 quorum accepted) or no-dedup (partition leaders
    /// write an idempotent producer's retried batch again) or no-fsync (writes are
    /// acknowledged without an fsync; caught with the crash fault).
    #[arg(long, value_name = "BUG")]
    planted_bug: Option<String>,
    /// Run each broker in its own network namespace (needs root; enables partition and
    /// netem faults).
    #[arg(long)]
    network: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Run(args) => args,
        Command::Check { history } => return check(&history),
    };
    let broker_bin = match paxlog_client::cluster::locate_broker_binary(args.broker_bin) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("paxlog-jepsen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = RunConfig {
        nodes: args.nodes,
        time: Duration::from_secs(args.time),
        nemesis: args.nemesis,
        seed: args.seed,
        dir: args
            .dir
            .unwrap_or_else(|| PathBuf::from(format!("jepsen-runs/seed-{}", args.seed))),
        broker_bin,
        base_port: args.base_port,
        planted_bug: args.planted_bug,
        network: args.network,
    };
    match run(&cfg).await {
        Ok(report) => {
            print!("{}", report.to_text());
            println!("history and reports in {}", cfg.dir.display());
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!(
                "paxlog-jepsen: the run failed: {e} (node logs in {})",
                cfg.dir.join("data").display()
            );
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let history = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| paxlog_jepsen::history::History::read(std::io::BufReader::new(f)));
    let history = match history {
        Ok(h) => h,
        Err(e) => {
            eprintln!("paxlog-jepsen: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let violations = paxlog_jepsen::checker::check(&history);
    println!(
        "{} operations checked in {:.2?}: {} violations",
        history.ops.len(),
        started.elapsed(),
        violations.len()
    );
    for v in violations.iter().take(20) {
        println!("  {}: {}", v.invariant, v.description);
    }
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
