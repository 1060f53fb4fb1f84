//! # paxlog-benches
//!
//! Benchmarks of paxlog. This crate holds the pieces the benchmark programs share; the
//! criterion micro-benchmarks live in `benches/` (`cargo bench -p paxlog-benches`).
//!
//! ```text
//!   criterion ─► MemCluster (3 replicas, in-memory storage, instant network)
//!                   propose ─► ready ─► persist ─► deliver ─► ... ─► decided
//! ```

#![deny(missing_docs)]

pub mod memcluster;
