//! Peers that are down, come up, or restart: the hub dials until it gets through, keeps
//! what was queued meanwhile, and resumes after a restart.

use crate::harness::{Cluster, assert_numbered, numbered, wait_until};

/// The dialer (node 1) starts first; node 2's port refuses connections until it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_at_start_is_dialed_until_it_comes_up() {
    const N: u64 = 200;
    let mut cluster = Cluster::new(&[1, 2]);
    let mut one = cluster.start(1).await;
    for seq in 0..N {
        let (group, message) = numbered(1, 2, seq);
        one.hub.send(group, message);
    }
    assert!(one.hub.connected().is_empty());
    assert_eq!(one.peer_metric("paxlog_peer_connected", 2), 0);

    let mut two = cluster.start(2).await;
    let received = two.recv(N as usize).await;
    assert_numbered(2, &received, &[1], 0..N);

    // And the other way, on the same stream.
    for seq in 0..N {
        let (group, message) = numbered(2, 1, seq);
        two.hub.send(group, message);
    }
    let received = one.recv(N as usize).await;
    assert_numbered(1, &received, &[2], 0..N);
    assert_eq!(one.hub.connected(), [2]);
    assert_eq!(two.hub.connected(), [1]);
    assert_eq!(one.peer_metric("paxlog_peer_connected", 2), 1);
    one.stop().await;
    two.stop().await;
}

/// The acceptor (node 2) starts first and queues for node 1, which dials it later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_for_a_late_dialer_are_delivered_when_it_connects() {
    const N: u64 = 200;
    let mut cluster = Cluster::new(&[1, 2]);
    let two = cluster.start(2).await;
    for seq in 0..N {
        let (group, message) = numbered(2, 1, seq);
        two.hub.send(group, message);
    }
    let mut one = cluster.start(1).await;
    let received = one.recv(N as usize).await;
    assert_numbered(1, &received, &[2], 0..N);
    wait_until("node 2 counted what it sent", || {
        two.peer_metric("paxlog_peer_messages_sent_total", 1) == N
    })
    .await;
    one.stop().await;
    two.stop().await;
}

/// Restarting the accepting node, then the dialing node: each time the pair reconnects
/// and messages sent afterwards arrive, in order, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_peer_restarts_the_hub_reconnects_and_delivery_resumes() {
    const N: u64 = 100;
    let mut cluster = Cluster::new(&[1, 2]);
    let mut one = cluster.start(1).await;
    let mut two = cluster.start(2).await;
    exchange(&mut one, &mut two, 0..N).await;

    // The acceptor restarts: node 1's stream breaks and it redials.
    two.stop().await;
    let mut two = cluster.start(2).await;
    // (Node 1 may not have noticed the loss yet; its reconnect count tells the new stream.)
    wait_until("node 1 redialed", || {
        one.peer_metric("paxlog_peer_reconnects_total", 2) == 1 && one.hub.connected() == [2]
    })
    .await;
    wait_until("the restarted node 2 accepted", || {
        two.hub.connected() == [1]
    })
    .await;
    exchange(&mut one, &mut two, N..2 * N).await;

    // The dialer restarts: node 2's stream ends and the new node 1 dials again.
    one.stop().await;
    wait_until("node 2 saw node 1 go", || two.hub.connected().is_empty()).await;
    let mut one = cluster.start(1).await;
    wait_until("the restarted node 1 dialed node 2", || {
        one.hub.connected() == [2]
    })
    .await;
    wait_until("node 2 accepted", || two.hub.connected() == [1]).await;
    // The restarted node 2 has seen two streams from node 1: one reconnect.
    assert_eq!(two.peer_metric("paxlog_peer_reconnects_total", 1), 1);
    exchange(&mut one, &mut two, 2 * N..3 * N).await;

    one.stop().await;
    two.stop().await;
}

/// Sends `seqs` from each node to the other and checks both receive them in order.
async fn exchange(
    one: &mut crate::harness::Node,
    two: &mut crate::harness::Node,
    seqs: std::ops::Range<u64>,
) {
    for seq in seqs.clone() {
        let (group, message) = numbered(1, 2, seq);
        one.hub.send(group, message);
        let (group, message) = numbered(2, 1, seq);
        two.hub.send(group, message);
    }
    let n = (seqs.end - seqs.start) as usize;
    let received = two.recv(n).await;
    assert_numbered(2, &received, &[1], seqs.clone());
    let received = one.recv(n).await;
    assert_numbered(1, &received, &[2], seqs);
}
