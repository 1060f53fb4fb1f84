//! The commands of the metadata group, as stored in its log.
//!
//! Encoded as JSON: metadata changes are rare and small, and a readable log helps operators;
//! the version field lets later builds add commands without misreading old logs.

use super::trigger::TriggerDef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-topic settings (retention and limits), as given at creation.
pub type TopicConfig = BTreeMap<String, String>;

/// A change to the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MetaCommand {
    /// Create a topic with `partitions` partitions, each replicated on `replication` brokers.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Number of partitions.
        partitions: u32,
        /// Replicas per partition.
        replication: u32,
        /// Topic settings.
        #[serde(default)]
        config: TopicConfig,
    },
    /// Delete a topic and its data.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// Hand out an idempotent producer identity: a new id (when `producer_id` is 0) with
    /// epoch 0, or the next epoch of an existing id, which fences its older instances.
    InitProducer {
        /// 0 for a new id, else the id to bump.
        producer_id: u64,
    },
    /// Create a function trigger (settings already filled in with defaults).
    CreateTrigger {
        /// The definition.
        trigger: TriggerDef,
    },
    /// Pause or resume a trigger.
    SetTriggerPaused {
        /// Trigger name.
        name: String,
        /// The new state.
        paused: bool,
    },
    /// Delete a trigger.
    DeleteTrigger {
        /// Trigger name.
        name: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    command: MetaCommand,
}

const VERSION: u32 = 1;

impl MetaCommand {
    /// The stored form.
    pub fn encode(&self) -> bytes::Bytes {
        let env = Envelope {
            v: VERSION,
            command: self.clone(),
        };
        // Serializing plain strings and integers to a Vec cannot fail.
        bytes::Bytes::from(serde_json::to_vec(&env).unwrap_or_default())
    }

    /// Reads a stored command; the error says why it is unreadable.
    pub fn decode(bytes: &[u8]) -> Result<MetaCommand, String> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if env.v > VERSION {
            return Err(format!(
                "metadata command version {} is newer than this build ({VERSION})",
                env.v
            ));
        }
        Ok(env.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = MetaCommand::CreateTopic {
            name: "orders".into(),
            partitions: 3,
            replication: 3,
            config: [("retention.ms".to_owned(), "1000".to_owned())].into(),
        };
        assert_eq!(MetaCommand::decode(&c.encode()), Ok(c));
        let d = MetaCommand::DeleteTopic {
            name: "orders".into(),
        };
        assert_eq!(MetaCommand::decode(&d.encode()), Ok(d));
        let p = MetaCommand::InitProducer { producer_id: 4 };
        assert_eq!(MetaCommand::decode(&p.encode()), Ok(p));
        let t = MetaCommand::CreateTrigger {
            trigger: TriggerDef::with_defaults(
                "t".into(),
                "orders".into(),
                super::super::trigger::Function::Command("cat".into()),
            ),
        };
        assert_eq!(MetaCommand::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn garbage_and_future_versions_are_refused() {
        assert!(MetaCommand::decode(b"\x00\x01garbage").is_err());
        let future = br#"{"v":99,"op":"delete_topic","name":"x"}"#;
        assert!(
            MetaCommand::decode(future)
                .expect_err("future")
                .contains("newer")
        );
    }
}
