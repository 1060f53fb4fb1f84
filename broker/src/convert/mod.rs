//! Conversions between the wire (`paxlog_proto::v1`, prost) and the broker's domain types.
//!
//! ```text
//!   consensus::Message ──encode──▶ v1::GroupMessage ──▶ PeerBatch ──▶ gRPC
//!   consensus::Message ◀──decode── v1::GroupMessage ◀── PeerBatch ◀── gRPC
//!                            │
//!                            └─▶ ConvertError (malformed: dropped and counted, never a panic)
//! ```
//!
//! This module is the only place that knows both sides: prost types stop here and never
//! reach the consensus crate. Encoding is total (every domain value has a wire form);
//! decoding is fallible because proto3 lets any message field be absent, and a peer running
//! a buggy or newer build may send what this build cannot read.

pub mod peer;
pub mod records;

/// Why a wire message could not be turned into a domain value. The message names the
/// offending field by its path in the wire message, e.g. `Accept.entries[2].entry.value`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A field that the domain type requires was absent (a message field or a oneof).
    #[error("malformed peer message: {field} is missing")]
    Missing {
        /// Path of the absent field.
        field: String,
    },
    /// A node id field was 0, which no node has.
    #[error("malformed peer message: {field} is 0, but node ids start at 1")]
    ZeroNode {
        /// Path of the field.
        field: &'static str,
    },
}

impl ConvertError {
    /// A missing field at `field`.
    pub(crate) fn missing(field: impl Into<String>) -> Self {
        ConvertError::Missing {
            field: field.into(),
        }
    }
}
