//! Real three-node clusters: processes, RocksDB and gRPC on loopback. One file per concern;
//! `harness` runs the nodes, `client` is a careful producer and the checker.

mod bad_input;
mod catchup;
mod client;
mod corruption;
mod elect;
mod failover;
mod group_metrics;
mod groups;
mod harness;
mod idempotence;
mod limits;
mod metrics;
mod overload;
#[path = "../common/ports.rs"]
mod ports;
mod restart;
mod retention;
mod rolling;
mod routing;
mod sdk_failover;
mod security;
mod smoke;
