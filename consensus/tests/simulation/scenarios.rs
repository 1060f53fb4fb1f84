//! Named scenarios on the simulation harness: the situations a Multi-Paxos log must get
//! through, scripted on a quiet network (no random faults), each ending with calm,
//! convergence within the liveness bound and the final checks.

use crate::sim::{Cluster, Params};
