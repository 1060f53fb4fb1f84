//! Idempotent producers in one partition: what each producer id last wrote, and whether a
//! new batch is the next one, a retry of one already written, or out of order.
//!
//! ```text
//!   Publish(producer, epoch, base_sequence, n) at the leader
//!     admit(state, in flight) ── Fresh ──▶ propose ──decided──▶ every replica: record()
//!                             ├─ Written{offsets} ─▶ answer with the first write's offsets
//!                             ├─ InFlight{slot} ───▶ answer with that proposal's outcome
//!                             └─ Refused(OutOfOrder | Fenced | ...) ─▶ error, nothing written
//! ```
//!
//! Admission is decided by the partition leader only, from the applied state plus its own
//! proposals in flight; every replica applies every decided batch (offsets never depend on
//! producer state) and folds it into the state with [`ProducerState::record`]. That fold
//! is a monotone merge (higher epoch wins, the newest [`REMEMBERED_BATCHES`] batches by
//! sequence are kept), so it gives the same state whatever order or repetition batches
//! arrive in: a replica that installs a snapshot taken *after* some of the slots it then
//! replays ends up where the others are. A new leader admits idempotent batches only once
//! its barrier (its first value) is applied, so every batch an earlier leader may have got
//! decided is in the state it checks against.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

use super::ProducerSeq;

/// Batches remembered per producer and partition, as Kafka does: a producer with up to
/// this many batches in flight can retry any of them and get the first write's offsets.
pub const REMEMBERED_BATCHES: usize = 5;

/// A batch an idempotent producer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of its first record.
    pub base_sequence: u32,
    /// Records in it.
    pub count: u32,
    /// Offset of its first record.
    pub base_offset: u64,
}

impl BatchMeta {
    /// The sequence the producer's next batch must start at.
    pub fn next_sequence(&self) -> u64 {
        u64::from(self.base_sequence) + u64::from(self.count)
    }
}

/// What one producer id wrote to one partition, in its latest epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerState {
    /// The newest epoch seen.
    pub epoch: u32,
    /// The newest batches of that epoch, ascending by sequence, at most
    /// [`REMEMBERED_BATCHES`].
    pub batches: Vec<BatchMeta>,
}

impl ProducerState {
    /// The sequence the next batch of `epoch` must start at (0 for a new epoch).
    pub fn next_sequence(&self, epoch: u32) -> u64 {
        if epoch != self.epoch {
            return 0;
        }
        self.batches.last().map_or(0, BatchMeta::next_sequence)
    }

    /// Folds a decided batch in; returns whether the state changed. Monotone: a higher epoch
    /// replaces the state, an older one is ignored, a batch already known is ignored.
    pub fn record(&mut self, epoch: u32, batch: BatchMeta) -> bool {
        if epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self
            .batches
            .iter()
            .any(|b| b.base_sequence == batch.base_sequence)
        {
            return false;
        }
        let at = self
            .batches
            .partition_point(|b| b.base_sequence < batch.base_sequence);
        if at == 0 && self.batches.len() >= REMEMBERED_BATCHES {
            // Older than every remembered batch: it would be forgotten at once.
            return false;
        }
        self.batches.insert(at, batch);
        if self.batches.len() > REMEMBERED_BATCHES {
            self.batches.remove(0);
        }
        true
    }

    /// The stored form: `epoch u32 | n u8 | (base_sequence u32 | count u32 | base_offset u64)*`.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + 16 * self.batches.len());
        out.put_u32(self.epoch);
        out.put_u8(self.batches.len() as u8);
        for b in &self.batches {
            out.put_u32(b.base_sequence);
            out.put_u32(b.count);
            out.put_u64(b.base_offset);
        }
        out.freeze()
    }

    /// Reads [`encode`](Self::encode)'s form; the error says what is wrong.
    pub fn decode(mut buf: &[u8]) -> Result<Self, String> {
        if buf.len() < 5 {
            return Err(format!(
                "producer state of {} bytes is truncated",
                buf.len()
            ));
        }
        let epoch = buf.get_u32();
        let n = usize::from(buf.get_u8());
        if n > REMEMBERED_BATCHES || buf.len() != n * 16 {
            return Err(format!(
                "producer state says {n} batches but holds {} bytes for them",
                buf.len()
            ));
        }
        let batches = (0..n)
            .map(|_| BatchMeta {
                base_sequence: buf.get_u32(),
                count: buf.get_u32(),
                base_offset: buf.get_u64(),
            })
            .collect();
        Ok(Self { epoch, batches })
    }
}

