//! Exponential backoff with jitter between retries.
//!
//! The bound doubles from [`BackoffPolicy::initial`] up to [`BackoffPolicy::max`]; each
//! delay is drawn uniformly from the upper half of the bound (`[bound/2, bound]`), so
//! clients that failed together do not retry together, yet every wait stays long enough to
//! let an election finish. The randomness is a seeded SplitMix64: a seed replays the same
//! delays, and no RNG crate is needed for something this small.

use std::time::Duration;

/// How long to wait between retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Bound of the first delay.
    pub initial: Duration,
    /// Largest bound; delays stop growing here.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    /// 50 ms doubling to 1 s: a leader election takes a few hundred milliseconds.
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        }
    }
}

/// The delays of one sequence of retries.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    bound: Duration,
    rng: u64,
}

impl Backoff {
    /// A fresh sequence; equal seeds give equal delays.
    pub fn new(policy: BackoffPolicy, seed: u64) -> Backoff {
        Backoff {
            policy,
            bound: policy.initial.min(policy.max),
            rng: seed,
        }
    }

    /// The next delay, in `[bound/2, bound]`, then doubles the bound (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let bound = self.bound;
        self.bound = bound.saturating_mul(2).min(self.policy.max);
        let half = bound / 2;
        let span = u64::try_from((bound - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = match span.checked_add(1) {
            Some(modulus) => splitmix64(&mut self.rng) % modulus,
            None => splitmix64(&mut self.rng),
        };
        half + Duration::from_nanos(jitter)
    }

    /// Starts over from the initial bound (after a success).
    pub fn reset(&mut self) {
        self.bound = self.policy.initial.min(self.policy.max);
    }
}

/// A seed that differs between processes and calls, for real (non-replayed) use.
pub fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Truncation is fine: only the low bits vary quickly anyway.
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

/// SplitMix64 (Steele, Lea, Flood 2014): one multiply-xorshift step per number.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_within_jitter_bounds_and_cap_at_max() {
        let seed = 7;
        println!("seed {seed}");
        let mut backoff = Backoff::new(BackoffPolicy::default(), seed);
        let bounds = [50, 100, 200, 400, 800, 1000, 1000, 1000];
        for (i, bound) in bounds.into_iter().enumerate() {
            let delay = backoff.next_delay();
            assert!(
                delay >= MS * bound / 2 && delay <= MS * bound,
                "attempt {i}: {delay:?} outside [{}ms, {bound}ms]",
                bound / 2
            );
        }
    }

    #[test]
    fn equal_seeds_replay_and_different_seeds_spread() {
        let delays = |seed| {
            let mut backoff = Backoff::new(BackoffPolicy::default(), seed);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(1), delays(1));
        assert_ne!(delays(1), delays(2), "jitter must depend on the seed");
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(BackoffPolicy::default(), 3);
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= 50 * MS);
    }

    #[test]
    fn degenerate_policies_do_not_panic() {
        let zero = BackoffPolicy {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(Backoff::new(zero, 1).next_delay(), Duration::ZERO);
        let huge = BackoffPolicy {
            initial: Duration::MAX,
            max: Duration::MAX,
        };
        let delay = Backoff::new(huge, 1).next_delay();
        assert!(delay >= Duration::MAX / 2);
        let inverted = BackoffPolicy {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(1),
        };
        assert!(Backoff::new(inverted, 1).next_delay() <= Duration::from_secs(1));
    }
}
