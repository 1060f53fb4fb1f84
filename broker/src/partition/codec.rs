//! The command a partition's Paxos value carries, and its compact binary form.
//!
//! The encoded command is the log entry's payload, so its bytes are the stored record
//! batch: written once, read back by consumers without re-encoding.
//!
//! ```text
//!   command  = version(1) = 1 | tag(1) | body
//!   tag 2    = Trim: offset u64 BE (retention: drop whole batches below it)
//!   tag 3    = Barrier: nothing (a new leader's first value; see `node::group`)
//!   tag 4    = Group: length (varint) | JSON (a consumer group operation; see `groups`)
//!   tag 1    = Append:
//!     append = flags(1) (bit 0: producer present; others must be 0)
//!              | [producer id u64 BE | epoch u32 BE | base sequence u32 BE]
//!              | record count (varint) | record*
//!     record = body length (varint) | timestamp ms (zigzag varint)
//!              | key length (varint) | key | value length (varint) | value
//!              | header count (varint) | (name length | name (UTF-8) | value length | value)*
//! ```
//!
//! Varints are LEB128 (at most 10 bytes). The record's length prefix lets a reader skip a
//! record and bounds every field inside it. Decoding checks every length against what is
//! left and never panics: a value that passed its CRC but does not decode is reported as
//! corruption by the caller.

use bytes::{BufMut, Bytes, BytesMut};

/// Format version written first; bump when the layout changes incompatibly.
pub const VERSION: u8 = 1;
const TAG_APPEND: u8 = 1;
const TAG_TRIM: u8 = 2;
const TAG_BARRIER: u8 = 3;
const TAG_GROUP: u8 = 4;
const FLAG_PRODUCER: u8 = 0b1;
const PRODUCER_LEN: usize = 8 + 4 + 4;
/// Every record body holds at least a timestamp, two lengths and a header count.
const MIN_RECORD_LEN: usize = 1 + 4;

/// A command of a partition's replicated state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionCommand {
    /// Append records to the partition's log.
    Append(AppendBatch),
    /// Retention: every replica deletes the whole batches that end at or below
    /// `up_to_offset`, at the same point of the log, and compacts its replica there.
    Trim {
        /// Batches whose records all lie below this offset go.
        up_to_offset: u64,
    },
    /// Proposed by a new leader before it admits idempotent writes: once applied, every
    /// value an earlier leader may have had decided is applied too, so the producer state
    /// it checks sequences against is complete.
    Barrier,
    /// A consumer group operation (offsets commit, generation change), in a partition of
    /// the internal offsets topic; opaque here (see `crate::groups`).
    Group(Bytes),
}

/// An idempotent producer's identity and the sequence number of a batch's first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerSeq {
    /// The producer id handed out by the cluster.
    pub producer_id: u64,
    /// The producer's epoch; a newer epoch fences older instances of the same producer.
    pub epoch: u32,
    /// Sequence number of the batch's first record (per producer and partition).
    pub base_sequence: u32,
}

/// Records appended together, under one slot and one contiguous range of offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendBatch {
    /// Set for idempotent producers, whose retries the partition leader deduplicates.
    pub producer: Option<ProducerSeq>,
    /// The records, in offset order.
    pub records: Vec<Record>,
}

/// One record, as stored and as served to consumers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The key (empty when none); producers hash it to pick the partition.
    pub key: Bytes,
    /// The payload.
    pub value: Bytes,
    /// Application headers, in order; names may repeat.
    pub headers: Vec<(String, Bytes)>,
    /// Producer-assigned time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Why bytes are not a valid command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ends inside `what`.
    #[error("truncated: input ends inside the {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The version byte is not one this build reads.
    #[error("unsupported command format version {0} (this build reads {VERSION})")]
    UnsupportedVersion(u8),
    /// The command tag is unknown.
    #[error("unknown partition command tag {0}")]
    UnknownCommand(u8),
    /// Flag bits this build does not know are set.
    #[error("unknown append flags {0:#04x}")]
    UnknownFlags(u8),
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A header name is not UTF-8.
    #[error("header name is not UTF-8")]
    HeaderName,
    /// A record's fields do not fill exactly its declared length.
    #[error("record declares {declared} bytes but its fields take {used}")]
    RecordLength {
        /// The length prefix.
        declared: usize,
        /// What the fields took.
        used: usize,
    },
    /// Bytes follow the command.
    #[error("{0} trailing bytes after the command")]
    TrailingBytes(usize),
}

