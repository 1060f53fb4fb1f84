//! The broker's configuration: one [`Config`] struct, its defaults, and its validation.
//!
//! Sources, lowest precedence first: [`Config::default`], an optional TOML file, `PAXLOG_*`
//! environment variables, then command-line flags. Each source is turned into a
//! [`ConfigPatch`] (only the settings it names) and applied in that order by
//! [`Config::load`]; the result is validated once, at the end.
//!
//! ```toml
//! # paxlog-broker --config node-1.toml
//! id = 1
//! listen = "127.0.0.1:7001"
//! data_dir = "./data/node-1"          # default: ./data/node-<id>
//! metrics = "127.0.0.1:9001"          # default: listen port + 2000
//! max_record_bytes = 1048576
//! max_inflight_bytes = 268435456      # publishes awaiting consensus, node-wide
//! max_inflight_bytes_per_partition = 67108864   # default: a quarter of the above
//! max_request_bytes = 16777216        # largest gRPC request a client may send
//! max_connections = 4096              # open connections (peers never refused)
//! max_connections_per_ip = 1024
//! auth_file = "tokens.toml"           # tokens and their permissions; needs [tls]
//!
//! [tls]                               # all three or none
//! cert = "node-1.pem"                 # this node's certificate chain
//! key = "node-1.key"
//! ca = "ca.pem"                       # the cluster CA: checks peers (mutual TLS)
//!
//! [peers]                             # every node, this one included
//! 1 = "127.0.0.1:7001"
//! 2 = "127.0.0.1:7002"
//! 3 = "127.0.0.1:7003"
//! ```

mod env;
mod peers;

pub use env::ENV_PREFIX;
pub use peers::{parse_peer_address, parse_peers};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

/// Identifies a broker node; never 0.
pub type NodeId = u64;

/// Default gRPC address: loopback, so a node started without flags is not exposed.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7001));
/// The default metrics port is the gRPC port plus this offset (7001 → 9001), so the nodes
/// of a local cluster on consecutive ports get consecutive metrics ports.
pub const METRICS_PORT_OFFSET: u16 = 2000;
/// Default largest record (key + value + headers) a producer may publish: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 1 << 20;
/// Upper bound for `max_record_bytes`: records travel whole in one Paxos value and one gRPC
/// message, so they must stay well below gRPC's message size limits.
pub const MAX_RECORD_BYTES_LIMIT: u32 = 64 << 20;
/// Default budget of publish bytes a broker holds while they await consensus: 256 MiB.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 256 << 20;
/// Default largest client request (a publish of many records): 16 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 16 << 20;
/// Room a request needs beyond its largest record (other fields, framing).
pub const REQUEST_OVERHEAD_BYTES: u32 = 64 << 10;
/// Upper bound of `max_request_bytes`: what a broker decodes into memory at once per call.
pub const MAX_REQUEST_BYTES_LIMIT: u32 = 256 << 20;
/// Default most open connections on the gRPC port.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// Default most open connections from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 1024;
/// Parent of the default data directories (`./data/node-<id>`).
pub const DEFAULT_DATA_ROOT: &str = "./data";

