//! Steady state: everything sent arrives once, in order per pair, batched per peer.

use crate::harness::{Cluster, assert_numbered, numbered, sized, test_config, wait_until};
use paxlog_broker::transport::TransportConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hubs_deliver_each_message_exactly_once_in_per_pair_order() {
    const N: u64 = 500;
    let ids = [1, 2, 3];
    let mut cluster = Cluster::new(&ids);
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(cluster.start(id).await);
    }
    for node in &nodes {
        let others: Vec<u64> = ids.iter().copied().filter(|&id| id != node.id).collect();
        wait_until(&format!("node {} connected to {others:?}", node.id), || {
            node.hub.connected() == others
        })
        .await;
    }

    for seq in 0..N {
        for node in &nodes {
            for to in ids.into_iter().filter(|&to| to != node.id) {
                let (group, message) = numbered(node.id, to, seq);
                node.hub.send(group, message);
            }
        }
    }

    for node in &mut nodes {
        let senders: Vec<u64> = ids.into_iter().filter(|&id| id != node.id).collect();
        let received = node.recv(senders.len() * N as usize).await;
        assert_numbered(node.id, &received, &senders, 0..N);
        for &peer in &senders {
            // Counted just after the hand-over to gRPC, so possibly after the peer has them.
            wait_until("sent messages counted", || {
                node.peer_metric("paxlog_peer_messages_sent_total", peer) == N
            })
            .await;
            assert_eq!(
                node.peer_metric("paxlog_peer_messages_received_total", peer),
                N
            );
            assert_eq!(node.peer_metric("paxlog_peer_connected", peer), 1);
            assert_eq!(node.peer_metric("paxlog_peer_reconnects_total", peer), 0);
            for reason in ["queue_full", "too_large", "malformed", "misaddressed"] {
                assert_eq!(node.dropped(peer, reason), 0, "{reason}");
            }
        }
    }
    for node in &mut nodes {
        node.assert_no_more();
    }
    for node in nodes {
        node.stop().await;
    }
}

/// On a single-threaded runtime the writer cannot run while the test queues, so a burst
/// of messages of many groups must leave in one batch.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_many_groups_travels_in_one_batch() {
    const N: u64 = 1000;
    let mut cluster = Cluster::new(&[1, 2]);
    let one = cluster.start(1).await;
    let mut two = cluster.start(2).await;
    wait_until("1 and 2 connected", || one.hub.connected() == [2]).await;

    for seq in 0..N {
        let (group, message) = numbered(1, 2, seq);
        one.hub.send(group, message);
    }
    let received = two.recv(N as usize).await;
    assert_numbered(2, &received, &[1], 0..N);
    wait_until("one batch counted", || {
        one.peer_metric("paxlog_peer_batches_sent_total", 2) == 1
    })
    .await;
    one.stop().await;
    two.stop().await;
}

/// The byte cap splits a burst into batches no larger than the cap (one message above
/// the cap travels alone), in order.
#[tokio::test(flavor = "current_thread")]
async fn the_batch_byte_cap_splits_bursts() {
    const N: u64 = 100;
    const PAYLOAD: usize = 4 << 10;
    let config = TransportConfig {
        batch_bytes: 16 << 10,
        ..test_config()
    };
    let mut cluster = Cluster::new(&[1, 2]);
    let one = cluster.start_with(1, config.clone()).await;
    let mut two = cluster.start_with(2, config).await;
    wait_until("1 and 2 connected", || one.hub.connected() == [2]).await;

    for seq in 0..N {
        let (group, message) = sized(1, 2, seq, PAYLOAD);
        one.hub.send(group, message);
    }
    // One message too big for any batch still goes, alone.
    let (group, message) = sized(1, 2, N, 64 << 10);
    one.hub.send(group, message);

    let received = two.recv(N as usize + 1).await;
    let slots: Vec<u64> = received
        .iter()
        .map(|inbound| match inbound.message.body {
            paxlog_consensus::MessageBody::InstallSnapshot { slot, .. } => slot,
            ref other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(slots, (0..=N).collect::<Vec<_>>());
    // Three 4 KiB payloads fit under 16 KiB with framing, four do not.
    wait_until("batches counted", || {
        one.peer_metric("paxlog_peer_batches_sent_total", 2) == N.div_ceil(3) + 1
    })
    .await;
    one.stop().await;
    two.stop().await;
}
