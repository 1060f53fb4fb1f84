//! Consumer group series on real brokers: the group's coordinator exports the committed
//! offset and lag of each partition and the member count, follows commits and leaves, and
//! the other brokers export nothing for the group.

use super::client::{Producer, Sent};
use super::groups::call;
use super::harness::{Cluster, DEADLINE, POLL, record};
use super::metrics::scrape;
use paxlog_proto::v1 as pb;
use std::time::Instant;

const GROUP: &str = "dashboards";
const TOPIC: &str = "gm";
/// Records published to partitions 0 and 1.
const PUBLISHED: [u64; 2] = [5, 3];

/// What the coordinator should show for the group: committed offset and lag of
/// partitions 0 and 1, and members.
#[derive(Debug, PartialEq)]
struct Shown {
    committed: [Option<f64>; 2],
    lag: [Option<f64>; 2],
    members: Option<f64>,
}

async fn shown(c: &Cluster, node: u64) -> Shown {
    let s = scrape(c.node(node).metrics).await;
    let series = |name: &str, p: &str| {
        s.value(
            name,
            &[("group", GROUP), ("topic", TOPIC), ("partition", p)],
        )
    };
    Shown {
        committed: ["0", "1"].map(|p| series("paxlog_group_committed_offset", p)),
        lag: ["0", "1"].map(|p| series("paxlog_group_lag_records", p)),
        members: s.value("paxlog_group_members", &[("group", GROUP)]),
    }
}

/// Polls the coordinator's `/metrics` until it shows `want`.
async fn wait_shown(c: &Cluster, coordinator: u64, want: Shown) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = shown(c, coordinator).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "coordinator {coordinator} shows {now:?}, not {want:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn commit(c: &Cluster, member: &str, generation: u64, offsets: [u64; 2]) {
    call(c, |mut g| {
        let offsets = (0..2)
            .map(|p| pb::OffsetCommit {
                topic: TOPIC.into(),
                partition: p,
                offset: offsets[p as usize],
                metadata: String::new(),
            })
            .collect();
        let req = pb::CommitOffsetsRequest {
            group: GROUP.into(),
            member_id: member.into(),
            generation,
            offsets,
        };
        async move { g.commit_offsets(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("commit: {s:?}\n{}", c.logs()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_exports_committed_offsets_lag_and_members_of_its_groups() {
    let c = Cluster::start(3).await;
    c.create_topic(TOPIC, 2, 3).await;
    let leaders = c.leaders(TOPIC).await;
    for (partition, count) in PUBLISHED.iter().enumerate() {
        let mut producer = Producer::new(c.addrs(), TOPIC, partition as u32, leaders[partition]);
        let records = (0..*count).map(|i| record("k", &i.to_string())).collect();
        let sent = producer.send(records).await;
        assert_eq!(sent, Sent::Acked(0), "partition {partition}\n{}", c.logs());
    }

    let joined = call(&c, |mut g| {
        let req = pb::JoinGroupRequest {
            group: GROUP.into(),
            topics: vec![TOPIC.into()],
            session_timeout_ms: 30_000,
            ..Default::default()
        };
        async move { g.join_group(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("join: {s:?}\n{}", c.logs()));
    commit(&c, &joined.member_id, joined.generation, [2, 3]).await;
    let described = call(&c, |mut g| {
        let req = pb::DescribeGroupRequest {
            group: GROUP.into(),
        };
        async move { g.describe_group(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("describe: {s:?}\n{}", c.logs()));
    let coordinator = described.coordinator;

    // Every broker hosts both partitions (replication 3), so the coordinator knows lag.
    wait_shown(
        &c,
        coordinator,
        Shown {
            committed: [Some(2.0), Some(3.0)],
            lag: [Some(3.0), Some(0.0)],
            members: Some(1.0),
        },
    )
    .await;
    commit(&c, &joined.member_id, joined.generation, [5, 3]).await;
    call(&c, |mut g| {
        let req = pb::LeaveGroupRequest {
            group: GROUP.into(),
            member_id: joined.member_id.clone(),
        };
        async move { g.leave_group(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("leave: {s:?}\n{}", c.logs()));
    wait_shown(
        &c,
        coordinator,
        Shown {
            committed: [Some(5.0), Some(3.0)],
            lag: [Some(0.0), Some(0.0)],
            members: Some(0.0),
        },
    )
    .await;

    for other in (1..=3).filter(|id| *id != coordinator) {
        let s = scrape(c.node(other).metrics).await;
        let group = [("group", GROUP)];
        assert!(
            s.all("paxlog_group_members", &group).is_empty()
                && s.all("paxlog_group_committed_offset", &group).is_empty()
                && s.all("paxlog_group_lag_records", &group).is_empty(),
            "node {other} is not the coordinator ({coordinator}) but exports the group:\n{}",
            s.text
        );
    }
}
