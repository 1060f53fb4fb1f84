//! The broker's error type, and its one conversion into a gRPC status.
//!
//! [`Error`] splits what a caller can act on (a request this build cannot serve yet, a
//! refused peer stream, later not-leader and friends) from [`Fatal`]: errors after which this node cannot go on (bad
//! configuration, a data directory of another node, a storage failure).

use crate::config::{ConfigError, NodeId};
use crate::transport::PeerRejected;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Any error of the broker crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RPC exists in the wire contract but this build does not serve it yet.
    #[error(
        "{rpc} is not implemented yet in this build (issue B); only grpc.health.v1, server reflection and the peer service are served"
    )]
    NotImplemented {
        /// Full method name, e.g. `paxlog.v1.Producer/Publish`.
        rpc: &'static str,
    },
    /// A peer's `Peer/Stream` was refused; see [`PeerRejected`].
    #[error(transparent)]
    PeerRejected(#[from] PeerRejected),
    /// The node cannot go on; see [`Fatal`].
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Errors that stop the node (at start, or a storage failure while running).
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The data directory was initialised by another node.
    #[error(
        "data directory {} belongs to node {found}, not node {expected}: start it with --id {found}, or give node {expected} its own --data-dir",
        data_dir.display()
    )]
    WrongNode {
        /// The data directory.
        data_dir: PathBuf,
        /// The node id stored in it.
        found: NodeId,
        /// The node id this process was started with.
        expected: NodeId,
    },
    /// The data directory was written by a newer, incompatible build.
    #[error(
        "data directory {} uses storage format v{found}, this build reads up to v{supported}: run a newer paxlog-broker",
        data_dir.display()
    )]
    UnsupportedFormat {
        /// The data directory.
        data_dir: PathBuf,
        /// The format version stored in it.
        found: u32,
        /// The newest format this build understands.
        supported: u32,
    },
    /// The node identity record is unreadable, or missing although data is present.
    #[error(
        "data directory {} has a damaged node identity ({reason}): restore it from a backup, or move it away to start this node empty (it then catches up from its peers)",
        data_dir.display()
    )]
    CorruptIdentity {
        /// The data directory.
        data_dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// RocksDB failed.
    #[error("storage failure while {action} in {}: {source}", data_dir.display())]
    Storage {
        /// What the broker was doing, e.g. "opening the database".
        action: &'static str,
        /// The data directory.
        data_dir: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A file system operation outside RocksDB failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What the broker tried, e.g. "create data directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listening socket could not be bound.
    #[error(
        "cannot listen for {what} on {addr}: {source} (is another process using it? pass another {flag})"
    )]
    Bind {
        /// "gRPC" or "metrics".
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The flag that sets it.
        flag: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not load the descriptors (a build defect).
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A background task panicked or was cancelled.
    #[error("{task} task failed: {source}")]
    Task {
        /// Which task.
        task: &'static str,
        /// The join error.
        source: tokio::task::JoinError,
    },
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::Fatal(Fatal::Config(err))
    }
}

/// The only mapping from broker errors to gRPC statuses; messages tell the client what to do.
impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        match err {
            Error::NotImplemented { .. } => tonic::Status::unimplemented(err.to_string()),
            Error::PeerRejected(rejected) => {
                let code = match rejected {
                    // A node outside the cluster (or a misconfigured one) is not allowed in.
                    PeerRejected::UnknownPeer { .. } => tonic::Code::PermissionDenied,
                    PeerRejected::WrongDirection { .. } | PeerRejected::BadHello { .. } => {
                        tonic::Code::InvalidArgument
                    }
                    PeerRejected::ShuttingDown { .. } => tonic::Code::Unavailable,
                };
                tonic::Status::new(code, rejected.to_string())
            }
            Error::Fatal(fatal) => tonic::Status::unavailable(format!(
                "this broker cannot serve requests ({fatal}); retry on another broker"
            )),
        }
    }
}
