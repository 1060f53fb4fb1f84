use super::*;

fn rec(partition: u32, offset: u64, key: &str) -> ConsumedRecord {
    ConsumedRecord {
        topic: "in".into(),
        partition,
        offset,
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::from(format!("v{offset}")),
        headers: Vec::new(),
        timestamp_ms: crate::runner::now_ms(),
    }
}

fn policy(max_retries: u32, bisect: bool) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        backoff: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        max_record_age: None,
        bisect,
    }
}

fn offsets(b: &Batch) -> Vec<u64> {
    b.records.iter().map(|p| p.record.offset).collect()
}

fn ok() -> Outcome {
    Outcome::Ok {
        failed: BTreeSet::new(),
    }
}

#[test]
fn a_key_is_in_one_batch_at_a_time_and_keeps_its_order() {
    let now = Instant::now();
    let mut w = Work::new(policy(3, false), 1);
    w.add(
        vec![
            rec(0, 0, "a"),
            rec(0, 1, "b"),
            rec(0, 2, "a"),
            rec(0, 3, "c"),
        ],
        now,
    );
    let first = w.take_batch(2).expect("batch");
    assert_eq!(
        offsets(&first),
        vec![0, 2],
        "a's records together, in order"
    );
    let second = w.take_batch(10).expect("batch");
    assert_eq!(offsets(&second), vec![1, 3], "b and c, not a again");
    assert!(w.take_batch(10).is_none(), "every key is in flight");
    assert_eq!(w.in_flight(), 2);
    w.add(vec![rec(0, 4, "a")], now);
    assert!(w.take_batch(10).is_none(), "a is still in flight");
    w.complete(second, &ok(), now);
    assert_eq!(w.commit_points(), vec![(0, 0)], "offset 0 is not done yet");
    w.complete(first, &ok(), now);
    assert_eq!(offsets(&w.take_batch(10).expect("a again")), vec![4]);
    assert_eq!(w.commit_points(), vec![(0, 4)]);
    assert_eq!(w.held(), 1);
}

#[test]
fn a_failing_record_blocks_only_its_key_and_is_dead_lettered_after_its_retries() {
    let now = Instant::now();
    let mut w = Work::new(policy(2, false), 2);
    w.add(
        vec![rec(0, 0, "bad"), rec(0, 1, "good"), rec(0, 2, "bad")],
        now,
    );
    let b = w.take_batch(10).expect("batch");
    let failed: BTreeSet<String> = ["in/0/0".to_owned()].into();
    let c = w.complete(
        b,
        &Outcome::Ok {
            failed: failed.clone(),
        },
        now,
    );
    assert_eq!((c.done, c.retried, c.dead.len()), (1, 2, 0));
    assert!(w.take_batch(10).is_none(), "the bad key backs off");
    let mut t = now;
    for attempt in 2..=3 {
        t += Duration::from_millis(200);
        w.promote(t);
        let b = w.take_batch(10).expect("retry after the backoff");
        assert_eq!(
            offsets(&b),
            vec![0],
            "attempt {attempt}: the failed record alone"
        );
        let c = w.complete(
            b,
            &Outcome::Ok {
                failed: failed.clone(),
            },
            t,
        );
        if attempt == 3 {
            assert_eq!(c.dead.len(), 1, "3 attempts = 1 + max_retries");
            assert_eq!(c.dead[0].attempts, 3);
            assert_eq!(c.dead[0].record.offset, 0);
        }
    }
    assert_eq!(
        w.commit_points(),
        vec![(0, 0)],
        "not done until dead-lettered"
    );
    w.done(0, 0);
    assert_eq!(w.commit_points(), vec![(0, 2)]);
    let b = w.take_batch(10).expect("the key goes on at once");
    assert_eq!(offsets(&b), vec![2]);
    w.complete(b, &ok(), t);
    assert_eq!(w.commit_points(), vec![(0, 3)]);
    assert_eq!(w.held(), 0);
}

#[test]
fn bisection_halves_failing_batches_before_attempts_count() {
    let now = Instant::now();
    let mut w = Work::new(policy(0, true), 3);
    let keys = ["a", "b", "c", "d"];
    w.add(
        keys.iter()
            .enumerate()
            .map(|(i, k)| rec(0, i as u64, k))
            .collect(),
        now,
    );
    let b = w.take_batch(10).expect("batch");
    assert_eq!(b.records.len(), 4);
    let c = w.complete(b, &Outcome::Error("boom".into()), now);
    assert_eq!((c.retried, c.dead.len()), (4, 0), "no attempt spent");
    let half = w.take_batch(10).expect("half");
    assert_eq!(offsets(&half), vec![0, 1]);
    let other = w.take_batch(10).expect("other half");
    assert_eq!(offsets(&other), vec![2, 3]);
    w.complete(other, &ok(), now);
    w.complete(half, &Outcome::Error("boom".into()), now);
    let one = w.take_batch(10).expect("single");
    assert_eq!(offsets(&one), vec![0]);
    let two = w.take_batch(10).expect("single");
    assert_eq!(offsets(&two), vec![1]);
    w.complete(two, &ok(), now);
    let c = w.complete(one, &Outcome::Error("poison".into()), now);
    assert_eq!(
        c.dead.len(),
        1,
        "a single failing record spends its attempt"
    );
    assert_eq!(c.dead[0].last_error, "poison");
}

#[test]
fn throttling_spends_no_attempts() {
    let now = Instant::now();
    let mut w = Work::new(policy(0, false), 4);
    w.add(vec![rec(0, 0, "a")], now);
    let mut t = now;
    for _ in 0..5 {
        t += Duration::from_millis(200);
        w.promote(t);
        let b = w.take_batch(10).expect("batch");
        let c = w.complete(b, &Outcome::Throttled("429".into()), t);
        assert!(c.dead.is_empty());
    }
    t += Duration::from_millis(200);
    w.promote(t);
    let b = w.take_batch(10).expect("batch");
    assert_eq!(b.records[0].attempts, 0);
    assert_eq!(b.records[0].throttles, 5, "each throttle backs off longer");
}

#[test]
fn revoked_partitions_are_forgotten_and_their_late_batches_ignored() {
    let now = Instant::now();
    let mut w = Work::new(policy(3, false), 5);
    w.add(vec![rec(0, 0, "a"), rec(1, 0, "a"), rec(1, 1, "b")], now);
    let b = w.take_batch(1).expect("batch");
    assert_eq!(b.records[0].record.partition, 0);
    w.retain_partitions(&[1].into());
    assert_eq!(w.held(), 3, "the batch in flight still counts");
    let c = w.complete(b, &ok(), now);
    assert_eq!(c.done, 0, "partition 0 is someone else's now");
    assert_eq!(w.held(), 2);
    assert_eq!(w.commit_points(), vec![(1, 0)]);
    w.add(vec![rec(0, 0, "a")], now);
    assert_eq!(
        w.commit_points(),
        vec![(0, 0), (1, 0)],
        "reassigned: read again"
    );
}

#[test]
fn backoff_is_jittered_and_capped() {
    let mut w = Work::new(policy(3, false), 6);
    for attempt in 1..20 {
        let d = w.backoff(attempt);
        let cap = Duration::from_millis((10u64 << (attempt - 1).min(30)).min(100));
        assert!(
            d > Duration::ZERO && d <= cap,
            "attempt {attempt}: {d:?} > {cap:?}"
        );
    }
}