/// Everything a broker needs to know to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id, unique in the cluster and never 0. It is stored in the data directory
    /// on first start; a later start with another id on the same directory is refused.
    pub id: NodeId,
    /// Address the gRPC server (client API, peer API, health, reflection) binds to.
    pub listen: SocketAddr,
    /// Every node of the cluster, **this one included**, by id: the address (`host:port`)
    /// other nodes use to reach it. Including self lets every node get the same value, and
    /// lets this node advertise an address other than `listen` (e.g. when binding 0.0.0.0).
    /// Empty means a single-node cluster of just this node.
    pub peers: BTreeMap<NodeId, String>,
    /// RocksDB directory; `None` means `./data/node-<id>` (see [`Config::data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// Address of the Prometheus `/metrics` HTTP endpoint; `None` means the `listen` host
    /// with port + [`METRICS_PORT_OFFSET`] (see [`Config::metrics_addr`]).
    pub metrics: Option<SocketAddr>,
    /// Largest record (key + value + headers), in bytes, a producer may publish.
    pub max_record_bytes: u32,
    /// Bytes of publishes (encoded batches) this broker holds, node-wide, between taking
    /// them and answering them: what bounds its memory under a producer flood. Past it,
    /// publishes are refused with THROTTLED (the SDK backs off and retries). At least
    /// `max_record_bytes`.
    pub max_inflight_bytes: u64,
    /// The part of `max_inflight_bytes` one partition may hold, so that a flood to one
    /// partition cannot throttle every other; `None` means a quarter of
    /// `max_inflight_bytes` (at least `max_record_bytes`, see
    /// [`Config::partition_inflight_limit`]).
    pub max_inflight_bytes_per_partition: Option<u64>,
    /// Largest gRPC request (encoded) a client may send; larger ones are refused with
    /// OUT_OF_RANGE before they are decoded. At least `max_record_bytes` plus
    /// [`REQUEST_OVERHEAD_BYTES`]; `None` means [`DEFAULT_MAX_REQUEST_BYTES`] or that
    /// minimum if larger (see [`Config::request_limit`]).
    pub max_request_bytes: Option<u32>,
    /// Most connections open on the gRPC port; more are closed at accept. Connections
    /// from the peers' addresses are never refused.
    pub max_connections: u32,
    /// Most connections open from one IP address (peers' exempt).
    pub max_connections_per_ip: u32,
    /// This node's TLS certificate chain (PEM). TLS is on when `tls_cert`, `tls_key` and
    /// `tls_ca` are all set; see [`crate::security::tls`].
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM): verifies peers' certificates both ways.
    pub tls_ca: Option<PathBuf>,
    /// Tokens and their permissions (TOML, see [`crate::security::auth`]); `None` allows
    /// every client call. Requires TLS.
    pub auth_file: Option<PathBuf>,
}

/// The three files TLS needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// See [`Config::tls_cert`].
    pub cert: PathBuf,
    /// See [`Config::tls_key`].
    pub key: PathBuf,
    /// See [`Config::tls_ca`].
    pub ca: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // No sensible default: two nodes must never share an id, so it must be given.
            id: 0,
            listen: DEFAULT_LISTEN,
            peers: BTreeMap::new(),
            data_dir: None,
            metrics: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            max_inflight_bytes_per_partition: None,
            max_request_bytes: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            auth_file: None,
        }
    }
}

/// Settings from one source; `None` leaves the setting as the lower-precedence sources
/// made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigPatch {
    /// See [`Config::id`].
    pub id: Option<NodeId>,
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::peers`].
    pub peers: Option<BTreeMap<NodeId, String>>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::metrics`].
    pub metrics: Option<SocketAddr>,
    /// See [`Config::max_record_bytes`].
    pub max_record_bytes: Option<u32>,
    /// See [`Config::max_inflight_bytes`].
    pub max_inflight_bytes: Option<u64>,
    /// See [`Config::max_inflight_bytes_per_partition`].
    pub max_inflight_bytes_per_partition: Option<u64>,
    /// See [`Config::max_request_bytes`].
    pub max_request_bytes: Option<u32>,
    /// See [`Config::max_connections`].
    pub max_connections: Option<u32>,
    /// See [`Config::max_connections_per_ip`].
    pub max_connections_per_ip: Option<u32>,
    /// See [`Config::tls_cert`].
    pub tls_cert: Option<PathBuf>,
    /// See [`Config::tls_key`].
    pub tls_key: Option<PathBuf>,
    /// See [`Config::tls_ca`].
    pub tls_ca: Option<PathBuf>,
    /// See [`Config::auth_file`].
    pub auth_file: Option<PathBuf>,
}

