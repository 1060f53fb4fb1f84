//! What to do after a failed attempt: the retry policy as one pure function, [`decide`].
//!
//! | failure                                             | read           | write          |
//! |-----------------------------------------------------|----------------|----------------|
//! | no connection could be made (`unsent`)              | other broker   | other broker   |
//! | NOT_LEADER / NOT_COORDINATOR with a leader address  | follow hint    | follow hint    |
//! | NOT_LEADER without hint, `FAILED_PRECONDITION`      | refresh, retry | refresh, retry |
//! | NOT_LEADER without hint, `UNAVAILABLE` (mid-write)  | refresh, retry | unknown        |
//! | THROTTLED, `RESOURCE_EXHAUSTED`, `ABORTED`          | back off       | back off       |
//! | STORAGE_FATAL, CORRUPT_DATA                         | other broker   | other broker   |
//! | TIMEOUT, `DEADLINE_EXCEEDED`, `CANCELLED`, other `UNAVAILABLE` | other broker | unknown |
//! | `UNKNOWN` without a broker's detail (connection broke mid-call) | other broker | unknown |
//! | anything else (invalid name, unknown topic, ...)    | fail           | fail           |
//!
//! "Unknown" means the write may have been stored: it is reported, never retried blindly
//! (the CLI's producer is not idempotent).

use crate::error::ServerError;
use paxlog_proto::v1::{self as pb, ErrorCode};
use tonic::Code;

/// The next step after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Retrying cannot help: report the error.
    Fail,
    /// A write's outcome is unknown: report it, do not retry.
    Unknown,
    /// Send the same request to this address (the leader's), now.
    Redirect(String),
    /// Forget the cached metadata, back off, and try a broker other than this one.
    TryAnother,
    /// Back off, then try again where metadata says.
    Backoff,
}

/// The retry policy (see the module docs); `write` is whether the request changes state.
pub(crate) fn decide(error: &ServerError, write: bool) -> Decision {
    if error.unsent {
        return Decision::TryAnother;
    }
    let unknown_if_write = if write {
        Decision::Unknown
    } else {
        Decision::TryAnother
    };
    match (error.grpc, error.code) {
        (_, ErrorCode::NotLeader | ErrorCode::NotCoordinator) => match &error.leader {
            Some(hint) => Decision::Redirect(hint.address.clone()),
            // Leadership changed while the write was in flight.
            None if error.grpc == Code::Unavailable => unknown_if_write,
            // Rejected before anything happened; an election is probably under way.
            None => Decision::Backoff,
        },
        (_, ErrorCode::Throttled) => Decision::Backoff,
        (_, ErrorCode::StorageFatal | ErrorCode::CorruptData) => Decision::TryAnother,
        (_, ErrorCode::Timeout) => unknown_if_write,
        // The shapes of a majority not (yet) reachable; permanent ones come as
        // INVALID_ARGUMENT or FAILED_PRECONDITION and fail below.
        (Code::Unavailable, ErrorCode::NotEnoughReplicas) => Decision::Backoff,
        (Code::ResourceExhausted | Code::Aborted, _) => Decision::Backoff,
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled, _) => unknown_if_write,
        // A connection that broke under the request ("stream closed because of a broken
        // pipe"): tonic reports UNKNOWN without a broker's detail. Brokers never answer
        // UNKNOWN themselves.
        (Code::Unknown, ErrorCode::Unspecified) => unknown_if_write,
        _ => Decision::Fail,
    }
}

/// A response message with the `error` field every paxlog response has (unset on success).
pub trait WireResponse {
    /// Takes the response's error, if it carries one.
    fn take_error(&mut self) -> Option<pb::Error>;
}

macro_rules! wire_responses {
    ($($response:ty),* $(,)?) => {
        $(
            impl WireResponse for $response {
                fn take_error(&mut self) -> Option<pb::Error> {
                    self.error.take()
                }
            }
        )*
    };
}

