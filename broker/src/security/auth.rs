//! Token authentication and per-topic permissions of the client API.
//!
//! ```text
//!   request ─▶ Authenticator (interceptor on every client service)
//!                ├─ no --auth-file          ─▶ Principal::Open (every call allowed)
//!                ├─ no/odd `authorization`  ─▶ UNAUTHENTICATED
//!                ├─ unknown token           ─▶ UNAUTHENTICATED
//!                └─ known token ─▶ Principal::Token(grant) in the request's extensions
//!   handler ─▶ principal.require(Action::Produce, topic) ─▶ PERMISSION_DENIED or go on
//! ```
//!
//! The auth file (`--auth-file`, TOML) lists tokens by name, each with the SHA-256 of its
//! secret (or, for local use, the secret itself) and what it may do:
//!
//! ```toml
//! [[tokens]]
//! name = "orders-app"
//! sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
//! allow = ["produce:orders", "consume:orders", "consume:audit-*"]
//!
//! [[tokens]]
//! name = "ops"
//! token = "local-only-secret"
//! allow = ["*"]
//! ```
//!
//! A permission is `ACTION:TOPIC` where ACTION is `produce`, `consume` or `admin` and TOPIC
//! is a name or a prefix ending in `*`; `*` alone allows everything. `admin` covers creating
//! and deleting topics, managing triggers and resetting group offsets; listing and
//! describing topics, groups and triggers needs only a valid token.

use crate::error::Error;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::Request;
use tonic::service::Interceptor;

/// The metadata key a client sends its token in: `authorization: Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// What a call does to a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish records (and start an idempotent producer).
    Produce,
    /// Read records and offsets, join groups and commit their offsets.
    Consume,
    /// Create and delete topics, manage triggers, reset a group's offsets.
    Admin,
}

impl Action {
    const ALL: [Action; 3] = [Action::Produce, Action::Consume, Action::Admin];

    fn name(self) -> &'static str {
        match self {
            Action::Produce => "produce",
            Action::Consume => "consume",
            Action::Admin => "admin",
        }
    }

    /// "produce to", "consume from", "administer": for error messages.
    fn phrase(self) -> &'static str {
        match self {
            Action::Produce => "produce to",
            Action::Consume => "consume from",
            Action::Admin => "administer",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which topics a permission covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// Exactly this topic.
    Exact(String),
    /// Every topic starting with this (`orders-*`); empty for `*`.
    Prefix(String),
}

impl Pattern {
    fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == topic,
            Pattern::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

/// One allowed action on the topics a pattern covers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Permission {
    action: Action,
    topics: Pattern,
}

impl Permission {
    /// Parses `ACTION:TOPIC` or `*`.
    fn parse(text: &str) -> Result<Vec<Permission>, String> {
        if text == "*" {
            return Ok(Action::ALL
                .into_iter()
                .map(|action| Permission {
                    action,
                    topics: Pattern::Prefix(String::new()),
                })
                .collect());
        }
        let Some((action, topics)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} is not a permission: write ACTION:TOPIC (e.g. \"produce:orders\", \"consume:logs-*\") or \"*\""
            ));
        };
        let action = match action {
            "produce" => Action::Produce,
            "consume" => Action::Consume,
            "admin" => Action::Admin,
            other => {
                return Err(format!(
                    "unknown action {other:?} in {text:?}: use produce, consume or admin"
                ));
            }
        };
        let topics = match topics.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Pattern::Prefix(prefix.to_owned()),
            None if !topics.is_empty() && !topics.contains('*') => {
                Pattern::Exact(topics.to_owned())
            }
            _ => {
                return Err(format!(
                    "bad topic pattern in {text:?}: give a topic name, or a prefix ending in a single trailing *"
                ));
            }
        };
        Ok(vec![Permission { action, topics }])
    }
}

/// What one token may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The token's name from the auth file (never the secret): for logs and messages.
    pub name: String,
    permissions: Vec<Permission>,
}

impl Grant {
    fn allows(&self, action: Action, topic: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.action == action && p.topics.matches(topic))
    }
}

/// Who is calling, as far as the broker could tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The broker has no auth file: every call is allowed.
    Open,
    /// A caller with a known token.
    Token(Arc<Grant>),
}

