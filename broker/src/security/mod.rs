//! Who may talk to a node: TLS on its gRPC port, mutual TLS between brokers, and token
//! authentication with per-topic permissions on the client API.
//!
//! ```text
//!   gRPC port (TLS when --tls-cert/--tls-key/--tls-ca are set)
//!     ├─ health, reflection          open (probes, tooling)
//!     ├─ paxlog.v1.Peer              a client certificate signed by the cluster CA
//!     └─ paxlog.v1 client services   Authenticator (token ─▶ Principal), then each
//!                                    handler checks Principal::require(action, topic)
//! ```
//!
//! Without an auth file every client call is allowed (a development cluster); an auth
//! file requires TLS (config validation), so tokens never cross the network in clear and
//! the peer API cannot be reached around them.

pub mod auth;
pub mod tls;

pub use auth::{Action, Authenticator, Principal, Tokens};
pub use tls::{TlsError, TlsMaterial};

use crate::error::Error;
use tonic::Request;

/// Refuses a peer stream that did not come with a client certificate the CA verified,
/// when the node runs TLS (`tls`); without TLS the peer API is as open as the port.
pub fn require_peer_certificate<T>(request: &Request<T>, tls: bool) -> Result<(), Error> {
    if !tls || request.peer_certs().is_some_and(|certs| !certs.is_empty()) {
        return Ok(());
    }
    Err(Error::Unauthenticated(
        "peer streams need mutual TLS: the dialing broker must present a certificate signed by the cluster CA (its --tls-cert and --tls-key)".to_owned(),
    ))
}
