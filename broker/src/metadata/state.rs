//! The metadata state machine: what every broker computes from the decided metadata log.

use super::command::{MetaCommand, TopicConfig};
use super::settings::TopicSettings;
use super::trigger::TriggerDef;
use super::{MAX_PARTITIONS, place, validate_topic_name};
use crate::config::NodeId;
use serde::Serialize;
use std::collections::BTreeMap;

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionInfo {
    /// Index within the topic (0-based).
    pub index: u32,
    /// Its Paxos group id, unique in the cluster and never reused.
    pub group: u64,
    /// Brokers holding a replica; the first is the preferred leader.
    pub replicas: Vec<NodeId>,
}

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Partitions, by index.
    pub partitions: Vec<PartitionInfo>,
    /// Replicas per partition.
    pub replication: u32,
    /// Settings as given at creation (checked by [`TopicSettings::parse`]).
    pub config: TopicConfig,
}

impl Topic {
    /// The parsed settings (defaults for keys not given).
    pub fn settings(&self) -> TopicSettings {
        // Checked when the topic was created, so it parses.
        TopicSettings::parse(&self.config).unwrap_or_default()
    }
}

/// Why a metadata command was refused. Decided deterministically: every broker refuses the
/// same commands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Bad topic name.
    #[error(
        "invalid topic name {0:?}: use 1 to 249 characters among letters, digits, '.', '_' and '-'"
    )]
    InvalidName(String),
    /// The topic exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// No such topic.
    #[error("unknown topic {0:?}: create it first (paxlog topic create {0})")]
    UnknownTopic(String),
    /// Partition count out of range.
    #[error("a topic needs 1 to {MAX_PARTITIONS} partitions, got {0}")]
    InvalidPartitions(u32),
    /// Replication factor out of range.
    #[error(
        "replication factor {requested} is not possible with {brokers} brokers: use 1 to {brokers}"
    )]
    InvalidReplication {
        /// Asked for.
        requested: u32,
        /// Brokers in the cluster.
        brokers: usize,
    },
    /// A topic setting is unknown or out of range.
    #[error("invalid topic config: {0}")]
    InvalidConfig(String),
    /// InitProducer named a producer id the cluster never handed out.
    #[error("unknown producer id {0}: call InitProducer with producer id 0 to get a new one")]
    UnknownProducer(u64),
    /// A trigger's name or setting is invalid; the text says which and what is allowed.
    #[error("invalid trigger: {0}")]
    InvalidTrigger(String),
    /// The trigger exists.
    #[error("trigger {0:?} already exists: delete it first or pick another name")]
    TriggerExists(String),
    /// No such trigger.
    #[error("unknown trigger {0:?}: see paxlog trigger list")]
    UnknownTrigger(String),
    /// A topic a trigger uses cannot be deleted.
    #[error("topic {topic:?} is used by trigger {trigger:?}: delete the trigger first")]
    TopicInUse {
        /// The topic.
        topic: String,
        /// A trigger using it.
        trigger: String,
    },
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A topic was created.
    Created(Topic),
    /// A topic was deleted.
    Deleted(Topic),
    /// A producer identity was handed out.
    Producer {
        /// The producer id (never 0).
        producer_id: u64,
        /// Its new epoch.
        epoch: u32,
    },
    /// A trigger was created or changed (its new definition) or deleted (its last one).
    Trigger(TriggerDef),
    /// The command was refused.
    Refused(MetaError),
}

/// The cluster metadata as of some decided slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataState {
    nodes: Vec<NodeId>,
    topics: BTreeMap<String, Topic>,
    /// Next partition group id (0 is the metadata group itself).
    next_group: u64,
    /// The newest epoch of every producer id handed out.
    producers: BTreeMap<u64, u32>,
    /// Next producer id (ids start at 1).
    next_producer_id: u64,
    /// Function triggers by name.
    triggers: BTreeMap<String, TriggerDef>,
    /// The last metadata slot applied.
    pub applied: u64,
}