impl Principal {
    /// The caller of `request`, as the [`Authenticator`] recorded it. A request that did
    /// not pass through it (a service wired without the interceptor) gets no rights.
    pub fn of<T>(request: &Request<T>) -> Result<Principal, Error> {
        request.extensions().get::<Principal>().cloned().ok_or_else(|| {
            Error::Unauthenticated(
                "the broker could not tell who sent this request (no authentication ran); this is a broker defect, please report it".to_owned(),
            )
        })
    }

    /// Allows `action` on `topic`, or says which permission is missing.
    pub fn require(&self, action: Action, topic: &str) -> Result<(), Error> {
        match self {
            Principal::Open => Ok(()),
            Principal::Token(grant) if grant.allows(action, topic) => Ok(()),
            Principal::Token(grant) => Err(Error::PermissionDenied(format!(
                "token {:?} may not {} topic {topic:?}: add \"{action}:{topic}\" (or a prefix ending in *) to its allow list in the broker's auth file",
                grant.name,
                action.phrase()
            ))),
        }
    }

    /// Allows calls that hold `action` on at least one topic (starting a producer, group
    /// heartbeats: calls that name no topic).
    pub fn require_any(&self, action: Action) -> Result<(), Error> {
        match self {
            Principal::Open => Ok(()),
            Principal::Token(grant) if grant.permissions.iter().any(|p| p.action == action) => {
                Ok(())
            }
            Principal::Token(grant) => Err(Error::PermissionDenied(format!(
                "token {:?} has no {action} permission on any topic: add \"{action}:TOPIC\" to its allow list in the broker's auth file",
                grant.name
            ))),
        }
    }
}

/// Why an auth file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// Unreadable.
    #[error("cannot read auth file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of the documented shape.
    #[error("invalid auth file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the entry's name where there is one.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFileToml {
    #[serde(default)]
    tokens: Vec<TokenToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenToml {
    name: String,
    sha256: Option<String>,
    token: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
}

/// The tokens a broker accepts, by the SHA-256 of their secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Arc<Grant>>,
}

impl Tokens {
    /// Reads and checks an auth file.
    pub fn load(path: &Path) -> Result<Tokens, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Tokens::parse(&text).map_err(|reason| AuthFileError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses auth file text (see the module docs).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let file: AuthFileToml = toml::from_str(text).map_err(|err| err.to_string())?;
        if file.tokens.is_empty() {
            return Err(
                "it lists no tokens, so no client could connect: add a [[tokens]] entry with name, sha256 and allow".to_owned(),
            );
        }
        let mut by_hash = HashMap::new();
        for entry in file.tokens {
            let name = entry.name;
            let hash = match (entry.sha256, entry.token) {
                (Some(hex), None) => parse_sha256(&hex).ok_or_else(|| {
                    format!(
                        "token {name:?}: sha256 must be 64 hex digits (the output of `sha256sum`)"
                    )
                })?,
                (None, Some(secret)) if !secret.is_empty() => sha256(&secret),
                (None, Some(_)) => return Err(format!("token {name:?}: the token is empty")),
                _ => {
                    return Err(format!(
                        "token {name:?}: give exactly one of sha256 (hex SHA-256 of the token) or token (the secret itself)"
                    ));
                }
            };
            let mut permissions = Vec::new();
            for text in &entry.allow {
                permissions.extend(
                    Permission::parse(text).map_err(|err| format!("token {name:?}: {err}"))?,
                );
            }
            let grant = Arc::new(Grant {
                name: name.clone(),
                permissions,
            });
            if by_hash.insert(hash, grant).is_some() {
                return Err(format!(
                    "token {name:?} has the same secret as another entry: every token needs its own secret"
                ));
            }
        }
        Ok(Tokens { by_hash })
    }

    fn find(&self, secret: &str) -> Option<&Arc<Grant>> {
        self.by_hash.get(&sha256(secret))
    }
}

/// SHA-256 of a token, as stored in auth files.
pub fn sha256(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The interceptor of the client services: finds the caller's token and records the
/// [`Principal`] in the request for the handlers' permission checks.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    tokens: Option<Arc<Tokens>>,
}

impl Authenticator {
    /// Allows every call (no auth file).
    pub fn open() -> Authenticator {
        Authenticator { tokens: None }
    }

