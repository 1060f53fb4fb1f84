//! ElectLeader on real brokers: leadership moves to the replica asked for and publishes
//! follow it; a target that is down never gets it, and the leader leads on.

use super::harness::Cluster;
use paxlog_client::connection::ConnectOptions;
use paxlog_client::{Client, ProducerConfig, ProducerRecord};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_replica_asked_for_and_not_to_one_that_is_down() {
    let mut c = Cluster::start(3).await;
    c.create_topic("moves", 1, 3).await;
    let seeds: Vec<String> = (1..=3).map(|id| c.addr(id).to_string()).collect();
    let client = Client::connect_with(seeds, ConnectOptions::default(), Duration::from_secs(5))
        .await
        .expect("connect");
    let leader = c.leaders("moves").await[0];
    let to = (1..=3).find(|&n| n != leader).expect("a follower");

    client
        .admin()
        .elect_leader("moves", 0, to)
        .await
        .expect("elect");
    assert_eq!(c.leaders("moves").await, vec![to], "every node agrees");
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    producer
        .send_and_wait(ProducerRecord::new("moves", "after the move"))
        .await
        .expect("publishes follow the new leader");
    // Asking for the leader it already has is answered at once.
    client
        .admin()
        .elect_leader("moves", 0, to)
        .await
        .expect("no-op");

    // A replica that is down cannot catch up: the leader gives up the hand-over (after its
    // election timeout) and says so; the leadership stays. Asked of the leader directly, so
    // that the answer is the broker's, not a client deadline's.
    let down = (1..=3).find(|&n| n != to).expect("another replica");
    c.kill(down);
    let request = paxlog_proto::v1::ElectLeaderRequest {
        topic: "moves".into(),
        partition: 0,
        node_id: down,
        timeout_ms: 30_000,
    };
    let status = c
        .admin(to)
        .await
        .elect_leader(request)
        .await
        .expect_err("a stopped replica cannot take over");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("did not catch up in time"),
        "{status:?}"
    );
    assert_eq!(c.leaders("moves").await, vec![to]);
}
