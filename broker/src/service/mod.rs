//! The gRPC services of `paxlog.v1`.
//!
//! In this build every client RPC answers `UNIMPLEMENTED` ([`Unimplemented`]); the
//! services are registered anyway so that routing, health and reflection already show the
//! final shape of the node. The peer service is the replication transport's
//! ([`crate::transport::PeerHub::service`]).

mod stub;

pub use stub::Unimplemented;

use paxlog_proto::v1::{
    admin_server, consumer_server, groups_server, metadata_server, peer_server, producer_server,
};

/// Fully qualified names of the `paxlog.v1` services this node registers; health reports
/// each of them.
pub const SERVICE_NAMES: [&str; 6] = [
    admin_server::SERVICE_NAME,
    metadata_server::SERVICE_NAME,
    producer_server::SERVICE_NAME,
    consumer_server::SERVICE_NAME,
    groups_server::SERVICE_NAME,
    peer_server::SERVICE_NAME,
];
