//! Corruption: a byte flipped inside one stored record batch of a stopped node. On restart
//! the node detects it (its CRC check) and takes that replica out of service: it neither
//! serves (fetches get a clear CORRUPT_DATA error) nor votes, while the other replicas keep
//! serving correct data and taking writes.

use super::client::{History, Producer, check};
use super::harness::{Cluster, read_all, record, wait_replica_equals};
use paxlog_broker::storage::{Cf, Db};
use paxlog_proto::v1 as pb;

const TOPIC: &str = "ledger";

/// Publishes `count` batches of 3 records.
async fn produce(c: &Cluster, among: &[u64], phase: &str, count: usize, history: &mut History) {
    let leader = c.leaders_among(TOPIC, among).await[0];
    let mut producer = Producer::new(c.addrs(), TOPIC, 0, leader);
    for b in 0..count {
        let values: Vec<String> = (0..3).map(|i| format!("{phase}-{b:04}-{i}")).collect();
        let sent = producer
            .send(values.iter().map(|v| record("k", v)).collect())
            .await;
        history.record(&values, &sent);
    }
}

/// Flips the last byte of the stored log entry of the first record batch at or after the
/// middle of partition `group`'s log, bypassing the CRC (the value is rewritten raw).
/// Returns the slot. Checks that the storage layer's own scan now reports it.
fn corrupt_one_batch(data_dir: &std::path::Path, node: u64, group: u64) -> u64 {
    let db = Db::open(data_dir, node).expect("open the stopped node's data");
    let raw = db.db();
    let log = raw.cf_handle(Cf::Log.name()).expect("log column family");
    let entries: Vec<_> = raw
        .prefix_iterator_cf(log, group.to_be_bytes())
        .map(|item| item.expect("read the log"))
        .take_while(|(key, _)| key.starts_with(&group.to_be_bytes()))
        .collect();
    // Value: crc(4) | ballot round(8) | ballot node(8) | kind(1): 1 = data | payload.
    let (key, value) = entries[entries.len() / 2..]
        .iter()
        .find(|(_, value)| value.len() > 21 && value[20] == 1)
        .expect("a stored record batch");
    let mut flipped = value.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x20;
    raw.put_cf(log, key, &flipped)
        .expect("write the flipped entry");
    let slot = u64::from_be_bytes(key[8..16].try_into().expect("16-byte key"));
    let err = db
        .verify_group(group)
        .expect_err("the flip is caught by the CRC");
    assert!(
        err.is_corruption() && err.to_string().contains(&format!("slot {slot}")),
        "{err}"
    );
    db.flush().expect("sync");
    slot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_detected_and_taken_out_while_the_others_serve() {
    let mut c = Cluster::start(3).await;
    c.create_topic(TOPIC, 1, 3).await;
    // The first partition ever created is Paxos group 1 (group 0 is the metadata).
    let group = 1;
    let mut history = History::default();
    produce(&c, &[1, 2, 3], "before", 100, &mut history).await;
    let leader = c.leaders(TOPIC).await[0];
    let victim = (1..=3).find(|&id| id != leader).expect("a follower");
    let other = (1..=3)
        .find(|&id| id != leader && id != victim)
        .expect("another follower");
    let before = read_all(&c, leader, TOPIC, 0).await;
    wait_replica_equals(&c, victim, TOPIC, 0, &before).await;

    c.kill(victim);
    let slot = corrupt_one_batch(c.data_dir(victim), victim, group);
    c.restart(victim).await;
    let found = c.wait_log(victim, "corrupt data found").await;
    assert!(
        found.contains(&format!("slot {slot}")) && found.contains("checksum mismatch"),
        "{found}"
    );

    // The corrupt replica never serves a record: it answers with a clear error instead.
    let status = c
        .consumer(victim)
        .await
        .fetch(pb::FetchRequest {
            topic: TOPIC.into(),
            partition: 0,
            offset: 0,
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
        })
        .await
        .expect_err("a replica with corrupt data must not serve");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("corrupt data found"),
        "{status:?}"
    );
    let detail: pb::Error = prost::Message::decode(status.details()).expect("error details");
    assert_eq!(detail.code, pb::ErrorCode::CorruptData as i32);

    // The others serve the correct records and take new writes meanwhile.
    for id in [leader, other] {
        assert_eq!(read_all(&c, id, TOPIC, 0).await, before, "node {id}");
    }
    produce(&c, &[leader, other], "after", 50, &mut history).await;
    let leader = c.leaders_among(TOPIC, &[leader, other]).await[0];
    let log = read_all(&c, leader, TOPIC, 0).await;
    let tally = check(0, std::slice::from_ref(&history), &log);
    assert_eq!(tally.stored, 450, "{tally:?}");
    for id in [leader, other] {
        wait_replica_equals(&c, id, TOPIC, 0, &log).await;
    }
    eprintln!(
        "slot {slot} of node {victim} flipped: detected on restart, replica out of service; \
         {} records served correctly by nodes {leader} and {other}",
        tally.stored
    );
}
