//! Starting the real `paxlog-broker` binary and talking to it over loopback.

#![allow(dead_code)] // each test file uses a different subset

use rustix::process::{Pid, Signal, kill_process};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// How long a broker may take to start or stop in tests (debug build, slow CI machines).
pub const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

pub mod ports;
pub use ports::free_addr;

/// A `paxlog-broker` process whose stderr goes to a file, for assertions and diagnosis.
pub struct BrokerProcess {
    /// The child process.
    pub child: Child,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
    log: PathBuf,
}

impl BrokerProcess {
    /// Starts node `id` on fresh ports with data in `data_dir`; `log_dir` receives its stderr.
    pub fn start(id: u64, data_dir: &Path, log_dir: &Path) -> BrokerProcess {
        Self::start_with(id, data_dir, log_dir, &[])
    }

    /// Like [`BrokerProcess::start`], with `extra` flags.
    pub fn start_with(id: u64, data_dir: &Path, log_dir: &Path, extra: &[&str]) -> BrokerProcess {
        let (grpc, metrics) = (free_addr(), free_addr());
        let mut args = vec![
            format!("--id={id}"),
            format!("--listen={grpc}"),
            format!("--metrics={metrics}"),
            format!("--data-dir={}", data_dir.display()),
        ];
        args.extend(extra.iter().map(|flag| flag.to_string()));
        let log = log_dir.join(format!("broker-{id}-{}.log", grpc.port()));
        let child = broker_command(&args, &log)
            .spawn()
            .expect("spawn paxlog-broker");
        BrokerProcess {
            child,
            grpc,
            metrics,
            log,
        }
    }

    /// What the broker wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the broker's health check says SERVING; panics with its log otherwise.
    pub async fn wait_serving(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "broker exited with {status} before serving:\n{}",
                    self.log()
                );
            }
            if health(self.grpc, "").await == Some(ServingStatus::Serving) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker not SERVING within {DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        kill_process(Pid::from_child(&self.child), Signal::TERM).expect("send SIGTERM");
        wait_exit(&mut self.child, &self.log).await
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // A failed test must not leave a broker running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker binary with `args`, stderr and stdout to `log`.
pub fn broker_command(args: &[String], log: &Path) -> Command {
    let file = File::create(log).expect("create log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_paxlog-broker"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PAXLOG_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log handle"))
        .stderr(file);
    command
}

/// Runs the broker with `args` to completion (it is expected to exit by itself).
pub async fn run_to_exit(args: &[String], log_dir: &Path) -> (ExitStatus, String) {
    let log = log_dir.join("run-to-exit.log");
    let mut child = broker_command(args, &log)
        .spawn()
        .expect("spawn paxlog-broker");
    let status = wait_exit(&mut child, &log).await;
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

async fn wait_exit(child: &mut Child, log: &Path) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "broker did not exit within {DEADLINE:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The health status of `service` at `addr`, or `None` if the broker is unreachable.
pub async fn health(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = HealthClient::new(channel).check(request).await.ok()?;
    Some(response.into_inner().status())
}

/// `GET /metrics` over plain HTTP/1.1; returns status line and body.
pub fn get_metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics port");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}
