//! Live counters the workers bump, and the progress bar that shows them on stderr (only
//! when stderr is a terminal, so logs and scripts get clean output).

use super::Until;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the bar is redrawn.
const REFRESH: Duration = Duration::from_millis(250);

/// Counters shared by all workers of a run (relaxed atomics: only for display).
#[derive(Debug, Default)]
pub struct Live {
    /// Records acknowledged (produce) or received (consume), warmup included.
    pub records: AtomicU64,
    /// Failed requests.
    pub errors: AtomicU64,
}

impl Live {
    /// Counts `n` records.
    pub fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one failed request.
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// A progress bar over a run: time for timed runs, records for counted ones.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `live` (hidden unless `show` and stderr is a terminal). `warmup` is
    /// shown as such before the measured part; a run without `until` gets a spinner.
    pub fn start(
        live: Arc<Live>,
        label: &str,
        until: Option<Until>,
        warmup: Duration,
        show: bool,
    ) -> Self {
        let visible = show && std::io::stderr().is_terminal();
        let (len, unit) = match until {
            Some(Until::Duration(d)) => (Some(d.as_secs().max(1)), "s"),
            Some(Until::Count(n)) => (Some(n), " records"),
            None => (None, ""),
        };
        let bar = ProgressBar::with_draw_target(
            len,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        let template = match len {
            Some(_) => format!("{label} {{spinner}} [{{bar:30}}] {{pos}}/{{len}}{unit} {{msg}}"),
            None => format!("{label} {{spinner}} {{elapsed}} {{msg}}"),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let task = visible.then(|| {
            let bar = bar.clone();
            tokio::spawn(async move { refresh(bar, live, until, warmup).await })
        });
        Progress { bar, task }
    }

    /// Removes the bar.
    pub fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.bar.finish_and_clear();
    }
}

async fn refresh(bar: ProgressBar, live: Arc<Live>, until: Option<Until>, warmup: Duration) {
    let start = Instant::now();
    let measure_at = start + warmup;
    let (mut last_records, mut last_at) = (0u64, start);
    let mut measured_base: Option<u64> = None;
    let mut ticker = tokio::time::interval(REFRESH);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let records = live.records.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let rate = (records - last_records) as f64 / (now - last_at).as_secs_f64().max(1e-3);
        (last_records, last_at) = (records, now);
        let phase = if now < measure_at {
            "warmup, "
        } else {
            let base = *measured_base.get_or_insert(records);
            bar.set_position(match until {
                Some(Until::Count(_)) => records - base,
                _ => (now - measure_at).as_secs(),
            });
            ""
        };
        bar.set_message(format!("{phase}{rate:.0} msgs/s, {errors} errors"));
        bar.tick();
    }
}
