//! # paxlog-consensus
//!
//! Multi-Paxos as a deterministic, sans-IO state machine: one [`Replica`] per Paxos group
//! (a partition, or the cluster metadata). It does no I/O, reads no clock and draws no OS
//! randomness: time arrives as [`Replica::tick`], randomness from a seed in [`Config`], and
//! everything it wants done comes back as a [`Ready`]. Same seed and inputs, same outputs.
//!
//! ```text
//!   step(msg) ─┐                      ┌─► persist  (driver: Storage::write, fsync)
//!   tick()    ─┼─► Replica ─► ready() ┼─► persisted(n)   (driver tells the replica)
//!   propose() ─┘      ▲               ├─► messages (send only after persist is durable)
//!                     │               ├─► snapshot + decided (apply in slot order)
//!                     └── persisted ◄─┴─► outcomes (answer proposers)
//! ```
//!
//! ## The protocol
//! * Ballots are `(round, node)`; a candidate persists its ballot before sending `Prepare`,
//!   so a ballot is never reused, even across restarts.
//! * Phase 1 runs once for every slot from the candidate's first undecided one. For each slot
//!   above the highest decided index reported by the quorum, the new leader re-proposes the
//!   value accepted under the highest ballot, or a no-op where none was accepted; slots at or
//!   below that index are learned, never re-proposed.
//! * Phase 2 is pipelined (up to `max_inflight` undecided slots) and batched (every proposal
//!   since the last `Ready` travels in one `Accept` per peer). The leader's decided index
//!   rides on accepts and heartbeats; a follower marks a slot decided when it holds the
//!   leader's entry for it under the leader's ballot, and otherwise asks with `Learn`.
//! * Lagging or restarted replicas learn decided values in batches; when the slots they need
//!   were compacted away ([`Replica::compact`]), they receive the snapshot instead.
//! * Elections use randomized timeouts (seeded), widened after failed candidacies
//!   (back-off under contention). A follower that heard its leader recently ignores
//!   `Prepare`s, so a node that was cut off does not depose a working leader. A leader that
//!   has not heard from a majority for an election timeout steps down.
//! * A replica whose storage was lost or found corrupt must not vote until repaired.
//!   [`Config::repairing`] is a first attempt that the simulation shows unsafe; until a
//!   majority-based repair exists, such a replica is taken out of service instead.
//!
//! ## The driver contract
//! 1. **Persist before send.** Write `Ready::persist` durably, then call
//!    [`Replica::persisted`] with `Ready::number` (for every `Ready`, even with nothing to
//!    persist), and only then send `Ready::messages`. A replica's own votes count only once
//!    persisted, and its replies to peers vouch for the state in the same `Ready`. The one
//!    exception: messages whose body [`may_precede_persist`](MessageBody::may_precede_persist)
//!    (a leader's phase-2a `Accept`) may be sent before, even if the node then crashes
//!    before its persist, so the leader's fsync and its followers' overlap.
//! 2. **Apply in order.** Install `Ready::snapshot` (if any), then apply `Ready::decided` in
//!    the order given: slots are contiguous across `Ready`s.
//! 3. **Storage errors are fatal.** If a write fails, stop the replica; once a replica
//!    returns [`Error::Fatal`] it refuses all further work.
//! 4. On restart, the application rebuilds its state from the stored snapshot and the
//!    stored entries up to the stored decided index; the replica does not hand those out
//!    again.
//!
//! [`MemStorage`] is an in-memory [`Storage`] for tests and simulation; the broker implements
//! [`Storage`] on RocksDB, and [`conformance`] checks any implementation.

#![deny(missing_docs)]

mod config;
pub mod conformance;
mod error;
mod memory;
mod message;
mod ready;
mod replica;
mod storage;
mod types;

pub use config::{Config, ConfigError};
pub use error::{Error, ProposeError, TransferError};
pub use memory::MemStorage;
pub use message::{Message, MessageBody};
pub use ready::{LeaderChange, Outcome, ProposalLost, Ready};
pub use replica::{Replica, Status};
pub use storage::{InitialState, Persist, Storage, StorageError};
pub use types::{Ballot, Entry, NodeId, ProposalId, Slot, Snapshot, Value};
