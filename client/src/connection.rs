//! A connection to a paxlog cluster: seed addresses, one lazily created gRPC channel per
//! broker, cached metadata, and [`Connection::call_leader`], which sends a request to the
//! broker that must answer it and retries until a deadline. The seed of the SDK.
//!
//! ```text
//!   call_leader(kind, budget, f)
//!     │ route: learned leader ─▶ metadata (cached; GetMetadata from any seed) ─▶ any broker
//!     ▼
//!   f(channel) ──ok──▶ response (its `error` field checked too)
//!     │ err: ServerError::from_status (the one decoding of a status)
//!     ▼
//!   retry::decide ── Redirect(hint) ─▶ same request to the leader, now
//!                 ├─ TryAnother / Backoff ─▶ forget metadata, sleep (jittered), route again
//!                 ├─ Unknown (write in flight when leadership moved) ─▶ Error::OutcomeUnknown
//!                 └─ Fail ─▶ Error::Server;   deadline passed ─▶ Error::GaveUp (last failure)
//! ```

mod backoff;
mod metadata;
mod retry;
mod routing;

pub use backoff::{Backoff, BackoffPolicy};
pub use metadata::{ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use retry::WireResponse;

use crate::error::{Error, ServerError};
use crate::security::{AddToken, Security};
use paxlog_proto::v1::{self as pb, metadata_client::MetadataClient};
use retry::Decision;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel to one broker that adds the connection's token to every request.
pub type BrokerChannel = InterceptedService<Channel, AddToken>;

/// Redirects followed at once; later ones in the same call wait a backoff delay first, so
/// two brokers that name each other (stale views during an election) do not spin.
const FREE_REDIRECTS: u32 = 2;

/// Longest wait between tries while no leader is known (an election is under way): an
/// election takes a few hundred milliseconds, and a longer sleep would only add to the
/// unavailability the caller sees (`paxlog-bench failover` measured p99 1.24 s with the
/// plain backoff's 1 s cap, most of it spent asleep after the new leader was serving).
const ELECTION_POLL: Duration = Duration::from_millis(200);

/// Timeouts and backoff of a [`Connection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Longest time to establish a TCP + HTTP/2 connection to one broker.
    pub connect_timeout: Duration,
    /// Longest wait for one read attempt's answer (a fetch adds its long-poll wait). A
    /// paused broker accepts connections but never answers: this moves on to another.
    pub read_timeout: Duration,
    /// Longest wait for one write attempt's answer. Longer than the brokers' default write
    /// timeout (10 s), so they answer TIMEOUT first.
    pub write_timeout: Duration,
    /// Delays between retries.
    pub backoff: BackoffPolicy,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(15),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// Which broker a request must reach, and whether it changes state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Topic changes (create, delete): the metadata group's leader. A write.
    Admin,
    /// Reads any broker answers: list and describe topics, metadata.
    AnyBroker,
    /// Publish: the partition's leader. A write.
    Publish {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: u32,
    },
    /// Fetch: any replica of the partition, the leader first (it is the most up to date).
    Fetch {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: u32,
    },
    /// A consumer group request: the group's coordinator (learned from NOT_COORDINATOR
    /// hints and remembered). Every group request is safe to repeat (joins, heartbeats,
    /// commits of the same offsets), so none counts as a write.
    Group(String),
}

impl CallKind {
    /// Whether the request changes state, so that an unknown outcome must not be retried.
    pub fn is_write(&self) -> bool {
        matches!(self, CallKind::Admin | CallKind::Publish { .. })
    }

    /// Where a learned leader is remembered for this kind of call.
    fn leader_key(&self) -> Option<LeaderKey> {
        match self {
            CallKind::Admin => Some(LeaderKey::Metadata),
            CallKind::AnyBroker => None,
            CallKind::Publish { topic, partition } | CallKind::Fetch { topic, partition } => {
                Some(LeaderKey::Partition(topic.clone(), *partition))
            }
            CallKind::Group(group) => Some(LeaderKey::Group(group.clone())),
        }
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallKind::Admin => write!(f, "topic change (metadata leader)"),
            CallKind::AnyBroker => write!(f, "request"),
            CallKind::Publish { topic, partition } => {
                write!(f, "publish to {topic:?} partition {partition}")
            }
            CallKind::Fetch { topic, partition } => {
                write!(f, "fetch from {topic:?} partition {partition}")
            }
            CallKind::Group(group) => write!(f, "request to group {group:?}'s coordinator"),
        }
    }
}

/// Whose leader a learned address is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LeaderKey {
    /// The metadata group's.
    Metadata,
    /// A partition's, by topic and number.
    Partition(String, u32),
    /// A consumer group's coordinator.
    Group(String),
}

