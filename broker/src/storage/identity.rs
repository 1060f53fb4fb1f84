//! The node identity record: which node a data directory belongs to, in which format.
//!
//! Stored once in the `meta` column family on first start. Layout (20 bytes, big-endian):
//!
//! ```text
//! | magic "PXID" (4) | format version u32 (4) | node id u64 (8) | crc32 of the 16 before (4) |
//! ```

use crate::config::NodeId;

/// The storage format this build writes and the newest it reads. Bump it when the layout of
/// any column family changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Key of the identity record in the `meta` column family.
pub const IDENTITY_KEY: &[u8] = b"node_identity";

const MAGIC: &[u8; 4] = b"PXID";
const ENCODED_LEN: usize = 20;

/// Who owns a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node that initialised the directory.
    pub node_id: NodeId,
    /// The storage format the directory was written in.
    pub format_version: u32,
}

impl NodeIdentity {
    /// The identity a fresh directory gets.
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            format_version: FORMAT_VERSION,
        }
    }

    /// The stored form, with its checksum.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4..8].copy_from_slice(&self.format_version.to_be_bytes());
        out[8..16].copy_from_slice(&self.node_id.to_be_bytes());
        let crc = crc32fast::hash(&out[..16]);
        out[16..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads the stored form; the error says what is wrong, for the operator.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bytes: &[u8; ENCODED_LEN] = bytes
            .try_into()
            .map_err(|_| format!("record is {} bytes, expected {ENCODED_LEN}", bytes.len()))?;
        let (body, crc) = bytes.split_at(16);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err("checksum mismatch".to_owned());
        }
        if &body[..4] != MAGIC {
            return Err("unknown magic bytes".to_owned());
        }
        let format_version = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&body[8..16]);
        Ok(Self {
            node_id: u64::from_be_bytes(id),
            format_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let identity = NodeIdentity::new(42);
        assert_eq!(NodeIdentity::decode(&identity.encode()), Ok(identity));
    }

    #[test]
    fn flipped_bit_is_detected() {
        let mut bytes = NodeIdentity::new(7).encode();
        bytes[10] ^= 1;
        assert_eq!(
            NodeIdentity::decode(&bytes),
            Err("checksum mismatch".to_owned())
        );
    }

    #[test]
    fn wrong_length_is_detected() {
        let err = NodeIdentity::decode(b"short").expect_err("too short");
        assert!(err.contains("5 bytes"), "{err}");
    }
}