/// Why a configuration was rejected. Every message names the setting and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No node id, or 0.
    #[error(
        "node id is missing or 0: pass --id N with N >= 1 (or set PAXLOG_ID, or `id` in the config file)"
    )]
    MissingId,
    /// `--peers` (or its env/file form) could not be parsed.
    #[error(
        "invalid peers {input:?}: {reason}; expected id=host:port pairs separated by commas, e.g. 1=127.0.0.1:7001,2=127.0.0.1:7002"
    )]
    InvalidPeers {
        /// The text that was rejected.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The peer list does not contain this node.
    #[error(
        "peers list nodes {listed:?} but not this node ({id}): list every node, this one included, and give every node the same list"
    )]
    SelfNotInPeers {
        /// This node's id.
        id: NodeId,
        /// The ids that were listed.
        listed: Vec<NodeId>,
    },
    /// A `PAXLOG_*` variable has a value of the wrong type.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable's name.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {}: {source}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// What the TOML parser reported (with line and column).
        source: Box<toml::de::Error>,
    },
    /// `max_record_bytes` is 0 or above [`MAX_RECORD_BYTES_LIMIT`].
    #[error("max_record_bytes = {0} is out of range: use 1 to {MAX_RECORD_BYTES_LIMIT}")]
    MaxRecordBytes(u32),
    /// `max_inflight_bytes` below `max_record_bytes`: a largest record could never be taken.
    #[error(
        "max_inflight_bytes = {inflight} is below max_record_bytes = {record}: the broker could never take a largest record; raise max_inflight_bytes (default {DEFAULT_MAX_INFLIGHT_BYTES})"
    )]
    MaxInflightBytes {
        /// The budget given.
        inflight: u64,
        /// The largest record.
        record: u32,
    },
    /// The default metrics port (listen port + 2000) does not exist.
    #[error(
        "no default metrics port for listen port {0} (port + {METRICS_PORT_OFFSET} exceeds 65535): pass --metrics host:port"
    )]
    NoDefaultMetricsPort(u16),
    /// gRPC and metrics would bind the same address.
    #[error("metrics address {0} is the gRPC listen address too: pass a different --metrics")]
    MetricsCollidesWithListen(SocketAddr),
    /// `max_request_bytes` cannot hold a largest record, or is above the limit.
    #[error(
        "max_request_bytes = {request} is out of range: use max_record_bytes + {REQUEST_OVERHEAD_BYTES} ({}) to {MAX_REQUEST_BYTES_LIMIT}",
        u64::from(*record) + u64::from(REQUEST_OVERHEAD_BYTES)
    )]
    MaxRequestBytes {
        /// The limit given.
        request: u32,
        /// The largest record.
        record: u32,
    },
    /// A partition's budget outside `max_record_bytes..=max_inflight_bytes`.
    #[error(
        "max_inflight_bytes_per_partition = {partition} is out of range: use max_record_bytes ({record}) to max_inflight_bytes ({node})"
    )]
    PartitionInflightBytes {
        /// The partition budget given.
        partition: u64,
        /// The largest record.
        record: u32,
        /// The node budget.
        node: u64,
    },
    /// A connection limit of 0.
    #[error("{0} = 0 would refuse every client: use at least 1")]
    ZeroConnections(&'static str),
    /// Some but not all of the TLS files.
    #[error(
        "TLS needs --tls-cert, --tls-key and --tls-ca together (or cert, key and ca under [tls]); missing: {0}"
    )]
    TlsIncomplete(String),
    /// An auth file without TLS.
    #[error(
        "--auth-file needs TLS (--tls-cert, --tls-key, --tls-ca): without it tokens would cross the network in clear and the peer API would be open to anyone"
    )]
    AuthWithoutTls,
    /// An explicitly empty data directory.
    #[error("data_dir is empty: pass --data-dir PATH or leave it unset for ./data/node-<id>")]
    EmptyDataDir,
}

