//! paxlog's client side: the Rust SDK ([`Client`], [`Producer`], [`Consumer`], [`Admin`])
//! and the `paxlog` command-line tool built on it.
//!
//! ```text
//!   paxlog cluster up ──▶ cluster::LocalCluster ──spawns──▶ paxlog-broker × N
//!                                 │                              ▲
//!                                 └── health::check ─────────────┤ grpc.health.v1
//!   paxlog status ──────▶ status::check_brokers ──▶ health::check┘
//!                    └──▶ status::cluster_view ─┐
//!   paxlog topic ───────▶ cli::topic ───────────┤
//!   paxlog produce ─────▶ cli::produce ─────────┼─▶ connection::Connection::call_leader
//!   paxlog consume ─────▶ cli::consume ─────────┘     (leader routing, hints, backoff)
//! ```
//!
//! Output meant for people and, with `--json`, for programs; see [`status`] and [`cli`].

#![deny(missing_docs)]

pub mod cli;
pub mod client;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod health;
pub mod partitioner;
pub mod producer;
pub mod runner;
pub mod security;
pub mod status;

pub use client::{Admin, Client};
pub use consumer::{ConsumedRecord, Consumer, ConsumerConfig, OffsetReset, Position};
pub use error::Error;
pub use producer::{
    Compression, Delivered, DeliveryFuture, Producer, ProducerConfig, ProducerRecord,
};
pub use security::Security;

/// First gRPC port of the local cluster; node `n` listens on `DEFAULT_BASE_PORT + n - 1`.
pub const DEFAULT_BASE_PORT: u16 = 7001;
/// Nodes in the local cluster: three, the smallest cluster that survives a failure.
pub const DEFAULT_NODES: u16 = 3;
/// Metrics ports are gRPC ports plus this offset (7001 → 9001), as the broker's default.
pub const METRICS_PORT_OFFSET: u16 = 2000;
/// The brokers `paxlog status` and other commands talk to when `--brokers` is not given:
/// the default local cluster.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

/// Splits a `host:port,host:port` list, ignoring spaces and empty items.
pub fn parse_brokers(list: &str) -> Result<Vec<String>, Error> {
    let brokers: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect();
    if brokers.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "--brokers {list:?} names no broker; expected host:port[,host:port...]"
        )));
    }
    if let Some(bad) = brokers.iter().find(|b| {
        b.rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    }) {
        return Err(Error::InvalidArgument(format!(
            "--brokers: {bad:?} is not host:port (e.g. 127.0.0.1:7001)"
        )));
    }
    Ok(brokers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_lists() {
        let brokers = parse_brokers(DEFAULT_BROKERS).expect("default list");
        assert_eq!(
            brokers,
            ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
        );
        assert_eq!(
            parse_brokers(" a:1 , b:2,").expect("spaces"),
            ["a:1", "b:2"]
        );
        assert!(parse_brokers(" , ").is_err());
        assert!(parse_brokers("a:1,b").is_err());
    }
}
