//! Where a partition's replicas go.

use crate::config::NodeId;

/// Replicas for partition `index` of a topic whose first partition starts at `start`:
/// `replication` consecutive brokers (by sorted id) from a position that moves one broker
/// per partition, so both replicas and preferred leaders (the first replica) spread evenly.
pub fn place(nodes: &[NodeId], start: u64, index: u32, replication: u32) -> Vec<NodeId> {
    let n = nodes.len();
    if n == 0 {
        return Vec::new();
    }
    let first = (start as usize + index as usize) % n;
    (0..(replication as usize).min(n)).map(|k| nodes[(first + k) % n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_spread_over_all_brokers() {
        let nodes = [1, 2, 3];
        let leaders: Vec<NodeId> = (0..6).map(|i| place(&nodes, 0, i, 3)[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(place(&nodes, 1, 0, 2), vec![2, 3]);
        assert_eq!(place(&nodes, 0, 2, 2), vec![3, 1]);
    }

    #[test]
    fn never_more_replicas_than_brokers() {
        assert_eq!(place(&[1, 2], 0, 0, 5), vec![1, 2]);
        assert!(place(&[], 0, 0, 3).is_empty());
    }
}
