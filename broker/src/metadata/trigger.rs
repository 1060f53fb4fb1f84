//! Function triggers as metadata: a trigger's effective definition and its checks.
//!
//! A trigger is stored with every setting filled in (defaults applied when it was created),
//! so runners of any version read the same values the cluster decided.

use super::state::MetaError;
use serde::{Deserialize, Serialize};

/// Longest trigger name (its group name `trigger.<name>` stays within group limits).
pub const MAX_TRIGGER_NAME: usize = 200;

/// The function a trigger invokes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// POST the batch to this URL.
    Http(String),
    /// Run this through `/bin/sh -c` with the batch on stdin.
    Command(String),
}

/// A trigger with its effective settings (see `triggers.proto` for their meaning).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDef {
    /// Name.
    pub name: String,
    /// Source topic.
    pub topic: String,
    /// The function.
    pub function: Function,
    /// Most records per invocation.
    pub batch_size: u32,
    /// Gathering window, ms.
    pub batch_window_ms: u32,
    /// "earliest" or "latest".
    pub start_position: String,
    /// Retries before dead-lettering.
    pub max_retries: u32,
    /// First backoff, ms.
    pub retry_backoff_ms: u32,
    /// Longest backoff, ms.
    pub retry_backoff_max_ms: u32,
    /// Oldest record age processed, ms; -1 none.
    pub max_record_age_ms: i64,
    /// Split failing batches.
    pub bisect_on_error: bool,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Most invocations in flight.
    pub concurrency_max: u32,
    /// Invocation timeout, ms.
    pub function_timeout_ms: u32,
    /// Topic for the function's returned records ("" none).
    pub output_topic: String,
    /// Paused by an operator.
    pub paused: bool,
}

impl TriggerDef {
    /// A trigger with every setting at its default.
    pub fn with_defaults(name: String, topic: String, function: Function) -> TriggerDef {
        TriggerDef {
            dead_letter_topic: default_dead_letter_topic(&name),
            name,
            topic,
            function,
            batch_size: 100,
            batch_window_ms: 0,
            start_position: "latest".into(),
            max_retries: 3,
            retry_backoff_ms: 200,
            retry_backoff_max_ms: 30_000,
            max_record_age_ms: -1,
            bisect_on_error: false,
            concurrency_max: 10,
            function_timeout_ms: 30_000,
            output_topic: String::new(),
            paused: false,
        }
    }

    /// Checks names, the function and every range; the error names the setting and its range.
    pub fn validate(&self) -> Result<(), MetaError> {
        validate_trigger_name(&self.name)?;
        super::validate_topic_name(&self.topic)?;
        super::validate_topic_name(&self.dead_letter_topic)?;
        if !self.output_topic.is_empty() {
            super::validate_topic_name(&self.output_topic)?;
        }
        let bad = |what: String| Err(MetaError::InvalidTrigger(what));
        match &self.function {
            Function::Http(url) => {
                let rest = url.strip_prefix("http://");
                if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                    return bad(format!(
                        "http url {url:?} must look like http://host:port/path (https is not supported yet)"
                    ));
                }
            }
            Function::Command(cmd) if cmd.trim().is_empty() => {
                return bad("the command is empty".into());
            }
            Function::Command(_) => {}
        }
        let ranges: [(&str, i64, i64, i64); 7] = [
            ("batch_size", self.batch_size.into(), 1, 10_000),
            ("batch_window_ms", self.batch_window_ms.into(), 0, 300_000),
            ("max_retries", self.max_retries.into(), 0, 1_000),
            (
                "retry_backoff_ms",
                self.retry_backoff_ms.into(),
                1,
                3_600_000,
            ),
            ("concurrency_max", self.concurrency_max.into(), 1, 1_000),
            (
                "function_timeout_ms",
                self.function_timeout_ms.into(),
                100,
                900_000,
            ),
            ("max_record_age_ms", self.max_record_age_ms, -1, i64::MAX),
        ];
        for (name, value, lo, hi) in ranges {
            if value < lo || value > hi || (name == "max_record_age_ms" && value == 0) {
                return bad(format!("{name} is {value}; use {lo} to {hi}"));
            }
        }
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            return bad(format!(
                "retry_backoff_max_ms ({}) is below retry_backoff_ms ({})",
                self.retry_backoff_max_ms, self.retry_backoff_ms
            ));
        }
        if !matches!(self.start_position.as_str(), "earliest" | "latest") {
            return bad(format!(
                "start_position {:?}: use \"earliest\" or \"latest\"",
                self.start_position
            ));
        }
        if self.dead_letter_topic == self.topic || self.output_topic == self.topic {
            return bad(format!(
                "the dead-letter and output topics must differ from the source topic {:?}",
                self.topic
            ));
        }
        Ok(())
    }

    /// The topics the trigger needs to exist.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        [
            self.topic.as_str(),
            self.dead_letter_topic.as_str(),
            self.output_topic.as_str(),
        ]
        .into_iter()
        .filter(|t| !t.is_empty())
    }
}

/// The dead-letter topic a trigger gets when none is named.
pub fn default_dead_letter_topic(trigger: &str) -> String {
    format!("{trigger}.dlq")
}

/// Checks a trigger name: 1 to 200 characters of `[A-Za-z0-9._-]`.
pub fn validate_trigger_name(name: &str) -> Result<(), MetaError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > MAX_TRIGGER_NAME || !ok_chars {
        return Err(MetaError::InvalidTrigger(format!(
            "invalid trigger name {name:?}: use 1 to {MAX_TRIGGER_NAME} characters among letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> TriggerDef {
        TriggerDef::with_defaults(
            "t".into(),
            "orders".into(),
            Function::Http("http://127.0.0.1:9/f".into()),
        )
    }

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert_eq!(def().validate(), Ok(()));
        assert_eq!(def().dead_letter_topic, "t.dlq");
        type Change = Box<dyn Fn(&mut TriggerDef)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|d| d.batch_size = 0), "batch_size"),
            (Box::new(|d| d.concurrency_max = 5000), "concurrency_max"),
            (
                Box::new(|d| d.function_timeout_ms = 1),
                "function_timeout_ms",
            ),
            (Box::new(|d| d.max_record_age_ms = 0), "max_record_age_ms"),
            (
                Box::new(|d| d.retry_backoff_max_ms = 1),
                "retry_backoff_max_ms",
            ),
            (
                Box::new(|d| d.start_position = "middle".into()),
                "start_position",
            ),
            (
                Box::new(|d| d.dead_letter_topic = "orders".into()),
                "differ",
            ),
            (
                Box::new(|d| d.function = Function::Command(" ".into())),
                "empty",
            ),
            (
                Box::new(|d| d.function = Function::Http("https://x/y".into())),
                "http://",
            ),
            (Box::new(|d| d.name = "a b".into()), "trigger name"),
        ];
        for (change, needle) in cases {
            let mut d = def();
            change(&mut d);
            let err = d.validate().expect_err(needle).to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle}");
        }
    }
}
