//! # paxlog-jepsen
//!
//! The fault-injection harness (issue E): real broker processes in network namespaces, a
//! nemesis (kill, pause, partitions, latency, disk faults), workloads that record a history,
//! and a checker with one invariant per file.
//!
//! ```text
//!   cluster control ─► brokers ◄─ nemesis (faults)
//!         ▲                 ▲
//!   workloads (SDK) ── history ─► checker ─► report (text + HTML)
//! ```
//!
//! Here so far: the [`history`] format (JSON lines of invoke/ok/fail/info operations) and
//! the [`checker`] (one invariant per file, validated on hand-made histories). Cluster
//! control, the nemesis, workloads and reports come next; meanwhile
//! `broker/tests/cluster/` kills, restarts and corrupts real brokers, and
//! `consensus/tests/simulation.rs` checks the protocol under simulated faults.

pub mod checker;
pub mod history;
