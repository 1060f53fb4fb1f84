//! The paxlog broker node.
//!
//! ```text
//!   main.rs (flags, env, file) ──▶ Config ──▶ server::run(config, shutdown)
//!                                                 │
//!            ┌────────────────────────────────────┼──────────────────────────┐
//!            ▼                                    ▼                          ▼
//!   storage::Storage (RocksDB)       gRPC on `listen`:                 HTTP on `metrics`:
//!   one instance, column families    health, reflection,               GET /metrics
//!   by purpose, node identity        paxlog.v1 services (service/)     (metrics/)
//! ```
//!
//! This build is the skeleton of the node: storage opens and guards its identity, health
//! and reflection are served, metrics are exported, and shutdown is graceful. The client
//! and peer services are registered but answer `UNIMPLEMENTED` (see [`service`]).

pub mod config;
pub mod convert;
pub mod error;
pub mod metrics;
pub mod server;
pub mod service;
pub mod storage;

pub use config::{Config, ConfigError, ConfigPatch};
pub use error::{Error, Fatal};
pub use server::{Listeners, run, run_with_listeners};
