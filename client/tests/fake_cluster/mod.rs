//! In-process fake brokers speaking the `paxlog.v1` client API over real gRPC on loopback,
//! with the real brokers' routing rules (admin on the metadata leader, publish on the
//! partition leader, fetch on any replica, NOT_LEADER with a hint otherwise) and
//! injectable faults. They let the client's routing, retries and CLI run before the real
//! broker services exist; `cli_end_to_end.rs` covers the real thing.

#![allow(dead_code)] // each test file uses a different part

use paxlog_proto::v1::{self as pb, ErrorCode};
use paxlog_proto::v1::{admin_server, consumer_server, metadata_server, producer_server};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};

/// Records one fetch returns at most, so that consumers must loop.
const FETCH_LIMIT: usize = 7;

/// A fault the next publish (on any broker) answers with, instead of appending.
#[derive(Clone, Debug)]
pub enum Fault {
    /// THROTTLED (UNAVAILABLE): retry with backoff.
    Throttled,
    /// NOT_LEADER without hint, as UNAVAILABLE: leadership changed mid-write.
    LostLeadership,
}

#[derive(Debug, Default)]
pub struct State {
    pub brokers: BTreeMap<u64, String>,
    pub metadata_leader: u64,
    pub topics: BTreeMap<String, Vec<Partition>>,
    /// Metadata reports no leaders (as during elections); brokers still hint.
    pub hide_leaders: bool,
    /// Brokers answer NOT_LEADER without hint to every publish.
    pub no_leader: bool,
    /// Brokers never answer metadata requests (like a metadata leader under load).
    pub silent_metadata: bool,
    pub faults: Vec<Fault>,
    /// Publish requests received, by broker id.
    pub publishes: BTreeMap<u64, u32>,
}

#[derive(Debug, Default)]
pub struct Partition {
    pub leader: u64,
    pub replicas: Vec<u64>,
    pub records: Vec<pb::Record>,
}

