//! The client crate's error types: [`Error`] for everything a command or the SDK reports,
//! and [`ServerError`], the one decoding of a broker's gRPC status (code, stable
//! [`ErrorCode`], message, leader hint) that retries and messages are based on.

use paxlog_proto::v1::{self as pb, ErrorCode};
use prost::Message;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of the `paxlog` commands; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The broker binary is not where it was looked for.
    #[error("cannot find the broker binary at {}: build it with `cargo build --workspace` (it lands next to `paxlog`), or pass --broker-bin PATH", path.display())]
    BrokerBinaryNotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was tried, e.g. "create data directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A broker process could not be started.
    #[error("cannot start node {node} ({}): {source}", binary.display())]
    Spawn {
        /// The node.
        node: u64,
        /// The broker binary.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node did not report SERVING in time.
    #[error("node {node} at {address} did not become SERVING within {waited:?}; see its log {}", log.display())]
    NotReady {
        /// The node.
        node: u64,
        /// Its gRPC address.
        address: String,
        /// How long we waited.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
    },
    /// A node process exited while the cluster was supposed to run.
    #[error("node {node} exited unexpectedly ({status}); last lines of {}:\n{tail}", log.display())]
    NodeExited {
        /// The node.
        node: u64,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Some nodes did not stop cleanly (they were killed, or exited with an error).
    #[error("nodes did not stop cleanly: {0}; see their logs")]
    UncleanStop(String),
    /// A signal arrived before the cluster was up; the nodes were stopped.
    #[error("interrupted by {0} while starting; all nodes were stopped")]
    Interrupted(&'static str),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A broker refused the request for a reason retrying does not fix (unknown topic,
    /// invalid name, ...), or reported a failure the client does not retry.
    #[error("{what}: {error}")]
    Server {
        /// What was asked, e.g. `create topic "orders"`.
        what: String,
        /// What the broker (or the transport) said (boxed: keeps `Result<_, Error>` small).
        error: Box<ServerError>,
    },
    /// Retries did not succeed before the caller's deadline.
    #[error(
        "gave up on {what} after {attempts} attempt(s) in {elapsed:.1?}; last failure (at {address}): {last}"
    )]
    GaveUp {
        /// What was asked.
        what: String,
        /// Requests sent (or tried) in all.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The broker of the last attempt (`-` when none could be chosen).
        address: String,
        /// The last failure.
        last: Box<ServerError>,
    },
    /// A write may or may not have been stored: the leader changed, or no answer came, after
    /// the request was sent. Retrying could store it twice, so the client reports it instead.
    #[error(
        "{what}: outcome unknown, the write may or may not have been stored ({last}); check (e.g. with `paxlog consume`) before retrying"
    )]
    OutcomeUnknown {
        /// What was asked.
        what: String,
        /// The failure that left the outcome open.
        last: Box<ServerError>,
    },
    /// A command failed part-way; `done` says what had been done before.
    #[error("{error}; {done}")]
    Incomplete {
        /// What was done before the failure, e.g. "40 records were written before it".
        done: String,
        /// The failure.
        error: Box<Error>,
    },
    /// Reading input or writing output failed.
    #[error("cannot {action}: {source}")]
    Stream {
        /// What was tried, e.g. "read stdin".
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The broker's stable code, when the error is a broker's refusal ([`Error::Server`]).
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// Names what was asked (e.g. `create topic "orders"`) in the errors that say so:
    /// [`Error::Server`], [`Error::GaveUp`] and [`Error::OutcomeUnknown`].
    pub fn with_what(mut self, what: impl Into<String>) -> Error {
        if let Error::Server { what: w, .. }
        | Error::GaveUp { what: w, .. }
        | Error::OutcomeUnknown { what: w, .. } = &mut self
        {
            *w = what.into();
        }
        self
    }

    /// The broker's error behind this one, if a broker (or the transport) reported it.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server { error, .. } => Some(error),
            Error::GaveUp { last, .. } | Error::OutcomeUnknown { last, .. } => Some(last),
            Error::Incomplete { error, .. } => error.server_error(),
            _ => None,
        }
    }
}

/// Where to send a request instead, as a broker named it with NOT_LEADER or NOT_COORDINATOR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's node id (0 if the broker did not say).
    pub node_id: u64,
    /// The leader's gRPC address, `host:port`.
    pub address: String,
}

