//! A run's result as people read it (a few aligned lines) and as scripts read it (one JSON
//! object on one line, `--json`). Throughput counts record payload only (keys and values,
//! not framing); MB are 10^6 bytes.

use super::consume::{ConsumeConfig, ConsumeOutcome};
use super::produce::{ProduceConfig, ProduceOutcome};
use super::stats::{ErrorCounts, LatencySummary};
use super::{Until, now_ms};
use paxlog_client::cli::consume::StartFrom;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// The result of `paxlog-bench produce`.
#[derive(Clone, Debug, Serialize)]
pub struct ProduceReport {
    /// Always `"produce"`.
    pub mode: &'static str,
    /// When the run ended, ms since the Unix epoch.
    pub finished_at_ms: i64,
    /// Topic.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Producers.
    pub producers: usize,
    /// Publishes outstanding per producer.
    pub in_flight: usize,
    /// Records per publish.
    pub batch: usize,
    /// Value bytes per record.
    pub record_size: usize,
    /// Target records/s (0: unlimited).
    pub rate: f64,
    /// Measured seconds (after the warmup).
    pub seconds: f64,
    /// Records acknowledged.
    pub records: u64,
    /// Publishes acknowledged.
    pub publishes: u64,
    /// Records acknowledged per second.
    pub msgs_per_sec: f64,
    /// Payload MB (10^6 bytes) acknowledged per second.
    pub mb_per_sec: f64,
    /// Latency of an acknowledged publish, µs.
    pub latency: LatencySummary,
    /// Failed publishes.
    pub errors: u64,
    /// Records in failed publishes.
    pub failed_records: u64,
    /// Failed publishes by kind.
    pub errors_by_kind: ErrorCounts,
}

