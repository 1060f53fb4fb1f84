//! The simulated network: messages in flight with per-message delays, drops, duplicates,
//! replays of old messages and a topology of blocked (directed) links.
//!
//! Each message is delivered at the step its delay ends, in random order among those due
//! at the same step, so delay also reorders. Partitions are directed link sets, which
//! covers symmetric splits of arbitrary node subsets as well as one-way links; a message
//! meeting a blocked link or a crashed receiver is lost, as on a real network.
//!
//! The network also remembers the last [`REPLAY_WINDOW`] messages delivered over each link
//! and can send them all again ([`Network::replay`]), as a transport does that reconnects
//! and resends the buffer it had no acknowledgement for: messages of a ballot long gone
//! reach a node that leads again since, over the link that had been quiet in between.

use paxlog_consensus::{Message, NodeId};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A message on its way.
#[derive(Clone, Debug)]
pub struct Packet {
    /// The message.
    pub msg: Message,
    /// The first step at which it may be delivered.
    pub deliver_at: u64,
}

/// What happened to a message handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Lost at once.
    Dropped,
    /// On its way.
    Sent,
    /// On its way twice.
    Duplicated,
}

/// Messages in flight and the link topology.
#[derive(Debug, Default)]
pub struct Network {
    in_flight: Vec<Packet>,
    /// Directed links `(from, to)` that lose every message.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Per mille of messages dropped when sent.
    pub drop: u32,
    /// Per mille of messages duplicated when sent.
    pub dup: u32,
    /// Largest delay in steps.
    pub max_delay: u64,
    /// Per mille of messages delayed by up to [`LATE_DELAY`] steps instead.
    pub late: u32,
    /// Whether to remember delivered messages for [`Network::replay`].
    pub record: bool,
    /// The last messages delivered over each link, oldest first.
    history: BTreeMap<(NodeId, NodeId), VecDeque<Message>>,
}

/// The longest delay of a late message, in steps (hundreds of ticks).
pub const LATE_DELAY: u64 = 2_000;

/// How many of the last messages delivered over a link a reconnection sends again.
pub const REPLAY_WINDOW: usize = 8;

impl Network {
    /// A healthy network with these fault rates.
    pub fn new(drop: u32, dup: u32, max_delay: u64, late: u32) -> Self {
        Network {
            drop,
            dup,
            max_delay,
            late,
            ..Network::default()
        }
    }

    fn delay(&self, rng: &mut ChaCha8Rng) -> u64 {
        if rng.random_range(0..1000) < self.late {
            rng.random_range(self.max_delay..=LATE_DELAY.max(self.max_delay))
        } else {
            rng.random_range(0..=self.max_delay)
        }
    }

    /// Hands `msg` to the network at step `now`.
    pub fn send(&mut self, msg: Message, now: u64, rng: &mut ChaCha8Rng) -> Fate {
        if rng.random_range(0..1000) < self.drop {
            return Fate::Dropped;
        }
        let dup = rng.random_range(0..1000) < self.dup;
        if dup {
            let deliver_at = now + 1 + self.delay(rng);
            self.in_flight.push(Packet {
                msg: msg.clone(),
                deliver_at,
            });
        }
        let deliver_at = now + 1 + self.delay(rng);
        self.in_flight.push(Packet { msg, deliver_at });
        if dup { Fate::Duplicated } else { Fate::Sent }
    }

    /// Takes every message due at step `now`, in random order: a message is delivered at
    /// exactly its due step, so delays are bounded and order varies only through delays and
    /// ties. (Picking one random message per step instead lets a backlog build up in which
    /// a message waits unboundedly, far longer than any election timeout.)
    pub fn take_due(&mut self, now: u64, rng: &mut ChaCha8Rng) -> Vec<Packet> {
        let (mut due, later): (Vec<Packet>, Vec<Packet>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|p| p.deliver_at <= now);
        self.in_flight = later;
        due.shuffle(rng);
        due
    }

    /// Takes note of a delivered message, which [`Network::replay`] may send again.
    pub fn delivered(&mut self, msg: &Message) {
        if !self.record {
            return;
        }
        let window = self.history.entry((msg.from, msg.to)).or_default();
        if window.len() == REPLAY_WINDOW {
            window.pop_front();
        }
        window.push_back(msg.clone());
    }

    /// A link picked at random among those used so far reconnects ([`Network::resend`]).
    /// Returns the link and how many messages it sends again.
    pub fn replay(&mut self, now: u64, rng: &mut ChaCha8Rng) -> Option<((NodeId, NodeId), usize)> {
        if self.history.is_empty() {
            return None;
        }
        let pick = rng.random_range(0..self.history.len());
        let link = *self.history.keys().nth(pick).expect("in range");
        Some((link, self.resend(link, now, rng)))
    }

    /// Link `(from, to)` reconnects: the last messages delivered over it are sent again,
    /// each with an ordinary delay (so also reordered). Returns how many.
    pub fn resend(&mut self, link: (NodeId, NodeId), now: u64, rng: &mut ChaCha8Rng) -> usize {
        let copies: Vec<Message> = self
            .history
            .get(&link)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for msg in &copies {
            let deliver_at = now + 1 + rng.random_range(0..=self.max_delay);
            self.in_flight.push(Packet {
                msg: msg.clone(),
                deliver_at,
            });
        }
        copies.len()
    }

    /// Takes every message in flight that `pred` selects, in the order they were sent.
    pub fn extract(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<Packet> {
        let (taken, kept): (Vec<Packet>, Vec<Packet>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|p| pred(&p.msg));
        self.in_flight = kept;
        taken
    }

    /// Whether some message in flight matches `pred`.
    pub fn any(&self, pred: impl Fn(&Message) -> bool) -> bool {
        self.in_flight.iter().any(|p| pred(&p.msg))
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Brings every message in flight forward to be deliverable by `latest`.
    pub fn cap_delays(&mut self, latest: u64) {
        for p in &mut self.in_flight {
            p.deliver_at = p.deliver_at.min(latest);
        }
    }

    /// Whether messages from `from` to `to` are lost.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Replaces the topology: messages over each `(from, to)` in `links` are lost.
    pub fn set_blocked(&mut self, links: impl IntoIterator<Item = (NodeId, NodeId)>) {
        self.blocked = links.into_iter().collect();
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub fn split(&mut self, side: &[NodeId], nodes: &[NodeId]) {
        let links = side.iter().flat_map(|&a| {
            nodes
                .iter()
                .filter(move |b| !side.contains(b))
                .flat_map(move |&b| [(a, b), (b, a)])
        });
        self.set_blocked(links.collect::<Vec<_>>());
    }

    /// Repairs every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The blocked links, for traces.
    pub fn blocked(&self) -> Vec<(NodeId, NodeId)> {
        self.blocked.iter().copied().collect()
    }
}