    /// Requires one of `tokens` on every call.
    pub fn with_tokens(tokens: Tokens) -> Authenticator {
        Authenticator {
            tokens: Some(Arc::new(tokens)),
        }
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Error> {
        let Some(tokens) = &self.tokens else {
            return Ok(Principal::Open);
        };
        let Some(value) = request.metadata().get(AUTHORIZATION) else {
            return Err(Error::Unauthenticated(
                "this broker requires a token: pass --token (or set PAXLOG_TOKEN) with the CLI, or Security::with_token in the SDK".to_owned(),
            ));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "the authorization header must be \"Bearer <token>\"".to_owned(),
                )
            })?;
        match tokens.find(secret) {
            Some(grant) => Ok(Principal::Token(grant.clone())),
            None => Err(Error::Unauthenticated(
                "the token is not known to this broker: check it against the broker's auth file (--auth-file)".to_owned(),
            )),
        }
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        let principal = self.authenticate(&request).inspect_err(|err| {
            let peer = request.remote_addr();
            tracing::debug!(?peer, error = %err, "refused a call");
        })?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[tokens]]
        name = "orders-app"
        token = "s3cret"
        allow = ["produce:orders", "consume:audit-*"]

        [[tokens]]
        name = "ops"
        sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        allow = ["*"]
    "#;

    fn call(tokens: &Tokens, header: Option<&str>) -> Result<Principal, Error> {
        let mut request = Request::new(());
        if let Some(value) = header {
            request
                .metadata_mut()
                .insert(AUTHORIZATION, value.parse().expect("ascii"));
        }
        Authenticator::with_tokens(tokens.clone()).authenticate(&request)
    }

    #[test]
    fn tokens_map_to_their_grants_and_permissions_follow_patterns() {
        let tokens = Tokens::parse(FILE).expect("valid file");
        let app = call(&tokens, Some("Bearer s3cret")).expect("known token");
        app.require(Action::Produce, "orders").expect("exact topic");
        app.require(Action::Consume, "audit-eu").expect("prefix");
        let denied = app
            .require(Action::Consume, "orders")
            .expect_err("no consume on orders");
        assert!(
            denied.to_string().contains("\"consume:orders\""),
            "{denied}"
        );
        app.require(Action::Produce, "orders-2")
            .expect_err("exact means exact");
        app.require(Action::Admin, "orders").expect_err("no admin");
        app.require_any(Action::Produce)
            .expect("has a produce permission");
        app.require_any(Action::Admin)
            .expect_err("no admin anywhere");
        // "secret" hashes to the ops entry's sha256: the hashed form works the same.
        let ops = call(&tokens, Some("Bearer secret")).expect("hashed token");
        for action in Action::ALL {
            ops.require(action, "anything").expect("* allows all");
        }
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
        let tokens = Tokens::parse(FILE).expect("valid file");
        for (header, expect) in [
            (None, "requires a token"),
            (Some("s3cret"), "Bearer <token>"),
            (Some("Bearer "), "Bearer <token>"),
            (Some("Bearer wrong"), "not known"),
        ] {
            let err = call(&tokens, header).expect_err("refused");
            assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");
            assert!(err.to_string().contains(expect), "{header:?}: {err}");
            let status = tonic::Status::from(err);
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
        let open = Authenticator::open()
            .authenticate(&Request::new(()))
            .expect("open broker");
        open.require(Action::Admin, "x").expect("open allows all");
    }

    #[test]
    fn bad_auth_files_say_what_to_fix() {
        for (text, expect) in [
            ("", "lists no tokens"),
            (
                "[[tokens]]\nname = \"a\"\nallow = []",
                "exactly one of sha256",
            ),
            (
                "[[tokens]]\nname = \"a\"\nsha256 = \"abc\"",
                "64 hex digits",
            ),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"x\"\nallow = [\"write:t\"]",
                "unknown action",
            ),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"x\"\nallow = [\"produce\"]",
                "ACTION:TOPIC",
            ),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"x\"\nallow = [\"produce:a*b*\"]",
                "trailing *",
            ),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"x\"\n[[tokens]]\nname = \"b\"\ntoken = \"x\"",
                "same secret",
            ),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"x\"\nrole = \"admin\"",
                "unknown field",
            ),
        ] {
            let err = Tokens::parse(text).expect_err(text);
            assert!(err.contains(expect), "{text}: {err}");
        }
    }
}
