//! Byte layouts of keys and values; the tables are in the [module docs](super).
//!
//! Every value is *sealed*: a CRC32 (crc32fast, big-endian) of the bytes after it comes
//! first, so a torn or flipped value is caught on read. Keys are big-endian so RocksDB's
//! byte order is numeric order: a group's slots (and offsets) iterate in order, and one
//! group's keys are contiguous.

use bytes::Bytes;
use paxlog_consensus::{Ballot, Entry, Slot, Snapshot, Value};

/// Tag of a group's hard state in the `acceptor` column family.
pub(crate) const TAG_HARD_STATE: u8 = 1;
/// Tag of a group's snapshot in the `acceptor` column family.
pub(crate) const TAG_SNAPSHOT: u8 = 2;
/// Tag of a partition's trim marker in the `acceptor` column family.
pub(crate) const TAG_TRIM_MARKER: u8 = 3;

const CRC_LEN: usize = 4;
/// Header of a log value after the CRC: ballot round, ballot node, kind.
const ENTRY_HEADER: usize = 8 + 8 + 1;
const KIND_NOOP: u8 = 0;
const KIND_DATA: u8 = 1;

/// `group(8) ‖ tag(1)`: a per-group record in the `acceptor` column family.
pub(crate) fn group_key(group: u64, tag: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8] = tag;
    key
}

/// `group(8) ‖ n(8)`: a log key (n = slot) or an offset index key (n = base offset).
pub(crate) fn pair_key(group: u64, n: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8..].copy_from_slice(&n.to_be_bytes());
    key
}

/// The smallest key greater than `key`: `key ‖ 0x00`. Used as an exclusive upper bound, so
/// an inclusive range needs no `+ 1` that could overflow at `u64::MAX`.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The `[start, end)` key range covering `from..=to` of one group.
pub(crate) fn pair_range(group: u64, from: u64, to: u64) -> (Vec<u8>, Vec<u8>) {
    (
        pair_key(group, from).to_vec(),
        successor(&pair_key(group, to)),
    )
}

/// Splits a 16-byte key into `(group, n)`; `None` for any other length.
pub(crate) fn split_pair_key(key: &[u8]) -> Option<(u64, u64)> {
    let key: &[u8; 16] = key.try_into().ok()?;
    Some((be_u64(&key[..8]), be_u64(&key[8..])))
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(buf)
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(buf)
}

/// Prefixes `body` with its CRC32.
pub(crate) fn seal(body_len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(CRC_LEN + body_len);
    out.extend_from_slice(&[0; CRC_LEN]);
    write(&mut out);
    let crc = crc32fast::hash(&out[CRC_LEN..]);
    out[..CRC_LEN].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Checks a sealed value and returns its body.
pub(crate) fn unseal(value: &[u8]) -> Result<&[u8], String> {
    if value.len() < CRC_LEN {
        return Err(format!(
            "value is {} bytes, shorter than its checksum",
            value.len()
        ));
    }
    let (crc, body) = value.split_at(CRC_LEN);
    let stored = be_u32(crc);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    Ok(body)
}

/// A group's durable acceptor state. The snapshot's slot is kept here too, so a write can
/// skip covered entries without reading the (large) snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HardState {
    pub promised: Ballot,
    pub decided: Slot,
    pub snapshot_slot: Slot,
}

impl HardState {
    const LEN: usize = 32;

    /// `crc(4) ‖ round(8) ‖ node(8) ‖ decided(8) ‖ snapshot_slot(8)`.
    pub fn encode(&self) -> Vec<u8> {
        seal(Self::LEN, |out| {
            out.extend_from_slice(&self.promised.round.to_be_bytes());
            out.extend_from_slice(&self.promised.node.to_be_bytes());
            out.extend_from_slice(&self.decided.to_be_bytes());
            out.extend_from_slice(&self.snapshot_slot.to_be_bytes());
        })
    }

    pub fn decode(value: &[u8]) -> Result<Self, String> {
        let body = unseal(value)?;
        if body.len() != Self::LEN {
            return Err(format!(
                "hard state is {} bytes, expected {}",
                body.len(),
                Self::LEN
            ));
        }
        Ok(Self {
            promised: Ballot::new(be_u64(&body[0..]), be_u64(&body[8..])),
            decided: be_u64(&body[16..]),
            snapshot_slot: be_u64(&body[24..]),
        })
    }
}

/// `crc(4) ‖ slot(8) ‖ data`.
pub(crate) fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    seal(8 + snapshot.data.len(), |out| {
        out.extend_from_slice(&snapshot.slot.to_be_bytes());
        out.extend_from_slice(&snapshot.data);
    })
}

pub(crate) fn decode_snapshot(value: Vec<u8>) -> Result<Snapshot, String> {
    let body_len = unseal(&value)?.len();
    if body_len < 8 {
        return Err(format!(
            "snapshot is {body_len} bytes, shorter than its slot"
        ));
    }
    let bytes = Bytes::from(value);
    Ok(Snapshot {
        slot: be_u64(&bytes[CRC_LEN..]),
        data: bytes.slice(CRC_LEN + 8..),
    })
}

/// Stored bytes of a log entry carrying `payload_len` bytes (what [`encode_entry`] makes).
pub fn stored_entry_len(payload_len: usize) -> u64 {
    (CRC_LEN + ENTRY_HEADER + payload_len) as u64
}

