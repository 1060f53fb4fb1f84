//! [`Client`]: the SDK's entry point, and [`Admin`] for topics, groups and the cluster.
//!
//! ```text
//!   Client::connect(seeds) ── GetMetadata from a seed (checks the cluster answers)
//!     ├─ producer(config) ─▶ Producer    batches, idempotent by default
//!     ├─ consumer(config) ─▶ Consumer    standalone or group member
//!     └─ admin()          ─▶ Admin       topics, groups, cluster status
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), paxlog_client::Error> {
//! use paxlog_client::{Client, ProducerRecord};
//! let client = Client::connect(["127.0.0.1:7001", "127.0.0.1:7002"]).await?;
//! let producer = client.producer(Default::default())?;
//! let delivered = producer
//!     .send_and_wait(ProducerRecord::new("orders", "hello").key("customer-1"))
//!     .await?;
//! println!("stored at {}/{:?}", delivered.partition, delivered.offset);
//! # Ok(()) }
//! ```

use crate::cli::topic::{self, CreateTopic, TopicList, TopicView};
use crate::connection::{CallKind, ConnectOptions, Connection};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::Error;
use crate::producer::{Producer, ProducerConfig};
use crate::security::Security;
use crate::status::{ClusterView, cluster_view};
use paxlog_proto::v1::{self as pb, groups_client::GroupsClient};
use std::sync::Arc;
use std::time::Duration;

/// A handle on a cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    conn: Arc<Connection>,
    deadline: Duration,
}

impl Client {
    /// Connects through `seeds` (`host:port`), checking within 30 s that one answers.
    pub async fn connect<I, S>(seeds: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::connect_with(seeds, ConnectOptions::default(), Duration::from_secs(30)).await
    }

    /// [`Client::connect`] with connection options and the deadline of admin calls.
    pub async fn connect_with<I, S>(
        seeds: I,
        options: ConnectOptions,
        deadline: Duration,
    ) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::connect_secured(seeds, options, Security::none(), deadline).await
    }

    /// [`Client::connect_with`] over TLS and/or with a token (see [`Security`]):
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), paxlog_client::Error> {
    /// use paxlog_client::{Client, Security, connection::ConnectOptions};
    /// let security = Security::none()
    ///     .with_ca_file("ca.pem".as_ref())?
    ///     .with_token(std::env::var("PAXLOG_TOKEN").unwrap_or_default());
    /// let client = Client::connect_secured(
    ///     ["broker-1:7001"],
    ///     ConnectOptions::default(),
    ///     security,
    ///     std::time::Duration::from_secs(30),
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_secured<I, S>(
        seeds: I,
        options: ConnectOptions,
        security: Security,
        deadline: Duration,
    ) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds = seeds.into_iter().map(Into::into).collect();
        let conn = Connection::secured(seeds, options, security)?;
        conn.metadata(deadline).await?;
        Ok(Client {
            conn: Arc::new(conn),
            deadline,
        })
    }

    /// A client over an existing connection (no check that a broker answers).
    pub fn from_connection(conn: Arc<Connection>, deadline: Duration) -> Client {
        Client { conn, deadline }
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// A producer.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer, Error> {
        Producer::new(self.conn.clone(), config)
    }

    /// A consumer.
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.conn.clone(), config)
    }

    /// Administration.
    pub fn admin(&self) -> Admin {
        Admin {
            conn: self.conn.clone(),
            deadline: self.deadline,
        }
    }
}

/// Topics, consumer groups and cluster status.
#[derive(Clone, Debug)]
pub struct Admin {
    conn: Arc<Connection>,
    deadline: Duration,
}

impl Admin {
    /// Creates a topic.
    pub async fn create_topic(&self, request: CreateTopic) -> Result<TopicView, Error> {
        topic::create(&self.conn, request, self.deadline).await
    }

    /// Moves a partition's leadership to `node`, one of its replicas (before maintenance
    /// on the current leader, or to spread leaders); returns once `node` leads.
    pub async fn elect_leader(&self, topic: &str, partition: u32, node: u64) -> Result<(), Error> {
        topic::elect_leader(&self.conn, topic, partition, node, self.deadline).await?;
        Ok(())
    }

    /// Deletes a topic and its records.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        topic::delete(&self.conn, name, self.deadline).await
    }

    /// Every topic.
    pub async fn list_topics(&self) -> Result<TopicList, Error> {
        topic::list(&self.conn, self.deadline).await
    }

    /// One topic, each partition's row from its leader.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicView, Error> {
        topic::describe_at_leaders(&self.conn, name, self.deadline).await
    }

    /// Brokers, leaders and decided indexes as the cluster reports them.
    pub async fn cluster(&self) -> ClusterView {
        cluster_view(&self.conn, self.deadline).await
    }

    /// Every consumer group.
    pub async fn list_groups(&self) -> Result<Vec<pb::GroupSummary>, Error> {
        let response = self
            .conn
            .call_leader(CallKind::AnyBroker, self.deadline, |ch| async move {
                GroupsClient::new(ch)
                    .list_groups(pb::ListGroupsRequest {})
                    .await
            })
            .await
            .map_err(|e| e.with_what("list groups"))?;
        Ok(response.groups)
    }

    /// A group: members, assignment, committed offsets and lag per partition.
    pub async fn describe_group(&self, group: &str) -> Result<pb::DescribeGroupResponse, Error> {
        let request = pb::DescribeGroupRequest {
            group: group.to_owned(),
        };
        self.conn
            .call_leader(CallKind::Group(group.to_owned()), self.deadline, |ch| {
                let request = request.clone();
                async move { GroupsClient::new(ch).describe_group(request).await }
            })
            .await
            .map_err(|e| e.with_what(format!("describe group {group:?}")))
    }

    /// Sets committed offsets of a group without members (`(topic, partition, offset)`).
    pub async fn reset_offsets(
        &self,
        group: &str,
        offsets: &[(String, u32, u64)],
    ) -> Result<(), Error> {
        let request = pb::ResetOffsetsRequest {
            group: group.to_owned(),
            offsets: offsets
                .iter()
                .map(|(topic, partition, offset)| pb::OffsetCommit {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        self.conn
            .call_leader(CallKind::Group(group.to_owned()), self.deadline, |ch| {
                let request = request.clone();
                async move { GroupsClient::new(ch).reset_offsets(request).await }
            })
            .await
            .map(|_| ())
            .map_err(|e| e.with_what(format!("reset offsets of group {group:?}")))
    }
}
