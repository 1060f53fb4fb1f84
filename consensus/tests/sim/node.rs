//! A simulated node: a replica with its storage and application while up, only its storage
//! while down.
//!
//! Crashing keeps the `MemStorage` and nothing else (the replica, its unwritten `Ready`s and
//! the application's memory are gone); restarting rebuilds both the replica
//! (`Replica::new`) and the application (from the stored snapshot and decided entries), as
//! the broker would after `kill -9`.

use super::app::App;
use paxlog_consensus::{Config, MemStorage, NodeId, Ready, Replica};

/// Whether a node runs.
#[derive(Debug)]
pub enum State {
    /// Running.
    Up(Box<Replica<MemStorage>>),
    /// Crashed: only what was written survives.
    Down(MemStorage),
    /// Transient, while moving between the two.
    Gone,
}

/// One node of the simulated cluster.
#[derive(Debug)]
pub struct Node {
    /// Its id (1-based).
    pub id: NodeId,
    /// Its configuration; the seed changes with every restart.
    pub config: Config,
    /// Replica or storage.
    pub state: State,
    /// The application state machine (empty while down).
    pub app: App,
    /// `Ready`s taken from the replica but not executed yet (lazy persistence).
    pub held: Vec<Ready>,
    /// The number of the last `Ready` taken, to check they come in sequence.
    pub last_ready: u64,
    /// Restarts so far.
    pub incarnation: u64,
    /// Snapshots installed from peers, over all incarnations.
    pub installs: u64,
    /// Scripted fault: crash while executing the next `Ready`s, after writing this many.
    pub crash_next: Option<usize>,
    /// Its storage was lost and the replica has not durably finished repairing: it restarts
    /// with `Config::repairing` (the broker keeps such a marker next to its data).
    pub repairing: bool,
}

impl Node {
    /// A fresh node with empty storage.
    pub fn new(config: Config) -> Self {
        let replica = Replica::new(config.clone(), MemStorage::new()).expect("valid config");
        Node {
            id: config.id,
            config,
            state: State::Up(Box::new(replica)),
            app: App::default(),
            held: Vec::new(),
            last_ready: 0,
            incarnation: 0,
            installs: 0,
            crash_next: None,
            repairing: false,
        }
    }

    /// The replica, when up.
    pub fn replica(&mut self) -> Option<&mut Replica<MemStorage>> {
        match &mut self.state {
            State::Up(r) => Some(r),
            _ => None,
        }
    }

    /// The replica, when up, for reading.
    pub fn replica_ref(&self) -> Option<&Replica<MemStorage>> {
        match &self.state {
            State::Up(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the node runs.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up(_))
    }

    /// Crashes the node: keeps its storage, loses everything else.
    pub fn crash(&mut self) {
        if let State::Up(r) = std::mem::replace(&mut self.state, State::Gone) {
            self.state = State::Down(r.into_storage());
        }
        self.held.clear();
        self.app = App::default();
    }

    /// Loses a crashed node's storage: it will restart empty, repairing.
    pub fn wipe(&mut self) {
        if let State::Down(_) = self.state {
            self.state = State::Down(MemStorage::new());
            self.repairing = true;
        }
    }

    /// Restarts a crashed node from its storage with a new replica seed; returns the rebuilt
    /// application's error if its storage is inconsistent.
    pub fn restart(&mut self, seed: u64) -> Result<(), String> {
        let State::Down(storage) = std::mem::replace(&mut self.state, State::Gone) else {
            return Err(format!("node {} restarted while not down", self.id));
        };
        self.app = App::rebuild(&storage).map_err(|e| format!("node {} restart: {e}", self.id))?;
        self.config.seed = seed;
        self.config.repairing = self.repairing;
        let replica = Replica::new(self.config.clone(), storage)
            .map_err(|e| format!("node {} restart: {e}", self.id))?;
        self.state = State::Up(Box::new(replica));
        self.incarnation += 1;
        self.last_ready = 0;
        Ok(())
    }
}
