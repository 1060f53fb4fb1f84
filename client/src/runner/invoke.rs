//! Calling a trigger's function with a batch, and reading its answer.
//!
//! The batch, as the HTTP body or the command's stdin:
//!
//! ```json
//! {"trigger": "wc-map", "runner": "runner-host-42", "records": [
//!   {"id": "lines/0/42", "topic": "lines", "partition": 0, "offset": 42,
//!    "key": "k" | null, "value": "text", "headers": [{"key": "h", "value": "v"}] (if any),
//!    "timestamp_ms": 1700000000000, "attempt": 1}
//! ]}
//! ```
//!
//! Bytes follow the CLI's JSON rule: text (UTF-8, lossy), plus `value_base64` / `key_base64`
//! with the exact bytes when they are not UTF-8. `id` is an idempotency key: the same record
//! always has the same id, however often it is delivered.
//!
//! The answer (HTTP body, or the command's stdout) may be empty, or JSON with `failed`: the
//! ids of records that failed (AWS's `batchItemFailures: [{"itemIdentifier": id}]` is read
//! too), and `records`: records to publish to the trigger's output topic
//! (`[{"key": "k", "value": "v", "headers": {"h": "v"}}]`).

use super::work::{Outcome, Pending, record_id};
use crate::cli::consume::RecordJson;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Exit code a command returns to say "throttled" (sysexits' EX_TEMPFAIL).
pub const EXIT_THROTTLED: i32 = 75;
/// Most answer bytes read from a function.
const MAX_ANSWER: usize = 16 << 20;

/// What a function is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Function {
    /// POST to this URL.
    Http(String),
    /// Run through `/bin/sh -c`.
    Command(String),
}

/// A record returned by a function for the output topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct OutputRecord {
    /// Key (none when absent).
    #[serde(default)]
    pub key: Option<String>,
    /// Value.
    #[serde(default)]
    pub value: String,
    /// Headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// An invocation's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// How it went.
    pub outcome: Outcome,
    /// Records for the output topic (only on success).
    pub output: Vec<OutputRecord>,
}

#[derive(Serialize)]
struct WireBatch<'a> {
    trigger: &'a str,
    runner: &'a str,
    records: Vec<WireRecord<'a>>,
}

#[derive(Serialize)]
struct WireRecord<'a> {
    id: String,
    topic: &'a str,
    #[serde(flatten)]
    record: RecordJson,
    attempt: u32,
}

#[derive(Default, Deserialize)]
struct WireAnswer {
    #[serde(default)]
    failed: Vec<String>,
    #[serde(default, rename = "batchItemFailures")]
    batch_item_failures: Vec<ItemFailure>,
    #[serde(default)]
    records: Vec<OutputRecord>,
}

#[derive(Deserialize)]
struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    item_identifier: String,
}

/// The batch as JSON.
pub fn encode_batch(trigger: &str, runner: &str, records: &[Pending]) -> Vec<u8> {
    let records = records
        .iter()
        .map(|p| {
            let r = &p.record;
            WireRecord {
                id: record_id(r),
                topic: &r.topic,
                record: RecordJson::new(
                    r.partition,
                    r.offset,
                    r.timestamp_ms,
                    &r.key,
                    &r.value,
                    r.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())),
                ),
                attempt: p.attempts + 1,
            }
        })
        .collect();
    // Strings and numbers only: cannot fail.
    serde_json::to_vec(&WireBatch {
        trigger,
        runner,
        records,
    })
    .unwrap_or_default()
}

/// Reads a successful call's answer; an empty or non-JSON answer means "all done".
pub fn decode_answer(body: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(body);
    let wire: WireAnswer = match text.trim() {
        "" => WireAnswer::default(),
        t => serde_json::from_str(t).unwrap_or_default(),
    };
    let failed: BTreeSet<String> = wire
        .failed
        .into_iter()
        .chain(
            wire.batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier),
        )
        .collect();
    Answer {
        outcome: Outcome::Ok { failed },
        output: wire.records,
    }
}