impl PartitionCommand {
    /// The encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            PartitionCommand::Append(batch) => 2 + batch.encoded_len(),
            PartitionCommand::Trim { .. } => 2 + 8,
            PartitionCommand::Barrier => 2,
            PartitionCommand::Group(op) => 2 + varint_len(op.len() as u64) + op.len(),
        }
    }

    /// Encodes into one buffer of exactly [`encoded_len`](Self::encoded_len) bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(VERSION);
        match self {
            PartitionCommand::Append(batch) => {
                out.put_u8(TAG_APPEND);
                batch.encode_into(&mut out);
            }
            PartitionCommand::Trim { up_to_offset } => {
                out.put_u8(TAG_TRIM);
                out.put_u64(*up_to_offset);
            }
            PartitionCommand::Barrier => out.put_u8(TAG_BARRIER),
            PartitionCommand::Group(op) => {
                out.put_u8(TAG_GROUP);
                put_bytes(&mut out, op);
            }
        }
        out.freeze()
    }

    /// Decodes a command, copying `buf` once.
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        Self::decode_bytes(Bytes::copy_from_slice(buf))
    }

    /// Decodes a command; keys, values and header values share `buf`'s allocation.
    pub fn decode_bytes(buf: Bytes) -> Result<Self, CodecError> {
        let mut reader = Reader { buf, pos: 0 };
        let version = reader.u8("version")?;
        if version != VERSION {
            return Err(CodecError::UnsupportedVersion(version));
        }
        let command = match reader.u8("command tag")? {
            TAG_APPEND => PartitionCommand::Append(AppendBatch::decode_from(&mut reader)?),
            TAG_TRIM => {
                let fixed = reader.take(8, "trim offset")?;
                let mut offset = [0u8; 8];
                offset.copy_from_slice(&fixed);
                PartitionCommand::Trim {
                    up_to_offset: u64::from_be_bytes(offset),
                }
            }
            TAG_BARRIER => PartitionCommand::Barrier,
            TAG_GROUP => PartitionCommand::Group(reader.bytes("group operation")?),
            other => return Err(CodecError::UnknownCommand(other)),
        };
        match reader.remaining() {
            0 => Ok(command),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }
}

impl AppendBatch {
    /// The encoded size of the batch (without the command's version and tag bytes).
    pub fn encoded_len(&self) -> usize {
        let producer = if self.producer.is_some() {
            PRODUCER_LEN
        } else {
            0
        };
        let records: usize = self.records.iter().map(Record::encoded_len).sum();
        1 + producer + varint_len(self.records.len() as u64) + records
    }

    /// The largest encoded record, to enforce a maximum record size.
    pub fn max_record_len(&self) -> usize {
        self.records
            .iter()
            .map(Record::encoded_len)
            .max()
            .unwrap_or(0)
    }

    fn encode_into(&self, out: &mut BytesMut) {
        match &self.producer {
            None => out.put_u8(0),
            Some(p) => {
                out.put_u8(FLAG_PRODUCER);
                out.put_u64(p.producer_id);
                out.put_u32(p.epoch);
                out.put_u32(p.base_sequence);
            }
        }
        put_varint(out, self.records.len() as u64);
        for record in &self.records {
            record.encode_into(out);
        }
    }

