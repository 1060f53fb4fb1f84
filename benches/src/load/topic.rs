//! The benchmark's topic: created if missing, and ready (every partition led) before any
//! measurement starts, so the first publishes do not measure an election.

use paxlog_client::Error;
use paxlog_client::cli::topic::{self, CreateTopic};
use paxlog_client::connection::Connection;
use paxlog_proto::v1::ErrorCode;
use std::time::Duration;
use tokio::time::Instant;

/// Pause between two looks at the metadata while waiting for leaders.
const POLL: Duration = Duration::from_millis(100);

/// What happened to the topic before the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicReady {
    /// Number of partitions.
    pub partitions: u32,
    /// Whether this run created it.
    pub created: bool,
}

/// Looks the topic up; creates it with `partitions` and `replication` if it does not exist
/// (`create = true`); then waits until every partition has a leader, up to `budget`.
pub async fn ensure(
    conn: &Connection,
    name: &str,
    create: Option<(u32, u32)>,
    budget: Duration,
) -> Result<TopicReady, Error> {
    let mut created = false;
    match conn.topic_metadata(name, budget).await {
        Ok(_) => {}
        Err(error) if is_unknown_topic(&error) => {
            let Some((partitions, replication)) = create else {
                return Err(error);
            };
            let request = CreateTopic {
                name: name.to_owned(),
                partitions,
                replication,
                config: Default::default(),
            };
            match topic::create(conn, request, budget).await {
                Ok(_) => created = true,
                // Another benchmark process created it first: use it.
                Err(error) if code_of(&error) == Some(ErrorCode::TopicExists) => {}
                Err(error) => return Err(error),
            }
        }
        Err(error) => return Err(error),
    }
    let partitions = wait_for_leaders(conn, name, budget).await?;
    Ok(TopicReady {
        partitions,
        created,
    })
}

/// Waits until metadata names a leader for every partition; returns the partition count.
async fn wait_for_leaders(conn: &Connection, name: &str, budget: Duration) -> Result<u32, Error> {
    let deadline = Instant::now() + budget;
    loop {
        let meta = conn
            .topic_metadata(name, deadline.saturating_duration_since(Instant::now()))
            .await?;
        let leaderless: Vec<u32> = meta
            .partitions
            .iter()
            .filter(|p| p.leader.is_none())
            .map(|p| p.partition)
            .collect();
        if leaderless.is_empty() && !meta.partitions.is_empty() {
            return Ok(u32::try_from(meta.partitions.len()).unwrap_or(u32::MAX));
        }
        if Instant::now() + POLL >= deadline {
            return Err(Error::InvalidArgument(format!(
                "topic {name:?}: partitions {leaderless:?} still have no leader after {budget:?}; check `paxlog status`"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn code_of(error: &Error) -> Option<ErrorCode> {
    error.server_error().map(|e| e.code)
}

fn is_unknown_topic(error: &Error) -> bool {
    code_of(error) == Some(ErrorCode::UnknownTopic)
}
