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
//! Nothing is here yet; until then, `broker/tests/cluster/` kills, restarts and corrupts
//! real brokers, and `consensus/tests/simulation.rs` checks the protocol under simulated
//! faults.
