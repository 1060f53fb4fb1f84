//! How the SDK proves who it is and checks whom it talks to: TLS against the cluster's CA
//! and a bearer token on every call; and [`LocalCa`], which makes the certificates of a
//! local or test cluster (`paxlog cluster up --tls`).
//!
//! ```text
//!   Security { tls: Some(ca), token: Some(t) }
//!     Connection::channel(addr) ─▶ https://addr, server certificate checked against ca
//!                               └▶ every request: `authorization: Bearer t`
//! ```

use crate::error::Error;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// TLS and token settings of a [`Connection`](crate::connection::Connection). The default
/// is plain text without a token (a development cluster).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// PEM of the CA that signed the brokers' certificates; `Some` means TLS.
    pub ca_pem: Option<Vec<u8>>,
    /// This client's certificate and key (PEM), for brokers that ask for one. Tokens are
    /// paxlog's way to authenticate clients; this is only for tools that act as a broker.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The token sent on every call (`authorization: Bearer <token>`).
    pub token: Option<String>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token or a key.
        f.debug_struct("Security")
            .field("tls", &self.ca_pem.is_some())
            .field("identity", &self.identity.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Security {
    /// Plain text, no token.
    pub fn none() -> Security {
        Security::default()
    }

    /// Reads the CA certificate from a PEM file and turns TLS on.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Security, Error> {
        let pem = std::fs::read(path).map_err(|source| Error::Io {
            action: "read the CA certificate",
            path: path.to_owned(),
            source,
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::InvalidArgument(format!(
                "{} holds no PEM certificate: pass the cluster CA's certificate (ca.pem)",
                path.display()
            )));
        }
        self.ca_pem = Some(pem);
        Ok(self)
    }

    /// Sends `token` on every call.
    pub fn with_token(mut self, token: impl Into<String>) -> Security {
        self.token = Some(token.into());
        self
    }

    /// Whether channels use TLS.
    pub fn tls(&self) -> bool {
        self.ca_pem.is_some()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls() { "https" } else { "http" }
    }

    /// The endpoint of the broker at `address` (`host:port`): `https` with the CA when
    /// TLS is on, else `http`.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, Error> {
        let endpoint =
            Endpoint::from_shared(format!("{}://{address}", self.scheme())).map_err(|err| {
                Error::InvalidArgument(format!(
                    "{address:?} is not a broker address (host:port): {err}"
                ))
            })?;
        match self.client_tls() {
            Some(tls) => endpoint.tls_config(tls).map_err(|err| {
                Error::InvalidArgument(format!("cannot use the TLS settings: {err}"))
            }),
            None => Ok(endpoint),
        }
    }

    /// The channel's TLS settings, if TLS is on.
    pub fn client_tls(&self) -> Option<ClientTlsConfig> {
        let ca = self.ca_pem.as_ref()?;
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        Some(match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        })
    }

    /// The interceptor that adds the token to each request.
    pub fn interceptor(&self) -> Result<AddToken, Error> {
        let value = match &self.token {
            None => None,
            Some(token) => {
                let value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| {
                        Error::InvalidArgument(
                            "the token must be printable ASCII without line breaks".to_owned(),
                        )
                    })?;
                Some(Arc::new(value))
            }
        };
        Ok(AddToken { value })
    }
}

/// Adds `authorization: Bearer <token>` to every request of a channel (nothing without a
/// token).
#[derive(Clone)]
pub struct AddToken {
    value: Option<Arc<AsciiMetadataValue>>,
}

impl fmt::Debug for AddToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddToken")
            .field("token", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Interceptor for AddToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.as_ref().clone());
        }
        Ok(request)
    }
}

/// A certificate and its private key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// A certificate authority made on the spot, for a local or test cluster.
pub struct LocalCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

fn rcgen_error(err: rcgen::Error) -> Error {
    Error::InvalidArgument(format!("cannot make a certificate: {err}"))
}