    fn decode_from(reader: &mut Reader) -> Result<Self, CodecError> {
        let flags = reader.u8("append flags")?;
        if flags & !FLAG_PRODUCER != 0 {
            return Err(CodecError::UnknownFlags(flags));
        }
        let producer = if flags & FLAG_PRODUCER != 0 {
            let fixed = reader.take(PRODUCER_LEN, "producer")?;
            let mut id = [0u8; 8];
            id.copy_from_slice(&fixed[..8]);
            let mut epoch = [0u8; 4];
            epoch.copy_from_slice(&fixed[8..12]);
            let mut seq = [0u8; 4];
            seq.copy_from_slice(&fixed[12..16]);
            Some(ProducerSeq {
                producer_id: u64::from_be_bytes(id),
                epoch: u32::from_be_bytes(epoch),
                base_sequence: u32::from_be_bytes(seq),
            })
        } else {
            None
        };
        let count = reader.varint("record count")?;
        // Never trust a count for an allocation: bound it by what the input can hold.
        let capacity = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(reader.remaining() / MIN_RECORD_LEN);
        let mut records = Vec::with_capacity(capacity);
        for _ in 0..count {
            records.push(Record::decode_from(reader)?);
        }
        Ok(Self { producer, records })
    }
}

impl Record {
    /// The bytes this record takes in a batch, length prefix included: what a read's
    /// `max_bytes` counts, and what a maximum record size limits.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        varint_len(body as u64) + body
    }

    fn body_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| bytes_len(name.len()) + bytes_len(value.len()))
            .sum();
        varint_len(zigzag(self.timestamp_ms))
            + bytes_len(self.key.len())
            + bytes_len(self.value.len())
            + varint_len(self.headers.len() as u64)
            + headers
    }

    fn encode_into(&self, out: &mut BytesMut) {
        put_varint(out, self.body_len() as u64);
        put_varint(out, zigzag(self.timestamp_ms));
        put_bytes(out, &self.key);
        put_bytes(out, &self.value);
        put_varint(out, self.headers.len() as u64);
        for (name, value) in &self.headers {
            put_bytes(out, name.as_bytes());
            put_bytes(out, value);
        }
    }

    fn decode_from(reader: &mut Reader) -> Result<Self, CodecError> {
        let declared = reader.len("record length")?;
        let mut body = Reader {
            buf: reader.take(declared, "record")?,
            pos: 0,
        };
        let timestamp_ms = unzigzag(body.varint("timestamp")?);
        let key = body.bytes("key")?;
        let value = body.bytes("value")?;
        let header_count = body.varint("header count")?;
        let capacity = usize::try_from(header_count)
            .unwrap_or(usize::MAX)
            .min(body.remaining() / 2);
        let mut headers = Vec::with_capacity(capacity);
        for _ in 0..header_count {
            let name = body.bytes("header name")?;
            let name = String::from_utf8(name.to_vec()).map_err(|_| CodecError::HeaderName)?;
            headers.push((name, body.bytes("header value")?));
        }
        if body.remaining() != 0 {
            return Err(CodecError::RecordLength {
                declared,
                used: body.pos,
            });
        }
        Ok(Self {
            key,
            value,
            headers,
            timestamp_ms,
        })
    }
}

/// A cursor over the input; every read checks what is left.
struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or(CodecError::Truncated { what })?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, CodecError> {
        if len > self.remaining() {
            return Err(CodecError::Truncated { what });
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8(what)?;
            // The 10th byte holds only the top bit of a u64.
            if i == 9 && byte > 1 {
                return Err(CodecError::VarintOverflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::VarintOverflow)
    }

    /// A length, which must fit in what is left.
    fn len(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => Ok(len),
            _ => Err(CodecError::Truncated { what }),
        }
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, CodecError> {
        let len = self.len(what)?;
        self.take(len, what)
    }
}

fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// Small negative timestamps (tests, clock skew) stay short too.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
