//! Partitions: the command a partition's Paxos group decides, and the partition's log as
//! consumers read it.
//!
//! ```text
//!   producer batch ──▶ PartitionCommand::Append ──encode──▶ Paxos value (the stored batch)
//!                                                              │ decided, applied
//!   consumer ◀── Db::read_records ◀── offset index ◀── GroupCommit::index(base, slot, count)
//! ```
//!
//! [`codec`] is the value's binary form; [`log`] the read path and retention on
//! [`Db`](crate::storage::Db).

pub mod codec;
pub mod log;

pub use codec::{AppendBatch, CodecError, PartitionCommand, ProducerSeq, Record};
pub use log::{ReadResult, Trimmed};
