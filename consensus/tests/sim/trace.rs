//! The last events of a run, printed with a failure.
//!
//! Events are kept as data and formatted only when a run fails, so tracing costs little on
//! the thousands of runs that pass. `SIM_TRACE=1` prints every event as it happens (use it
//! with the replay command).

use paxlog_consensus::{Ballot, Message, NodeId, ProposalId, Slot};
use std::collections::VecDeque;
use std::fmt;

/// Something that happened in the simulation.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message reached its receiver.
    Deliver(Message),
    /// A message was lost on delivery (`why`: blocked link or crashed receiver).
    Lost(Message, &'static str),
    /// A link reconnected and sent again its last `count` delivered messages.
    Replay((NodeId, NodeId), usize),
    /// A node ticked.
    Tick(NodeId),
    /// A client proposed to a node.
    Propose {
        client: usize,
        node: NodeId,
        result: Result<ProposalId, String>,
    },
    /// A client got an outcome.
    Outcome {
        client: usize,
        node: NodeId,
        id: ProposalId,
        ok: bool,
    },
    /// A node crashed, having written `written` of the `held` `Ready`s it was executing.
    Crash {
        node: NodeId,
        written: usize,
        held: usize,
    },
    /// A crashed node lost its storage.
    Wipe(NodeId),
    /// A node restarted from its storage, its application rebuilt up to `applied`.
    Restart { node: NodeId, applied: Slot },
    /// The topology changed to these blocked links.
    Topology(Vec<(NodeId, NodeId)>),
    /// A node compacted its log up to `slot`.
    Compact { node: NodeId, slot: Slot },
    /// The leader `node` started handing leadership to `to`.
    Transfer { node: NodeId, to: NodeId },
    /// A node installed a snapshot.
    Install { node: NodeId, slot: Slot },
    /// A node applied slots `from..=to`.
    Applied { node: NodeId, from: Slot, to: Slot },
    /// A node's view of leadership changed.
    Leader {
        node: NodeId,
        leader: Option<NodeId>,
        ballot: Ballot,
    },
    /// The fault phase ended.
    Calm,
}

/// A bounded buffer of the latest events, with the step of each.
#[derive(Debug)]
pub struct Trace {
    events: VecDeque<(u64, Event)>,
    cap: usize,
    echo: bool,
}

impl Trace {
    /// Keeps the last `cap` events; prints every event when `SIM_TRACE` is set.
    pub fn new(cap: usize) -> Self {
        let echo = std::env::var_os("SIM_TRACE").is_some_and(|v| v != "0");
        Trace {
            events: VecDeque::with_capacity(cap),
            cap,
            echo,
        }
    }

    /// Records an event at `step`.
    pub fn push(&mut self, step: u64, event: Event) {
        if self.echo {
            println!("{step:>7} {event}");
        }
        if self.events.len() == self.cap {
            self.events.pop_front();
        }
        self.events.push_back((step, event));
    }

    /// The last `n` events, formatted.
    pub fn last(&self, n: usize) -> Vec<String> {
        let skip = self.events.len().saturating_sub(n);
        self.events
            .iter()
            .skip(skip)
            .map(|(s, e)| format!("{s:>7} {e}"))
            .collect()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Deliver(m) => write!(f, "deliver {} -> {}: {:?}", m.from, m.to, m.body),
            Event::Lost(m, why) => {
                write!(f, "lost ({why}) {} -> {}: {}", m.from, m.to, m.body.kind())
            }
            Event::Replay((from, to), count) => {
                write!(f, "REPLAY {from} -> {to}: last {count} messages sent again")
            }
            Event::Tick(n) => write!(f, "tick {n}"),
            Event::Propose {
                client,
                node,
                result,
            } => {
                write!(f, "client {client} proposes to {node}: {result:?}")
            }
            Event::Outcome {
                client,
                node,
                id,
                ok,
            } => {
                write!(f, "client {client} outcome from {node} for {id:?}: ok={ok}")
            }
            Event::Crash {
                node,
                written,
                held,
            } => {
                write!(
                    f,
                    "CRASH {node} after writing {written} of {held} held Readys"
                )
            }
            Event::Wipe(node) => write!(f, "WIPE {node}: storage lost, restarts repairing"),
            Event::Restart { node, applied } => write!(f, "RESTART {node} (rebuilt to {applied})"),
            Event::Topology(links) if links.is_empty() => write!(f, "HEAL all links"),
            Event::Topology(links) => write!(f, "PARTITION blocked {links:?}"),
            Event::Compact { node, slot } => write!(f, "compact {node} up to {slot}"),
            Event::Transfer { node, to } => write!(f, "{node} hands leadership to {to}"),
            Event::Install { node, slot } => write!(f, "{node} installs snapshot at {slot}"),
            Event::Applied { node, from, to } => write!(f, "{node} applies {from}..={to}"),
            Event::Leader {
                node,
                leader,
                ballot,
            } => {
                write!(f, "{node} now follows {leader:?} (ballot {ballot})")
            }
            Event::Calm => write!(f, "---- faults end: healed, restarted, no drops ----"),
        }
    }
}