/// Why an idempotent batch was refused. Nothing of it was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// A newer epoch of the producer id exists.
    #[error(
        "producer {producer_id} epoch {epoch} is fenced: epoch {current} took over; this producer instance must stop"
    )]
    Fenced {
        /// The producer id.
        producer_id: u64,
        /// The epoch the batch carried.
        epoch: u32,
        /// The newest epoch known.
        current: u32,
    },
    /// The batch does not continue the producer's sequence.
    #[error(
        "producer {producer_id} epoch {epoch}: batch starts at sequence {got} but the partition expects {expected}; records between were never written"
    )]
    OutOfOrder {
        /// The producer id.
        producer_id: u64,
        /// The batch's epoch.
        epoch: u32,
        /// The sequence the partition expects next.
        expected: u64,
        /// The batch's first sequence.
        got: u32,
    },
    /// The batch overlaps written ones without being one of them (a different split).
    #[error(
        "producer {producer_id} epoch {epoch}: batch at sequence {got} (+{count}) overlaps written batches but is not one of them; retries must resend the same batch"
    )]
    Overlap {
        /// The producer id.
        producer_id: u64,
        /// The batch's epoch.
        epoch: u32,
        /// The batch's first sequence.
        got: u32,
        /// Its record count.
        count: u32,
    },
    /// The sequence was written too long ago for its offsets to be remembered.
    #[error(
        "producer {producer_id} epoch {epoch}: sequence {got} was already written (older than the last {REMEMBERED_BATCHES} batches, so its offsets are no longer known)"
    )]
    Duplicate {
        /// The producer id.
        producer_id: u64,
        /// The batch's epoch.
        epoch: u32,
        /// The batch's first sequence.
        got: u32,
    },
    /// The producer id (or this epoch of it) is not known here yet.
    #[error(
        "producer {producer_id} epoch {epoch} is not known to this broker yet (InitProducer may still be propagating): retry, or call InitProducer again if it persists"
    )]
    Unknown {
        /// The producer id.
        producer_id: u64,
        /// The batch's epoch.
        epoch: u32,
    },
}

/// A batch this leader proposed and has no outcome for yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The producer's epoch and the batch's first sequence.
    pub epoch: u32,
    /// Sequence of the batch's first record.
    pub base_sequence: u32,
    /// Records in it.
    pub count: u32,
    /// The slot it was proposed in.
    pub slot: u64,
}

/// What to do with an idempotent batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// New and next in sequence: propose it.
    Fresh,
    /// Already written: answer with these offsets, write nothing.
    Written {
        /// Offset of the batch's first record.
        base_offset: u64,
    },
    /// The same batch is proposed and not decided yet: answer with its outcome.
    InFlight {
        /// Its slot.
        slot: u64,
    },
    /// Refused.
    Refused(ProducerError),
}