/// A failure as a broker reported it, or as the transport on the way to it did, decoded once
/// from a gRPC [`tonic::Status`] (with a `paxlog.v1.Error` in its details) or from the
/// `error` field of a response. Retry decisions and error messages are based on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ServerError {
    /// The gRPC status code; `Ok` when the error came inside a successful response.
    pub grpc: tonic::Code,
    /// paxlog's stable code; `Unspecified` when the status carried none (transport failures).
    pub code: ErrorCode,
    /// What happened and what to do, as the broker wrote it (or the transport's reason).
    pub message: String,
    /// Who leads instead, with NOT_LEADER or NOT_COORDINATOR, when the broker knows.
    pub leader: Option<LeaderHint>,
    /// No connection could be made: the request never left this client, so even a write
    /// may be retried elsewhere.
    pub unsent: bool,
}

impl ServerError {
    /// Decodes a status: its `paxlog.v1.Error` details if any (undecodable details are
    /// reported in the message, not dropped), and whether it is a failure to connect.
    pub fn from_status(status: &tonic::Status) -> ServerError {
        let unsent = source_chain(status).any(|e| e.is::<tonic::ConnectError>());
        let detail = (!status.details().is_empty()).then(|| pb::Error::decode(status.details()));
        let mut error = match detail {
            Some(Ok(detail)) => ServerError::from_wire(status.code(), detail),
            Some(Err(err)) => ServerError::plain(
                status.code(),
                format!("{} (undecodable error details: {err})", status.message()),
            ),
            None => ServerError::plain(status.code(), with_causes(status)),
        };
        if error.message.is_empty() {
            error.message = status.message().to_owned();
        }
        error.unsent = unsent;
        error
    }

    /// Decodes a `paxlog.v1.Error` that came with gRPC code `grpc` (`Ok` when it was a
    /// response's `error` field). Codes this build does not know become `Unspecified`.
    pub fn from_wire(grpc: tonic::Code, error: pb::Error) -> ServerError {
        let code = ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified);
        let leader = error
            .leader
            .filter(|hint| !hint.address.is_empty())
            .map(|hint| LeaderHint {
                node_id: hint.node_id,
                address: hint.address,
            });
        ServerError {
            grpc,
            code,
            message: error.message,
            leader,
            unsent: false,
        }
    }

    /// An error without a paxlog code (transport failures, local timeouts).
    pub fn plain(grpc: tonic::Code, message: impl Into<String>) -> ServerError {
        ServerError {
            grpc,
            code: ErrorCode::Unspecified,
            message: message.into(),
            leader: None,
            unsent: false,
        }
    }

    /// An error the client itself detected with a paxlog code, e.g. an unknown partition.
    pub fn local(grpc: tonic::Code, code: ErrorCode, message: impl Into<String>) -> ServerError {
        ServerError {
            code,
            ..ServerError::plain(grpc, message)
        }
    }

    /// Whether the broker said it is not the leader (or coordinator) for this request.
    pub fn is_not_leader(&self) -> bool {
        matches!(self.code, ErrorCode::NotLeader | ErrorCode::NotCoordinator)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = if self.message.is_empty() {
            "no message"
        } else {
            self.message.as_str()
        };
        if self.code == ErrorCode::Unspecified {
            write!(f, "{message} [gRPC {:?}]", self.grpc)
        } else {
            write!(f, "{message} [{}]", code_name(self.code))
        }
    }
}

/// The stable name of a code as people see it: `NOT_LEADER` for `ERROR_CODE_NOT_LEADER`.
pub fn code_name(code: ErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("ERROR_CODE_").unwrap_or(name)
}

/// The errors under a status (tonic keeps the transport error as its source).
fn source_chain(
    status: &tonic::Status,
) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(status), |e| e.source())
}

