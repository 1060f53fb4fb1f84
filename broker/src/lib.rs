//! The paxlog broker node.
//!
//! ```text
//!   main.rs (flags, env, file) ──▶ Config ──▶ server::run(config, shutdown)
//!                                                 │
//!            ┌──────────────────────────┬─────────┴──────────────┬──────────────────────┐
//!            ▼                          ▼                        ▼                      ▼
//!   storage::Db (RocksDB)        transport::PeerHub        gRPC on `listen`:     HTTP on `metrics`:
//!   one instance, column         one stream per peer,      health, reflection,   GET /metrics
//!   families by purpose,         batched Paxos messages    paxlog.v1 services    (metrics/)
//!   node identity                (convert/ maps the wire)  (service/, Peer from
//!                                                           the hub)
//! ```
//!
//! This build is the skeleton of the node: storage opens and guards its identity, peers
//! connect and exchange Paxos messages ([`transport`]), health and reflection are served,
//! metrics are exported, and shutdown is graceful. The client services are registered but
//! answer `UNIMPLEMENTED` (see [`service`]); no replica driver consumes peer messages yet.

pub mod config;
pub mod connections;
pub mod convert;
pub mod error;
pub mod groups;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod planted;
pub mod security;
pub mod server;
pub mod service;
pub mod storage;
pub mod transport;

pub use config::{Config, ConfigError, ConfigPatch};
pub use error::{Error, Fatal};
pub use server::{Listeners, run, run_with_listeners};