/// A connection to a cluster through seed brokers. Cheap to share (`Arc<Connection>`);
/// channels are created on first use and reconnect by themselves.
#[derive(Debug)]
pub struct Connection {
    seeds: Vec<String>,
    opts: ConnectOptions,
    security: Security,
    /// Adds the token (if any) to each request.
    token: AddToken,
    channels: Mutex<HashMap<String, BrokerChannel>>,
    metadata: Mutex<Option<Arc<ClusterMetadata>>>,
    /// Leaders that answered writes: later calls go straight to them.
    leaders: Mutex<HashMap<LeaderKey, String>>,
    /// Brokers that failed recently, and when: other calls try them last.
    suspects: Mutex<HashMap<String, Instant>>,
    /// Rotates the broker asked first by `AnyBroker` calls, spreading them.
    cursor: AtomicUsize,
    /// Distinguishes the jitter seeds of calls started at the same instant.
    calls: AtomicU64,
}

/// A boxed future, to break the type recursion call_leader → metadata → call_leader.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Connection {
    /// A connection through `seeds` (`host:port` each), in plain text without a token.
    /// Connects nothing yet.
    pub fn new(seeds: Vec<String>, opts: ConnectOptions) -> Result<Connection, Error> {
        Connection::secured(seeds, opts, Security::none())
    }

    /// A connection with TLS and/or a token (see [`Security`]). Connects nothing yet.
    pub fn secured(
        seeds: Vec<String>,
        opts: ConnectOptions,
        security: Security,
    ) -> Result<Connection, Error> {
        if seeds.is_empty() {
            return Err(Error::InvalidArgument(
                "no broker address given; expected host:port[,host:port...]".to_owned(),
            ));
        }
        let token = security.interceptor()?;
        Ok(Connection {
            seeds,
            opts,
            security,
            token,
            channels: Mutex::default(),
            metadata: Mutex::default(),
            leaders: Mutex::default(),
            suspects: Mutex::default(),
            cursor: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
        })
    }

    /// The seed addresses.
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The options.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// TLS and token settings.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The channel to `address` (`host:port`), created lazily: connecting happens on the
    /// first request and again after a failure. Must run inside a tokio runtime.
    pub fn channel(&self, address: &str) -> Result<BrokerChannel, Error> {
        let mut channels = lock(&self.channels);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = self.security.endpoint(address)?;
        let channel = endpoint
            .connect_timeout(self.opts.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        let channel = InterceptedService::new(channel, self.token.clone());
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Fresh cluster metadata from any reachable broker (seeds first, then brokers learned
    /// from earlier metadata), retried until `budget` has passed. Also refreshes the cache.
    pub async fn metadata(&self, budget: Duration) -> Result<Arc<ClusterMetadata>, Error> {
        self.fetch_metadata(Instant::now() + budget).await
    }

    /// One topic's metadata, or the broker's error for it (UNKNOWN_TOPIC with its message).
    pub async fn topic_metadata(
        &self,
        topic: &str,
        budget: Duration,
    ) -> Result<TopicMetadata, Error> {
        let request = pb::GetMetadataRequest {
            topics: vec![topic.to_owned()],
        };
        let response = self
            .call_leader(CallKind::AnyBroker, budget, |channel| {
                let request = request.clone();
                async move { MetadataClient::new(channel).get_metadata(request).await }
            })
            .await
            .map_err(|err| err.with_what(format!("look up topic {topic:?}")))?;
        if let Some((_, error)) = ClusterMetadata::topic_errors(&response)
            .into_iter()
            .find(|(name, _)| name == topic)
        {
            return Err(Error::Server {
                what: format!("look up topic {topic:?}"),
                error: Box::new(error),
            });
        }
        let mut meta = ClusterMetadata::from_wire(&response);
        meta.topics.remove(topic).ok_or_else(|| Error::Server {
            what: format!("look up topic {topic:?}"),
            error: Box::new(ServerError::local(
                tonic::Code::NotFound,
                pb::ErrorCode::UnknownTopic,
                format!("the broker did not describe topic {topic:?}"),
            )),
        })
    }

    /// Sends a request built by `f` (called once per attempt with the chosen broker's
    /// channel) to the broker `kind` names, until `budget` has passed. Each attempt waits at
    /// most [`ConnectOptions::read_timeout`] or [`ConnectOptions::write_timeout`].
    ///
    /// After a failure: a NOT_LEADER hint is followed at once; NOT_LEADER without hint
    /// refreshes metadata and backs off; an unreachable or silent broker is avoided (for a
    /// while, by other calls too); THROTTLED backs off; a write whose outcome is unknown
    /// (leadership changed mid-write, no answer after sending) is not retried. Backoff is
    /// exponential with jitter ([`BackoffPolicy`]).
    ///
    /// The response's own `error` field counts as a failure too. Errors: [`Error::Server`]
    /// for failures retrying cannot fix, [`Error::OutcomeUnknown`] when a write may have been
    /// stored, [`Error::GaveUp`] at the deadline (naming the last failure and its broker).
    pub async fn call_leader<T, F, Fut>(
        &self,
        kind: CallKind,
        budget: Duration,
        f: F,
    ) -> Result<T, Error>
    where
        T: WireResponse,
        F: FnMut(BrokerChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let attempt_timeout = if kind.is_write() {
            self.opts.write_timeout
        } else {
            self.opts.read_timeout
        };
        self.call_leader_with(kind, budget, attempt_timeout, f)
            .await
    }

    /// [`Connection::call_leader`] with an explicit limit per attempt, for requests that
    /// wait on purpose (a fetch's long-poll).
    pub async fn call_leader_with<T, F, Fut>(
        &self,
        kind: CallKind,
        budget: Duration,
        attempt_timeout: Duration,
        mut f: F,
    ) -> Result<T, Error>
    where
        T: WireResponse,
        F: FnMut(BrokerChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let deadline = start + budget;
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let seed = backoff::seed_from_clock() ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut backoff = Backoff::new(self.opts.backoff, seed);
        let mut redirect: Option<String> = None;
        let mut avoid: Vec<String> = Vec::new();
        let (mut attempts, mut redirects) = (0u32, 0u32);
        let mut last: Option<(String, ServerError)> = None;
        loop {
            let address = match redirect.take() {
                Some(address) => address,
                None => match self.route(&kind, &avoid, deadline).await {
                    Ok(address) => address,
                    // A metadata lookup that ran out of this call's time: the failure worth
                    // naming is this call's own last one (e.g. "no leader is known yet").
                    Err(error) => {
                        return Err(match (error, last.take()) {
                            (Error::GaveUp { .. }, Some((address, error))) => Error::GaveUp {
                                what: kind.to_string(),
                                attempts,
                                elapsed: start.elapsed(),
                                address,
                                last: Box::new(error),
                            },
                            (error, _) => error,
                        });
                    }
                },
            };
            attempts += 1;
            let error = match self
                .attempt(&address, deadline, attempt_timeout, &mut f)
                .await
            {
                Ok(response) => {
                    if kind.is_write() || matches!(kind, CallKind::Group(_)) {
                        self.learn(&kind, &address);
                    }
                    self.unsuspect(&address);
                    return Ok(response);
                }
                Err(error) => error,
            };
            let decision = retry::decide(&error, kind.is_write());
            tracing::debug!(%kind, %address, attempt = attempts, %error, ?decision, "attempt failed");
            let delay = match decision {
                Decision::Fail => {
                    return Err(Error::Server {
                        what: kind.to_string(),
                        error: Box::new(error),
                    });
                }
                Decision::Unknown => {
                    return Err(Error::OutcomeUnknown {
                        what: kind.to_string(),
                        last: Box::new(error),
                    });
                }
                Decision::Redirect(to) => {
                    self.forget(&kind);
                    redirects += 1;
                    redirect = Some(to);
                    (redirects > FREE_REDIRECTS).then(|| backoff.next_delay())
                }
                Decision::TryAnother => {
                    self.forget(&kind);
                    self.invalidate_metadata();
                    self.suspect(&address);
                    avoid.push(address.clone());
                    Some(backoff.next_delay())
                }
                Decision::Backoff => {
                    let delay = backoff.next_delay();
                    if error.is_not_leader() {
                        self.forget(&kind);
                        self.invalidate_metadata();
                        Some(delay.min(ELECTION_POLL))
                    } else {
                        Some(delay)
                    }
                }
            };
            let delay = delay.unwrap_or_default();
            if Instant::now() + delay >= deadline {
                return Err(Error::GaveUp {
                    what: kind.to_string(),
                    attempts,
                    elapsed: start.elapsed(),
                    address,
                    last: Box::new(error),
                });
            }
            last = Some((address, error));
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt at `address`, bounded by the call's deadline and `attempt_timeout`.
    async fn attempt<T, F, Fut>(
        &self,
        address: &str,
        deadline: Instant,
        attempt_timeout: Duration,
        f: &mut F,
    ) -> Result<T, ServerError>
    where
        T: WireResponse,
        F: FnMut(BrokerChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let channel = self
            .channel(address)
            .map_err(|err| ServerError::plain(tonic::Code::InvalidArgument, err.to_string()))?;
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(attempt_timeout);
        match tokio::time::timeout(limit, f(channel)).await {
            Err(_) => Err(ServerError::plain(
                tonic::Code::DeadlineExceeded,
                format!("no answer from {address} within {limit:.1?}"),
            )),
            Ok(Err(status)) => Err(ServerError::from_status(&status)),
            Ok(Ok(response)) => {
                let mut response = response.into_inner();
                match response.take_error() {
                    Some(error) => Err(ServerError::from_wire(tonic::Code::Ok, error)),
                    None => Ok(response),
                }
            }
        }
    }
}

/// Locks a mutex; a panic while it was held cannot leave these caches inconsistent (each
/// update is a single insert or replace), so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
