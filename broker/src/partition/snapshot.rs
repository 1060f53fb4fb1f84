//! A partition's state machine in a snapshot: what a replica needs, besides the log after
//! the snapshot's slot, to continue exactly where the others are.
//!
//! ```text
//!   snapshot = version(1) = 1 | next offset u64 BE | producer count u32 BE
//!              | (producer id u64 BE | state length u16 BE | ProducerState)*
//! ```
//!
//! Taken when retention trims the log ([`super::PartitionCommand::Trim`]): the snapshot's
//! slot is the last trimmed batch's, `next_offset` the offset after it (the new log start),
//! and the producer table is the current one (see `producers` for why a later table is
//! safe). The consensus store keeps it CRC-checked like every other value.

use super::producers::{ProducerState, ProducerTable};
use bytes::{Buf, BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;

/// A partition's state as of a snapshot's slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionSnapshot {
    /// The offset the next batch after the snapshot's slot gets; also the log start of a
    /// replica that installs it.
    pub next_offset: u64,
    /// Idempotent producers' state.
    pub producers: ProducerTable,
}

impl PartitionSnapshot {
    /// The snapshot's bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(VERSION);
        out.put_u64(self.next_offset);
        out.put_u32(self.producers.len() as u32);
        for (id, state) in &self.producers {
            let bytes = state.encode();
            out.put_u64(*id);
            out.put_u16(bytes.len() as u16);
            out.put_slice(&bytes);
        }
        out.freeze()
    }

    /// Reads [`encode`](Self::encode)'s form; the error says what is wrong.
    pub fn decode(mut buf: &[u8]) -> Result<Self, String> {
        let truncated = || "partition snapshot is truncated".to_owned();
        if buf.len() < 13 {
            return Err(truncated());
        }
        let version = buf.get_u8();
        if version != VERSION {
            return Err(format!(
                "partition snapshot version {version} is not one this build reads ({VERSION})"
            ));
        }
        let next_offset = buf.get_u64();
        let count = buf.get_u32();
        let mut producers = ProducerTable::new();
        for _ in 0..count {
            if buf.len() < 10 {
                return Err(truncated());
            }
            let id = buf.get_u64();
            let len = usize::from(buf.get_u16());
            if buf.len() < len {
                return Err(truncated());
            }
            producers.insert(id, ProducerState::decode(&buf[..len])?);
            buf.advance(len);
        }
        if !buf.is_empty() {
            return Err(format!(
                "{} trailing bytes after the partition snapshot",
                buf.len()
            ));
        }
        Ok(Self {
            next_offset,
            producers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::producers::BatchMeta;

    #[test]
    fn round_trips_and_damage_is_reported() {
        let mut snap = PartitionSnapshot {
            next_offset: 42,
            ..Default::default()
        };
        let mut state = ProducerState::default();
        state.record(
            2,
            BatchMeta {
                base_sequence: 5,
                count: 3,
                base_offset: 30,
            },
        );
        snap.producers.insert(9, state);
        snap.producers.insert(11, ProducerState::default());
        let bytes = snap.encode();
        assert_eq!(PartitionSnapshot::decode(&bytes), Ok(snap));
        for cut in [0, 5, 13, bytes.len() - 1] {
            assert!(PartitionSnapshot::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(PartitionSnapshot::decode(&longer).is_err());
    }
}
