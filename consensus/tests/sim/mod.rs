//! A deterministic simulation of a paxlog consensus group, for `tests/simulation.rs`.
//!
//! ```text
//!   seed ─► ChaCha8Rng ─┬─► faults (crash mid-Ready, restart, partition, heal, compact)
//!                       ├─► network (delay, reorder, drop, duplicate, replay, blocked links)
//!                       ├─► clients (propose, follow NotLeader hints, retry)
//!                       └─► ticks ──► Replica ─► Ready ─► driver ─► checker, every step
//! ```
//!
//! One module per concept: `params` (the knobs), `network`, `node` (replica, storage,
//! application, crash and restart), `app` (the state machine and its snapshots), `client`,
//! `cluster` (state and steps), `driver` (executing `Ready`s per the contract), `faults`,
//! `checker` (the invariants), `trace` (recent events), `run` (phases, liveness bound,
//! failure report), `script` (scripted control for the named scenarios).

pub mod app;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod driver;
pub mod faults;
pub mod network;
pub mod node;
pub mod params;
pub mod run;
pub mod script;
pub mod trace;

pub use cluster::{Cluster, Stats};
pub use params::Params;
pub use run::run;
