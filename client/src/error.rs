//! The client crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the `paxlog` commands; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The broker binary is not where it was looked for.
    #[error("cannot find the broker binary at {}: build it with `cargo build --workspace` (it lands next to `paxlog`), or pass --broker-bin PATH", path.display())]
    BrokerBinaryNotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was tried, e.g. "create data directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A broker process could not be started.
    #[error("cannot start node {node} ({}): {source}", binary.display())]
    Spawn {
        /// The node.
        node: u64,
        /// The broker binary.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node did not report SERVING in time.
    #[error("node {node} at {address} did not become SERVING within {waited:?}; see its log {}", log.display())]
    NotReady {
        /// The node.
        node: u64,
        /// Its gRPC address.
        address: String,
        /// How long we waited.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
    },
    /// A node process exited while the cluster was supposed to run.
    #[error("node {node} exited unexpectedly ({status}); last lines of {}:\n{tail}", log.display())]
    NodeExited {
        /// The node.
        node: u64,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Some nodes did not stop cleanly (they were killed, or exited with an error).
    #[error("nodes did not stop cleanly: {0}; see their logs")]
    UncleanStop(String),
    /// A signal arrived before the cluster was up; the nodes were stopped.
    #[error("interrupted by {0} while starting; all nodes were stopped")]
    Interrupted(&'static str),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}
