//! One test per bug the simulation found in `consensus/src/replica`, named for the broken
//! behaviour. Each documents the failure, the root cause and the fix; seeds replay with the
//! harness version in their parameter string (`v=`), so a change of the harness that shifts
//! the random streams makes them fail loudly rather than silently test something else.

use crate::sim::script::among;
use crate::sim::{Cluster, Params, run};
use paxlog_consensus::{Message, MessageBody, NodeId};

/// Runs a recorded failing schedule, which must now pass.
fn replays_clean(seed: u64, params: &str) {
    let params = Params::parse(params, Params::from_seed(seed)).expect("recorded parameters");
    if let Err(f) = run(seed, &params) {
        panic!("{f}");
    }
}

/// **Bug 1 (safety): a follower decided a value that was never chosen.**
///
/// Leader L (ballot b) is still learning its prefix when a higher-ballot leader B decides
/// slot `s`, where L had proposed "x" under b and follower F accepted it. L then learns B's
/// value "y" for `s` and its decided index passes `s`. A follower marks a slot decided when
/// it holds an entry under its leader's ballot at or below its leader's decided index, so F
/// decided "x" where "y" was decided: `agreement: node 3 decided "x" for slot 10, which
/// already had "y"` (before the fix).
///
/// Root cause: a leader's decided index vouches for its own entries only while it decides
/// them itself; learning a foreign decision for a slot it proposed breaks that. Fix
/// (`learner.rs`, `proposer.rs`): a leader that learns a decision for a slot it proposed
/// with another value, or for a slot it has not proposed yet, or installs a snapshot that
/// covers one of its undecided slots, has been superseded and steps down first.
///
/// Scripted (5 nodes: L, F, T with B, X): the random schedules did not hit this window in
/// the runs made while it was open, so the interleaving is forced.
#[test]
fn leader_that_learns_a_foreign_decision_does_not_vouch_for_its_own_proposal() {
    let mut c = Cluster::new(
        7,
        Params {
            clients: 1,
            ..Params::quiet(5)
        },
    );
    let old = ok!(c, c.settle(3));
    let l = (1..=5).find(|&n| n != old).expect("five nodes");
    c.crash_node(l); // L misses the next slots: it will have to learn them as leader
    let old = ok!(c, c.settle(8));
    let k = c.decided_on(old);
    let rest: Vec<NodeId> = (1..=5).filter(|&n| n != l && n != old).collect();
    let (t, f, b, x) = (rest[0], rest[1], rest[2], old);
    // The old leader bounces (so nobody leads), L comes back behind; the network is cleared.
    c.crash_node(old);
    ok!(c, c.restart((old - 1) as usize));
    ok!(c, c.restart((l - 1) as usize));
    c.drop_where(|_| true);

    // L elects itself with F and T. T sees only the Prepare (so it follows nobody), and L's
    // requests to learn from T get no answer yet.
    let lft = among(vec![l, f, t]);
    let is_prepare = |m: &Message| matches!(m.body, MessageBody::Prepare { .. });
    for _ in 0..20 {
        c.drop_where(|m| !lft(m));
        ok!(
            c,
            c.tick_node_until(l, 200, |c| c.net.any(|m| m.from == l && is_prepare(m)))
        );
        c.drop_where(|m| !lft(m));
        ok!(
            c,
            c.deliver_where(|m| {
                lft(m)
                    && (m.to != t || is_prepare(m))
                    && !matches!(
                        m.body,
                        MessageBody::Learn { .. } | MessageBody::Decided { .. }
                    )
            })
        );
        if c.role_of(l) == "leader" {
            break;
        }
        // F or T still deem the old leader alive: let their clocks run (their own
        // candidacies go nowhere), then L tries again.
        for _ in 0..5 {
            ok!(c, c.tick_node(f));
            ok!(c, c.tick_node(t));
        }
        c.drop_where(|m| (m.from == f || m.from == t) && is_prepare(m));
    }
    assert_eq!(c.role_of(l), "leader", "L must have won with F and T");
    // L proposes "x" in slot k + 1; only F accepts it.
    let px = ok!(c, c.propose_to(l, "x"));
    assert_eq!(px.slot, k + 1);
    ok!(
        c,
        c.deliver_where(|m| among(vec![l, f])(m) && !matches!(m.body, MessageBody::Learn { .. }))
    );
    c.drop_where(|m| m.from == l && m.to != t);

    // B elects itself with T and X (retrying above L's ballot if it has to) and decides "y"
    // in the same slot; L and F hear nothing of it.
    let btx = among(vec![b, t, x]);
    for _ in 0..5 {
        ok!(c, c.tick_node_until(b, 200, |c| c.role_of(b) != "follower"));
        ok!(c, c.deliver_where(&btx));
        if c.role_of(b) == "leader" {
            break;
        }
    }
    assert_eq!(c.role_of(b), "leader", "B must have won with T and X");
    assert_eq!(ok!(c, c.propose_to(b, "y")).slot, k + 1);
    for _ in 0..10 {
        ok!(c, c.tick_node(b));
        ok!(c, c.deliver_where(&btx));
    }
    assert!(c.decided_on(t) > k, "T must know slot {} decided", k + 1);

    // Now T answers L's (retransmitted) requests to learn: L learns "y" for slot k + 1.
    c.drop_where(|m| m.from == b || m.to == b || m.from == x || m.to == x);
    let learn = |m: &Message| matches!(m.body, MessageBody::Learn { .. });
    ok!(
        c,
        c.tick_node_until(l, 20, |c| c
            .net
            .any(|m| m.from == l && m.to == t && learn(m)))
    );
    c.drop_where(|m| m.to == t && !learn(m));
    ok!(
        c,
        c.deliver_where(|m| {
            (m.from == l && m.to == t && learn(m))
                || (m.from == t && m.to == l && matches!(m.body, MessageBody::Decided { .. }))
        })
    );
    assert!(c.decided_on(l) > k, "L must have learned slot {}", k + 1);

    // L's next messages reach F: with the bug, F decided "x" where "y" was decided.
    for _ in 0..6 {
        ok!(c, c.tick_node(l));
        ok!(c, c.deliver_where(among(vec![l, f])));
    }
    ok!(c, c.finish());
}