/// `crc(4) ‖ round(8) ‖ node(8) ‖ kind(1) ‖ payload`: the stored log entry, which for a
/// partition *is* the record batch (its payload is the encoded command).
pub(crate) fn encode_entry(entry: &Entry) -> Vec<u8> {
    let (kind, payload): (u8, &[u8]) = match &entry.value {
        Value::Noop => (KIND_NOOP, &[]),
        Value::Data(bytes) => (KIND_DATA, bytes),
    };
    seal(ENTRY_HEADER + payload.len(), |out| {
        out.extend_from_slice(&entry.ballot.round.to_be_bytes());
        out.extend_from_slice(&entry.ballot.node.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(payload);
    })
}

/// Decodes a stored log entry; the payload shares `value`'s allocation (no copy).
pub(crate) fn decode_entry(value: Vec<u8>) -> Result<Entry, String> {
    let body = unseal(&value)?;
    if body.len() < ENTRY_HEADER {
        return Err(format!(
            "log entry is {} bytes, shorter than its header",
            body.len()
        ));
    }
    let ballot = Ballot::new(be_u64(&body[0..]), be_u64(&body[8..]));
    let kind = body[16];
    let payload_len = body.len() - ENTRY_HEADER;
    let value = match kind {
        KIND_NOOP if payload_len == 0 => Value::Noop,
        KIND_NOOP => return Err(format!("no-op entry carries {payload_len} payload bytes")),
        KIND_DATA => Value::Data(Bytes::from(value).slice(CRC_LEN + ENTRY_HEADER..)),
        other => return Err(format!("unknown entry kind {other}")),
    };
    Ok(Entry { ballot, value })
}

/// One record batch in a partition's offset index: records `[base_offset, base_offset +
/// count)` are stored in the log entry at `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// The slot whose log entry holds the batch.
    pub slot: Slot,
    /// Number of records in the batch.
    pub count: u32,
}

impl IndexEntry {
    /// The offset after the batch's last record.
    pub fn end_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.count))
    }

    /// Index value: `crc(4) ‖ slot(8) ‖ count(4)` (the base offset is the key).
    pub(crate) fn encode_value(&self) -> Vec<u8> {
        seal(12, |out| {
            out.extend_from_slice(&self.slot.to_be_bytes());
            out.extend_from_slice(&self.count.to_be_bytes());
        })
    }

    pub(crate) fn decode_value(base_offset: u64, value: &[u8]) -> Result<Self, String> {
        let body = unseal(value)?;
        if body.len() != 12 {
            return Err(format!("index entry is {} bytes, expected 12", body.len()));
        }
        Ok(Self {
            base_offset,
            slot: be_u64(body),
            count: be_u32(&body[8..]),
        })
    }

    /// Trim marker value: `crc(4) ‖ base_offset(8) ‖ slot(8) ‖ count(4)`.
    pub(crate) fn encode_marker(&self) -> Vec<u8> {
        seal(20, |out| {
            out.extend_from_slice(&self.base_offset.to_be_bytes());
            out.extend_from_slice(&self.slot.to_be_bytes());
            out.extend_from_slice(&self.count.to_be_bytes());
        })
    }

    pub(crate) fn decode_marker(value: &[u8]) -> Result<Self, String> {
        let body = unseal(value)?;
        if body.len() != 20 {
            return Err(format!("trim marker is {} bytes, expected 20", body.len()));
        }
        Ok(Self {
            base_offset: be_u64(body),
            slot: be_u64(&body[8..]),
            count: be_u32(&body[16..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_within_and_across_groups() {
        let keys = [
            pair_key(1, 255),
            pair_key(1, 256),
            pair_key(2, 0),
            pair_key(2, u64::MAX),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let (start, end) = pair_range(1, 0, u64::MAX);
        assert_eq!(start, pair_key(1, 0));
        assert!(
            pair_key(1, u64::MAX)[..] < end[..],
            "the range includes u64::MAX"
        );
        assert!(
            pair_key(2, 0)[..] > end[..],
            "and stops before the next group"
        );
    }

    #[test]
    fn entries_round_trip_and_flips_are_caught() {
        let entry = Entry {
            ballot: Ballot::new(7, 3),
            value: Value::Data(Bytes::from_static(b"batch")),
        };
        let mut stored = encode_entry(&entry);
        assert_eq!(decode_entry(stored.clone()), Ok(entry));
        let noop = Entry {
            ballot: Ballot::new(1, 1),
            value: Value::Noop,
        };
        assert_eq!(decode_entry(encode_entry(&noop)), Ok(noop));
        let last = stored.len() - 1;
        stored[last] ^= 0x40;
        let err = decode_entry(stored).expect_err("flipped byte");
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn small_values_round_trip() {
        let hard = HardState {
            promised: Ballot::new(4, 2),
            decided: 9,
            snapshot_slot: 3,
        };
        assert_eq!(HardState::decode(&hard.encode()), Ok(hard));
        let snap = Snapshot {
            slot: 5,
            data: Bytes::from_static(b"state"),
        };
        assert_eq!(decode_snapshot(encode_snapshot(&snap)), Ok(snap));
        let index = IndexEntry {
            base_offset: 100,
            slot: 12,
            count: 3,
        };
        assert_eq!(
            IndexEntry::decode_value(100, &index.encode_value()),
            Ok(index)
        );
        assert_eq!(IndexEntry::decode_marker(&index.encode_marker()), Ok(index));
        assert!(unseal(b"ab").is_err());
    }
}
