//! `paxlog-bench calibrate`: this machine's limits, measured the same way every time, so
//! that a result can be stated as a fraction of what the hardware allows.
//!
//! ```text
//!   synced appends:   1 KiB write + fdatasync, repeated       → syncs/s, fsync latency HDR
//!   synced bandwidth: 1 MiB write + fdatasync, repeated       → MB/s a synced log can take
//!   loopback:         one TCP stream of 1 MiB writes           → MB/s
//!                     1-byte ping-pong over TCP                → round trip HDR
//!   ceiling:          synced bandwidth / replicas on the disk  → MB/s of records a local
//!                                                                cluster can acknowledge
//!   latency target:   3 × synced append p99 + 2 round trips    → issue F's one-in-flight p99
//! ```
//!
//! The files are written in the directory given (put it on the disk the brokers' data
//! directories use), appended to as a log is (preallocation and page cache as a broker
//! sees them), and removed at the end.

use crate::load::stats::{Latency, LatencySummary};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct CalibrateConfig {
    /// Directory on the disk to measure.
    pub dir: PathBuf,
    /// How long each measurement runs.
    pub duration: Duration,
    /// Replicas sharing that disk (3 for a local three-node cluster).
    pub replicas: u32,
}

/// One synced-append measurement.
#[derive(Clone, Debug, Serialize)]
pub struct SyncedWrites {
    /// Bytes per write.
    pub write_bytes: usize,
    /// Writes (each followed by fdatasync) per second.
    pub per_s: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Latency of write + fdatasync.
    pub latency: LatencySummary,
}

/// The machine's limits.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The directory measured.
    pub dir: PathBuf,
    /// 1 KiB appends, each synced: the rate a one-record-per-fsync log can reach.
    pub small_synced: SyncedWrites,
    /// 1 MiB appends, each synced: the bandwidth a group-committing log can reach.
    pub large_synced: SyncedWrites,
    /// One TCP stream over loopback, MB/s.
    pub loopback_mb_per_s: f64,
    /// 1-byte TCP round trips over loopback.
    pub loopback_round_trip: LatencySummary,
    /// Replicas sharing the disk.
    pub replicas: u32,
    /// `large_synced.mb_per_s / replicas`: the most record payload per second a local
    /// cluster that fsyncs before acknowledging can take, if nothing else cost anything.
    pub ceiling_mb_per_s: f64,
    /// The one-in-flight p99 latency issue F aims for: three times the p99 of a synced
    /// 1 KiB append plus two loopback round trips (p99).
    pub latency_target_p99_us: u64,
}

/// Runs every measurement (about four times `duration`).
pub fn run(cfg: &CalibrateConfig) -> std::io::Result<Calibration> {
    std::fs::create_dir_all(&cfg.dir)?;
    let small_synced = synced_appends(&cfg.dir, 1024, cfg.duration)?;
    let large_synced = synced_appends(&cfg.dir, 1 << 20, cfg.duration)?;
    let loopback_mb_per_s = loopback_bandwidth(cfg.duration)?;
    let loopback_round_trip = loopback_round_trips(cfg.duration)?;
    let replicas = cfg.replicas.max(1);
    Ok(Calibration {
        dir: cfg.dir.clone(),
        ceiling_mb_per_s: large_synced.mb_per_s / f64::from(replicas),
        latency_target_p99_us: 3 * small_synced.latency.p99_us + 2 * loopback_round_trip.p99_us,
        small_synced,
        large_synced,
        loopback_mb_per_s,
        loopback_round_trip,
        replicas,
    })
}

