//! paxlog's wire contract: the `paxlog.v1` protobuf package and its generated tonic code.
//!
//! ```text
//!   proto/paxlog/v1/*.proto ──protox──▶ descriptor set ──tonic-prost-build──▶ v1 (Rust)
//!                                              │
//!                                              └──▶ FILE_DESCRIPTOR_SET (gRPC reflection)
//! ```
//!
//! - `common.proto`: stable [`v1::ErrorCode`]s, [`v1::Error`], records and headers.
//! - `client.proto`: the client API services `Admin`, `Metadata`, `Producer` and `Consumer`.
//! - `groups.proto`: the consumer group service `Groups` (membership, assignment, offsets).
//! - `triggers.proto`: function triggers `Triggers` (definitions run by `paxlog runner`).
//! - `peer.proto`: the broker-to-broker `Peer` service carrying batched Multi-Paxos messages.
//!
//! This crate holds no logic. Conversions between these types and the consensus crate's
//! types live in the broker's (and client's) `convert` modules; prost types never enter the
//! consensus crate.

/// Generated messages, enums, clients (`*_client`) and servers (`*_server`) of `paxlog.v1`.
pub mod v1 {
    // Generated code: its shape is prost's and tonic's, not ours to lint. The proto
    // comments become rustdoc verbatim, so character classes like `[A-Za-z]` look like links.
    #![allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        rustdoc::broken_intra_doc_links,
        rustdoc::invalid_html_tags
    )]
    tonic::include_proto!("paxlog.v1");
}

/// The encoded `FileDescriptorSet` of every `paxlog.v1` file (with comments), for the gRPC
/// reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("paxlog_v1_descriptor");
