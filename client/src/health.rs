//! Asking a broker whether it serves, with `grpc.health.v1`.

use crate::security::Security;
use serde::Serialize;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// What a broker said about its health, or why it said nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "error", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// The broker serves requests.
    Serving,
    /// The broker runs but does not serve (starting up or shutting down).
    NotServing,
    /// The broker answered without a known status.
    Unknown,
    /// The broker does not know the service asked about.
    ServiceUnknown,
    /// No answer: connection refused, timeout, not a gRPC server. Holds the reason.
    Unreachable(String),
}

impl Health {
    /// The status as shown to people and in JSON: `SERVING`, `NOT_SERVING`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Health::Serving => "SERVING",
            Health::NotServing => "NOT_SERVING",
            Health::Unknown => "UNKNOWN",
            Health::ServiceUnknown => "SERVICE_UNKNOWN",
            Health::Unreachable(_) => "UNREACHABLE",
        }
    }

    /// Whether the broker serves.
    pub fn is_serving(&self) -> bool {
        matches!(self, Health::Serving)
    }
}

/// Checks the whole server's health (service `""`) at `address` (`host:port`), giving up
/// after `timeout` for connecting and again for the call.
pub async fn check(address: &str, timeout: Duration) -> Health {
    check_secured(address, timeout, &Security::none()).await
}

/// [`check`] over TLS when `security` says so (health needs no token).
pub async fn check_secured(address: &str, timeout: Duration, security: &Security) -> Health {
    let endpoint = match security.endpoint(address) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(err) => return Health::Unreachable(err.to_string()),
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(err) => return Health::Unreachable(chain(&err)),
    };
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => match response.into_inner().status() {
            ServingStatus::Serving => Health::Serving,
            ServingStatus::NotServing => Health::NotServing,
            ServingStatus::ServiceUnknown => Health::ServiceUnknown,
            ServingStatus::Unknown => Health::Unknown,
        },
        Err(status) => Health::Unreachable(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// An error with its causes, `outer: inner: root`; tonic's outer messages alone
/// ("transport error") do not say what happened.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
