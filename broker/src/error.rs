//! The broker's error type, and its one conversion into a gRPC status.
//!
//! [`Error`] splits what a caller can act on (a request this build cannot serve yet, a
//! refused peer stream, later not-leader and friends) from [`Fatal`]: errors after which this node cannot go on (bad
//! configuration, a data directory of another node, a storage failure).

use crate::config::{ConfigError, NodeId};
use crate::storage::StorageError;
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
    /// Reading or writing one group's data failed: the request cannot be served by this
    /// replica (corrupt data, an offset out of range, a RocksDB failure).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A peer's `Peer/Stream` was refused; see [`PeerRejected`].
    #[error(transparent)]
    PeerRejected(#[from] PeerRejected),
    /// The node cannot go on; see [`Fatal`].
    #[error(transparent)]
    Fatal(#[from] Fatal),
    /// This broker does not lead the partition (or the metadata group).
    #[error(
        "this broker is not the leader{}; retry on the leader",
        leader_text(leader)
    )]
    NotLeader {
        /// The leader, if known: node id and address.
        leader: Option<(NodeId, String)>,
    },
    /// This broker does not coordinate the consumer group.
    #[error(
        "this broker does not coordinate the group{}; retry on the coordinator",
        leader_text(coordinator)
    )]
    NotCoordinator {
        /// The coordinator, if known: node id and address.
        coordinator: Option<(NodeId, String)>,
    },
    /// A consumer group request was refused.
    #[error(transparent)]
    Group(#[from] crate::groups::GroupError),
    /// No topic of that name.
    #[error("unknown topic {0:?}: create it first (paxlog topic create {0})")]
    UnknownTopic(String),
    /// No such partition.
    #[error("topic {topic:?} has partitions 0 to {} only; partition {partition} does not exist", count.saturating_sub(1))]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition asked for.
        partition: u32,
        /// Partitions the topic has.
        count: u32,
    },
    /// A metadata command was refused.
    #[error(transparent)]
    Meta(#[from] crate::metadata::MetaError),
    /// A record exceeds the configured limit.
    #[error(
        "record {index} is {size} bytes, above this broker's limit of {max} bytes (max_record_bytes): split it or raise the limit"
    )]
    RecordTooLarge {
        /// Position in the request.
        index: usize,
        /// Its size: key, value, header names and values.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The offset is outside the partition's stored range.
    #[error(
        "offset {offset} is out of range: the partition holds offsets {start} to {end} (exclusive); fetch from within, e.g. from {start}"
    )]
    OffsetOutOfRange {
        /// Asked for.
        offset: u64,
        /// First stored offset.
        start: u64,
        /// The high watermark.
        end: u64,
    },
    /// Too many writes in flight.
    #[error("the partition leader is busy with too many writes in flight: retry with backoff")]
    Busy,
    /// A budget of publish bytes awaiting consensus (the node's or one partition's) is
    /// used up.
    #[error(
        "{scope} holds {held} bytes of publishes awaiting consensus, its budget ({setting} = {budget}); this one needs {wanted} more: retry with backoff"
    )]
    Overloaded {
        /// "this broker" or "this partition".
        scope: &'static str,
        /// The setting that sets the budget.
        setting: &'static str,
        /// Bytes held now.
        held: u64,
        /// The budget.
        budget: u64,
        /// This publish's bytes.
        wanted: u64,
    },
    /// A new partition leader cannot check idempotent sequences yet.
    #[error(
        "the partition's new leader is still applying what earlier leaders wrote: retry in a moment"
    )]
    Recovering,
    /// An idempotent batch was refused.
    #[error(transparent)]
    Producer(#[from] crate::partition::producers::ProducerError),
    /// Leadership changed before the write was decided.
    #[error(
        "leadership changed before the write was decided: it may or may not be stored; retry (an idempotent producer makes the retry safe)"
    )]
    OutcomeUnknown,
    /// The request did not complete in time.
    #[error(
        "timed out after {0} ms waiting for a majority of replicas: the write may or may not be stored; retry"
    )]
    Timeout(u64),
    /// The replica of this partition stopped on this broker.
    #[error("this broker's replica of the partition stopped ({0}); use another replica")]
    ReplicaStopped(String),
    /// The broker is shutting down.
    #[error("the broker is shutting down: retry on another broker")]
    ShuttingDown,
    /// A leadership transfer gave up: the target did not catch up in time.
    #[error(
        "node {0} did not catch up in time to take over the partition's leadership (is it running and connected?); the leadership stays where it was, retry later"
    )]
    HandOverGaveUp(NodeId),
    /// The caller sent no token, or one this broker does not know (see
    /// [`crate::security::auth`]).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's token lacks the permission the call needs.
    #[error("{0}")]
    PermissionDenied(String),
}

