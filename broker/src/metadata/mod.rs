//! Cluster metadata: topics, their partitions and where each partition's replicas live,
//! producer identities and function triggers.
//!
//! Metadata is a Paxos group of its own (group 0, every broker a voter). Each change is a
//! [`MetaCommand`] decided in that group and applied in slot order by every broker to its
//! [`MetadataState`], so all brokers compute the same topics, partition ids and placement.
//!
//! ```text
//!   Admin RPC ─► MetaCommand::encode ─► propose(group 0) ─► decided ─► MetadataState::apply
//!                                                                      ├─ topics, placement
//!                                                                      └─ driver opens/closes
//!                                                                         partition replicas
//! ```

mod command;
mod placement;
pub mod settings;
mod state;
pub mod trigger;

pub use command::{MetaCommand, TopicConfig};
pub use placement::place;
pub use settings::TopicSettings;
pub use state::{Applied, MetaError, MetadataState, PartitionInfo, Topic};
pub use trigger::{Function, TriggerDef};

/// The Paxos group id of the cluster metadata.
pub const METADATA_GROUP: u64 = 0;

/// Longest topic name (Kafka's limit, so names move between systems unchanged).
pub const MAX_TOPIC_NAME: usize = 249;

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 4096;

/// Checks a topic name: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > MAX_TOPIC_NAME || !ok_chars || name == "." || name == ".." {
        return Err(MetaError::InvalidName(name.to_owned()));
    }
    Ok(())
}
