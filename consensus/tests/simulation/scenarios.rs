//! Named scenarios on the simulation harness: the situations a Multi-Paxos log must get
//! through, scripted on a quiet network (no random faults unless said), each ending with
//! calm, convergence within the liveness bound and the final checks (agreement, nothing
//! acknowledged lost, identical applied states equal to what storage rebuilds).

use crate::sim::{Cluster, Params};
use paxlog_consensus::NodeId;

/// How many clients wait on a proposal held by `node`.
fn waiting_on(c: &Cluster, node: NodeId) -> usize {
    c.clients
        .iter()
        .filter(|cl| cl.waiting.is_some_and(|(n, _)| n == node))
        .count()
}

/// The leader crashes with proposals in flight, in the middle of executing a `Ready` (its
/// next batch of accepts is neither written nor sent). The others elect a new leader, which
/// re-proposes what was accepted; clients retry; nothing acknowledged is lost.
#[test]
fn leader_crash_mid_pipeline() {
    for (seed, nodes) in [(11, 3), (12, 5), (13, 3), (14, 5)] {
        let params = Params {
            clients: 4,
            propose: 800,
            max_inflight: 64,
            ..Params::quiet(nodes)
        };
        let mut c = Cluster::new(seed, params);
        let leader = ok!(c, c.settle(5));
        c.workload = true;
        ok!(
            c,
            c.run_until(
                10_000,
                "three proposals in flight on the leader",
                |c| waiting_on(c, leader) >= 3
            )
        );
        c.crash_during_next_ready(leader, 0);
        ok!(
            c,
            c.run_until(10_000, "the leader's crash", |c| c.role_of(leader)
                == "down")
        );
        assert_eq!(
            c.stats.lost_readys, 1,
            "the crash must lose a Ready taken but not written"
        );
        ok!(
            c,
            c.run_until(20_000, "a new leader", |c| c
                .leader()
                .is_some_and(|l| l != leader))
        );
        ok!(c, c.settle(c.checker.max_slot() + 5));
        ok!(c, c.finish());
    }
}

/// The leader and one follower are cut off from the other three: the old leader must step
/// down (it cannot reach a majority), the majority elects a new leader and goes on deciding;
/// after healing, everyone converges and nothing acknowledged on either side is lost.
#[test]
fn leader_in_minority_partition_steps_down_and_majority_elects() {
    for seed in [21, 22, 23] {
        let mut c = Cluster::new(
            seed,
            Params {
                clients: 3,
                ..Params::quiet(5)
            },
        );
        let old = ok!(c, c.settle(5));
        let buddy = (1..=5).find(|&n| n != old).expect("five nodes");
        let majority: Vec<NodeId> = (1..=5).filter(|&n| n != old && n != buddy).collect();
        c.isolate(&[old, buddy]);
        c.workload = true;
        let acked = c.stats.acked;
        let m = majority.clone();
        ok!(
            c,
            c.run_until(
                20_000,
                "old leader down, a leader in the majority",
                move |c| {
                    c.role_of(old) != "leader" && c.leader().is_some_and(|l| m.contains(&l))
                }
            )
        );
        let new = c.leader().expect("checked");
        ok!(
            c,
            c.run_until(20_000, "progress in the majority", |c| c.stats.acked
                >= acked + 5)
        );
        assert!(
            majority.contains(&new),
            "the new leader {new} must be in the majority {majority:?}"
        );
        c.heal();
        ok!(c, c.finish());
    }
}

/// A replica is down while the others decide hundreds of slots, then comes back and must
/// catch up: by learning in batches (no compaction, one entry per message), or by installing
/// a snapshot because the others compacted their logs past what it has.
#[test]
fn replica_down_for_long_catches_up_by_learning_and_by_snapshot() {
    for (seed, nodes, compact) in [(31, 3, false), (32, 5, false), (33, 3, true), (34, 5, true)] {
        let params = Params {
            clients: 4,
            propose: 600,
            max_batch: 1,
            max_inflight: 64,
            ..Params::quiet(nodes)
        };
        let mut c = Cluster::new(seed, params);
        let leader = ok!(c, c.settle(3));
        let lagging = (1..=nodes as NodeId)
            .find(|&n| n != leader)
            .expect("a follower");
        c.crash_node(lagging);
        ok!(c, c.settle(300));
        if compact {
            for i in 0..nodes {
                ok!(c, c.compact(i));
            }
        }
        let installs = c.nodes[(lagging - 1) as usize].installs;
        ok!(c, c.restart((lagging - 1) as usize));
        ok!(c, c.finish());
        let node = &c.nodes[(lagging - 1) as usize];
        assert!(
            node.app.applied() >= 300,
            "node {lagging} caught up to {}",
            node.app.applied()
        );
        if compact {
            assert!(
                node.installs > installs,
                "node {lagging} must have installed a snapshot"
            );
        }
    }
}

/// Every node's clock ticks in lock-step and election timeouts are all but equal (15..16
/// ticks): all nodes time out together, at start and again after the leader crashes. The
/// randomized back-off must still let one of them win, within the liveness bound.
#[test]
fn contention_all_nodes_time_out_together_still_converges() {
    for seed in 41..47 {
        let nodes = if seed % 2 == 0 { 5 } else { 3 };
        let params = Params {
            lockstep: 1,
            election_min: 15,
            election_max: 16,
            ..Params::quiet(nodes)
        };
        let mut c = Cluster::new(seed, params);
        ok!(c, c.converge());
        let leader = c.leader().expect("converged");
        c.crash_node(leader);
        ok!(
            c,
            c.run_until(50_000, "a new leader", |c| c.leader().is_some())
        );
        ok!(c, c.finish());
        println!("contention seed {seed}: {}", c.stats);
    }
}

/// The leader hands leadership to a follower under load (a broker stopping gracefully):
/// the follower leads next after one election (no timeout, no duel), and no client sees
/// its proposal's outcome turn unknown: the old leader finished its slots first.
#[test]
fn leader_hands_over_under_load_and_no_outcome_turns_unknown() {
    for (seed, nodes) in [(61, 3), (62, 5), (63, 3)] {
        let mut c = Cluster::new(
            seed,
            Params {
                clients: 4,
                propose: 800,
                ..Params::quiet(nodes)
            },
        );
        let leader = ok!(c, c.settle(5));
        c.workload = true;
        ok!(
            c,
            c.run_until(10_000, "proposals in flight on the leader", |c| {
                waiting_on(c, leader) >= 2
            })
        );
        let to = c.ids().into_iter().find(|&n| n != leader).expect("a peer");
        let elections_before = c.stats.elections;
        ok!(c, c.transfer(leader as usize - 1, to));
        ok!(
            c,
            c.run_until(20_000, "the target leads", |c| c.leader() == Some(to))
        );
        // One election, the target's: nobody waited for a timeout and ran against it.
        assert_eq!(
            c.stats.elections,
            elections_before + 1,
            "seed {seed}: more than one election"
        );
        ok!(c, c.settle(c.checker.max_slot() + 5));
        ok!(c, c.finish());
        assert_eq!(
            c.clients.iter().map(|cl| cl.failed).sum::<u64>(),
            0,
            "seed {seed}: a proposal's outcome turned unknown"
        );
    }
}
