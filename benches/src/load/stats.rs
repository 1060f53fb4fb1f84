//! What one worker measures ([`Latency`], [`ErrorCounts`]), kept per worker without locks
//! and merged once at the end of a run.

use hdrhistogram::Histogram;
use paxlog_client::Error;
use paxlog_client::error::{ServerError, code_name};
use paxlog_proto::v1::ErrorCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest value a histogram tracks: an hour in microseconds (larger ones are clamped).
const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept: values are exact to 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Latency {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
    }

    /// Records a latency given in microseconds (e.g. a record's age).
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.max(1));
    }

    /// Adds another worker's values.
    pub fn merge(&mut self, other: &Latency) {
        // Both histograms have the same bounds, so no value of `other` is out of range.
        for value in other.hist.iter_recorded() {
            self.hist
                .saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The percentiles a report shows.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        LatencySummary {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            min_us: if h.is_empty() { 0 } else { h.min() },
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Percentiles of a [`Latency`], in microseconds (values are the histogram's, exact to
/// 0.1 %).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Smallest.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// How often one kind of error happened, with the first message seen for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// Requests that failed this way.
    pub count: u64,
    /// The first such error, as the SDK described it.
    pub example: String,
}

/// Failed requests by kind (see [`error_kind`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCounts(pub BTreeMap<String, ErrorCount>);

impl ErrorCounts {
    /// Counts one failed request.
    pub fn add(&mut self, error: &Error) {
        let entry = self.0.entry(error_kind(error)).or_default();
        if entry.count == 0 {
            entry.example = error.to_string();
        }
        entry.count += 1;
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (kind, theirs) in &other.0 {
            let ours = self.0.entry(kind.clone()).or_default();
            if ours.count == 0 {
                ours.example.clone_from(&theirs.example);
            }
            ours.count += theirs.count;
        }
    }

    /// Failed requests of every kind.
    pub fn total(&self) -> u64 {
        self.0.values().map(|e| e.count).sum()
    }
}

/// A short, stable name for what went wrong: the broker's code (`TIMEOUT`,
/// `NOT_ENOUGH_REPLICAS`, ...) or the gRPC code of a transport failure (`grpc_Unavailable`),
/// prefixed with `outcome_unknown:` when a write may have been stored and `gave_up:` when
/// the SDK's retries ran out of time.
pub fn error_kind(error: &Error) -> String {
    match error {
        Error::OutcomeUnknown { last, .. } => format!("outcome_unknown:{}", server_kind(last)),
        Error::GaveUp { last, .. } => format!("gave_up:{}", server_kind(last)),
        Error::Server { error, .. } => server_kind(error),
        Error::Incomplete { error, .. } => error_kind(error),
        Error::InvalidArgument(_) => "invalid_argument".to_owned(),
        _ => "client".to_owned(),
    }
}

fn server_kind(error: &ServerError) -> String {
    if error.code == ErrorCode::Unspecified {
        format!("grpc_{:?}", error.grpc)
    } else {
        code_name(error.code).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn percentiles_of_merged_histograms() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        for ms in 1..=100u64 {
            a.record(Duration::from_millis(ms));
        }
        b.record(Duration::from_secs(2));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 101);
        assert!((49_900..=51_100).contains(&s.p50_us), "{s:?}");
        assert!((99_000..=100_100).contains(&s.p99_us), "{s:?}");
        assert!((1_998_000..=2_002_000).contains(&s.max_us), "{s:?}");
        assert_eq!(Latency::default().summary(), LatencySummary::default());
    }

    #[test]
    fn errors_are_named_by_code_and_keep_their_first_message() {
        let timeout = Error::OutcomeUnknown {
            what: "publish".into(),
            last: Box::new(ServerError::local(
                Code::DeadlineExceeded,
                ErrorCode::Timeout,
                "slow",
            )),
        };
        let transport = Error::GaveUp {
            what: "publish".into(),
            attempts: 3,
            elapsed: Duration::from_secs(1),
            address: "-".into(),
            last: Box::new(ServerError::plain(Code::Unavailable, "refused")),
        };
        let mut ours = ErrorCounts::default();
        ours.add(&timeout);
        ours.add(&transport);
        let mut theirs = ErrorCounts::default();
        theirs.add(&timeout);
        ours.merge(&theirs);
        assert_eq!(ours.total(), 3);
        assert_eq!(ours.0["outcome_unknown:TIMEOUT"].count, 2);
        assert!(ours.0["outcome_unknown:TIMEOUT"].example.contains("slow"));
        assert_eq!(ours.0["gave_up:grpc_Unavailable"].count, 1);
    }
}
