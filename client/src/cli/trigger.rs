//! `paxlog trigger create|list|describe|pause|resume|delete|redrive`, and the calls behind
//! them (also [`crate::Admin`]'s trigger methods).

use super::{json_document, write_line};
use crate::connection::{CallKind, Connection};
use crate::consumer::{Consumer, ConsumerConfig, OffsetReset, Position};
use crate::error::Error;
use crate::runner::{STATUS_TOPIC, Stats, group_of, now_ms};
use paxlog_proto::v1::{self as pb, triggers_client::TriggersClient};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Status reports older than this mark a runner as gone.
const ACTIVE_WITHIN_MS: i64 = 10_000;
/// How many status records `describe` reads back.
const STATUS_TAIL: u64 = 5_000;

/// Creates a trigger; creates its dead-letter topic first when missing (one partition, the
/// source topic's replication).
pub async fn create(
    conn: &Connection,
    mut trigger: pb::Trigger,
    budget: Duration,
) -> Result<pb::Trigger, Error> {
    let dlq = trigger
        .dead_letter_topic
        .get_or_insert_with(|| format!("{}.dlq", trigger.name))
        .clone();
    let source = conn.topic_metadata(&trigger.topic, budget).await?;
    if conn.topic_metadata(&dlq, budget).await.is_err() {
        let replication = source
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len().max(1) as u32);
        let request = super::topic::CreateTopic {
            name: dlq.clone(),
            partitions: 1,
            replication,
            config: BTreeMap::new(),
        };
        super::topic::create_if_missing(conn, request, budget).await?;
    }
    let what = format!("create trigger {:?}", trigger.name);
    let request = pb::CreateTriggerRequest {
        trigger: Some(trigger),
        timeout_ms: 0,
    };
    let response = conn
        .call_leader(CallKind::Admin, budget, |ch| {
            let request = request.clone();
            async move { TriggersClient::new(ch).create_trigger(request).await }
        })
        .await
        .map_err(|e| e.with_what(&what))?;
    response
        .trigger
        .ok_or_else(|| super::topic::missing(&what, "trigger"))
}

/// Every trigger.
pub async fn list(conn: &Connection, budget: Duration) -> Result<Vec<pb::Trigger>, Error> {
    conn.call_leader(CallKind::AnyBroker, budget, |ch| async move {
        TriggersClient::new(ch)
            .list_triggers(pb::ListTriggersRequest {})
            .await
    })
    .await
    .map(|r| r.triggers)
    .map_err(|e| e.with_what("list triggers"))
}

/// One trigger's definition.
pub async fn get(conn: &Connection, name: &str, budget: Duration) -> Result<pb::Trigger, Error> {
    list(conn, budget)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::Server {
            what: format!("look up trigger {name:?}"),
            error: Box::new(crate::error::ServerError::from_wire(
                tonic::Code::NotFound,
                pb::Error {
                    code: pb::ErrorCode::UnknownTrigger as i32,
                    message: format!("unknown trigger {name:?}: see paxlog trigger list"),
                    leader: None,
                },
            )),
        })
}

/// Pauses (`true`) or resumes a trigger.
pub async fn set_paused(
    conn: &Connection,
    name: &str,
    paused: bool,
    budget: Duration,
) -> Result<pb::Trigger, Error> {
    let request = pb::SetTriggerStateRequest {
        name: name.to_owned(),
        paused,
        timeout_ms: 0,
    };
    let what = format!(
        "{} trigger {name:?}",
        if paused { "pause" } else { "resume" }
    );
    let response = conn
        .call_leader(CallKind::Admin, budget, |ch| {
            let request = request.clone();
            async move { TriggersClient::new(ch).set_trigger_state(request).await }
        })
        .await
        .map_err(|e| e.with_what(&what))?;
    response
        .trigger
        .ok_or_else(|| super::topic::missing(&what, "trigger"))
}

