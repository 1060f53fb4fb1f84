//! TLS for the node's one gRPC port, and mutual TLS between brokers.
//!
//! ```text
//!   --tls-cert/--tls-key: this node's certificate chain and key (PEM)
//!   --tls-ca:             the cluster's CA (PEM): verifies peers' client certificates,
//!                         and peers' server certificates when this node dials them
//!
//!   client ──TLS──▶ node          server certificate checked by the client; client
//!                                 certificates optional (clients use tokens)
//!   node 1 ──mTLS─▶ node 2        node 1 presents its certificate; node 2's Peer service
//!                                 refuses a stream without a verified one (UNAUTHENTICATED)
//! ```
//!
//! Every certificate the CA signs can open peer streams, so the cluster CA should sign
//! brokers' certificates only. Certificates must name the addresses they are reached at
//! (DNS names or IP addresses in subjectAltName), as listed in `--peers` and used by
//! clients.

use crate::config::TlsFiles;
use std::fmt;
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read TLS {what} file {}: {source}", path.display())]
    Read {
        /// "certificate", "key" or "CA certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("TLS {what} file {} {reason}", path.display())]
    NotPem {
        /// "certificate", "key" or "CA certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it lacks.
        reason: &'static str,
    },
    /// rustls refused the certificate or key.
    #[error(
        "the TLS certificate or key was refused: {0}; check that --tls-key is the private key of --tls-cert"
    )]
    Refused(String),
}

/// This node's TLS material, read once at start.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Vec<u8>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads the three PEM files and checks that each holds what it should.
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        Ok(TlsMaterial {
            cert_pem: read(&files.cert, "certificate", false)?,
            key_pem: read(&files.key, "key", true)?,
            ca_pem: read(&files.ca, "CA certificate", false)?,
        })
    }

    /// From PEM text already in memory (tests, generated clusters).
    pub fn from_pem(cert_pem: Vec<u8>, key_pem: Vec<u8>, ca_pem: Vec<u8>) -> TlsMaterial {
        TlsMaterial {
            cert_pem,
            key_pem,
            ca_pem,
        }
    }

    /// The gRPC server's side: this node's identity; client certificates signed by the
    /// CA are verified when presented (peers), optional for clients.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// The dialing side of a peer stream: checks the peer's certificate against the CA
    /// and presents this node's own.
    pub fn peer_client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(self.identity())
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

fn read(path: &Path, what: &'static str, key: bool) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("-----BEGIN ")?
                .strip_suffix("-----")
        })
        .any(|label| match key {
            true => label.ends_with("PRIVATE KEY"),
            false => label == "CERTIFICATE",
        });
    if !found {
        return Err(TlsError::NotPem {
            what,
            path: path.to_owned(),
            reason: match key {
                true => {
                    "holds no PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)"
                }
                false => "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            },
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_pem_blocks_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("node.pem");
        let key = dir.path().join("node.key");
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        std::fs::write(
            &key,
            "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
        )
        .expect("write");
        std::fs::write(&ca, "not a certificate").expect("write");
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
        };
        let err = TlsMaterial::load(&files).expect_err("CA is not PEM");
        assert!(
            err.to_string().contains("ca.pem holds no PEM certificate"),
            "{err}"
        );
        std::fs::write(&ca, std::fs::read(&cert).expect("read")).expect("write");
        TlsMaterial::load(&files).expect("all three are PEM");
        let missing = TlsFiles {
            key: dir.path().join("absent.key"),
            ..files
        };
        let err = TlsMaterial::load(&missing).expect_err("missing key");
        assert!(
            err.to_string().contains("cannot read TLS key file"),
            "{err}"
        );
        assert_eq!(
            format!("{:?}", TlsMaterial::from_pem(vec![1], vec![2], vec![3])),
            "TlsMaterial { .. }"
        );
    }
}
