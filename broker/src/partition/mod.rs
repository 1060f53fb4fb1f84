//! Partitions: the command a partition's Paxos group decides, and the partition's log as
//! consumers read it.
//!
//! ```text
//!   producer batch ──▶ PartitionCommand::Append ──encode──▶ Paxos value (the stored batch)
//!                                                              │ decided, applied
//!   consumer ◀── Db::read_records ◀── offset index ◀── GroupCommit::index(base, slot, count)
//! ```
//!
//! [`codec`] is the value's binary form; [`log`] the read path and trimming on
//! [`Db`](crate::storage::Db); [`retention`] when the leader trims; [`producers`] the
//! idempotent producers' sequences; [`snapshot`] the state a trimmed replica hands on.

pub mod codec;
pub mod log;
pub mod producers;
pub mod retention;
pub mod snapshot;
pub mod time;

pub use codec::{AppendBatch, CodecError, PartitionCommand, ProducerSeq, Record};
pub use log::{ReadResult, Trimmed};