fn leader_text(leader: &Option<(NodeId, String)>) -> String {
    match leader {
        Some((id, addr)) => format!(" (leader: node {id} at {addr})"),
        None => " (no leader is known yet: an election may be under way)".to_owned(),
    }
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
        "data directory {} has a damaged node identity ({reason}): restore it from a backup or replace the node; do not start this node empty under the same id (it would forget the promises its replicas made, which Paxos relies on)",
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
    /// Replication could not go on (a storage failure in the replica driver).
    #[error("replication stopped: {0}")]
    Replication(String),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] crate::security::TlsError),
    /// The auth file is unusable.
    #[error(transparent)]
    Auth(#[from] crate::security::auth::AuthFileError),
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
///
/// Besides the status code and message, every status carries a `paxlog.v1.Error` in its
/// details (the stable numeric code, and the leader's address where it helps), so clients
/// can act on the code without parsing messages.
impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use crate::metadata::MetaError as M;
        use paxlog_proto::v1::ErrorCode as C;
        use tonic::Code;
        let message = err.to_string();
        let (code, wire, leader) = match &err {
            Error::NotImplemented { .. } => (Code::Unimplemented, C::Unspecified, None),
            // A node outside the cluster (or a misconfigured one) is not let in.
            Error::PeerRejected(PeerRejected::UnknownPeer { .. }) => {
                (Code::PermissionDenied, C::InvalidRequest, None)
            }
            Error::PeerRejected(
                PeerRejected::WrongDirection { .. } | PeerRejected::BadHello { .. },
            ) => (Code::InvalidArgument, C::InvalidRequest, None),
            Error::PeerRejected(PeerRejected::ShuttingDown { .. }) => {
                (Code::Unavailable, C::Unspecified, None)
            }
            Error::Fatal(_) => (Code::Unavailable, C::StorageFatal, None),
            Error::NotLeader { leader } => (Code::FailedPrecondition, C::NotLeader, leader.clone()),
            Error::NotCoordinator { coordinator } => (
                Code::FailedPrecondition,
                C::NotCoordinator,
                coordinator.clone(),
            ),
            Error::Group(e) => {
                use crate::groups::GroupError as G;
                match e {
                    G::InvalidName(_) => (Code::InvalidArgument, C::InvalidName, None),
                    G::UnknownMember(_) => (Code::FailedPrecondition, C::UnknownMember, None),
                    G::StaleGeneration { .. } | G::NotOwner { .. } => {
                        (Code::FailedPrecondition, C::StaleGeneration, None)
                    }
                    G::Rebalancing(_) => (Code::FailedPrecondition, C::RebalanceInProgress, None),
                    G::GroupActive(_) => (Code::FailedPrecondition, C::RebalanceInProgress, None),
                    G::UnknownGroup(_) => (Code::NotFound, C::UnknownGroup, None),
                    G::Invalid(_) => (Code::InvalidArgument, C::InvalidRequest, None),
                }
            }
            Error::UnknownTopic(_) | Error::Meta(M::UnknownTopic(_)) => {
                (Code::NotFound, C::UnknownTopic, None)
            }
            Error::UnknownPartition { .. } => (Code::NotFound, C::UnknownPartition, None),
            Error::Meta(M::InvalidName(_)) => (Code::InvalidArgument, C::InvalidName, None),
            Error::Meta(M::TopicExists(_)) => (Code::AlreadyExists, C::TopicExists, None),
            Error::Meta(
                M::InvalidPartitions(_) | M::InvalidReplication { .. } | M::InvalidConfig(_),
            ) => (Code::InvalidArgument, C::InvalidConfig, None),
            Error::Meta(M::UnknownProducer(_)) => (Code::NotFound, C::UnknownProducer, None),
            Error::Meta(M::InvalidTrigger(_)) => (Code::InvalidArgument, C::InvalidConfig, None),
            Error::Meta(M::TriggerExists(_)) => (Code::AlreadyExists, C::TriggerExists, None),
            Error::Meta(M::UnknownTrigger(_)) => (Code::NotFound, C::UnknownTrigger, None),
            Error::Meta(M::TopicInUse { .. }) => {
                (Code::FailedPrecondition, C::InvalidRequest, None)
            }
            Error::Producer(e) => {
                use crate::partition::producers::ProducerError as P;
                match e {
                    P::Fenced { .. } => (Code::FailedPrecondition, C::ProducerFenced, None),
                    P::OutOfOrder { .. } => (Code::FailedPrecondition, C::OutOfOrderSequence, None),
                    P::Overlap { .. } => (Code::InvalidArgument, C::OutOfOrderSequence, None),
                    P::Duplicate { .. } => (Code::AlreadyExists, C::DuplicateSequence, None),
                    P::Unknown { .. } => (Code::FailedPrecondition, C::UnknownProducer, None),
                }
            }
            Error::Recovering => (Code::Unavailable, C::Throttled, None),
            Error::RecordTooLarge { .. } => (Code::InvalidArgument, C::RecordTooLarge, None),
            Error::InvalidRequest(_) => (Code::InvalidArgument, C::InvalidRequest, None),
            Error::OffsetOutOfRange { .. }
            | Error::Storage(StorageError::OffsetOutOfRange { .. }) => {
                (Code::OutOfRange, C::OffsetOutOfRange, None)
            }
            Error::Storage(e) if e.is_corruption() => (Code::Unavailable, C::CorruptData, None),
            Error::Storage(_) => (Code::Unavailable, C::StorageFatal, None),
            Error::Busy | Error::Overloaded { .. } => (Code::Unavailable, C::Throttled, None),
            Error::OutcomeUnknown => (Code::Unavailable, C::NotLeader, None),
            Error::Timeout(_) => (Code::DeadlineExceeded, C::Timeout, None),
            Error::ReplicaStopped(_) => (Code::Unavailable, C::CorruptData, None),
            Error::ShuttingDown => (Code::Unavailable, C::Unspecified, None),
            Error::HandOverGaveUp(_) => (Code::Unavailable, C::Throttled, None),
            Error::Unauthenticated(_) => (Code::Unauthenticated, C::Unauthenticated, None),
            Error::PermissionDenied(_) => (Code::PermissionDenied, C::PermissionDenied, None),
        };
        let detail = paxlog_proto::v1::Error {
            code: wire as i32,
            message: message.clone(),
            leader: leader
                .map(|(node_id, address)| paxlog_proto::v1::LeaderHint { node_id, address }),
        };
        let details = prost::Message::encode_to_vec(&detail);
        tonic::Status::with_details(code, message, details.into())
    }
}