/// **Bug 2 (liveness): a leader waited forever to learn its prefix from a dead replica.**
///
/// Found by the random schedules once the calm phase started keeping a minority down (first
/// as seed 1819, whose schedule later changed). Three nodes, crashes only: an old leader
/// decided slot 1 with one follower's acceptance (which never learned it was decided); the
/// next leader won with the old leader's promise, which reported slot 1 decided, so slot 1
/// was to be learned from it, never re-proposed. The old leader then stayed down, the new
/// one sent `Learn` to it forever, and nothing more was ever applied: `liveness: not
/// converged after 6000 ticks` with the leader at decided 0.
///
/// Root cause: slots up to the quorum's decided index are only learned, from the one replica
/// that reported them; nothing recovers if it is gone. Fix (`proposer.rs`, `leader_tick`): a
/// leader behind its known decided index that learns nothing for an election timeout runs
/// phase 1 again, with whoever answers now (which re-proposes what the survivors accepted).
#[test]
fn leader_whose_teacher_died_runs_phase_one_again() {
    replays_clean(
        5909,
        "n=3,clients=4,steps=150,drop=0,dup=0,delay=20,late=0,replay=0,crash=26,bounce=0,wipe=0,\
         restart=16,part=0,heal=21,compact=0,lazy=0,propose=250,hb=3,rt=2,emin=15,emax=30,\
         inflight=4,batch=2,lockstep=0,xfer=0,v=9",
    );
}

