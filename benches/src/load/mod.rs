//! The load generator behind `paxlog-bench`: producers and consumers that drive a running
//! cluster through the SDK's [`Connection`] (leader routing, NOT_LEADER hints, backoff,
//! deadlines) and measure what the cluster acknowledges.
//!
//! ```text
//!   produce: producers × in-flight lanes, one Connection per producer (lanes pipeline on it)
//!     lane: [pace to --rate] ─▶ Publish(batch) to the partition's leader ─▶ ack
//!             │ latency = ack − send (− intended send time under --rate) ─▶ HDR histogram
//!             └ error ─▶ counted by kind, never retried here (no duplicates in the data)
//!   consume: consumers × their partitions, one Connection per consumer
//!     partition task: Fetch(offset) ─▶ records ─▶ msgs, bytes, age of each record
//!   stats: per-lane histograms and error counts, merged once at the end ─▶ report
//!   progress: live counters (atomics) ─▶ indicatif bar on stderr, only on a terminal
//! ```
//!
//! Latency is measured per publish, from the moment the request is handed to the SDK
//! (or, with `--rate`, from the moment it was scheduled: a publish that waits for a slow
//! predecessor counts that wait, so coordinated omission does not hide stalls) until the
//! acknowledgement, which the broker sends only once a majority has the batch fsynced.

pub mod consume;
pub mod produce;
pub mod progress;
pub mod report;
pub mod stats;
pub mod topic;

use paxlog_client::Error;
use paxlog_client::connection::{ConnectOptions, Connection};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a run stops measuring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// After this long (after the warmup).
    Duration(Duration),
    /// After this many records (after the warmup).
    Count(u64),
}

impl Until {
    /// The length of a timed run, for the progress bar.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Until::Duration(d) => Some(*d),
            Until::Count(_) => None,
        }
    }
}

/// Ends a run early (Ctrl-C): workers stop starting requests, finish those in flight, and
/// the report covers what was measured until then. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks every worker to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A new connection to the cluster through `seeds`. Every producer and consumer has its
/// own, as separate client processes would: its own HTTP/2 connections and leader cache.
pub fn connect(seeds: &[String]) -> Result<Arc<Connection>, Error> {
    Connection::new(seeds.to_vec(), ConnectOptions::default()).map(Arc::new)
}

/// Takes up to `want` records from a counted run's remaining budget (shared by workers);
/// 0 once it is used up.
pub(crate) fn claim(remaining: &AtomicU64, want: u64) -> u64 {
    match remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        (left > 0).then(|| left - left.min(want))
    }) {
        Ok(left) => left.min(want),
        Err(_) => 0,
    }
}

/// Milliseconds since the Unix epoch, as records carry them (`timestamp_ms`).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses a duration as `1500ms`, `30s`, `2m`, `1h`, or a plain number of seconds (`30`,
/// `0.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn counted_runs_hand_out_exactly_the_count() {
        let remaining = AtomicU64::new(10);
        assert_eq!(claim(&remaining, 4), 4);
        assert_eq!(claim(&remaining, 4), 4);
        assert_eq!(claim(&remaining, 4), 2);
        assert_eq!(claim(&remaining, 4), 0);
    }

    #[test]
    fn stop_is_shared_between_clones() {
        let stop = Stop::default();
        let other = stop.clone();
        assert!(!other.is_stopped());
        stop.stop();
        assert!(other.is_stopped());
    }
}
