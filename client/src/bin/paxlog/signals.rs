//! The signals that stop `paxlog cluster up`.

use paxlog_client::Error;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP (terminal closed) all mean "stop the cluster".
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers; from now on these signals no longer end the process.
    pub fn install() -> Result<Signals, Error> {
        let install = |kind| signal(kind).map_err(Error::Signals);
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }

    /// Waits for the next signal, reporting it on stderr.
    pub async fn recv_any(&mut self) {
        let name = self.recv().await;
        eprintln!("paxlog: received {name}");
    }
}