/// Deletes a trigger (its topics and group offsets stay).
pub async fn delete(conn: &Connection, name: &str, budget: Duration) -> Result<(), Error> {
    let request = pb::DeleteTriggerRequest {
        name: name.to_owned(),
        timeout_ms: 0,
    };
    conn.call_leader(CallKind::Admin, budget, |ch| {
        let request = request.clone();
        async move { TriggersClient::new(ch).delete_trigger(request).await }
    })
    .await
    .map(|_| ())
    .map_err(|e| e.with_what(format!("delete trigger {name:?}")))
}

/// A runner's latest report about one trigger, with whether it is still reporting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunnerRow {
    /// The report.
    #[serde(flatten)]
    pub stats: Stats,
    /// Reported within the last 10 s.
    pub active: bool,
}

/// A trigger as `trigger describe` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TriggerView {
    /// Name.
    pub name: String,
    /// `running` (a runner reports it), `idle` (no runner) or `paused`.
    pub state: String,
    /// Effective settings.
    pub settings: serde_json::Value,
    /// Records not processed yet (end offsets minus the group's committed offsets).
    pub lag_records: u64,
    /// Age of the oldest unprocessed record, ms.
    pub lag_ms: u64,
    /// Invocations over the reporting runners (each since it started).
    pub invocations: u64,
    /// Failed invocations.
    pub errors: u64,
    /// Throttled invocations.
    pub throttles: u64,
    /// Records sent to the dead-letter topic.
    pub dead_letters: u64,
    /// The newest error any runner reported.
    pub last_error: String,
    /// Runners that reported, newest report each.
    pub runners: Vec<RunnerRow>,
}

/// Settings as a JSON object (for `describe` and `list --json`).
pub fn settings_json(t: &pb::Trigger) -> serde_json::Value {
    serde_json::json!({
        "name": t.name,
        "topic": t.topic,
        "http_url": (!t.http_url.is_empty()).then_some(&t.http_url),
        "command": (!t.command.is_empty()).then_some(&t.command),
        "batch_size": t.batch_size,
        "batch_window_ms": t.batch_window_ms,
        "start_position": t.start_position,
        "max_retries": t.max_retries,
        "retry_backoff_ms": t.retry_backoff_ms,
        "retry_backoff_max_ms": t.retry_backoff_max_ms,
        "max_record_age_ms": t.max_record_age_ms,
        "bisect_on_error": t.bisect_on_error,
        "dead_letter_topic": t.dead_letter_topic,
        "concurrency_max": t.concurrency_max,
        "function_timeout_ms": t.function_timeout_ms,
        "output_topic": t.output_topic.as_deref().filter(|o| !o.is_empty()),
        "paused": t.paused,
    })
}

/// A trigger's definition, its group's lag and its runners' reports.
pub async fn describe(
    conn: &std::sync::Arc<Connection>,
    name: &str,
    budget: Duration,
) -> Result<TriggerView, Error> {
    let t = get(conn, name, budget).await?;
    let admin = crate::Client::from_connection(conn.clone(), budget).admin();
    let (lag_records, lag_ms) = match admin.describe_group(&group_of(name)).await {
        Ok(g) => g
            .partitions
            .iter()
            .fold((0, 0), |(n, ms), p| (n + p.lag, ms.max(p.lag_ms))),
        // Never run yet: no group.
        Err(e) if e.server_code() == Some(pb::ErrorCode::UnknownGroup) => (0, 0),
        Err(e) => return Err(e),
    };
    let runners = runner_reports(conn, name, budget).await.unwrap_or_default();
    let newest_error = runners
        .iter()
        .filter(|r| !r.stats.last_error.is_empty())
        .max_by_key(|r| r.stats.last_error_ms);
    let sum = |f: fn(&Stats) -> u64| runners.iter().map(|r| f(&r.stats)).sum();
    let state = match (t.paused, runners.iter().any(|r| r.active)) {
        (true, _) => "paused",
        (false, true) => "running",
        (false, false) => "idle",
    };
    Ok(TriggerView {
        name: t.name.clone(),
        state: state.to_owned(),
        settings: settings_json(&t),
        lag_records,
        lag_ms,
        invocations: sum(|s| s.invocations),
        errors: sum(|s| s.errors),
        throttles: sum(|s| s.throttles),
        dead_letters: sum(|s| s.dead_letters),
        last_error: newest_error
            .map(|r| r.stats.last_error.clone())
            .unwrap_or_default(),
        runners,
    })
}