/// **Bug 3 (liveness): a new leader learned from a stale source instead of its quorum.**
///
/// Found by the random schedules (minority kept down). Three nodes, crashes only: node 3
/// heard from leader 2 that slots up to 5 were decided (so it would learn them from node 2);
/// node 2 went down for good; node 3 won an election with node 1's promise, which also
/// reported 5 decided. Since 5 was not above what node 3 already knew, it kept asking dead
/// node 2, in this and every later term (even with the fix of bug 2 making it re-elect).
///
/// Root cause: `become_leader` re-targeted learning only when the quorum reported a decided
/// index above the one already known. Fix (`proposer.rs`, `become_leader`): a new leader
/// that is behind its quorum learns from the quorum member with the highest decided index.
#[test]
fn new_leader_learns_from_its_quorum_not_a_stale_source() {
    replays_clean(
        326,
        "n=3,clients=2,steps=150,drop=0,dup=0,delay=19,late=0,replay=0,crash=20,bounce=0,\
         restart=34,part=0,heal=15,compact=0,lazy=0,propose=188,hb=3,rt=6,emin=15,emax=30,\
         inflight=8,batch=4,lockstep=0,wipe=0,xfer=0,v=9",
    );
}

/// **Open bug 4 (safety): a replica that lost its storage votes again too early.**
///
/// Found by the disk-loss fault (`wipe`, off in the default mix until this is fixed). Three
/// nodes: a node that had helped decide slot 10 loses its disk and restarts with
/// `Config::repairing`. Its repair watermark is the `last_slot` of the first leader message
/// it sees, which can be a stale one (an old leader's heartbeat still in flight), so it
/// finishes repairing below slot 10 and votes again without the acceptance it lost; a new
/// leader elected with its promise sees nothing in slot 10 and decides a no-op there:
/// `agreement: node 2 decided noop for slot 10, which already had "c0-3"`.
///
/// Not fixed: the watermark cannot be made safe from one leader's word, and the promises the
/// replica made before the loss are gone too (see `disk_loss_must_not_reuse_a_ballot`). A
/// correct repair needs the state of a majority (their highest accepted slot and promised
/// ballot) before the replica votes; that is a protocol decision, not a local fix.
#[test]
#[ignore = "open bug 4: disk-loss repair is unsafe"]
fn disk_loss_repair_must_not_vote_below_what_it_accepted() {
    replays_clean(
        625,
        "n=3,clients=2,steps=300,drop=73,dup=45,delay=13,late=19,replay=0,crash=11,bounce=1000,\
         wipe=1000,restart=28,part=2,heal=29,compact=2,lazy=0,propose=223,hb=2,rt=6,emin=8,emax=23,\
         inflight=64,batch=256,lockstep=0,xfer=0,v=9",
    );
}

/// **Open bug 4, second face: a replica that lost its storage reused a ballot.** Ballots are
/// unique because a candidate persists its ballot before sending `Prepare`; after a disk loss
/// the replica no longer knows the rounds it used, finishes repairing (as above) and, once a
/// candidate again, leads with a ballot it had already led with:
/// `ballot 4.3 led twice: by node 3 (incarnation 0), then node 3 (incarnation 1)`.
#[test]
#[ignore = "open bug 4: disk-loss repair is unsafe"]
fn disk_loss_must_not_reuse_a_ballot() {
    replays_clean(
        6117,
        "n=3,clients=3,steps=300,drop=20,dup=89,delay=0,late=15,replay=0,crash=13,bounce=1000,\
         wipe=1000,restart=22,part=8,heal=5,compact=8,lazy=0,propose=159,hb=2,rt=6,emin=8,emax=23,\
         inflight=64,batch=1,lockstep=0,xfer=0,v=9",
    );
}