/// Decides what to do with `count` records from `seq`, given the producer's applied state
/// in this partition, this leader's proposals of it still in flight (ascending), and the
/// newest epoch the cluster metadata knows for the producer id (`None`: unknown id).
pub fn admit(
    state: Option<&ProducerState>,
    in_flight: &[InFlight],
    metadata_epoch: Option<u32>,
    seq: ProducerSeq,
    count: u32,
) -> Admission {
    let ProducerSeq {
        producer_id,
        epoch,
        base_sequence,
    } = seq;
    let current = state
        .map_or(0, |s| s.epoch)
        .max(metadata_epoch.unwrap_or(0));
    if epoch < current {
        return Admission::Refused(ProducerError::Fenced {
            producer_id,
            epoch,
            current,
        });
    }
    if metadata_epoch.is_none_or(|m| epoch > m) {
        return Admission::Refused(ProducerError::Unknown { producer_id, epoch });
    }
    let same_epoch: Vec<&InFlight> = in_flight.iter().filter(|f| f.epoch == epoch).collect();
    if let Some(f) = same_epoch
        .iter()
        .find(|f| f.base_sequence == base_sequence && f.count == count)
    {
        return Admission::InFlight { slot: f.slot };
    }
    let applied_next = state.map_or(0, |s| s.next_sequence(epoch));
    let expected = same_epoch
        .iter()
        .map(|f| u64::from(f.base_sequence) + u64::from(f.count))
        .max()
        .unwrap_or(0)
        .max(applied_next);
    let got = u64::from(base_sequence);
    if got == expected {
        return Admission::Fresh;
    }
    if got > expected {
        return Admission::Refused(ProducerError::OutOfOrder {
            producer_id,
            epoch,
            expected,
            got: base_sequence,
        });
    }
    // Behind: a retry of something written (or in flight under a different split).
    let remembered = state
        .filter(|s| s.epoch == epoch)
        .map_or(&[][..], |s| &s.batches[..]);
    if let Some(b) = remembered
        .iter()
        .find(|b| b.base_sequence == base_sequence && b.count == count)
    {
        return Admission::Written {
            base_offset: b.base_offset,
        };
    }
    let oldest_known = remembered
        .first()
        .map(|b| u64::from(b.base_sequence))
        .or_else(|| same_epoch.first().map(|f| u64::from(f.base_sequence)))
        .unwrap_or(expected);
    if got + u64::from(count) <= oldest_known {
        return Admission::Refused(ProducerError::Duplicate {
            producer_id,
            epoch,
            got: base_sequence,
        });
    }
    Admission::Refused(ProducerError::Overlap {
        producer_id,
        epoch,
        got: base_sequence,
        count,
    })
}

