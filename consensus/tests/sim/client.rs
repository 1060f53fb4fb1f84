//! Simulated clients: each proposes unique values (`c{client}-{n}`), one at a time, to the
//! node it believes leads, follows `NotLeader` hints, and retries until the value is
//! acknowledged.
//!
//! A retry after an unknown outcome proposes the same value again, as an idempotent client
//! would; it may end up decided twice, which consensus allows (deduplication is the
//! producer-id layer's job, not the log's).

use bytes::Bytes;
use paxlog_consensus::{NodeId, ProposalId, ProposeError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Index, part of its values.
    pub id: usize,
    /// The value being proposed until acknowledged, if any.
    pub op: Option<Bytes>,
    /// Values acknowledged so far.
    pub done: u64,
    /// The node it believes leads.
    pub target: NodeId,
    /// The proposal it waits on: the node that took it and its id.
    pub waiting: Option<(NodeId, ProposalId)>,
    /// Outcomes that came back failed (unknown): the value is retried.
    pub failed: u64,
    /// Values created so far (the `n` of the next one).
    next: u64,
}

impl Client {
    /// A client that first tries `target`.
    pub fn new(id: usize, target: NodeId) -> Self {
        Client {
            id,
            op: None,
            done: 0,
            target,
            waiting: None,
            failed: 0,
            next: 0,
        }
    }

    /// Starts a new value unless one is still being proposed.
    pub fn start_op(&mut self) {
        if self.op.is_none() {
            self.op = Some(Bytes::from(format!("c{}-{}", self.id, self.next)));
            self.next += 1;
        }
    }

    /// Whether it has a value to propose now (it has one and waits on no outcome).
    pub fn wants_to_propose(&self) -> bool {
        self.op.is_some() && self.waiting.is_none()
    }

    /// Takes note of what `propose` on `node` answered.
    pub fn proposed(
        &mut self,
        node: NodeId,
        result: Result<ProposalId, ProposeError>,
        nodes: usize,
        rng: &mut ChaCha8Rng,
    ) {
        match result {
            Ok(id) => self.waiting = Some((node, id)),
            Err(ProposeError::NotLeader {
                leader: Some(leader),
            }) if leader != node => {
                self.target = leader;
            }
            Err(ProposeError::Busy) => {} // same leader, later
            Err(_) => self.target = rng.random_range(1..=nodes as NodeId),
        }
    }

    /// The proposal's outcome arrived: done when `ok`, else retry the same value.
    pub fn outcome(&mut self, ok: bool) {
        self.waiting = None;
        if ok {
            self.op = None;
            self.done += 1;
        } else {
            self.failed += 1;
        }
    }

    /// The node holding its proposal crashed: the outcome is unknown, retry elsewhere.
    pub fn node_crashed(&mut self, node: NodeId, nodes: usize, rng: &mut ChaCha8Rng) {
        if self.waiting.is_some_and(|(n, _)| n == node) {
            self.waiting = None;
        }
        if self.target == node {
            self.target = rng.random_range(1..=nodes as NodeId);
        }
    }
}