/// **Bug 5 (liveness): one follower whose clock ran ahead deposed a working leader.**
///
/// Found by a long hunt (seed 2578600 of harness version 5, 5 nodes, election timeouts 4..5
/// ticks): once calm, leadership still changed every few steps and a client chasing the
/// leader never caught it (`liveness: not converged after 10000 ticks`); 164 of 166 leader
/// step-downs followed a `Nack`. A follower whose election timer fires early raises its
/// promise to its own new ballot; the others ignore its `Prepare` (their leader is fresh),
/// but it then rejects the leader's next heartbeat with a `Nack`, and the leader stepped down
/// and left the group leaderless for an election timeout.
///
/// Fix (`proposer.rs`, `on_nack`): a leader rejected for a higher promise runs phase 1 again
/// at once, above it; its followers and the runaway node promise, and it leads again after a
/// round trip. Scripted: the leader must lead again on message delivery alone, no tick.
#[test]
fn leader_rejected_by_a_runaway_follower_leads_again_at_once() {
    let mut c = Cluster::new(
        51,
        Params {
            clients: 1,
            ..Params::quiet(5)
        },
    );
    let leader = ok!(c, c.settle(3));
    let runaway = (1..=5).find(|&n| n != leader).expect("five nodes");
    // Only the runaway's clock runs: it times out and campaigns; its Prepare is ignored.
    ok!(
        c,
        c.tick_node_until(runaway, 200, |c| c.role_of(runaway) == "candidate")
    );
    ok!(c, c.deliver_where(|_| true));
    assert_eq!(
        c.role_of(leader),
        "leader",
        "a fresh leader's followers ignore the Prepare"
    );
    // The leader's next heartbeat meets the runaway's higher promise.
    ok!(
        c,
        c.tick_node_until(leader, 20, |c| c
            .net
            .any(|m| m.from == leader && m.to == runaway))
    );
    ok!(c, c.deliver_where(|_| true));
    assert_eq!(
        c.leader(),
        Some(leader),
        "the leader must lead again without waiting for a timeout"
    );
    ok!(c, c.finish());
}

/// Elects `cand` with the votes of `group` only (messages to or from anyone else are lost),
/// delivering phase 1 only: ticks `cand` until it sends a `Prepare`, delivers the phase 1
/// messages within `group`, and where a member still deems an old leader alive or promised
/// a higher ballot, lets the others' clocks run and tries again.
fn elect_within(c: &mut Cluster, cand: NodeId, group: &[NodeId]) -> Result<(), String> {
    let inside = among(group.to_vec());
    let is_prepare = |m: &Message| matches!(m.body, MessageBody::Prepare { .. });
    let phase1 = |m: &Message| {
        inside(m)
            && matches!(
                m.body,
                MessageBody::Prepare { .. }
                    | MessageBody::Promise { .. }
                    | MessageBody::Nack { .. }
            )
    };
    for _ in 0..20 {
        c.drop_where(|m| !inside(m));
        c.tick_node_until(cand, 200, |c| {
            c.net.any(|m| m.from == cand && is_prepare(m))
        })?;
        c.drop_where(|m| !inside(m));
        c.deliver_where(phase1)?;
        if c.role_of(cand) == "leader" {
            return Ok(());
        }
        for _ in 0..5 {
            for &n in group.iter().filter(|&&n| n != cand) {
                c.tick_node(n)?;
            }
        }
        c.drop_where(|m| m.from != cand && is_prepare(m));
    }
    Err(format!("scenario: {cand} not elected within {group:?}"))
}