wire_responses!(
    pb::CreateTopicResponse,
    pb::CreateTriggerResponse,
    pb::DeleteTriggerResponse,
    pb::SetTriggerStateResponse,
    pb::ListTriggersResponse,
    pb::DeleteTopicResponse,
    pb::ElectLeaderResponse,
    pb::ListTopicsResponse,
    pb::DescribeTopicResponse,
    pb::GetMetadataResponse,
    pb::InitProducerResponse,
    pb::PublishResponse,
    pb::FetchResponse,
    pb::ListOffsetsResponse,
    pb::JoinGroupResponse,
    pb::HeartbeatResponse,
    pb::LeaveGroupResponse,
    pb::CommitOffsetsResponse,
    pb::FetchOffsetsResponse,
    pb::ListGroupsResponse,
    pb::DescribeGroupResponse,
    pb::ResetOffsetsResponse,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LeaderHint;

    fn error(grpc: Code, code: ErrorCode, leader: Option<&str>) -> ServerError {
        ServerError {
            leader: leader.map(|address| LeaderHint {
                node_id: 2,
                address: address.to_owned(),
            }),
            ..ServerError::local(grpc, code, "test")
        }
    }

    #[test]
    fn a_connection_broken_mid_call_is_unknown_for_writes_and_retried_for_reads() {
        let e = ServerError::local(Code::Unknown, ErrorCode::Unspecified, "broken pipe");
        assert_eq!(decide(&e, true), Decision::Unknown);
        assert_eq!(decide(&e, false), Decision::TryAnother);
    }

    #[test]
    fn not_leader_with_hint_is_followed_for_reads_and_writes() {
        let e = error(Code::FailedPrecondition, ErrorCode::NotLeader, Some("b:2"));
        assert_eq!(decide(&e, true), Decision::Redirect("b:2".into()));
        assert_eq!(decide(&e, false), Decision::Redirect("b:2".into()));
        let e = error(
            Code::FailedPrecondition,
            ErrorCode::NotCoordinator,
            Some("c:3"),
        );
        assert_eq!(decide(&e, false), Decision::Redirect("c:3".into()));
    }

    #[test]
    fn not_leader_without_hint_waits_for_the_election() {
        let e = error(Code::FailedPrecondition, ErrorCode::NotLeader, None);
        assert_eq!(decide(&e, true), Decision::Backoff);
    }

    #[test]
    fn leadership_lost_mid_write_is_an_unknown_outcome() {
        let e = error(Code::Unavailable, ErrorCode::NotLeader, None);
        assert_eq!(decide(&e, true), Decision::Unknown);
        assert_eq!(decide(&e, false), Decision::TryAnother);
        let timeout = error(Code::DeadlineExceeded, ErrorCode::Timeout, None);
        assert_eq!(decide(&timeout, true), Decision::Unknown);
        let dropped = ServerError::plain(Code::Unavailable, "connection reset");
        assert_eq!(decide(&dropped, true), Decision::Unknown);
        assert_eq!(decide(&dropped, false), Decision::TryAnother);
    }

    #[test]
    fn unsent_requests_go_elsewhere_even_for_writes() {
        let e = ServerError {
            unsent: true,
            ..ServerError::plain(Code::Unavailable, "tcp connect error")
        };
        assert_eq!(decide(&e, true), Decision::TryAnother);
    }

    #[test]
    fn throttling_backs_off_and_bad_replicas_are_avoided() {
        let e = error(Code::Unavailable, ErrorCode::Throttled, None);
        assert_eq!(decide(&e, true), Decision::Backoff);
        let e = error(Code::Unavailable, ErrorCode::StorageFatal, None);
        assert_eq!(decide(&e, true), Decision::TryAnother);
        let e = error(Code::Unavailable, ErrorCode::NotEnoughReplicas, None);
        assert_eq!(decide(&e, true), Decision::Backoff);
    }

    #[test]
    fn caller_mistakes_fail_at_once() {
        for (grpc, code) in [
            (Code::InvalidArgument, ErrorCode::InvalidName),
            (Code::InvalidArgument, ErrorCode::InvalidConfig),
            (Code::InvalidArgument, ErrorCode::NotEnoughReplicas),
            (Code::NotFound, ErrorCode::UnknownTopic),
            (Code::AlreadyExists, ErrorCode::TopicExists),
            (Code::OutOfRange, ErrorCode::OffsetOutOfRange),
            (Code::Unimplemented, ErrorCode::Unspecified),
            (Code::Ok, ErrorCode::UnknownTopic),
        ] {
            let e = error(grpc, code, None);
            assert_eq!(decide(&e, false), Decision::Fail, "{grpc:?} {code:?}");
            assert_eq!(decide(&e, true), Decision::Fail, "{grpc:?} {code:?}");
        }
    }
}