impl Config {
    /// Builds the configuration from its sources (lowest precedence first): defaults, the
    /// TOML file (if any), the `PAXLOG_*` variables among `env`, and `flags`; then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: ConfigPatch,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = file {
            config.apply(ConfigPatch::from_file(path)?);
        }
        config.apply(ConfigPatch::from_env(env)?);
        config.apply(flags);
        config.validate()?;
        Ok(config)
    }

    /// Overwrites every setting the patch names.
    pub fn apply(&mut self, patch: ConfigPatch) {
        let ConfigPatch {
            id,
            listen,
            peers,
            data_dir,
            metrics,
            max_record_bytes,
            max_inflight_bytes,
            max_inflight_bytes_per_partition,
            max_request_bytes,
            max_connections,
            max_connections_per_ip,
            tls_cert,
            tls_key,
            tls_ca,
            auth_file,
        } = patch;
        self.id = id.unwrap_or(self.id);
        self.listen = listen.unwrap_or(self.listen);
        self.peers = peers.unwrap_or(std::mem::take(&mut self.peers));
        self.data_dir = data_dir.or(self.data_dir.take());
        self.metrics = metrics.or(self.metrics);
        self.max_record_bytes = max_record_bytes.unwrap_or(self.max_record_bytes);
        self.max_inflight_bytes = max_inflight_bytes.unwrap_or(self.max_inflight_bytes);
        self.max_request_bytes = max_request_bytes.or(self.max_request_bytes);
        self.max_inflight_bytes_per_partition =
            max_inflight_bytes_per_partition.or(self.max_inflight_bytes_per_partition);
        self.max_connections = max_connections.unwrap_or(self.max_connections);
        self.max_connections_per_ip = max_connections_per_ip.unwrap_or(self.max_connections_per_ip);
        self.tls_cert = tls_cert.or(self.tls_cert.take());
        self.tls_key = tls_key.or(self.tls_key.take());
        self.tls_ca = tls_ca.or(self.tls_ca.take());
        self.auth_file = auth_file.or(self.auth_file.take());
    }

    /// Checks the settings together; `Ok` means the broker can try to start with them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::MissingId);
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.id) {
            return Err(ConfigError::SelfNotInPeers {
                id: self.id,
                listed: self.peers.keys().copied().collect(),
            });
        }
        if self
            .data_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(ConfigError::EmptyDataDir);
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_RECORD_BYTES_LIMIT {
            return Err(ConfigError::MaxRecordBytes(self.max_record_bytes));
        }
        if self.max_inflight_bytes < u64::from(self.max_record_bytes) {
            return Err(ConfigError::MaxInflightBytes {
                inflight: self.max_inflight_bytes,
                record: self.max_record_bytes,
            });
        }
        if let Some(partition) = self.max_inflight_bytes_per_partition
            && (partition < u64::from(self.max_record_bytes) || partition > self.max_inflight_bytes)
        {
            return Err(ConfigError::PartitionInflightBytes {
                partition,
                record: self.max_record_bytes,
                node: self.max_inflight_bytes,
            });
        }
        if let Some(request) = self.max_request_bytes
            && (request < self.max_record_bytes.saturating_add(REQUEST_OVERHEAD_BYTES)
                || request > MAX_REQUEST_BYTES_LIMIT)
        {
            return Err(ConfigError::MaxRequestBytes {
                request,
                record: self.max_record_bytes,
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroConnections("max_connections"));
        }
        if self.max_connections_per_ip == 0 {
            return Err(ConfigError::ZeroConnections("max_connections_per_ip"));
        }
        self.tls_files()?;
        if self.auth_file.is_some() && self.tls_files()?.is_none() {
            return Err(ConfigError::AuthWithoutTls);
        }
        let metrics = self.metrics_addr()?;
        // Port 0 asks the OS for a free port, so two port-0 addresses never collide.
        if metrics == self.listen && metrics.port() != 0 {
            return Err(ConfigError::MetricsCollidesWithListen(metrics));
        }
        Ok(())
    }

    /// The bytes one partition may hold awaiting consensus: the configured value, or a
    /// quarter of the node's budget but at least a largest record.
    pub fn partition_inflight_limit(&self) -> u64 {
        self.max_inflight_bytes_per_partition
            .unwrap_or_else(|| (self.max_inflight_bytes / 4).max(u64::from(self.max_record_bytes)))
    }

    /// The largest request a client may send: `max_request_bytes`, or the default raised
    /// to hold a largest record.
    pub fn request_limit(&self) -> u32 {
        self.max_request_bytes.unwrap_or_else(|| {
            DEFAULT_MAX_REQUEST_BYTES
                .max(self.max_record_bytes.saturating_add(REQUEST_OVERHEAD_BYTES))
        })
    }

    /// The TLS files when TLS is on; an error when only some are set.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })),
            (None, None, None) => Ok(None),
            (cert, key, ca) => {
                let missing: Vec<&str> = [
                    (cert.is_none(), "--tls-cert"),
                    (key.is_none(), "--tls-key"),
                    (ca.is_none(), "--tls-ca"),
                ]
                .into_iter()
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
                Err(ConfigError::TlsIncomplete(missing.join(", ")))
            }
        }
    }

    /// The RocksDB directory: the configured one, or `./data/node-<id>`.
    pub fn data_dir(&self) -> PathBuf {
        match &self.data_dir {
            Some(dir) => dir.clone(),
            None => Path::new(DEFAULT_DATA_ROOT).join(format!("node-{}", self.id)),
        }
    }

    /// The metrics address: the configured one, or the `listen` host with the port plus
    /// [`METRICS_PORT_OFFSET`] (port 0 stays 0: any free port).
    pub fn metrics_addr(&self) -> Result<SocketAddr, ConfigError> {
        if let Some(addr) = self.metrics {
            return Ok(addr);
        }
        let port = self.listen.port();
        let metrics_port = match port {
            0 => 0,
            _ => port
                .checked_add(METRICS_PORT_OFFSET)
                .ok_or(ConfigError::NoDefaultMetricsPort(port))?,
        };
        Ok(SocketAddr::new(self.listen.ip(), metrics_port))
    }

    /// The cluster's members: `peers`, or just this node at its listen address.
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        if self.peers.is_empty() {
            BTreeMap::from([(self.id, self.listen.to_string())])
        } else {
            self.peers.clone()
        }
    }
}