/// Removes the file when dropped, however the measurement ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Appends `size`-byte writes to a fresh file, fdatasync after each, for `duration`.
fn synced_appends(dir: &Path, size: usize, duration: Duration) -> std::io::Result<SyncedWrites> {
    let scratch = Scratch(dir.join(format!(
        "paxlog-calibrate-{}-{size}.log",
        std::process::id()
    )));
    let mut file: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&scratch.0)?;
    let block: Vec<u8> = (0..size).map(|i| (i * 131 % 251) as u8).collect();
    let mut latency = Latency::default();
    let (start, mut writes) = (Instant::now(), 0u64);
    // Start over every 256 MiB, so a long run does not fill the disk.
    let mut written = 0usize;
    while start.elapsed() < duration {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        latency.record(t.elapsed());
        writes += 1;
        written += size;
        if written >= 256 << 20 {
            file.set_len(0)?;
            file.sync_all()?;
            written = 0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(SyncedWrites {
        write_bytes: size,
        per_s: writes as f64 / secs,
        mb_per_s: writes as f64 * size as f64 / secs / 1e6,
        latency: latency.summary(),
    })
}

/// One TCP stream of 1 MiB writes over loopback for `duration`: MB/s received.
fn loopback_bandwidth(duration: Duration) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut stream = TcpStream::connect(address)?;
    let block = vec![7u8; 1 << 20];
    let start = Instant::now();
    while start.elapsed() < duration {
        stream.write_all(&block)?;
    }
    drop(stream);
    let received = reader
        .join()
        .map_err(|_| std::io::Error::other("the loopback reader panicked"))??;
    Ok(received as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// 1-byte ping-pongs over a loopback TCP connection (no Nagle) for `duration`.
fn loopback_round_trips(duration: Duration) -> std::io::Result<LatencySummary> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte)? {
                0 => return Ok(()),
                _ => stream.write_all(&byte)?,
            }
        }
    });
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut latency = Latency::default();
    let mut byte = [1u8; 1];
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
        latency.record(t.elapsed());
    }
    drop(stream);
    echo.join()
        .map_err(|_| std::io::Error::other("the loopback echo panicked"))??;
    Ok(latency.summary())
}

impl Calibration {
    /// The report as text.
    pub fn text(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let synced = |s: &SyncedWrites| {
            format!(
                "{:>8.0} writes/s  {:>8.1} MB/s   write+fdatasync p50 {:.3} ms  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                s.per_s,
                s.mb_per_s,
                ms(s.latency.p50_us),
                ms(s.latency.p99_us),
                ms(s.latency.p999_us),
                ms(s.latency.max_us)
            )
        };
        format!(
            "calibration of {}\n\
             synced 1 KiB appends: {}\n\
             synced 1 MiB appends: {}\n\
             loopback TCP: {:.0} MB/s one stream; round trip p50 {:.3} ms  p99 {:.3}  p99.9 {:.3}\n\
             ceiling for {} replicas on this disk: {:.1} MB/s of records (synced bandwidth / replicas)\n\
             one-in-flight latency target at p99: {:.3} ms (3 x synced append p99 + 2 loopback round trips p99)\n",
            self.dir.display(),
            synced(&self.small_synced),
            synced(&self.large_synced),
            self.loopback_mb_per_s,
            ms(self.loopback_round_trip.p50_us),
            ms(self.loopback_round_trip.p99_us),
            ms(self.loopback_round_trip.p999_us),
            self.replicas,
            self.ceiling_mb_per_s,
            ms(self.latency_target_p99_us),
        )
    }

    /// The report as one JSON line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measurements run on a real file and a real loopback socket and report what
    /// they did; their values are whatever this machine gives (no bound on them).
    #[test]
    fn a_short_calibration_measures_every_limit_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = CalibrateConfig {
            dir: dir.path().to_path_buf(),
            duration: Duration::from_millis(100),
            replicas: 3,
        };
        let c = run(&cfg).expect("calibrate");
        assert!(c.small_synced.latency.count > 0 && c.large_synced.latency.count > 0);
        assert_eq!(c.small_synced.write_bytes, 1024);
        assert!(c.loopback_mb_per_s > 0.0 && c.loopback_round_trip.count > 0);
        assert!((c.ceiling_mb_per_s - c.large_synced.mb_per_s / 3.0).abs() < 1e-9);
        assert_eq!(
            c.latency_target_p99_us,
            3 * c.small_synced.latency.p99_us + 2 * c.loopback_round_trip.p99_us
        );
        assert!(c.text().contains("ceiling for 3 replicas"));
        let json: serde_json::Value = serde_json::from_str(&c.json()).expect("json");
        assert!(json["ceiling_mb_per_s"].as_f64().is_some());
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert!(left.is_empty(), "scratch files removed: {left:?}");
    }
}