/// The newest report of each runner about `trigger`, from the tail of [`STATUS_TOPIC`].
pub async fn runner_reports(
    conn: &std::sync::Arc<Connection>,
    trigger: &str,
    budget: Duration,
) -> Result<Vec<RunnerRow>, Error> {
    let mut consumer = Consumer::new(
        conn.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            request_timeout: budget,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign(STATUS_TOPIC, [0]);
    consumer.seek(STATUS_TOPIC, 0, Position::Latest).await?;
    let end = consumer.position(STATUS_TOPIC, 0).unwrap_or(0);
    let from = end.saturating_sub(STATUS_TAIL);
    consumer
        .seek(STATUS_TOPIC, 0, Position::Offset(from))
        .await?;
    let mut latest: BTreeMap<String, Stats> = BTreeMap::new();
    while consumer.position(STATUS_TOPIC, 0).is_some_and(|p| p < end) {
        for r in consumer.poll(Duration::from_millis(200)).await? {
            if r.key.as_ref() != trigger.as_bytes() {
                continue;
            }
            if let Ok(st) = serde_json::from_slice::<Stats>(&r.value) {
                latest.insert(st.runner.clone(), st);
            }
        }
    }
    let now = now_ms();
    Ok(latest
        .into_values()
        .map(|stats| RunnerRow {
            active: now - stats.at_ms <= ACTIVE_WITHIN_MS,
            stats,
        })
        .collect())
}

/// Prints triggers.
pub fn print_list(triggers: &[pb::Trigger], json: bool, out: &mut dyn Write) -> Result<(), Error> {
    if json {
        let list: Vec<_> = triggers.iter().map(settings_json).collect();
        return write_line(
            out,
            &json_document(&serde_json::json!({ "triggers": list })),
        );
    }
    let mut text = format!(
        "{:<24} {:<24} {:<8} {}\n",
        "TRIGGER", "TOPIC", "STATE", "FUNCTION"
    );
    for t in triggers {
        let function = match t.http_url.is_empty() {
            false => t.http_url.clone(),
            true => format!("command: {}", t.command),
        };
        let state = if t.paused { "paused" } else { "active" };
        text.push_str(&format!(
            "{:<24} {:<24} {:<8} {function}\n",
            t.name, t.topic, state
        ));
    }
    write_line(out, text.trim_end())
}

/// Prints a description.
pub fn print_view(view: &TriggerView, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    if json {
        return write_line(out, &json_document(view));
    }
    let mut text = format!(
        "trigger {}  state {}  lag {} records ({} ms)\ninvocations {}  errors {}  throttled {}  dead letters {}\n",
        view.name,
        view.state,
        view.lag_records,
        view.lag_ms,
        view.invocations,
        view.errors,
        view.throttles,
        view.dead_letters
    );
    if !view.last_error.is_empty() {
        text.push_str(&format!("last error: {}\n", view.last_error));
    }
    if let Some(map) = view.settings.as_object() {
        text.push_str("settings:\n");
        for (k, v) in map {
            if !v.is_null() {
                text.push_str(&format!("  {k} = {v}\n"));
            }
        }
    }
    if !view.runners.is_empty() {
        text.push_str(&format!(
            "{:<28} {:>7} {:>11} {:>7} {:>11} {:>9}  PARTITIONS\n",
            "RUNNER", "ACTIVE", "INVOCATIONS", "ERRORS", "CONCURRENCY", "LAG"
        ));
        for r in &view.runners {
            let s = &r.stats;
            text.push_str(&format!(
                "{:<28} {:>7} {:>11} {:>7} {:>11} {:>9}  {:?}\n",
                s.runner,
                r.active,
                s.invocations,
                s.errors,
                s.concurrency,
                s.lag_records,
                s.partitions
            ));
        }
    }
    write_line(out, text.trim_end())
}
