//! How many invocations of a trigger a runner keeps in flight.
//!
//! ```text
//!   demand  = (λ + backlog / DRAIN) · t / b      Little's law: arrival rate λ (records/s,
//!                                                 from the partitions' end offsets), mean
//!                                                 invocation time t, mean batch size b; the
//!                                                 backlog is drained over DRAIN seconds
//!   ceiling = AIMD: halves on an error or throttle (once per cool-down), +1 per ceiling
//!             successes, up to the trigger's concurrency limit
//!   target  = clamp(ceil(demand), 1, ceiling)
//! ```
//!
//! Estimates are exponentially weighted over about two seconds, so the target follows a
//! change of load within a few seconds and does not jump on one slow call.

use std::time::Duration;
use tokio::time::Instant;

/// Seconds over which a backlog should be worked off.
const DRAIN_SECS: f64 = 5.0;
/// Weight of a new sample in the moving averages.
const ALPHA: f64 = 0.3;

/// The concurrency controller of one trigger in one runner; see the module docs.
#[derive(Debug)]
pub struct Scaler {
    limit: f64,
    ceiling: f64,
    arrival: f64,
    latency: Option<f64>,
    batch: f64,
    last_end: Option<(Instant, u64)>,
    cooled_at: Option<Instant>,
}

impl Scaler {
    /// A controller capped at `limit` invocations in flight.
    pub fn new(limit: u32) -> Scaler {
        let limit = f64::from(limit.max(1));
        Scaler {
            limit,
            ceiling: limit,
            arrival: 0.0,
            latency: None,
            batch: 1.0,
            last_end: None,
            cooled_at: None,
        }
    }

    /// Changes the limit (the trigger was updated, or this runner's share changed).
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = f64::from(limit.max(1));
        self.ceiling = self.ceiling.min(self.limit);
    }

    /// Feeds the sum of the assigned partitions' end offsets, sampled now.
    pub fn observe_end(&mut self, now: Instant, end: u64) {
        if let Some((t, e)) = self.last_end {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            if dt < 0.2 {
                return;
            }
            let rate = end.saturating_sub(e) as f64 / dt;
            self.arrival = ALPHA * rate + (1.0 - ALPHA) * self.arrival;
        }
        self.last_end = Some((now, end));
    }

    /// Forgets the arrival baseline (the assignment changed, so the sum jumps).
    pub fn reset_end(&mut self) {
        self.last_end = None;
    }

    /// Feeds one finished invocation.
    pub fn observe_call(&mut self, now: Instant, took: Duration, records: usize, ok: bool) {
        let t = took.as_secs_f64().max(1e-4);
        self.latency = Some(match self.latency {
            None => t,
            Some(l) => ALPHA * t + (1.0 - ALPHA) * l,
        });
        self.batch = ALPHA * records.max(1) as f64 + (1.0 - ALPHA) * self.batch;
        if ok {
            self.ceiling = (self.ceiling + 1.0 / self.ceiling.max(1.0)).min(self.limit);
            return;
        }
        // One decrease per cool-down: a wave of failures from one burst counts once.
        let cool = Duration::from_secs_f64(self.latency.unwrap_or(0.0).max(1.0));
        if self
            .cooled_at
            .is_none_or(|at| now.saturating_duration_since(at) >= cool)
        {
            self.ceiling = (self.ceiling / 2.0).max(1.0);
            self.cooled_at = Some(now);
        }
    }

    /// The arrival rate estimate, records per second.
    pub fn arrival(&self) -> f64 {
        self.arrival
    }

    /// Invocations to keep in flight with `backlog` records waiting.
    pub fn target(&self, backlog: u64) -> u32 {
        let demand = match self.latency {
            // Nothing measured yet: one call at a time until the first one tells.
            None => 1.0,
            Some(t) => (self.arrival + backlog as f64 / DRAIN_SECS) * t / self.batch.max(1.0),
        };
        let ceiling = self.ceiling.min(self.limit).max(1.0);
        demand.ceil().clamp(1.0, ceiling) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn littles_law_sizes_the_target_and_the_limit_caps_it() {
        let mut s = Scaler::new(50);
        let mut now = Instant::now();
        assert_eq!(s.target(1000), 1, "nothing measured yet");
        // 200 records/s arriving, 100 ms per single-record call: 20 in flight.
        let mut end = 0;
        for _ in 0..40 {
            now += Duration::from_millis(500);
            end += 100;
            s.observe_end(now, end);
            s.observe_call(now, Duration::from_millis(100), 1, true);
        }
        assert!((s.arrival() - 200.0).abs() < 5.0, "{}", s.arrival());
        assert_eq!(s.target(0), 20);
        s.set_limit(8);
        assert_eq!(s.target(0), 8);
        // Load stops: the estimate decays and the target falls back to 1.
        s.set_limit(50);
        for _ in 0..40 {
            now += Duration::from_millis(500);
            s.observe_end(now, end);
        }
        assert_eq!(s.target(0), 1);
        assert!(s.target(500) > 1, "a backlog asks for more");
    }

    #[test]
    fn failures_halve_the_ceiling_once_per_cool_down_and_successes_grow_it_back() {
        let mut s = Scaler::new(16);
        let now = Instant::now();
        for _ in 0..5 {
            s.observe_call(now, Duration::from_millis(10), 1, false);
        }
        assert_eq!(s.ceiling, 8.0, "one halving for a burst");
        let later = now + Duration::from_secs(2);
        s.observe_call(later, Duration::from_millis(10), 1, false);
        assert_eq!(s.ceiling, 4.0);
        for _ in 0..100 {
            s.observe_call(later, Duration::from_millis(10), 1, true);
        }
        assert!(s.ceiling > 12.0, "{}", s.ceiling);
        assert!(s.ceiling <= 16.0);
    }
}
