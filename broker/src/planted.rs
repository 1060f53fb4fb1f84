//! Bugs planted on purpose, for the fault-injection harness (`jepsen/`) to show that it
//! catches them. Off unless `PAXLOG_PLANTED_BUG` names one; a broker that runs one says so
//! loudly at start. Never set it on a real cluster.

use std::sync::LazyLock;

/// The environment variable that plants a bug.
pub const ENV: &str = "PAXLOG_PLANTED_BUG";

/// A planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// `skip-recovery`: new leaders ignore the values their phase-1 quorum accepted (a
    /// consensus bug: decided writes vanish or collide).
    SkipRecovery,
    /// `no-dedup`: partition leaders write an idempotent producer's retried batch again
    /// instead of answering with the first write's offsets (a broker bug: a retried send
    /// of unknown outcome becomes a duplicate).
    NoDedup,
    /// `no-fsync`: writes are acknowledged without an fsync (a durability bug: a crash
    /// that loses the page cache loses acknowledged writes).
    NoFsync,
}

impl Bug {
    const ALL: [Bug; 3] = [Bug::SkipRecovery, Bug::NoDedup, Bug::NoFsync];

    /// Its name in [`ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipRecovery => "skip-recovery",
            Bug::NoDedup => "no-dedup",
            Bug::NoFsync => "no-fsync",
        }
    }
}

/// The bug this process was asked to plant (read once; logged as an error).
pub fn bug() -> Option<Bug> {
    static PLANTED: LazyLock<Option<Bug>> = LazyLock::new(|| {
        let wanted = std::env::var(ENV).ok()?;
        let bug = Bug::ALL.into_iter().find(|b| b.name() == wanted);
        match bug {
            Some(_) => tracing::error!(
                "{ENV}={wanted}: this broker runs with a PLANTED BUG for the fault-injection harness; it loses or duplicates acknowledged writes"
            ),
            None => tracing::warn!("{ENV}={wanted:?} is not a known planted bug; ignored"),
        }
        bug
    });
    *PLANTED
}

/// Whether `b` is the planted bug.
pub fn is(b: Bug) -> bool {
    bug() == Some(b)
}
