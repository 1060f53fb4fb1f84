//! The running node: the replica driver that executes every Paxos group's `Ready`s, and the
//! shared view of groups and metadata that the gRPC services read.
//!
//! ```text
//!   services ──Command──► Driver ◄──Inbound── PeerHub (peer streams)
//!      ▲                    │ step/tick/propose every group's Replica
//!      │                    │ ready() of all groups ─► one synced GroupCommit (group commit)
//!      │                    │ persisted ─► send via PeerHub ─► apply decided:
//!      │                    │      metadata group: MetadataState; partitions: offsets + index
//!      └──── View ◄─────────┘ leaders, decided, high watermarks (watch), metadata
//! ```

mod driver;
mod group;
mod view;

pub use driver::{Driver, DriverConfig};
pub use group::{AppendResult, IdempotentBatch, ProposeFailure, Proposed};
pub use view::{GroupStatus, View};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// A request from a service to the driver.
#[derive(Debug)]
pub enum Command {
    /// Propose `payload` in `group`; the reply comes once it is applied (or fails).
    Propose {
        /// The Paxos group.
        group: u64,
        /// The value.
        payload: Bytes,
        /// Set for an idempotent producer's batch: the leader checks its sequence first.
        idempotent: Option<IdempotentBatch>,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<Proposed, ProposeFailure>>,
    },
    /// Hand `group`'s leadership to `to`; the reply comes once `to` leads it, or with why
    /// not.
    Transfer {
        /// The Paxos group.
        group: u64,
        /// The replica that should lead.
        to: u64,
        /// `Ok` once `to` leads; `Err` if this node does not lead or the hand-over gave up.
        reply: oneshot::Sender<Result<(), ProposeFailure>>,
    },
    /// Hand the leadership of every group this node leads to a caught-up peer (before a
    /// graceful stop). The reply comes once this node leads nothing.
    HandOff {
        /// Answered when no group is led here any more.
        reply: oneshot::Sender<()>,
    },
}

/// The services' handle on the driver.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    commands: mpsc::Sender<Command>,
}

impl DriverHandle {
    /// Wraps the driver's command queue.
    pub fn new(commands: mpsc::Sender<Command>) -> Self {
        Self { commands }
    }

    /// Proposes `payload` in `group` and waits for the outcome.
    pub async fn propose(&self, group: u64, payload: Bytes) -> Result<Proposed, ProposeFailure> {
        self.propose_checked(group, payload, None).await
    }

    /// Hands `group`'s leadership to `to` and waits until `to` leads it.
    pub async fn transfer(&self, group: u64, to: u64) -> Result<(), ProposeFailure> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Transfer { group, to, reply })
            .await
            .map_err(|_| ProposeFailure::ShuttingDown)?;
        rx.await.map_err(|_| ProposeFailure::ShuttingDown)?
    }

    /// Hands the leadership of every group this node leads to a peer and waits until it
    /// leads nothing (callers bound the wait: a peer may be unreachable).
    pub async fn hand_off(&self) -> Result<(), ProposeFailure> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::HandOff { reply })
            .await
            .map_err(|_| ProposeFailure::ShuttingDown)?;
        rx.await.map_err(|_| ProposeFailure::ShuttingDown)
    }

    /// Proposes a record batch in `group`; an idempotent one is checked against its
    /// producer's sequence first, and a retry of a batch already written is answered with
    /// the first write's offsets.
    pub async fn propose_checked(
        &self,
        group: u64,
        payload: Bytes,
        idempotent: Option<IdempotentBatch>,
    ) -> Result<Proposed, ProposeFailure> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Propose {
                group,
                payload,
                idempotent,
                reply,
            })
            .await
            .map_err(|_| ProposeFailure::ShuttingDown)?;
        rx.await.map_err(|_| ProposeFailure::ShuttingDown)?
    }
}