impl MetadataState {
    /// Empty metadata for a cluster of `nodes`.
    pub fn new(mut nodes: Vec<NodeId>) -> Self {
        nodes.sort_unstable();
        Self {
            nodes,
            topics: BTreeMap::new(),
            next_group: 1,
            producers: BTreeMap::new(),
            next_producer_id: 1,
            triggers: BTreeMap::new(),
            applied: 0,
        }
    }

    /// Checks a command against the current state without applying it, so an admin request
    /// can be refused before it is proposed.
    pub fn check(&self, cmd: &MetaCommand) -> Result<(), MetaError> {
        match cmd {
            MetaCommand::CreateTopic {
                name,
                partitions,
                replication,
                config,
            } => {
                validate_topic_name(name)?;
                TopicSettings::parse(config)?;
                if self.topics.contains_key(name) {
                    return Err(MetaError::TopicExists(name.clone()));
                }
                if *partitions == 0 || *partitions > MAX_PARTITIONS {
                    return Err(MetaError::InvalidPartitions(*partitions));
                }
                if *replication == 0 || *replication as usize > self.nodes.len() {
                    return Err(MetaError::InvalidReplication {
                        requested: *replication,
                        brokers: self.nodes.len(),
                    });
                }
                Ok(())
            }
            MetaCommand::DeleteTopic { name } => {
                if !self.topics.contains_key(name) {
                    return Err(MetaError::UnknownTopic(name.clone()));
                }
                match self
                    .triggers
                    .values()
                    .find(|t| t.topics().any(|u| u == name))
                {
                    Some(t) => Err(MetaError::TopicInUse {
                        topic: name.clone(),
                        trigger: t.name.clone(),
                    }),
                    None => Ok(()),
                }
            }
            MetaCommand::CreateTrigger { trigger } => {
                trigger.validate()?;
                if self.triggers.contains_key(&trigger.name) {
                    return Err(MetaError::TriggerExists(trigger.name.clone()));
                }
                match trigger.topics().find(|t| !self.topics.contains_key(*t)) {
                    Some(missing) => Err(MetaError::UnknownTopic(missing.to_owned())),
                    None => Ok(()),
                }
            }
            MetaCommand::SetTriggerPaused { name, .. } | MetaCommand::DeleteTrigger { name } => {
                match self.triggers.contains_key(name) {
                    true => Ok(()),
                    false => Err(MetaError::UnknownTrigger(name.clone())),
                }
            }
            MetaCommand::InitProducer { producer_id } => {
                match *producer_id == 0 || self.producers.contains_key(producer_id) {
                    true => Ok(()),
                    false => Err(MetaError::UnknownProducer(*producer_id)),
                }
            }
        }
    }

