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
//! The [`history`] format (JSON lines of invoke/ok/fail/info operations), the [`checker`]
//! (one invariant per file, validated on hand-made histories), and [`run`]: a cluster on
//! loopback or in network namespaces ([`net`]), optionally on lazy FUSE mounts that forget
//! unsynced writes ([`lazyfs`]); the queue workload (producers, group consumers with
//! commits and crashes); a seeded nemesis (kill, pause, crash losing unsynced writes,
//! partitions of every shape, netem, damaged data files); a final read of every partition,
//! of each replica's own log and of the group's committed offsets; and a report as text,
//! JSON and an HTML page with SVG plots ([`html`]). `paxlog-jepsen run` drives it.

pub mod checker;
pub mod history;
pub mod html;
pub mod lazyfs;
pub mod net;
pub mod run;