/// The result of `paxlog-bench consume`.
#[derive(Clone, Debug, Serialize)]
pub struct ConsumeReport {
    /// Always `"consume"`.
    pub mode: &'static str,
    /// When the run ended, ms since the Unix epoch.
    pub finished_at_ms: i64,
    /// Topic.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Consumers.
    pub consumers: usize,
    /// `earliest`, `latest` or an offset.
    pub from: String,
    /// Measured seconds.
    pub seconds: f64,
    /// Records received.
    pub records: u64,
    /// Fetches answered.
    pub fetches: u64,
    /// Records received per second.
    pub msgs_per_sec: f64,
    /// Payload MB (10^6 bytes) received per second.
    pub mb_per_sec: f64,
    /// Latency of a fetch, µs.
    pub fetch_latency: LatencySummary,
    /// Age of a record on arrival (end-to-end latency when reading live), µs, with a
    /// resolution of 1 ms.
    pub record_age: LatencySummary,
    /// Records not read yet at the end.
    pub behind: u64,
    /// Failed fetches.
    pub errors: u64,
    /// Failed fetches by kind.
    pub errors_by_kind: ErrorCounts,
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

impl ProduceReport {
    /// The report of a run of `cfg`.
    pub fn new(cfg: &ProduceConfig, o: &ProduceOutcome) -> Self {
        ProduceReport {
            mode: "produce",
            finished_at_ms: now_ms(),
            topic: cfg.topic.clone(),
            partitions: o.partitions,
            producers: cfg.producers,
            in_flight: cfg.in_flight,
            batch: cfg.batch,
            record_size: cfg.record_size,
            rate: cfg.rate,
            seconds: o.elapsed.as_secs_f64(),
            records: o.records,
            publishes: o.publishes,
            msgs_per_sec: per_second(o.records, o.elapsed),
            mb_per_sec: per_second(o.bytes, o.elapsed) / 1e6,
            latency: o.latency.summary(),
            errors: o.errors.total(),
            failed_records: o.failed_records,
            errors_by_kind: o.errors.clone(),
        }
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Lines for people.
    pub fn text(&self) -> String {
        let mut out = format!(
            "produce {:?}: {} partitions, {} producer(s) x {} in flight, batch {}, {} B records{}\n",
            self.topic,
            self.partitions,
            self.producers,
            self.in_flight,
            self.batch,
            self.record_size,
            if self.rate > 0.0 {
                format!(", target {:.0} msgs/s", self.rate)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "  {} records in {} publishes in {:.2} s: {:.0} msgs/s, {:.2} MB/s",
            self.records, self.publishes, self.seconds, self.msgs_per_sec, self.mb_per_sec
        );
        let _ = writeln!(out, "  publish latency {}", latency_line(&self.latency));
        out.push_str(&errors_text(self.errors, &self.errors_by_kind));
        out
    }
}

impl ConsumeReport {
    /// The report of a run of `cfg`.
    pub fn new(cfg: &ConsumeConfig, o: &ConsumeOutcome) -> Self {
        ConsumeReport {
            mode: "consume",
            finished_at_ms: now_ms(),
            topic: cfg.topic.clone(),
            partitions: o.partitions,
            consumers: cfg.consumers,
            from: match cfg.from {
                StartFrom::Earliest => "earliest".to_owned(),
                StartFrom::Latest => "latest".to_owned(),
                StartFrom::Offset(offset) => offset.to_string(),
            },
            seconds: o.elapsed.as_secs_f64(),
            records: o.records,
            fetches: o.fetches,
            msgs_per_sec: per_second(o.records, o.elapsed),
            mb_per_sec: per_second(o.bytes, o.elapsed) / 1e6,
            fetch_latency: o.fetch_latency.summary(),
            record_age: o.age.summary(),
            behind: o.behind,
            errors: o.errors.total(),
            errors_by_kind: o.errors.clone(),
        }
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Lines for people.
    pub fn text(&self) -> String {
        let mut out = format!(
            "consume {:?} from {}: {} partitions, {} consumer(s)\n",
            self.topic, self.from, self.partitions, self.consumers
        );
        let _ = writeln!(
            out,
            "  {} records in {} fetches in {:.2} s: {:.0} msgs/s, {:.2} MB/s; {} records behind at the end",
            self.records,
            self.fetches,
            self.seconds,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.behind
        );
        let _ = writeln!(out, "  fetch latency {}", latency_line(&self.fetch_latency));
        let _ = writeln!(
            out,
            "  record age on arrival {}",
            latency_line(&self.record_age)
        );
        out.push_str(&errors_text(self.errors, &self.errors_by_kind));
        out
    }
}

/// `p50 1.20 ms, p90 ..., max 9.80 ms (n=1000)`.
fn latency_line(s: &LatencySummary) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms, mean {:.3} ms (n={})",
        ms(s.p50_us),
        ms(s.p90_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us),
        s.mean_us / 1000.0,
        s.count
    )
}

fn errors_text(total: u64, by_kind: &ErrorCounts) -> String {
    if total == 0 {
        return "  errors: none\n".to_owned();
    }
    let mut out = format!("  errors: {total}\n");
    for (kind, e) in &by_kind.0 {
        let _ = writeln!(out, "    {kind}: {} (first: {})", e.count, e.example);
    }
    out
}

/// How a run stops, in words (`for 30 s`, `for 100000 records`).
pub fn describe_until(until: Option<Until>) -> String {
    match until {
        Some(Until::Duration(d)) => format!("for {:.1} s", d.as_secs_f64()),
        Some(Until::Count(n)) => format!("for {n} records"),
        None => "to the end of each partition".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Latency;

    #[test]
    fn produce_report_computes_rates_and_prints_one_json_line() {
        let mut latency = Latency::default();
        latency.record(Duration::from_millis(2));
        let outcome = ProduceOutcome {
            partitions: 3,
            elapsed: Duration::from_secs(2),
            records: 2000,
            bytes: 2_048_000,
            publishes: 2000,
            latency,
            ..ProduceOutcome::default()
        };
        let report = ProduceReport::new(&ProduceConfig::default(), &outcome);
        assert_eq!(report.msgs_per_sec, 1000.0);
        assert!((report.mb_per_sec - 1.024).abs() < 1e-9);
        let json = report.json();
        assert!(!json.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["mode"], "produce");
        assert_eq!(value["latency"]["count"], 1);
        assert!(
            report.text().contains("1000 msgs/s, 1.02 MB/s"),
            "{}",
            report.text()
        );
        assert!(report.text().contains("errors: none"));
    }

    #[test]
    fn an_empty_run_reports_zero_rates() {
        let report = ConsumeReport::new(&ConsumeConfig::default(), &ConsumeOutcome::default());
        assert_eq!(report.msgs_per_sec, 0.0);
        assert_eq!(report.from, "earliest");
        assert_eq!(describe_until(None), "to the end of each partition");
    }
}