/// Three (or more) fake brokers sharing one state.
pub struct FakeCluster {
    pub state: Arc<Mutex<State>>,
    pub addresses: Vec<String>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeCluster {
    /// Starts `nodes` brokers on ephemeral ports; node `metadata_leader` leads metadata.
    pub async fn start(nodes: u64, metadata_leader: u64) -> FakeCluster {
        let state = Arc::new(Mutex::new(State {
            metadata_leader,
            ..State::default()
        }));
        let mut listeners = Vec::new();
        for id in 1..=nodes {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("addr").to_string();
            lock(&state).brokers.insert(id, address);
            listeners.push((id, listener));
        }
        let mut servers = Vec::new();
        for (id, listener) in listeners {
            let broker = FakeBroker {
                id,
                state: state.clone(),
            };
            servers.push(tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(admin_server::AdminServer::new(broker.clone()))
                    .add_service(metadata_server::MetadataServer::new(broker.clone()))
                    .add_service(producer_server::ProducerServer::new(broker.clone()))
                    .add_service(consumer_server::ConsumerServer::new(broker))
                    .serve_with_incoming(TcpListenerStream::new(listener))
                    .await;
            }));
        }
        let addresses = lock(&state).brokers.values().cloned().collect();
        FakeCluster {
            state,
            addresses,
            servers,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `host:port,host:port,...` starting with node `first`.
    pub fn brokers_from(&self, first: usize) -> String {
        let n = self.addresses.len();
        (0..n)
            .map(|i| self.addresses[(first - 1 + i) % n].clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A status the way the real broker builds them: code, message, `paxlog.v1.Error` details.
pub fn status(code: Code, wire: ErrorCode, message: &str, leader: Option<(u64, String)>) -> Status {
    let detail = pb::Error {
        code: wire as i32,
        message: message.to_owned(),
        leader: leader.map(|(node_id, address)| pb::LeaderHint { node_id, address }),
    };
    Status::with_details(code, message, detail.encode_to_vec().into())
}

#[derive(Clone)]
struct FakeBroker {
    id: u64,
    state: Arc<Mutex<State>>,
}

impl FakeBroker {
    fn not_leader(&self, state: &State, leader: u64) -> Status {
        let hint = state.brokers.get(&leader).map(|a| (leader, a.clone()));
        status(
            Code::FailedPrecondition,
            ErrorCode::NotLeader,
            "this broker is not the leader; retry on the leader",
            hint,
        )
    }
}

fn unknown_topic(name: &str) -> Status {
    status(
        Code::NotFound,
        ErrorCode::UnknownTopic,
        &format!("unknown topic {name:?}: create it first (paxlog topic create {name})"),
        None,
    )
}

fn describe(name: &str, partitions: &[Partition]) -> pb::TopicDescription {
    pb::TopicDescription {
        name: name.to_owned(),
        replication_factor: partitions.first().map_or(0, |p| p.replicas.len() as u32),
        config: Default::default(),
        partitions: partitions
            .iter()
            .enumerate()
            .map(|(i, p)| pb::PartitionDescription {
                partition: i as u32,
                leader: p.leader,
                replicas: p.replicas.clone(),
                decided_index: p.records.len() as u64,
                log_start_offset: 0,
                log_end_offset: p.records.len() as u64,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl admin_server::Admin for FakeBroker {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let r = request.into_inner();
        let mut state = lock(&self.state);
        if state.metadata_leader != self.id {
            return Err(self.not_leader(&state, state.metadata_leader));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if r.name.is_empty() || !r.name.chars().all(valid) {
            let msg = format!(
                "invalid topic name {:?}: use 1 to 249 of [A-Za-z0-9._-]",
                r.name
            );
            return Err(status(
                Code::InvalidArgument,
                ErrorCode::InvalidName,
                &msg,
                None,
            ));
        }
        let nodes = state.brokers.len() as u32;
        let replication = if r.replication_factor == 0 {
            nodes
        } else {
            r.replication_factor
        };
        if r.partitions == 0 || replication > nodes {
            let msg = format!(
                "replication factor {replication} with {} partitions: need 1..={nodes} replicas and at least 1 partition",
                r.partitions
            );
            return Err(status(
                Code::InvalidArgument,
                ErrorCode::InvalidConfig,
                &msg,
                None,
            ));
        }
        if state.topics.contains_key(&r.name) {
            let msg = format!("topic {:?} already exists", r.name);
            return Err(status(
                Code::AlreadyExists,
                ErrorCode::TopicExists,
                &msg,
                None,
            ));
        }
        let ids: Vec<u64> = state.brokers.keys().copied().collect();
        let partitions: Vec<Partition> = (0..r.partitions as usize)
            .map(|p| {
                let replicas: Vec<u64> = (0..replication as usize)
                    .map(|i| ids[(p + i) % ids.len()])
                    .collect();
                // Not the first replica: a client that tries that one first gets redirected.
                let leader = replicas[1 % replicas.len()];
                Partition {
                    leader,
                    replicas,
                    records: Vec::new(),
                }
            })
            .collect();
        let topic = describe(&r.name, &partitions);
        state.topics.insert(r.name, partitions);
        Ok(Response::new(pb::CreateTopicResponse {
            error: None,
            topic: Some(topic),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        let mut state = lock(&self.state);
        if state.metadata_leader != self.id {
            return Err(self.not_leader(&state, state.metadata_leader));
        }
        state
            .topics
            .remove(&name)
            .ok_or_else(|| unknown_topic(&name))?;
        Ok(Response::new(pb::DeleteTopicResponse { error: None }))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let state = lock(&self.state);
        let topics = state
            .topics
            .iter()
            .map(|(name, ps)| pb::TopicSummary {
                name: name.clone(),
                partitions: ps.len() as u32,
                replication_factor: ps.first().map_or(0, |p| p.replicas.len() as u32),
            })
            .collect();
        Ok(Response::new(pb::ListTopicsResponse {
            error: None,
            topics,
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let name = request.into_inner().name;
        let state = lock(&self.state);
        let partitions = state
            .topics
            .get(&name)
            .ok_or_else(|| unknown_topic(&name))?;
        Ok(Response::new(pb::DescribeTopicResponse {
            error: None,
            topic: Some(describe(&name, partitions)),
        }))
    }

    async fn elect_leader(
        &self,
        _request: Request<pb::ElectLeaderRequest>,
    ) -> Result<Response<pb::ElectLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "the fake cluster does not move leaders",
        ))
    }
}

#[tonic::async_trait]
impl metadata_server::Metadata for FakeBroker {
    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let wanted = request.into_inner().topics;
        let silent = lock(&self.state).silent_metadata;
        if silent {
            std::future::pending::<()>().await;
        }
        let state = lock(&self.state);
        let mut topics: Vec<pb::TopicMetadata> = state
            .topics
            .iter()
            .filter(|(name, _)| wanted.is_empty() || wanted.contains(name))
            .map(|(name, ps)| pb::TopicMetadata {
                name: name.clone(),
                error: None,
                partitions: ps
                    .iter()
                    .enumerate()
                    .map(|(i, p)| pb::PartitionMetadata {
                        partition: i as u32,
                        leader: if state.hide_leaders { 0 } else { p.leader },
                        replicas: p.replicas.clone(),
                    })
                    .collect(),
            })
            .collect();
        for name in wanted.iter().filter(|n| !state.topics.contains_key(*n)) {
            topics.push(pb::TopicMetadata {
                name: name.clone(),
                error: Some(pb::Error {
                    code: ErrorCode::UnknownTopic as i32,
                    message: unknown_topic(name).message().to_owned(),
                    leader: None,
                }),
                partitions: Vec::new(),
            });
        }
        Ok(Response::new(pb::GetMetadataResponse {
            error: None,
            brokers: state
                .brokers
                .iter()
                .map(|(id, address)| pb::Broker {
                    id: *id,
                    address: address.clone(),
                })
                .collect(),
            topics,
            metadata_leader: if state.hide_leaders {
                0
            } else {
                state.metadata_leader
            },
        }))
    }
}

#[tonic::async_trait]
impl producer_server::Producer for FakeBroker {
    async fn init_producer(
        &self,
        _request: Request<pb::InitProducerRequest>,
    ) -> Result<Response<pb::InitProducerResponse>, Status> {
        // Any broker answers; the fake's publishes ignore producer ids and sequences.
        Ok(Response::new(pb::InitProducerResponse {
            error: None,
            producer_id: 1,
            producer_epoch: 0,
        }))
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let r = request.into_inner();
        let mut state = lock(&self.state);
        *state.publishes.entry(self.id).or_default() += 1;
        let partition = r
            .partition
            .ok_or_else(|| Status::invalid_argument("fake needs a partition"))?;
        let leader = {
            let ps = state
                .topics
                .get(&r.topic)
                .ok_or_else(|| unknown_topic(&r.topic))?;
            let p = ps.get(partition as usize).ok_or_else(|| {
                status(
                    Code::NotFound,
                    ErrorCode::UnknownPartition,
                    "no such partition",
                    None,
                )
            })?;
            p.leader
        };
        if state.no_leader {
            let msg = "no leader is known yet: an election may be under way";
            return Err(status(
                Code::FailedPrecondition,
                ErrorCode::NotLeader,
                msg,
                None,
            ));
        }
        if leader != self.id {
            return Err(self.not_leader(&state, leader));
        }
        if !state.faults.is_empty() {
            return Err(match state.faults.remove(0) {
                Fault::Throttled => status(
                    Code::Unavailable,
                    ErrorCode::Throttled,
                    "the partition leader is busy: retry with backoff",
                    None,
                ),
                Fault::LostLeadership => status(
                    Code::Unavailable,
                    ErrorCode::NotLeader,
                    "leadership changed before the write was decided: it may or may not be stored",
                    None,
                ),
            });
        }
        let p = &mut state.topics.get_mut(&r.topic).expect("checked")[partition as usize];
        let base = p.records.len() as u64;
        let count = r.records.len() as u64;
        p.records.extend(r.records);
        Ok(Response::new(pb::PublishResponse {
            error: None,
            partition,
            base_offset: base,
            last_offset: base + count - 1,
        }))
    }
}

#[tonic::async_trait]
impl consumer_server::Consumer for FakeBroker {
    type SubscribeStream = tokio_stream::Empty<Result<pb::SubscribeResponse, Status>>;

    async fn list_offsets(
        &self,
        _request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        Err(Status::unimplemented("the fake broker has no ListOffsets"))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let r = request.into_inner();
        let response = {
            let state = lock(&self.state);
            let ps = state
                .topics
                .get(&r.topic)
                .ok_or_else(|| unknown_topic(&r.topic))?;
            let p = ps
                .get(r.partition as usize)
                .ok_or_else(|| Status::not_found("partition"))?;
            if !p.replicas.contains(&self.id) {
                return Err(self.not_leader(&state, p.replicas[0]));
            }
            let end = p.records.len() as u64;
            if r.offset > end {
                let msg = format!("offset {} is out of range 0..{end}", r.offset);
                return Err(status(
                    Code::OutOfRange,
                    ErrorCode::OffsetOutOfRange,
                    &msg,
                    None,
                ));
            }
            let records: Vec<pb::StoredRecord> = p.records[r.offset as usize..]
                .iter()
                .take(FETCH_LIMIT)
                .enumerate()
                .map(|(i, rec)| pb::StoredRecord {
                    offset: r.offset + i as u64,
                    record: Some(rec.clone()),
                })
                .collect();
            pb::FetchResponse {
                error: None,
                records,
                high_watermark: end,
                log_start_offset: 0,
            }
        };
        if response.records.is_empty() {
            // Long-poll, shortened: nothing arrives in these tests while a consumer waits.
            tokio::time::sleep(Duration::from_millis(u64::from(r.max_wait_ms).min(200))).await;
        }
        Ok(Response::new(response))
    }

    async fn subscribe(
        &self,
        _request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("fake"))
    }
}