/// **Planted bug (safety): a leader counted acceptances of an older ballot.**
///
/// Not a bug the simulation found: planted (`on_accepted` without its `l.ballot != ballot`
/// check) to measure it, and 240,000 random schedules with every fault mix tried, the
/// `replay` fault included, did not find it. Five nodes N, A, B, M, C. N leads with ballot
/// b1 and proposes "v" in slot s; only A accepts. N crashes. M leads with b2 (votes of B and
/// C) and proposes "w" in s; only C accepts, and M crashes. N restarts and leads with b3
/// (votes of A and B): the highest ballot its quorum reports for s is b1, so it proposes
/// "v" again; only B accepts. Now the link from A to N reconnects and resends A's
/// `Accepted` of b1: counted, it makes N, B, A a quorum and N decides "v", though only N
/// and B accepted it under b3. N crashes; a leader elected by A, M and C finds "w" under
/// b2, the highest ballot there, and decides it (with the bug):
/// `agreement: node 3 decided "w" for slot 5, which already had "v"`.
///
/// A quorum that mixes ballots is no quorum: a later leader's phase 1 (highest ballot
/// wins) need not find the value it decided. Fix (`proposer.rs`, `on_accepted`): only
/// acceptances of the leader's own ballot count. Random schedules deliver such stale
/// acceptances often (with `replay`, `late` and quick re-elections), but almost always for
/// a value no other ballot contested; the rest of this sequence (two leaders whose values
/// for one slot each reached a minority, the first re-elected, then deposed before anyone
/// learns) they did not build, so it is scripted.
#[test]
fn leader_counts_only_acceptances_of_its_own_ballot() {
    let mut c = Cluster::new(
        61,
        Params {
            clients: 1,
            ..Params::quiet(5)
        },
    );
    c.net.record = true; // remember delivered messages, to resend them on reconnection
    let n = ok!(c, c.settle(3));
    let others: Vec<NodeId> = (1..=5).filter(|&x| x != n).collect();
    let (a, b, m, cc) = (others[0], others[1], others[2], others[3]);
    let accept_to = |to: NodeId| {
        move |msg: &Message| msg.to == to && matches!(msg.body, MessageBody::Accept { .. })
    };
    let accepted = |msg: &Message| matches!(msg.body, MessageBody::Accepted { .. });
    c.drop_where(|_| true);

    // Ballot b1: N proposes "v" in slot s; only A accepts. N crashes.
    let s = ok!(c, c.propose_to(n, "v")).slot;
    ok!(c, c.deliver_where(|msg| msg.from == n && accept_to(a)(msg)));
    assert_eq!(
        ok!(c, c.deliver_where(|msg| msg.from == a && accepted(msg))),
        1
    );
    c.drop_where(|_| true);
    c.crash_node(n);

    // Ballot b2: M leads with B and C, proposes "w" in slot s; only C accepts. M crashes.
    ok!(c, elect_within(&mut c, m, &[m, b, cc]));
    assert_eq!(ok!(c, c.propose_to(m, "w")).slot, s);
    ok!(
        c,
        c.deliver_where(|msg| msg.from == m && accept_to(cc)(msg))
    );
    c.drop_where(|_| true);
    c.crash_node(m);

    // Ballot b3: N restarts and leads with A and B; it proposes "v" again, only B accepts.
    ok!(c, c.restart((n - 1) as usize));
    ok!(c, elect_within(&mut c, n, &[n, a, b]));
    ok!(c, c.deliver_where(|msg| msg.from == n && accept_to(b)(msg)));
    ok!(c, c.deliver_where(|msg| msg.from == b && msg.to == n));
    c.drop_where(|_| true);
    assert_eq!(
        c.decided_on(n),
        s - 1,
        "N and B alone must not decide slot {s}"
    );

    // The link from A to N reconnects and resends A's last messages, among them its
    // acceptance under b1, which N must not count. Then N crashes before telling anyone.
    assert!(
        c.reconnect(a, n) >= 2,
        "A's acceptance under b1 and promise for b3"
    );
    ok!(c, c.deliver_where(|msg| msg.from == a && msg.to == n));
    c.drop_where(|_| true);
    c.crash_node(n);

    // A, M and C elect a leader, which finds "w" under b2 and decides it.
    ok!(c, c.restart((m - 1) as usize));
    ok!(c, elect_within(&mut c, m, &[a, m, cc]));
    for _ in 0..10 {
        ok!(c, c.tick_node(m));
        ok!(c, c.deliver_where(among(vec![a, m, cc])));
    }
    assert!(c.decided_on(m) >= s, "M must decide slot {s}");
    ok!(c, c.finish());
    let w = paxlog_consensus::Value::Data("w".into());
    assert_eq!(c.nodes[(n - 1) as usize].app.value(s), Some(&w));
}