/// The TOML file's shape. Peers are a table because TOML keys are strings (`1 = "..."`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<NodeId>,
    listen: Option<SocketAddr>,
    peers: Option<BTreeMap<String, String>>,
    data_dir: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    max_record_bytes: Option<u32>,
    max_inflight_bytes: Option<u64>,
    max_inflight_bytes_per_partition: Option<u64>,
    max_request_bytes: Option<u32>,
    max_connections: Option<u32>,
    max_connections_per_ip: Option<u32>,
    auth_file: Option<PathBuf>,
    tls: Option<FileTls>,
}

/// The `[tls]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

impl ConfigPatch {
    /// Reads a TOML config file. Unknown keys are errors: a typo must not be ignored.
    pub fn from_file(path: &Path) -> Result<ConfigPatch, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        ConfigPatch::from_toml(&text).map_err(|err| match err {
            ConfigError::ParseFile { source, .. } => ConfigError::ParseFile {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses TOML text (see the module docs for the format).
    pub fn from_toml(text: &str) -> Result<ConfigPatch, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::ParseFile {
            path: PathBuf::from("<inline>"),
            source: Box::new(source),
        })?;
        let peers = file.peers.map(peers::from_table).transpose()?;
        let tls = file.tls.unwrap_or_default();
        Ok(ConfigPatch {
            id: file.id,
            listen: file.listen,
            peers,
            data_dir: file.data_dir,
            metrics: file.metrics,
            max_record_bytes: file.max_record_bytes,
            max_inflight_bytes: file.max_inflight_bytes,
            max_inflight_bytes_per_partition: file.max_inflight_bytes_per_partition,
            max_request_bytes: file.max_request_bytes,
            max_connections: file.max_connections,
            max_connections_per_ip: file.max_connections_per_ip,
            tls_cert: tls.cert,
            tls_key: tls.key,
            tls_ca: tls.ca,
            auth_file: file.auth_file,
        })
    }
}

#[cfg(test)]
mod tests;
