//! The dialing side: for each peer with a higher id, open `Peer/Stream` and keep it open,
//! redialing with exponential backoff and jitter until shutdown.
//!
//! ```text
//!   loop ── connect (TCP + HTTP/2, bounded by connect_timeout)
//!        │    └─ send hello PeerBatch { from_node: us }, await response headers
//!        ├─ ok:   session::run(..) until the stream ends ─┐
//!        ├─ fail: log (first failure at info, then debug) ├─▶ sleep(backoff) ─▶ loop
//!        └─ shutdown: return                              ┘
//! ```

use super::link::Link;
use super::session::{self, SessionEnd, Streams};
use super::{OUTGOING_BATCHES, Shared, stopped};
use crate::convert::peer::encode_batch;
use paxlog_proto::v1::peer_client::PeerClient;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("invalid peer address: {}", chain(.0))]
    Address(tonic::transport::Error),
    #[error("cannot use the TLS settings: {}", chain(.0))]
    Tls(tonic::transport::Error),
    #[error("cannot connect: {}", chain(.0))]
    Connect(tonic::transport::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the peer refused the stream: {} ({:?})", .0.message(), .0.code())]
    Refused(tonic::Status),
}

/// `err` and its sources: tonic's own message ("transport error") alone does not say
/// whether the peer refused, timed out or could not be resolved.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(err) = source {
        // Some layers repeat their source's message; say it once.
        let part = err.to_string();
        if part != last {
            text.push_str(": ");
            text.push_str(&part);
        }
        last = part;
        source = err.source();
    }
    text
}

/// Keeps a stream to `link`'s peer open until the hub shuts down.
pub(crate) async fn dial_forever(shared: Arc<Shared>, link: Arc<Link>) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut shutdown = shared.shutdown.clone();
    let mut failures: u64 = 0;
    loop {
        let attempt = tokio::select! {
            attempt = connect(&shared, &link) => attempt,
            () = stopped(&mut shutdown) => return,
        };
        match attempt {
            Ok(streams) => {
                failures = 0;
                let started = Instant::now();
                if let SessionEnd::Shutdown = session::run(&shared, &link, streams).await {
                    return;
                }
                // A stream that lasted is a fresh start; one that dies at once keeps
                // backing off, so a peer that accepts then drops us is not hammered.
                if started.elapsed() >= config.backoff_max {
                    backoff.reset();
                }
            }
            Err(err) => {
                failures += 1;
                let refused = matches!(err, DialError::Refused(_));
                if failures == 1 && refused {
                    tracing::warn!(node = shared.node, peer = link.peer, addr = %link.addr, error = %err, "peer refused our stream; retrying");
                } else if failures == 1 {
                    tracing::info!(node = shared.node, peer = link.peer, addr = %link.addr, error = %err, "cannot reach peer; retrying with backoff");
                } else {
                    tracing::debug!(node = shared.node, peer = link.peer, addr = %link.addr, error = %err, failures, "dial failed");
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Connects and opens `Peer/Stream`, announcing this node in the first batch. Succeeds
/// once the peer answered with response headers, i.e. accepted the stream.
async fn connect(shared: &Shared, link: &Link) -> Result<Streams, DialError> {
    let config = &shared.config;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint =
        Endpoint::from_shared(format!("{scheme}://{}", link.addr)).map_err(DialError::Address)?;
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.peer_client())
            .map_err(DialError::Tls)?;
    }
    let endpoint = endpoint
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout)
        .keep_alive_while_idle(true)
        // Batches are up to megabytes: grow the receive window with the measured
        // bandwidth-delay product instead of stalling on HTTP/2's 64 KiB default.
        .http2_adaptive_window(true);
    let timeout = config.connect_timeout;
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| DialError::Timeout(timeout))?
        .map_err(DialError::Connect)?;
    let mut client = PeerClient::new(channel)
        .max_decoding_message_size(config.max_frame_bytes)
        .max_encoding_message_size(config.max_frame_bytes);

    let (outgoing, requests) = mpsc::channel(OUTGOING_BATCHES);
    // Cannot fail: the channel is new and has room. The hello carries no messages; it
    // tells the peer who we are before anything else is queued.
    let _ = outgoing.try_send(encode_batch(shared.node, Vec::new()));
    let response = tokio::time::timeout(timeout, client.stream(ReceiverStream::new(requests)))
        .await
        .map_err(|_| DialError::Timeout(timeout))?
        .map_err(DialError::Refused)?;
    Ok(Streams {
        incoming: response.into_inner(),
        outgoing,
        first: None,
    })
}

/// Exponential backoff with "equal jitter": the delay is half the current step plus a
/// random part of the other half, so peers that lost each other at the same moment do not
/// redial in lockstep, yet never retry sooner than half the step.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    rng: u64,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        // Jitter needs no reproducibility, only different values per process and peer:
        // the std hasher's random keys provide them without an RNG dependency.
        let seed = RandomState::new().hash_one(Instant::now());
        Backoff {
            min,
            max: max.max(min),
            step: min,
            rng: seed | 1,
        }
    }

    fn reset(&mut self) {
        self.step = self.min;
    }

    fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.next_random() % jitter_nanos.saturating_add(1))
    }

    /// xorshift64: plenty for jitter.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_max_with_jitter_and_resets() {
        let (min, max) = (Duration::from_millis(20), Duration::from_secs(2));
        let mut backoff = Backoff::new(min, max);
        let mut step = min;
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside [{step:?}/2, {step:?}]"
            );
            step = (step * 2).min(max);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }
}