impl LocalCa {
    /// A new CA with a fresh key, named `name`.
    pub fn new(name: &str) -> Result<LocalCa, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(rcgen_error)?;
        Ok(LocalCa { issuer })
    }

    /// The CA's certificate (what clients and brokers trust).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `common_name`, valid for the DNS names and IP addresses in
    /// `names`, usable by servers and as a client certificate (brokers are both).
    pub fn issue(&self, common_name: &str, names: &[&str]) -> Result<IssuedCert, Error> {
        self.issue_with(common_name, names, false)
    }

    /// Like [`LocalCa::issue`], but valid only in 2020: for tests that expired
    /// certificates are refused.
    pub fn issue_expired(&self, common_name: &str, names: &[&str]) -> Result<IssuedCert, Error> {
        self.issue_with(common_name, names, true)
    }

    fn issue_with(
        &self,
        common_name: &str,
        names: &[&str],
        expired: bool,
    ) -> Result<IssuedCert, Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(rcgen_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The files of a local cluster's TLS and token auth (`paxlog cluster up --tls`).
#[derive(Clone, PartialEq, Eq)]
pub struct LocalTls {
    /// The CA's certificate: what clients pass as `--tls-ca`.
    pub ca: PathBuf,
    /// The brokers' certificate (one for all: they all listen on loopback).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The brokers' auth file: one token, `admin`, allowed everything.
    pub auth_file: PathBuf,
    /// The admin token, in a file of its own (mode 0600).
    pub token_file: PathBuf,
    /// The admin token.
    pub token: String,
}

impl fmt::Debug for LocalTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTls")
            .field("ca", &self.ca)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

impl LocalTls {
    /// The files in `dir`: kept from an earlier run when all are there (so clients keep
    /// their CA and token), else made anew: a CA, a broker certificate for localhost,
    /// 127.0.0.1 and ::1, and a random admin token.
    pub fn prepare(dir: &Path) -> Result<LocalTls, Error> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create TLS directory", dir))?;
        let dir = dir
            .canonicalize()
            .map_err(io("resolve TLS directory", dir))?;
        let mut files = LocalTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("broker.pem"),
            key: dir.join("broker.key"),
            auth_file: dir.join("auth.toml"),
            token_file: dir.join("admin.token"),
            token: String::new(),
        };
        let all = [
            &files.ca,
            &files.cert,
            &files.key,
            &files.auth_file,
            &files.token_file,
        ];
        if all.iter().all(|path| path.is_file()) {
            let token = std::fs::read_to_string(&files.token_file)
                .map_err(io("read the admin token", &files.token_file))?;
            files.token = token.trim().to_owned();
            return Ok(files);
        }
        let ca = LocalCa::new("paxlog local cluster CA")?;
        let broker = ca.issue("paxlog-broker", &["localhost", "127.0.0.1", "::1"])?;
        files.token = random_token()?;
        let auth = format!(
            "# Made by `paxlog cluster up --tls`: one token allowed everything.\n\
             [[tokens]]\nname = \"admin\"\nsha256 = \"{}\"\nallow = [\"*\"]\n",
            sha256_hex(&files.token)
        );
        write_file(&files.ca, ca.cert_pem().as_bytes(), 0o644)?;
        write_file(&files.cert, broker.cert_pem.as_bytes(), 0o644)?;
        write_file(&files.key, broker.key_pem.as_bytes(), 0o600)?;
        write_file(&files.auth_file, auth.as_bytes(), 0o600)?;
        write_file(
            &files.token_file,
            format!("{}\n", files.token).as_bytes(),
            0o600,
        )?;
        Ok(files)
    }
}

/// 32 random bytes from the OS, in hex.
fn random_token() -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Error::InvalidArgument("the OS gave no random bytes for a token".to_owned())
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Lower-case hex SHA-256 of a token: the `sha256` of a broker auth file entry.
pub fn sha256_hex(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` (replacing it) with permission `mode`, through a temporary
/// file renamed into place: a reader never sees half a file.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| Error::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("partial");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tls_files_are_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = LocalTls::prepare(&dir.path().join("tls")).expect("made");
        assert_eq!(first.token.len(), 64);
        let auth = std::fs::read_to_string(&first.auth_file).expect("auth file");
        assert!(auth.contains(&sha256_hex(&first.token)), "{auth}");
        assert!(
            !auth.contains(&first.token),
            "the auth file keeps the hash only"
        );
        let again = LocalTls::prepare(&dir.path().join("tls")).expect("kept");
        assert_eq!(again, first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_file(&first.token_file).expect("remove");
        let fresh = LocalTls::prepare(&dir.path().join("tls")).expect("made anew");
        assert_ne!(fresh.token, first.token);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let security = Security::none().with_token("top-secret");
        let shown = format!("{security:?}");
        assert!(!shown.contains("top-secret"), "{shown}");
        let interceptor = security.interceptor().expect("ascii token");
        assert!(!format!("{interceptor:?}").contains("top-secret"));
        let ca = LocalCa::new("test CA").expect("ca");
        let cert = ca
            .issue("node-1", &["localhost", "127.0.0.1"])
            .expect("cert");
        assert!(!format!("{cert:?}").contains("PRIVATE"));
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn the_token_goes_into_the_authorization_header_and_must_be_ascii() {
        let mut add = Security::none()
            .with_token("abc")
            .interceptor()
            .expect("ascii");
        let request = add.call(tonic::Request::new(())).expect("adds");
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .map(|v| v.to_str().ok()),
            Some(Some("Bearer abc"))
        );
        let mut none = Security::none().interceptor().expect("no token");
        let request = none.call(tonic::Request::new(())).expect("passes");
        assert!(request.metadata().get("authorization").is_none());
        let err = Security::none()
            .with_token("line\nbreak")
            .interceptor()
            .expect_err("not a header value");
        assert!(err.to_string().contains("printable ASCII"), "{err}");
    }
}
