//! Which partition a keyed record goes to.
//!
//! The client picks the partition itself, so that a batch whose records have different keys
//! is split by key rather than sent whole to the partition of its first key (which is what
//! the broker does with a publish that names no partition). The function must stay equal to
//! the broker's (`choose_partition` in `broker/src/service/producer.rs`): CRC-32 (IEEE) of
//! the key bytes, modulo the partition count. Records with equal keys then land in the same
//! partition whichever of the two chose it.

/// The partition of a record with this non-empty `key` in a topic of `partitions`
/// partitions (treated as 1 if 0).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    crc32fast::hash(key) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_share_a_partition_and_keys_spread() {
        assert_eq!(
            partition_for_key(b"user-1", 3),
            partition_for_key(b"user-1", 3)
        );
        // Fixed values: a change here changes where existing keys land.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(partition_for_key(b"123456789", 7), 0xCBF4_3926 % 7);
        let used: std::collections::BTreeSet<u32> = (0..100)
            .map(|i| partition_for_key(format!("key-{i}").as_bytes(), 3))
            .collect();
        assert_eq!(used.len(), 3, "100 keys reach all 3 partitions");
        assert_eq!(partition_for_key(b"k", 0), 0);
    }
}
