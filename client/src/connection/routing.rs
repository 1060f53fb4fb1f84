//! Where a call goes: learned leaders, cached metadata (fetched from any broker when
//! missing), and the rotation over seeds for calls any broker answers.

use super::{BoxFuture, CallKind, ClusterMetadata, Connection, lock};
use crate::error::Error;
use paxlog_proto::v1::{self as pb, metadata_client::MetadataClient};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// How long a broker that failed is tried only when no other one is left.
const SUSPECT_FOR: Duration = Duration::from_secs(5);

impl Connection {
    /// The broker to try next for `kind`, skipping `avoid` (brokers that failed this call)
    /// while there is another choice.
    pub(super) async fn route(
        &self,
        kind: &CallKind,
        avoid: &[String],
        deadline: Instant,
    ) -> Result<String, Error> {
        let usable = |address: &String| self.usable(address, avoid);
        // Leaders learned from answered writes; fetches prefer them too.
        if let Some(key) = kind.leader_key()
            && let Some(address) = lock(&self.leaders).get(&key).filter(|a| usable(a))
        {
            return Ok(address.clone());
        }
        let (topic, partition) = match kind {
            CallKind::AnyBroker | CallKind::Group(_) => return Ok(self.any_broker(avoid)),
            CallKind::Admin => {
                let meta = self.cached_metadata(deadline).await?;
                return Ok(match meta.metadata_leader_address() {
                    Some(leader) if self.usable(leader, avoid) => leader.to_owned(),
                    // No leader known: any broker answers with a hint, or without one while
                    // the election runs (then we back off).
                    _ => self.any_broker(avoid),
                });
            }
            CallKind::Publish { topic, partition } | CallKind::Fetch { topic, partition } => {
                (topic, *partition)
            }
        };
        let mut meta = self.cached_metadata(deadline).await?;
        if meta.partition(topic, partition).is_err() {
            // The cache may predate the topic's creation.
            meta = self.fetch_metadata(deadline).await?;
        }
        let p = meta
            .partition(topic, partition)
            .map_err(|error| Error::Server {
                what: kind.to_string(),
                error: Box::new(error),
            })?;
        let mut candidates = meta.replica_addresses(p);
        if matches!(kind, CallKind::Publish { .. }) && p.leader.is_some() {
            // Only the leader takes writes; others would just redirect.
            candidates.truncate(1);
        }
        Ok(match candidates.iter().find(|a| usable(a)) {
            Some(address) => address.clone(),
            None => candidates
                .first()
                .cloned()
                .unwrap_or_else(|| self.any_broker(avoid)),
        })
    }

    /// Whether `address` is worth trying now: it did not fail in this call (`avoid`) nor,
    /// recently, in another one (a paused broker would otherwise cost every call a timeout).
    fn usable(&self, address: &str, avoid: &[String]) -> bool {
        if avoid.iter().any(|a| a == address) {
            return false;
        }
        let mut suspects = lock(&self.suspects);
        suspects.retain(|_, since| since.elapsed() < SUSPECT_FOR);
        !suspects.contains_key(address)
    }

    /// Remembers that `address` failed (unreachable, silent, storage broken).
    pub(super) fn suspect(&self, address: &str) {
        lock(&self.suspects).insert(address.to_owned(), Instant::now());
    }

    /// Forgets that `address` failed: it just answered.
    pub(super) fn unsuspect(&self, address: &str) {
        lock(&self.suspects).remove(address);
    }

    /// The next broker in rotation among the seeds and known brokers, preferring usable
    /// ones; if none is, the next one anyway.
    fn any_broker(&self, avoid: &[String]) -> String {
        let mut addresses = self.seeds.clone();
        if let Some(meta) = lock(&self.metadata).as_ref() {
            for address in meta.brokers.values() {
                if !addresses.contains(address) {
                    addresses.push(address.clone());
                }
            }
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let rotated = (0..addresses.len()).map(|i| &addresses[(start + i) % addresses.len()]);
        let mut first = None;
        for address in rotated {
            if self.usable(address, avoid) {
                return address.clone();
            }
            first.get_or_insert(address);
        }
        // `seeds` is never empty (checked in `new`).
        first.cloned().unwrap_or_default()
    }

    /// The cached metadata, fetching it first if there is none.
    async fn cached_metadata(&self, deadline: Instant) -> Result<Arc<ClusterMetadata>, Error> {
        let cached = lock(&self.metadata).clone();
        match cached {
            Some(meta) => Ok(meta),
            None => self.fetch_metadata(deadline).await,
        }
    }

    /// Fetches metadata from any broker and caches it.
    pub(super) fn fetch_metadata(
        &self,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<Arc<ClusterMetadata>, Error>> {
        Box::pin(async move {
            let budget = deadline.saturating_duration_since(Instant::now());
            let request = pb::GetMetadataRequest { topics: Vec::new() };
            let response = self
                .call_leader(CallKind::AnyBroker, budget, |channel| {
                    let request = request.clone();
                    async move { MetadataClient::new(channel).get_metadata(request).await }
                })
                .await
                .map_err(|err| err.with_what("get cluster metadata"))?;
            let meta = Arc::new(ClusterMetadata::from_wire(&response));
            *lock(&self.metadata) = Some(meta.clone());
            Ok(meta)
        })
    }

    pub(super) fn invalidate_metadata(&self) {
        *lock(&self.metadata) = None;
    }

    pub(super) fn learn(&self, kind: &CallKind, address: &str) {
        if let Some(key) = kind.leader_key() {
            lock(&self.leaders).insert(key, address.to_owned());
        }
    }

    pub(super) fn forget(&self, kind: &CallKind) {
        if let Some(key) = kind.leader_key() {
            lock(&self.leaders).remove(&key);
        }
    }
}
