//! Replica configuration: who takes part and how time (in ticks) is spent.

use crate::types::NodeId;

/// Configuration of one replica. Times are counted in ticks ([`crate::Replica::tick`]); the
/// broker ticks every 10 ms or so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's node id (non-zero).
    pub id: NodeId,
    /// All voting members, including `id`.
    pub voters: Vec<NodeId>,
    /// Ticks between heartbeats from a leader to an idle follower.
    pub heartbeat_ticks: u64,
    /// Lower bound of the randomized election timeout: a follower that hears nothing from a
    /// leader for this long may start an election.
    pub election_ticks_min: u64,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_ticks_max: u64,
    /// Ticks after which an unacknowledged `Accept` (or a `Learn`) is sent again.
    pub retransmit_ticks: u64,
    /// Most slots a leader keeps undecided at once; proposals beyond are refused as busy.
    pub max_inflight: usize,
    /// Most entries in one `Accept`, `Promise` or `Decided` message.
    pub max_batch_entries: usize,
    /// Seed of the replica's random number generator (election timeouts).
    pub seed: u64,
    /// Start without voting: the replica's storage was lost or found corrupt. It learns from
    /// the leader and votes again only once it has caught up past every slot the leader had
    /// proposed when the repair began.
    ///
    /// **Not yet safe; do not use in production.** The simulation shows that the watermark
    /// taken from the first leader message can be stale and that promises lost with the disk
    /// can be broken (`simulation/regressions.rs`, `disk_loss_*`, ignored until fixed). A
    /// safe repair needs the highest promised ballot and accepted slot from a majority. The
    /// broker never sets it: a replica with corrupt data stops serving its partition instead.
    pub repairing: bool,
    /// **A planted bug, for the fault-injection harness only**: a new leader ignores the
    /// values its phase-1 quorum accepted and fills every undecided slot with a no-op, so
    /// values decided under the previous leader can be overwritten. The harness
    /// (`paxlog-jepsen`) must catch it as lost or inconsistent writes. Never set otherwise.
    pub planted_skip_recovery: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: 1,
            voters: vec![1],
            heartbeat_ticks: 3,
            election_ticks_min: 15,
            election_ticks_max: 30,
            retransmit_ticks: 6,
            max_inflight: 4096,
            max_batch_entries: 256,
            seed: 0,
            repairing: false,
            planted_skip_recovery: false,
        }
    }
}

/// An invalid [`Config`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Node id 0 is reserved.
    #[error("node id must be non-zero")]
    ZeroId,
    /// The voters must include this replica, once.
    #[error(
        "voters {voters:?} must contain this node's id {id} exactly once, and no 0 or duplicate"
    )]
    BadVoters {
        /// This node.
        id: NodeId,
        /// The voters given.
        voters: Vec<NodeId>,
    },
    /// Timing parameters that cannot work.
    #[error(
        "timing: need 0 < heartbeat_ticks < election_ticks_min < election_ticks_max and retransmit_ticks > 0 \
         (got heartbeat {heartbeat}, election {min}..{max}, retransmit {retransmit})"
    )]
    Timing {
        /// heartbeat_ticks
        heartbeat: u64,
        /// election_ticks_min
        min: u64,
        /// election_ticks_max
        max: u64,
        /// retransmit_ticks
        retransmit: u64,
    },
    /// Zero batch or window sizes.
    #[error("max_inflight and max_batch_entries must be at least 1")]
    ZeroLimit,
}

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.voters.len() || sorted.contains(&0) || !sorted.contains(&self.id) {
            return Err(ConfigError::BadVoters {
                id: self.id,
                voters: self.voters.clone(),
            });
        }
        if self.heartbeat_ticks == 0
            || self.heartbeat_ticks >= self.election_ticks_min
            || self.election_ticks_min >= self.election_ticks_max
            || self.retransmit_ticks == 0
        {
            return Err(ConfigError::Timing {
                heartbeat: self.heartbeat_ticks,
                min: self.election_ticks_min,
                max: self.election_ticks_max,
                retransmit: self.retransmit_ticks,
            });
        }
        if self.max_inflight == 0 || self.max_batch_entries == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }

    /// Votes needed for a decision or an election: a strict majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}
