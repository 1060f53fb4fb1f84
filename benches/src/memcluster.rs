//! A cluster of in-memory replicas on an instant, lossless network: the consensus hot path
//! with no I/O at all, so a benchmark measures the state machine alone.

use bytes::Bytes;
use paxlog_consensus::{Config, MemStorage, Message, Replica, Storage};
use std::collections::VecDeque;

/// Replicas of one group plus the messages between them.
#[derive(Debug)]
pub struct MemCluster {
    replicas: Vec<Replica<MemStorage>>,
    inbox: VecDeque<Message>,
    decided: u64,
}

impl MemCluster {
    /// Starts `n` replicas and runs them until replica 1 leads.
    pub fn new(n: u64) -> Self {
        let voters: Vec<u64> = (1..=n).collect();
        let replicas = voters
            .iter()
            .map(|&id| {
                let config = Config {
                    id,
                    voters: voters.clone(),
                    // Replica 1 times out first, so it becomes the leader.
                    election_ticks_min: if id == 1 { 5 } else { 50 },
                    election_ticks_max: if id == 1 { 6 } else { 60 },
                    max_inflight: 1 << 20,
                    ..Config::default()
                };
                Replica::new(config, MemStorage::new()).expect("valid config")
            })
            .collect();
        let mut c = Self {
            replicas,
            inbox: VecDeque::new(),
            decided: 0,
        };
        while !c.replicas[0].is_leader() {
            c.replicas[0].tick().expect("tick");
            c.settle();
        }
        c
    }

    /// Proposes `batch` values of `size` bytes on the leader, then runs the cluster until the
    /// leader has decided them all. Returns the leader's decided index.
    pub fn propose_and_decide(&mut self, batch: usize, size: usize) -> u64 {
        let payload = Bytes::from(vec![7u8; size]);
        for _ in 0..batch {
            self.replicas[0]
                .propose(payload.clone())
                .expect("leader accepts proposals");
        }
        let target = self.decided + batch as u64;
        while self.decided < target {
            self.settle();
        }
        self.decided
    }

    /// Drives every replica's `Ready` (persist, then send, then apply) until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.replicas.len() {
                let r = &mut self.replicas[i];
                if r.has_ready() {
                    moved = true;
                    let ready = r.ready();
                    r.storage_mut().write(&ready.persist).expect("write");
                    r.persisted(ready.number).expect("persisted");
                    self.inbox.extend(ready.messages);
                    if i == 0 {
                        self.decided += ready.decided.len() as u64;
                    }
                }
            }
            while let Some(m) = self.inbox.pop_front() {
                moved = true;
                let to = (m.to - 1) as usize;
                self.replicas[to].step(m).expect("step");
            }
            if !moved {
                return;
            }
        }
    }

    /// Compacts every replica's in-memory log so long benchmark runs do not grow memory.
    pub fn compact(&mut self) {
        for r in &mut self.replicas {
            let d = r.decided();
            if d > 0 {
                r.compact(d, Bytes::new()).expect("compact");
                let ready = r.ready();
                r.storage_mut().write(&ready.persist).expect("write");
                r.persisted(ready.number).expect("persisted");
                self.inbox.extend(ready.messages);
            }
        }
        self.settle();
    }
}