/// Every producer's state in one partition.
pub type ProducerTable = BTreeMap<u64, ProducerState>;

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(epoch: u32, base_sequence: u32) -> ProducerSeq {
        ProducerSeq {
            producer_id: 7,
            epoch,
            base_sequence,
        }
    }

    fn batch(base_sequence: u32, count: u32, base_offset: u64) -> BatchMeta {
        BatchMeta {
            base_sequence,
            count,
            base_offset,
        }
    }

    fn state(epoch: u32, batches: &[BatchMeta]) -> ProducerState {
        ProducerState {
            epoch,
            batches: batches.to_vec(),
        }
    }

    #[test]
    fn a_new_producer_starts_at_sequence_zero() {
        assert_eq!(admit(None, &[], Some(0), seq(0, 0), 3), Admission::Fresh);
        assert!(matches!(
            admit(None, &[], Some(0), seq(0, 4), 3),
            Admission::Refused(ProducerError::OutOfOrder { expected: 0, .. })
        ));
    }

    #[test]
    fn retries_of_remembered_batches_get_their_offsets() {
        let s = state(0, &[batch(0, 3, 10), batch(3, 2, 20)]);
        assert_eq!(
            admit(Some(&s), &[], Some(0), seq(0, 3), 2),
            Admission::Written { base_offset: 20 }
        );
        assert_eq!(
            admit(Some(&s), &[], Some(0), seq(0, 0), 3),
            Admission::Written { base_offset: 10 }
        );
        assert_eq!(
            admit(Some(&s), &[], Some(0), seq(0, 5), 1),
            Admission::Fresh
        );
        assert!(matches!(
            admit(Some(&s), &[], Some(0), seq(0, 6), 1),
            Admission::Refused(ProducerError::OutOfOrder { expected: 5, .. })
        ));
        assert!(matches!(
            admit(Some(&s), &[], Some(0), seq(0, 1), 2),
            Admission::Refused(ProducerError::Overlap { .. })
        ));
    }

    #[test]
    fn forgotten_batches_are_duplicates_without_offsets() {
        let mut s = ProducerState::default();
        for i in 0..8u32 {
            assert!(s.record(0, batch(i * 2, 2, u64::from(i) * 2)));
        }
        assert_eq!(s.batches.len(), REMEMBERED_BATCHES);
        assert_eq!(s.next_sequence(0), 16);
        assert!(matches!(
            admit(Some(&s), &[], Some(0), seq(0, 0), 2),
            Admission::Refused(ProducerError::Duplicate { got: 0, .. })
        ));
    }

    #[test]
    fn in_flight_batches_count_and_can_be_joined() {
        let s = state(0, &[batch(0, 3, 10)]);
        let flying = [InFlight {
            epoch: 0,
            base_sequence: 3,
            count: 4,
            slot: 9,
        }];
        assert_eq!(
            admit(Some(&s), &flying, Some(0), seq(0, 3), 4),
            Admission::InFlight { slot: 9 }
        );
        assert_eq!(
            admit(Some(&s), &flying, Some(0), seq(0, 7), 1),
            Admission::Fresh
        );
        assert!(matches!(
            admit(Some(&s), &flying, Some(0), seq(0, 3), 1),
            Admission::Refused(ProducerError::Overlap { .. })
        ));
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let s = state(1, &[batch(0, 3, 10)]);
        assert!(matches!(
            admit(Some(&s), &[], Some(1), seq(0, 3), 1),
            Admission::Refused(ProducerError::Fenced { current: 1, .. })
        ));
        // The metadata knows a newer epoch than the partition has seen: fenced too.
        assert!(matches!(
            admit(Some(&s), &[], Some(2), seq(1, 3), 1),
            Admission::Refused(ProducerError::Fenced { current: 2, .. })
        ));
        assert_eq!(
            admit(Some(&s), &[], Some(2), seq(2, 0), 1),
            Admission::Fresh
        );
        assert!(matches!(
            admit(Some(&s), &[], Some(2), seq(2, 3), 1),
            Admission::Refused(ProducerError::OutOfOrder { expected: 0, .. })
        ));
        assert!(matches!(
            admit(Some(&s), &[], None, seq(1, 3), 1),
            Admission::Refused(ProducerError::Unknown { .. })
        ));
        assert!(matches!(
            admit(Some(&s), &[], Some(1), seq(2, 0), 1),
            Admission::Refused(ProducerError::Unknown { epoch: 2, .. })
        ));
    }

    #[test]
    fn recording_is_a_monotone_merge() {
        let all = [
            (0, batch(0, 1, 0)),
            (0, batch(1, 1, 1)),
            (1, batch(0, 2, 2)),
            (1, batch(2, 1, 4)),
            (1, batch(3, 1, 5)),
            (1, batch(4, 1, 6)),
            (1, batch(5, 1, 7)),
            (1, batch(6, 1, 8)),
        ];
        let mut in_order = ProducerState::default();
        for (e, b) in all {
            in_order.record(e, b);
        }
        // A replica that got a later snapshot and then replays every slot ends up equal.
        let mut replayed = in_order.clone();
        for (e, b) in all {
            assert!(!replayed.record(e, b), "replaying {b:?} changed the state");
        }
        assert_eq!(replayed, in_order);
        let mut reversed = ProducerState::default();
        for (e, b) in all.iter().rev() {
            reversed.record(*e, *b);
        }
        assert_eq!(reversed, in_order);
        assert_eq!(in_order.epoch, 1);
        assert_eq!(in_order.batches.first(), Some(&batch(2, 1, 4)));
    }

    #[test]
    fn state_round_trips_and_damage_is_reported() {
        let s = state(3, &[batch(0, 3, 10), batch(3, 2, 20)]);
        assert_eq!(ProducerState::decode(&s.encode()), Ok(s.clone()));
        let bytes = s.encode();
        assert!(ProducerState::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ProducerState::decode(&bytes[..3]).is_err());
    }
}
