//! The replication transport (`PeerHub`) over real gRPC on loopback: in-process nodes,
//! each a hub plus a tonic server on a `127.0.0.1` port. Tests wait for conditions with
//! deadlines; none sleeps in place of synchronisation.
//!
//! ```text
//!   harness   Cluster (reserved ports) ─▶ Node { hub, server, inbound, metrics }
//!   delivery  three hubs, per-pair order, batching
//!   reconnect peer down at start, late dialer, restarts
//!   handshake refused callers, replacement, malformed / misaddressed messages
//!   bounds    queue bounds (messages, bytes), frame limit, unknown destinations
//! ```

mod bounds;
mod delivery;
mod handshake;
mod harness;
mod reconnect;
