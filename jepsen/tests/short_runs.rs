//! CI's short harness runs: for a few seeds, a fresh three-node cluster, the queue workload
//! (two idempotent producers, two group consumers committing and crashing), a seeded mix of
//! kill -9 and SIGSTOP faults (one node, a minority, a majority, all), the final read and
//! the checker: no anomaly of any kind, with enough acknowledged writes and faults for that
//! to mean something; and the same harness catches a planted consensus bug. Longer runs:
//! `paxlog-jepsen run` (see the README).

use paxlog_jepsen::run::{Nemesis, RunConfig, run};
use std::net::TcpListener;
use std::time::Duration;

/// A base port P with P..P+2 and P+2000..P+2002 free, below the ephemeral range.
fn free_base_port(salt: u32) -> u16 {
    let start = 12_000 + ((std::process::id() + salt * 997) % 2_000) as u16 * 3;
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

fn broker_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join("paxlog-broker"))
        .filter(|p| p.is_file())
        .expect("paxlog-broker is built by `cargo test --workspace`")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_runs_under_kill_and_pause_find_no_anomalies() {
    let broker_bin = broker_bin();
    for seed in [1, 2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = RunConfig {
            nodes: 3,
            time: Duration::from_secs(20),
            nemesis: vec![Nemesis::Kill, Nemesis::Pause],
            seed,
            dir: dir.path().to_path_buf(),
            broker_bin: broker_bin.clone(),
            base_port: free_base_port(seed as u32),
            planted_bug: None,
            network: false,
        };
        let report = run(&cfg)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        eprint!("{}", report.to_text());
        assert!(report.clean(), "seed {seed}:\n{}", report.to_text());
        assert!(
            report.sends_ok >= 100,
            "seed {seed}: too few writes to mean anything"
        );
        assert!(
            !report.faults.is_empty(),
            "seed {seed}: no fault was injected"
        );
        assert!(
            report.leader_changes >= 4,
            "seed {seed}: the 4 partitions had leaders: {}",
            report.leader_changes
        );
        assert!(
            report.polls > 0 && report.commits_ok > 0,
            "seed {seed}: consumers idle"
        );
        let history = std::fs::read_to_string(dir.path().join("history.jsonl")).expect("history");
        assert!(history.lines().count() > report.sends_ok);
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html");
        assert!(html.contains("<svg") && html.contains("No anomalies"));
    }
}

/// The harness is only worth its "no anomalies" if it sees real bugs: with new leaders
/// that skip phase-1 value recovery (planted through `PAXLOG_PLANTED_BUG`), leader kills
/// make decided writes vanish or collide, and the checker says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_consensus_bug_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RunConfig {
        nodes: 3,
        time: Duration::from_secs(20),
        nemesis: vec![Nemesis::Kill],
        seed: 1,
        dir: dir.path().to_path_buf(),
        broker_bin: broker_bin(),
        base_port: free_base_port(7),
        planted_bug: Some("skip-recovery".into()),
        network: false,
    };
    let report = run(&cfg).await.expect("run");
    eprint!("{}", report.to_text());
    let found: Vec<&str> = report
        .anomalies
        .iter()
        .map(|a| a.invariant.as_str())
        .collect();
    assert!(
        found
            .iter()
            .any(|i| ["lost", "inconsistent_offsets", "duplicate"].contains(i)),
        "the planted bug went unnoticed:\n{}",
        report.to_text()
    );
}

/// As root (where network namespaces can be made), each broker gets its own namespace and
/// network partitions (a node or a minority cut off) join the kills: still no anomaly.
/// Elsewhere the test says why it did nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_partitions_in_namespaces_find_no_anomalies() {
    if !paxlog_jepsen::net::Net::available() {
        eprintln!(
            "skipped: network namespaces, veth pairs and bridges need root (and a sandbox that allows them)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RunConfig {
        nodes: 3,
        time: Duration::from_secs(20),
        nemesis: vec![Nemesis::Partition, Nemesis::Kill],
        seed: 4,
        dir: dir.path().to_path_buf(),
        broker_bin: broker_bin(),
        base_port: free_base_port(11),
        planted_bug: None,
        network: true,
    };
    let report = run(&cfg).await.unwrap_or_else(|e| panic!("{e}"));
    eprint!("{}", report.to_text());
    assert!(report.clean(), "{}", report.to_text());
    assert!(
        report.faults.iter().any(|f| f.kind == Nemesis::Partition),
        "no partition was made:\n{}",
        report.to_text()
    );
}