    /// Applies the command decided in `slot`.
    pub fn apply(&mut self, slot: u64, cmd: MetaCommand) -> Applied {
        self.applied = slot;
        if let Err(e) = self.check(&cmd) {
            return Applied::Refused(e);
        }
        match cmd {
            MetaCommand::CreateTopic {
                name,
                partitions,
                replication,
                config,
            } => {
                let start = self.next_group;
                let parts = (0..partitions)
                    .map(|index| PartitionInfo {
                        index,
                        group: start + index as u64,
                        replicas: place(&self.nodes, start, index, replication),
                    })
                    .collect();
                self.next_group += partitions as u64;
                let topic = Topic {
                    name: name.clone(),
                    partitions: parts,
                    replication,
                    config,
                };
                self.topics.insert(name, topic.clone());
                Applied::Created(topic)
            }
            MetaCommand::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(t) => Applied::Deleted(t),
                None => Applied::Refused(MetaError::UnknownTopic(name)),
            },
            MetaCommand::InitProducer { producer_id } => {
                let (producer_id, epoch) = match producer_id {
                    0 => {
                        let id = self.next_producer_id;
                        self.next_producer_id += 1;
                        (id, 0)
                    }
                    // An epoch that wraps around starts again at 0: the id's older instances
                    // are long gone by then (2^32 restarts).
                    id => (id, self.producers.get(&id).map_or(0, |e| e.wrapping_add(1))),
                };
                self.producers.insert(producer_id, epoch);
                Applied::Producer { producer_id, epoch }
            }
            MetaCommand::CreateTrigger { mut trigger } => {
                trigger.paused = false;
                self.triggers.insert(trigger.name.clone(), trigger.clone());
                Applied::Trigger(trigger)
            }
            MetaCommand::SetTriggerPaused { name, paused } => match self.triggers.get_mut(&name) {
                Some(t) => {
                    t.paused = paused;
                    Applied::Trigger(t.clone())
                }
                None => Applied::Refused(MetaError::UnknownTrigger(name)),
            },
            MetaCommand::DeleteTrigger { name } => match self.triggers.remove(&name) {
                Some(t) => Applied::Trigger(t),
                None => Applied::Refused(MetaError::UnknownTrigger(name)),
            },
        }
    }

    /// The newest epoch of `producer_id`, if the cluster handed that id out.
    pub fn producer_epoch(&self, producer_id: u64) -> Option<u32> {
        self.producers.get(&producer_id).copied()
    }

    /// Every trigger, by name.
    pub fn triggers(&self) -> impl Iterator<Item = &TriggerDef> {
        self.triggers.values()
    }

    /// The brokers of the cluster, sorted.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    /// The partitions hosted on `node`, with their replica sets.
    pub fn hosted_by(&self, node: NodeId) -> Vec<PartitionInfo> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.replicas.contains(&node))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, partitions: u32, replication: u32) -> MetaCommand {
        MetaCommand::CreateTopic {
            name: name.into(),
            partitions,
            replication,
            config: TopicConfig::new(),
        }
    }

    #[test]
    fn create_assigns_fresh_groups_and_spreads_leaders() {
        let mut m = MetadataState::new(vec![3, 1, 2]);
        let Applied::Created(t) = m.apply(1, create("a", 3, 3)) else {
            panic!("refused")
        };
        let groups: Vec<u64> = t.partitions.iter().map(|p| p.group).collect();
        assert_eq!(groups, vec![1, 2, 3]);
        let leaders: Vec<u64> = t.partitions.iter().map(|p| p.replicas[0]).collect();
        assert_eq!(leaders, vec![2, 3, 1]);
        let Applied::Created(t2) = m.apply(2, create("b", 1, 1)) else {
            panic!("refused")
        };
        assert_eq!(t2.partitions[0].group, 4, "group ids are never reused");
        m.apply(3, MetaCommand::DeleteTopic { name: "a".into() });
        let Applied::Created(t3) = m.apply(4, create("a", 1, 1)) else {
            panic!("refused")
        };
        assert_eq!(t3.partitions[0].group, 5, "not even after a delete");
    }

    #[test]
    fn bad_commands_are_refused_with_reasons() {
        let mut m = MetadataState::new(vec![1, 2, 3]);
        assert!(matches!(
            m.apply(1, create("", 1, 1)),
            Applied::Refused(MetaError::InvalidName(_))
        ));
        assert!(matches!(
            m.apply(2, create("a/b", 1, 1)),
            Applied::Refused(MetaError::InvalidName(_))
        ));
        assert!(matches!(
            m.apply(3, create("a", 0, 1)),
            Applied::Refused(MetaError::InvalidPartitions(0))
        ));
        assert!(matches!(
            m.apply(4, create("a", 1, 4)),
            Applied::Refused(MetaError::InvalidReplication {
                requested: 4,
                brokers: 3
            })
        ));
        assert!(matches!(m.apply(5, create("a", 1, 3)), Applied::Created(_)));
        assert!(matches!(
            m.apply(6, create("a", 1, 3)),
            Applied::Refused(MetaError::TopicExists(_))
        ));
        assert!(matches!(
            m.apply(7, MetaCommand::DeleteTopic { name: "zz".into() }),
            Applied::Refused(MetaError::UnknownTopic(_))
        ));
        assert_eq!(m.applied, 7);
        let bad_config = MetaCommand::CreateTopic {
            name: "c".into(),
            partitions: 1,
            replication: 1,
            config: [("retention.days".to_owned(), "1".to_owned())].into(),
        };
        assert!(matches!(
            m.apply(8, bad_config),
            Applied::Refused(MetaError::InvalidConfig(_))
        ));
    }

    #[test]
    fn producer_ids_are_unique_and_epochs_grow() {
        let mut m = MetadataState::new(vec![1, 2, 3]);
        let init = |id| MetaCommand::InitProducer { producer_id: id };
        assert_eq!(
            m.apply(1, init(0)),
            Applied::Producer {
                producer_id: 1,
                epoch: 0
            }
        );
        assert_eq!(
            m.apply(2, init(0)),
            Applied::Producer {
                producer_id: 2,
                epoch: 0
            }
        );
        assert_eq!(
            m.apply(3, init(1)),
            Applied::Producer {
                producer_id: 1,
                epoch: 1
            }
        );
        assert_eq!(m.producer_epoch(1), Some(1));
        assert_eq!(m.producer_epoch(2), Some(0));
        assert_eq!(m.producer_epoch(3), None);
        assert_eq!(
            m.apply(4, init(9)),
            Applied::Refused(MetaError::UnknownProducer(9))
        );
    }

    #[test]
    fn triggers_need_their_topics_and_pin_them() {
        use super::super::trigger::Function;
        let mut m = MetadataState::new(vec![1, 2, 3]);
        let def =
            TriggerDef::with_defaults("t".into(), "in".into(), Function::Command("cat".into()));
        let create = |d: &TriggerDef| MetaCommand::CreateTrigger { trigger: d.clone() };
        assert_eq!(
            m.apply(1, create(&def)),
            Applied::Refused(MetaError::UnknownTopic("in".into()))
        );
        m.apply(2, create_cmd("in"));
        assert_eq!(
            m.apply(3, create(&def)),
            Applied::Refused(MetaError::UnknownTopic("t.dlq".into())),
            "the dead-letter topic must exist too"
        );
        m.apply(4, create_cmd("t.dlq"));
        assert!(matches!(m.apply(5, create(&def)), Applied::Trigger(_)));
        assert_eq!(
            m.apply(6, create(&def)),
            Applied::Refused(MetaError::TriggerExists("t".into()))
        );
        assert!(matches!(
            m.apply(
                7,
                MetaCommand::DeleteTopic {
                    name: "t.dlq".into()
                }
            ),
            Applied::Refused(MetaError::TopicInUse { .. })
        ));
        let pause = MetaCommand::SetTriggerPaused {
            name: "t".into(),
            paused: true,
        };
        assert!(matches!(m.apply(8, pause), Applied::Trigger(t) if t.paused));
        assert!(m.triggers().all(|t| t.paused));
        assert!(matches!(
            m.apply(9, MetaCommand::DeleteTrigger { name: "t".into() }),
            Applied::Trigger(_)
        ));
        assert_eq!(m.triggers().count(), 0);
        assert!(matches!(
            m.apply(
                10,
                MetaCommand::DeleteTopic {
                    name: "t.dlq".into()
                }
            ),
            Applied::Deleted(_)
        ));
        assert_eq!(
            m.apply(11, MetaCommand::DeleteTrigger { name: "t".into() }),
            Applied::Refused(MetaError::UnknownTrigger("t".into()))
        );
    }

    fn create_cmd(name: &str) -> MetaCommand {
        MetaCommand::CreateTopic {
            name: name.into(),
            partitions: 1,
            replication: 1,
            config: TopicConfig::new(),
        }
    }
}
