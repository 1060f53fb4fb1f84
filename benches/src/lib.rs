//! # paxlog-benches
//!
//! Benchmarks of paxlog: the load generator `paxlog-bench` ([`load`]), which drives a
//! running cluster through the SDK, `paxlog-bench calibrate` ([`calibrate`]), which
//! measures the machine's limits, and the criterion micro-benchmarks in `benches/`
//! (`cargo bench -p paxlog-benches`). `README.md` beside this crate has the commands and
//! the figures measured so far.
//!
//! ```text
//!   paxlog-bench produce|consume ─► load::{produce,consume} ─► Connection ─► cluster (gRPC)
//!                                        └─► load::stats (HDR histograms) ─► load::report
//!   paxlog-bench calibrate ─► synced appends, loopback TCP ─► limits and targets
//!   paxlog-bench failover ─► LocalCluster ─► kill -9 the leader ─► first acknowledged write
//!   criterion ─► MemCluster (3 replicas, in-memory storage, instant network)
//!                   propose ─► ready ─► persist ─► deliver ─► ... ─► decided
//! ```

#![deny(missing_docs)]

pub mod calibrate;
pub mod failover;
pub mod load;
pub mod memcluster;
pub mod plot;