/// A status message with its causes, `outer: inner: root`: tonic's outer messages alone
/// ("transport error") do not say what happened.
fn with_causes(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    for cause in source_chain(status) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = if text.is_empty() {
                cause
            } else {
                format!("{text}: {cause}")
            };
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn status_with(code: Code, message: &str, detail: &pb::Error) -> Status {
        Status::with_details(code, message, detail.encode_to_vec().into())
    }

    #[test]
    fn not_leader_status_decodes_code_message_and_hint() {
        let detail = pb::Error {
            code: ErrorCode::NotLeader as i32,
            message: "this broker is not the leader (leader: node 2 at 127.0.0.1:7002); retry on the leader".into(),
            leader: Some(pb::LeaderHint {
                node_id: 2,
                address: "127.0.0.1:7002".into(),
            }),
        };
        let status = status_with(Code::FailedPrecondition, &detail.message, &detail);
        let error = ServerError::from_status(&status);
        assert_eq!(
            error,
            ServerError {
                grpc: Code::FailedPrecondition,
                code: ErrorCode::NotLeader,
                message: detail.message.clone(),
                leader: Some(LeaderHint {
                    node_id: 2,
                    address: "127.0.0.1:7002".into()
                }),
                unsent: false,
            }
        );
        assert!(error.is_not_leader());
        assert_eq!(
            error.to_string(),
            format!("{} [NOT_LEADER]", detail.message)
        );
    }

    #[test]
    fn hint_without_address_means_no_hint() {
        let detail = pb::Error {
            code: ErrorCode::NotLeader as i32,
            message: "no leader is known yet".into(),
            leader: Some(pb::LeaderHint {
                node_id: 0,
                address: String::new(),
            }),
        };
        let error = ServerError::from_status(&status_with(Code::Unavailable, "x", &detail));
        assert_eq!(error.leader, None);
        assert_eq!(error.grpc, Code::Unavailable);
        // The details' message is the one kept; the status message is a fallback.
        assert_eq!(error.message, "no leader is known yet");
    }

    #[test]
    fn status_without_details_keeps_grpc_code_and_message() {
        let error =
            ServerError::from_status(&Status::unimplemented("Publish is not implemented yet"));
        assert_eq!(error.code, ErrorCode::Unspecified);
        assert_eq!(error.grpc, Code::Unimplemented);
        assert_eq!(error.message, "Publish is not implemented yet");
        assert_eq!(
            error.to_string(),
            "Publish is not implemented yet [gRPC Unimplemented]"
        );
    }

    #[test]
    fn bad_or_newer_details_are_reported_not_dropped() {
        let status = Status::with_details(Code::Internal, "boom", vec![0xff, 0xff, 0xff].into());
        let error = ServerError::from_status(&status);
        assert_eq!(error.code, ErrorCode::Unspecified);
        assert!(
            error.message.starts_with("boom (undecodable error details"),
            "{error}"
        );

        let newer = pb::Error {
            code: 999,
            message: "a code from a newer broker".into(),
            leader: None,
        };
        let error = ServerError::from_status(&status_with(Code::Aborted, "", &newer));
        assert_eq!(error.code, ErrorCode::Unspecified);
        assert_eq!(error.message, "a code from a newer broker");
    }

    #[test]
    fn response_error_fields_decode_like_statuses() {
        let wire = pb::Error {
            code: ErrorCode::UnknownTopic as i32,
            message: "unknown topic \"x\": create it first".into(),
            leader: None,
        };
        let error = ServerError::from_wire(Code::Ok, wire);
        assert_eq!(error.code, ErrorCode::UnknownTopic);
        assert_eq!(code_name(error.code), "UNKNOWN_TOPIC");
        assert_eq!(
            error.to_string(),
            "unknown topic \"x\": create it first [UNKNOWN_TOPIC]"
        );
    }

    #[tokio::test]
    async fn refused_connections_are_unsent() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port")
            .port();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect_lazy();
        let status = pb::metadata_client::MetadataClient::new(channel)
            .get_metadata(pb::GetMetadataRequest::default())
            .await
            .expect_err("nothing listens");
        let error = ServerError::from_status(&status);
        assert!(error.unsent, "{error:?}");
        assert_eq!(error.grpc, Code::Unavailable);
        assert!(error.message.to_lowercase().contains("refused"), "{error}");
    }

    #[test]
    fn with_what_names_the_request() {
        let err = Error::Server {
            what: "topic change (metadata leader)".into(),
            error: Box::new(ServerError::local(
                Code::InvalidArgument,
                ErrorCode::InvalidName,
                "invalid topic name \"a/b\"",
            )),
        }
        .with_what("create topic \"a/b\"");
        assert_eq!(
            err.to_string(),
            "create topic \"a/b\": invalid topic name \"a/b\" [INVALID_NAME]"
        );
        assert_eq!(
            err.server_error().map(|e| e.code),
            Some(ErrorCode::InvalidName)
        );
    }
}
