//! Consumer groups over real brokers: members share a topic's partitions (each partition
//! owned by exactly one member per generation), a silent member's partitions move to the
//! others, commits are fenced by member and generation, lag is end minus committed, and
//! committed offsets and the generation survive a coordinator kill -9.

use super::client::wire_error;
use super::harness::{Cluster, DEADLINE, POLL, channel, record};
use paxlog_proto::v1 as pb;
use pb::groups_client::GroupsClient;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tonic::Status;

const GROUP: &str = "workers";
const TOPIC: &str = "events";
const SESSION_MS: u32 = 1_500;

/// Sends a group request to the coordinator: follows NOT_COORDINATOR / NOT_LEADER hints,
/// backs off while the coordinator recovers, tries another broker when one is down.
/// Returns the first answer that is not a redirect.
pub(super) async fn call<T, F, Fut>(c: &Cluster, mut f: F) -> Result<T, Status>
where
    F: FnMut(GroupsClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
{
    let deadline = Instant::now() + DEADLINE;
    let mut target = c.running()[0];
    loop {
        assert!(
            Instant::now() < deadline,
            "no coordinator answered\n{}",
            c.logs()
        );
        let Ok(ch) = channel(c.addr(target)).await else {
            target = next(c, target);
            continue;
        };
        let status = match f(GroupsClient::new(ch)).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) => s,
        };
        let wire = wire_error(&status);
        match wire.as_ref().map(|e| e.code()) {
            Some(pb::ErrorCode::NotCoordinator | pb::ErrorCode::NotLeader) => {
                match wire.and_then(|e| e.leader) {
                    Some(hint) if hint.node_id != target => target = hint.node_id,
                    _ => {
                        target = next(c, target);
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
            Some(pb::ErrorCode::Throttled) => tokio::time::sleep(POLL).await,
            None => {
                target = next(c, target);
                tokio::time::sleep(POLL).await;
            }
            _ => return Err(status),
        }
    }
}

fn next(c: &Cluster, after: u64) -> u64 {
    let running = c.running();
    *running
        .iter()
        .find(|id| **id > after)
        .unwrap_or(&running[0])
}

/// A member's view: id, generation, assignment.
#[derive(Clone, Debug)]
struct Member {
    id: String,
    generation: u64,
    partitions: BTreeSet<u32>,
}

async fn join(c: &Cluster, member_id: &str) -> Member {
    let r = call(c, |mut g| {
        let req = pb::JoinGroupRequest {
            group: GROUP.into(),
            member_id: member_id.into(),
            topics: vec![TOPIC.into()],
            session_timeout_ms: SESSION_MS,
            strategy: pb::AssignmentStrategy::Range as i32,
        };
        async move { g.join_group(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("join: {s:?}\n{}", c.logs()));
    assert!(r.heartbeat_interval_ms > 0 && r.heartbeat_interval_ms < SESSION_MS);
    Member {
        id: r.member_id,
        generation: r.generation,
        partitions: r
            .assignment
            .iter()
            .filter(|tp| tp.topic == TOPIC)
            .flat_map(|tp| tp.partitions.iter().copied())
            .collect(),
    }
}

async fn heartbeat(c: &Cluster, m: &Member) -> Result<(), Status> {
    call(c, |mut g| {
        let req = pb::HeartbeatRequest {
            group: GROUP.into(),
            member_id: m.id.clone(),
            generation: m.generation,
        };
        async move { g.heartbeat(req).await }
    })
    .await
    .map(|_| ())
}

async fn commit(
    c: &Cluster,
    m: &Member,
    generation: u64,
    offsets: &[(u32, u64)],
) -> Result<(), Status> {
    call(c, |mut g| {
        let req = pb::CommitOffsetsRequest {
            group: GROUP.into(),
            member_id: m.id.clone(),
            generation,
            offsets: offsets
                .iter()
                .map(|(partition, offset)| pb::OffsetCommit {
                    topic: TOPIC.into(),
                    partition: *partition,
                    offset: *offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        async move { g.commit_offsets(req).await }
    })
    .await
    .map(|_| ())
}

async fn committed(c: &Cluster) -> BTreeMap<u32, u64> {
    let r = call(c, |mut g| {
        let req = pb::FetchOffsetsRequest {
            group: GROUP.into(),
            partitions: vec![],
        };
        async move { g.fetch_offsets(req).await }
    })
    .await
    .expect("fetch offsets");
    r.offsets
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect()
}

fn code(s: &Status) -> Option<pb::ErrorCode> {
    wire_error(s).map(|e| e.code())
}

/// Members rejoin until all hold the same generation; every partition of the topic is
/// then owned by exactly one of them.
async fn settle(c: &Cluster, members: &mut [Member]) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut all_current = true;
        for m in members.iter_mut() {
            if let Err(s) = heartbeat(c, m).await {
                assert_eq!(code(&s), Some(pb::ErrorCode::RebalanceInProgress), "{s:?}");
                *m = join(c, &m.id).await;
                all_current = false;
            }
        }
        let generations: BTreeSet<u64> = members.iter().map(|m| m.generation).collect();
        if all_current && generations.len() == 1 {
            let mut owners = BTreeMap::new();
            for m in members.iter() {
                for p in &m.partitions {
                    assert!(
                        owners.insert(*p, m.id.clone()).is_none(),
                        "partition {p} owned twice: {members:?}"
                    );
                }
            }
            assert_eq!(owners.len(), 6, "every partition owned: {members:?}");
            return *generations.first().expect("a generation");
        }
        assert!(
            Instant::now() < deadline,
            "members never settled: {members:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_commits_are_fenced_and_survive_a_coordinator_kill() {
    let mut c = Cluster::start(3).await;
    c.create_topic(TOPIC, 6, 3).await;

    let a = join(&c, "").await;
    assert_eq!(a.partitions.len(), 6, "a lone member owns everything");
    let b = join(&c, "").await;
    let cc = join(&c, "").await;
    let mut members = vec![a, b, cc];
    let generation = settle(&c, &mut members).await;
    for m in &members {
        assert_eq!(m.partitions.len(), 2, "{members:?}");
    }

    // Commits: the owner in the current generation only.
    let (a, b) = (members[0].clone(), members[1].clone());
    let a_parts: Vec<(u32, u64)> = a.partitions.iter().map(|p| (*p, 3)).collect();
    commit(&c, &a, generation, &a_parts)
        .await
        .expect("owner commits");
    let stale = commit(&c, &a, generation - 1, &a_parts)
        .await
        .expect_err("stale");
    assert_eq!(
        code(&stale),
        Some(pb::ErrorCode::StaleGeneration),
        "{stale:?}"
    );
    let b_first = *b.partitions.first().expect("b owns some");
    let foreign = commit(&c, &a, generation, &[(b_first, 1)])
        .await
        .expect_err("not owner");
    assert_eq!(
        code(&foreign),
        Some(pb::ErrorCode::StaleGeneration),
        "{foreign:?}"
    );
    // Never backwards: a lower commit leaves the offset where it was.
    commit(&c, &a, generation, &[(a_parts[0].0, 1)])
        .await
        .expect("lower commit");
    let got = committed(&c).await;
    for (p, _) in &a_parts {
        assert_eq!(got.get(p), Some(&3), "{got:?}");
    }

    // Lag = end offset - committed: publish 5 records to one of a's partitions.
    let p0 = a_parts[0].0;
    let leader = c.leaders(TOPIC).await[p0 as usize];
    let mut producer = c.producer(leader).await;
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 3_600_000;
    producer
        .publish(pb::PublishRequest {
            topic: TOPIC.into(),
            partition: Some(p0),
            // An hour old: the lag in time is then at least an hour.
            records: (0..5)
                .map(|i| pb::Record {
                    timestamp_ms: hour_ago,
                    ..record("k", &format!("v{i}"))
                })
                .collect(),
            ..Default::default()
        })
        .await
        .expect("publish");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = call(&c, |mut g| {
            let req = pb::DescribeGroupRequest {
                group: GROUP.into(),
            };
            async move { g.describe_group(req).await }
        })
        .await
        .expect("describe");
        assert_eq!(d.members.len(), 3);
        let row = d
            .partitions
            .iter()
            .find(|r| r.topic == TOPIC && r.partition == p0)
            .expect("a row per partition")
            .clone();
        for r in &d.partitions {
            let base = r.committed_offset.unwrap_or(0);
            assert_eq!(r.lag, r.end_offset.saturating_sub(base), "{r:?}");
        }
        if row.end_offset == 5 {
            assert_eq!((row.committed_offset, row.lag), (Some(3), 2), "{row:?}");
            assert!(
                (3_600_000..3_600_000 + 600_000).contains(&row.lag_ms),
                "the oldest unconsumed record is an hour old: {row:?}"
            );
            for r in d.partitions.iter().filter(|r| r.lag == 0) {
                assert_eq!(r.lag_ms, 0, "{r:?}");
            }
            assert_eq!(row.member_id, a.id);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "end offset never reached 5: {row:?}"
        );
        tokio::time::sleep(POLL).await;
    }

    // The third member goes silent: a and b keep heartbeating until the coordinator
    // expires it, then rejoin and share its partitions, keeping their own.
    let silent = members.pop().expect("third member");
    let before: Vec<BTreeSet<u32>> = members.iter().map(|m| m.partitions.clone()).collect();
    let deadline = Instant::now() + DEADLINE;
    'expiry: loop {
        for m in &members {
            if let Err(s) = heartbeat(&c, m).await {
                assert_eq!(code(&s), Some(pb::ErrorCode::RebalanceInProgress), "{s:?}");
                break 'expiry;
            }
        }
        assert!(Instant::now() < deadline, "the silent member never expired");
        tokio::time::sleep(POLL * 4).await;
    }
    let generation = settle(&c, &mut members).await;
    for (m, had) in members.iter().zip(&before) {
        assert_eq!(m.partitions.len(), 3, "{members:?}");
        assert!(
            m.partitions.is_superset(had),
            "{} lost partitions: {had:?} -> {:?}",
            m.id,
            m.partitions
        );
    }
    let gone = heartbeat(&c, &silent).await.expect_err("expired");
    assert_eq!(code(&gone), Some(pb::ErrorCode::UnknownMember), "{gone:?}");

    // kill -9 the coordinator: offsets and the generation survive; the members go on
    // heartbeating and committing in the same generation at the new coordinator.
    let coordinator = call(&c, |mut g| {
        let req = pb::DescribeGroupRequest {
            group: GROUP.into(),
        };
        async move { g.describe_group(req).await }
    })
    .await
    .expect("describe")
    .coordinator;
    let before_kill = committed(&c).await;
    c.kill(coordinator);
    assert_eq!(
        committed(&c).await,
        before_kill,
        "committed offsets survive"
    );
    for m in &members {
        heartbeat(&c, m)
            .await
            .expect("same generation at the new coordinator");
    }
    let a = members[0].clone();
    let parts: Vec<(u32, u64)> = a.partitions.iter().map(|p| (*p, 4)).collect();
    commit(&c, &a, generation, &parts)
        .await
        .expect("commit after failover");
    let got = committed(&c).await;
    for (p, _) in &parts {
        assert_eq!(got.get(p), Some(&4), "{got:?}");
    }
    c.restart(coordinator).await;
    let listed = call(&c, |mut g| async move {
        g.list_groups(pb::ListGroupsRequest {}).await
    })
    .await
    .expect("list");
    assert!(
        listed
            .groups
            .iter()
            .any(|g| g.group == GROUP && g.members == 2),
        "{listed:?}"
    );
}
