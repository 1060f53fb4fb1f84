//! Memory stays bounded: a peer's queue holds at most its message and byte bounds, the
//! rest is dropped and counted, and an oversized message is dropped at the sender.

use crate::harness::{Cluster, assert_numbered, numbered, sized, test_config, wait_until};
use paxlog_broker::transport::TransportConfig;
use paxlog_consensus::MessageBody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_an_unreachable_peer_keeps_the_first_messages_up_to_the_bound() {
    const BOUND: u64 = 100;
    const FLOOD: u64 = 10_000;
    let config = TransportConfig {
        queue_messages: BOUND as usize,
        ..test_config()
    };
    let mut cluster = Cluster::new(&[1, 2]);
    let one = cluster.start_with(1, config).await;
    for seq in 0..FLOOD {
        let (group, message) = numbered(1, 2, seq);
        one.hub.send(group, message);
    }
    assert_eq!(one.dropped(2, "queue_full"), FLOOD - BOUND);

    let mut two = cluster.start(2).await;
    let received = two.recv(BOUND as usize).await;
    assert_numbered(2, &received, &[1], 0..BOUND);
    wait_until("node 1 counted what it sent", || {
        one.peer_metric("paxlog_peer_messages_sent_total", 2) == BOUND
    })
    .await;
    two.assert_no_more();
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_bound_limits_queued_payload_and_frees_it_when_sent() {
    const QUEUE_BYTES: usize = 64 << 10;
    const PAYLOAD: usize = 4 << 10;
    const FLOOD: u64 = 100;
    let config = TransportConfig {
        queue_bytes: QUEUE_BYTES,
        ..test_config()
    };
    let mut cluster = Cluster::new(&[1, 2]);
    let one = cluster.start_with(1, config).await;
    for seq in 0..FLOOD {
        let (group, message) = sized(1, 2, seq, PAYLOAD);
        one.hub.send(group, message);
    }
    let dropped = one.dropped(2, "queue_full");
    let kept = FLOOD - dropped;
    assert!(
        kept as usize * PAYLOAD <= QUEUE_BYTES,
        "{kept} messages kept"
    );
    assert!(
        kept as usize >= QUEUE_BYTES / PAYLOAD / 2,
        "{kept} messages kept"
    );

    let mut two = cluster.start(2).await;
    let received = two.recv(kept as usize).await;
    let slots: Vec<u64> = received
        .iter()
        .map(|inbound| snapshot_slot(&inbound.message.body))
        .collect();
    assert_eq!(
        slots,
        (0..kept).collect::<Vec<_>>(),
        "the first ones are kept, in order"
    );

    // The bytes were given back: as many again fit now.
    for seq in FLOOD..FLOOD + kept {
        let (group, message) = sized(1, 2, seq, PAYLOAD);
        one.hub.send(group, message);
    }
    let received = two.recv(kept as usize).await;
    assert_eq!(received.len() as u64, kept);
    assert_eq!(one.dropped(2, "queue_full"), dropped);
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_message_above_the_frame_limit_is_dropped_without_breaking_the_stream() {
    let config = TransportConfig {
        max_frame_bytes: 64 << 10,
        ..test_config()
    };
    let mut cluster = Cluster::new(&[1, 2]);
    let one = cluster.start_with(1, config.clone()).await;
    let mut two = cluster.start_with(2, config).await;
    wait_until("1 and 2 connected", || one.hub.connected() == [2]).await;

    let (group, huge) = sized(1, 2, 0, 128 << 10);
    one.hub.send(group, huge);
    let (group, message) = numbered(1, 2, 0);
    one.hub.send(group, message);
    let received = two.recv(1).await;
    assert_numbered(2, &received, &[1], 0..1);
    assert_eq!(one.dropped(2, "too_large"), 1);
    assert_eq!(one.peer_metric("paxlog_peer_reconnects_total", 2), 0);
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn messages_to_nodes_that_are_not_peers_are_dropped_and_counted() {
    let mut cluster = Cluster::new(&[1, 2]);
    let one = cluster.start(1).await;
    let (group, message) = numbered(1, 7, 0);
    one.hub.send(group, message);
    let (group, message) = numbered(1, 1, 0);
    one.hub.send(group, message);
    assert_eq!(one.dropped(7, "not_a_peer"), 1);
    assert_eq!(one.dropped(1, "not_a_peer"), 1);
    one.stop().await;
}

fn snapshot_slot(body: &MessageBody) -> u64 {
    match body {
        MessageBody::InstallSnapshot { slot, .. } => *slot,
        other => panic!("unexpected {other:?}"),
    }
}
