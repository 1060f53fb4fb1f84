//! The `PAXLOG_*` environment variables, one per setting:
//!
//! | variable                  | setting            |
//! |---------------------------|--------------------|
//! | `PAXLOG_ID`               | `id`               |
//! | `PAXLOG_LISTEN`           | `listen`           |
//! | `PAXLOG_PEERS`            | `peers` (as `--peers`) |
//! | `PAXLOG_DATA_DIR`         | `data_dir`         |
//! | `PAXLOG_METRICS`          | `metrics`          |
//! | `PAXLOG_MAX_RECORD_BYTES` | `max_record_bytes` |
//! | `PAXLOG_MAX_INFLIGHT_BYTES` | `max_inflight_bytes` |
//! | `PAXLOG_MAX_INFLIGHT_BYTES_PER_PARTITION` | `max_inflight_bytes_per_partition` |
//! | `PAXLOG_MAX_REQUEST_BYTES` | `max_request_bytes` |
//! | `PAXLOG_MAX_CONNECTIONS`  | `max_connections`  |
//! | `PAXLOG_MAX_CONNECTIONS_PER_IP` | `max_connections_per_ip` |
//! | `PAXLOG_TLS_CERT`         | `tls_cert`         |
//! | `PAXLOG_TLS_KEY`          | `tls_key`          |
//! | `PAXLOG_TLS_CA`           | `tls_ca`           |
//! | `PAXLOG_AUTH_FILE`        | `auth_file`        |
//!
//! Other `PAXLOG_*` names are ignored: the CLI and tools share the prefix.

use super::{ConfigError, ConfigPatch, parse_peers};
use std::path::PathBuf;
use std::str::FromStr;

/// Prefix of every environment variable the broker reads.
pub const ENV_PREFIX: &str = "PAXLOG_";

impl ConfigPatch {
    /// Picks the broker's variables out of `vars` (pass `std::env::vars()`); an empty value
    /// counts as unset, so `PAXLOG_ID= paxlog-broker ...` clears nothing by accident.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ConfigPatch, ConfigError> {
        let mut patch = ConfigPatch::default();
        for (var, value) in vars {
            let Some(name) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match name {
                "ID" => patch.id = Some(parse(&var, &value)?),
                "LISTEN" => patch.listen = Some(parse(&var, &value)?),
                "PEERS" => {
                    patch.peers =
                        Some(parse_peers(&value).map_err(|err| invalid(&var, &value, err))?)
                }
                "DATA_DIR" => patch.data_dir = Some(PathBuf::from(value)),
                "METRICS" => patch.metrics = Some(parse(&var, &value)?),
                "MAX_RECORD_BYTES" => patch.max_record_bytes = Some(parse(&var, &value)?),
                "MAX_INFLIGHT_BYTES" => patch.max_inflight_bytes = Some(parse(&var, &value)?),
                "MAX_INFLIGHT_BYTES_PER_PARTITION" => {
                    patch.max_inflight_bytes_per_partition = Some(parse(&var, &value)?)
                }
                "MAX_REQUEST_BYTES" => patch.max_request_bytes = Some(parse(&var, &value)?),
                "MAX_CONNECTIONS" => patch.max_connections = Some(parse(&var, &value)?),
                "MAX_CONNECTIONS_PER_IP" => {
                    patch.max_connections_per_ip = Some(parse(&var, &value)?)
                }
                "TLS_CERT" => patch.tls_cert = Some(PathBuf::from(value)),
                "TLS_KEY" => patch.tls_key = Some(PathBuf::from(value)),
                "TLS_CA" => patch.tls_ca = Some(PathBuf::from(value)),
                "AUTH_FILE" => patch.auth_file = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        Ok(patch)
    }
}

fn parse<T>(var: &str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|err| invalid(var, value, err))
}

fn invalid(var: &str, value: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::InvalidEnv {
        var: var.to_owned(),
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}