/// Calls functions; one per runner, shared by its triggers.
#[derive(Clone, Debug)]
pub struct Invoker {
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Default for Invoker {
    fn default() -> Self {
        Self::new()
    }
}

impl Invoker {
    /// An invoker with a pooled HTTP/1.1 client.
    pub fn new() -> Invoker {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Invoker {
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Calls `function` with `body`, giving up after `timeout`.
    pub async fn call(
        &self,
        trigger: &str,
        function: &Function,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Answer {
        let call = async {
            match function {
                Function::Http(url) => self.http_call(trigger, url, body).await,
                Function::Command(cmd) => command_call(trigger, cmd, body).await,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(answer) => answer,
            Err(_) => failure(Outcome::Error(format!(
                "the function did not answer within {} ms (function_timeout_ms)",
                timeout.as_millis()
            ))),
        }
    }

    async fn http_call(&self, trigger: &str, url: &str, body: Vec<u8>) -> Answer {
        let request = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("paxlog-trigger", trigger)
            .body(Full::new(Bytes::from(body)));
        let request = match request {
            Ok(r) => r,
            Err(e) => return failure(Outcome::Error(format!("bad request to {url}: {e}"))),
        };
        let response = match self.http.request(request).await {
            Ok(r) => r,
            Err(e) => {
                return failure(Outcome::Error(format!(
                    "POST {url} failed: {}",
                    error_chain(&e)
                )));
            }
        };
        let status = response.status();
        let body = match http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => return failure(Outcome::Error(format!("reading the answer of {url}: {e}"))),
        };
        if status.is_success() {
            return decode_answer(&body);
        }
        let detail = format!("HTTP {}: {}", status.as_u16(), snippet(&body));
        match status.as_u16() {
            429 | 503 => failure(Outcome::Throttled(detail)),
            _ => failure(Outcome::Error(detail)),
        }
    }
}

async fn command_call(trigger: &str, cmd: &str, body: Vec<u8>) -> Answer {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("PAXLOG_TRIGGER", trigger)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return failure(Outcome::Error(format!("cannot run {cmd:?}: {e}"))),
    };
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A command that does not read its input is its own business.
            let _ = stdin.write_all(&body).await;
        }
    };
    let ((), out, err, status) = tokio::join!(
        feed,
        read_limited(stdout),
        read_limited(stderr),
        child.wait()
    );
    match status {
        Ok(s) if s.success() => decode_answer(&out),
        Ok(s) if s.code() == Some(EXIT_THROTTLED) => failure(Outcome::Throttled(format!(
            "exit status {EXIT_THROTTLED} (throttled): {}",
            snippet(&err)
        ))),
        Ok(s) => failure(Outcome::Error(format!("{s}: {}", snippet(&err)))),
        Err(e) => failure(Outcome::Error(format!("waiting for {cmd:?}: {e}"))),
    }
}

/// A pipe's output, up to [`MAX_ANSWER`] bytes (none without a pipe).
async fn read_limited(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        // What could not be read is as good as not written.
        let _ = p.take(MAX_ANSWER as u64).read_to_end(&mut buf).await;
    }
    buf
}

fn failure(outcome: Outcome) -> Answer {
    Answer {
        outcome,
        output: Vec::new(),
    }
}

/// The last 300 characters of an error text, on one line.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim().replace('\n', " | ");
    let chars: Vec<char> = text.chars().collect();
    let start = chars.len().saturating_sub(300);
    chars[start..].iter().collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_list_failures_in_either_form_and_outputs() {
        let a = decode_answer(
            br#"{"failed":["t/0/1"],"batchItemFailures":[{"itemIdentifier":"t/0/2"}],
               "records":[{"key":"w","value":"1"}]}"#,
        );
        let Outcome::Ok { failed } = a.outcome else {
            panic!("ok")
        };
        assert_eq!(failed, ["t/0/1".to_owned(), "t/0/2".to_owned()].into());
        assert_eq!(a.output.len(), 1);
        assert_eq!(a.output[0].key.as_deref(), Some("w"));
        assert_eq!(
            decode_answer(b"").outcome,
            Outcome::Ok {
                failed: BTreeSet::new()
            }
        );
        assert_eq!(
            decode_answer(b"plain text").outcome,
            Outcome::Ok {
                failed: BTreeSet::new()
            },
            "a non-JSON answer means success"
        );
    }

    #[tokio::test]
    async fn commands_get_the_batch_and_their_exit_codes_mean_what_they_say() {
        let inv = Invoker::new();
        let t = Duration::from_secs(10);
        let fail = Function::Command("cat >/dev/null; echo broken >&2; exit 3".into());
        let a = inv.call("t", &fail, b"{}".to_vec(), t).await;
        assert!(
            matches!(&a.outcome, Outcome::Error(e) if e.contains("broken")),
            "{a:?}"
        );
        let throttle = Function::Command("exit 75".into());
        let a = inv.call("t", &throttle, Vec::new(), t).await;
        assert!(matches!(a.outcome, Outcome::Throttled(_)), "{a:?}");
        // The command echoes a failure for the record id it finds in its input.
        let echo = Function::Command(
            r#"id=$(sed 's/.*"id":"\([^"]*\)".*/\1/'); echo "{\"failed\":[\"$id\"]}""#.into(),
        );
        let batch = br#"{"records":[{"id":"in/3/7"}]}"#.to_vec();
        let a = inv.call("t", &echo, batch, t).await;
        assert_eq!(
            a.outcome,
            Outcome::Ok {
                failed: ["in/3/7".to_owned()].into()
            }
        );
        let slow = Function::Command("sleep 5".into());
        let a = inv
            .call("t", &slow, Vec::new(), Duration::from_millis(100))
            .await;
        assert!(matches!(&a.outcome, Outcome::Error(e) if e.contains("function_timeout_ms")));
    }
}
