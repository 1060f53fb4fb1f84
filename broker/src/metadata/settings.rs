//! Per-topic settings: the keys a topic's config may hold, their defaults and limits.
//!
//! Kafka's names and meanings, so configs move between systems unchanged:
//! `retention.ms` (how long records are kept; -1 keeps them forever) and
//! `retention.bytes` (how many bytes each partition keeps; -1 means no limit). Retention
//! deletes whole batches from the front of a partition once they are past either limit;
//! offsets never move backwards.

use super::command::TopicConfig;
use super::state::MetaError;

/// Key of the time limit, in milliseconds.
pub const RETENTION_MS: &str = "retention.ms";
/// Key of the size limit per partition, in bytes.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// Seven days, Kafka's default.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// No size limit, Kafka's default.
pub const DEFAULT_RETENTION_BYTES: i64 = -1;

/// A topic's settings, parsed and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// Records older than this many milliseconds go; `None` keeps them forever.
    pub retention_ms: Option<u64>,
    /// Each partition keeps at most about this many bytes; `None` means no limit.
    pub retention_bytes: Option<u64>,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            retention_ms: limit(DEFAULT_RETENTION_MS),
            retention_bytes: limit(DEFAULT_RETENTION_BYTES),
        }
    }
}

fn limit(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

impl TopicSettings {
    /// Parses `config`; unknown keys and bad values are refused with what to write instead.
    pub fn parse(config: &TopicConfig) -> Result<Self, MetaError> {
        let mut settings = Self::default();
        for (key, value) in config {
            let slot = match key.as_str() {
                RETENTION_MS => &mut settings.retention_ms,
                RETENTION_BYTES => &mut settings.retention_bytes,
                _ => {
                    return Err(MetaError::InvalidConfig(format!(
                        "unknown topic setting {key:?}: the settings are {RETENTION_MS} and {RETENTION_BYTES}"
                    )));
                }
            };
            let parsed: i64 = value.trim().parse().map_err(|_| {
                MetaError::InvalidConfig(format!(
                    "{key}={value:?} is not a whole number: use -1 for no limit or a positive number"
                ))
            })?;
            if parsed == 0 || parsed < -1 {
                return Err(MetaError::InvalidConfig(format!(
                    "{key}={parsed} is out of range: use -1 for no limit or a positive number"
                )));
            }
            *slot = limit(parsed);
        }
        Ok(settings)
    }

    /// Every setting with its effective value, as `DescribeTopic` shows them.
    pub fn effective(&self) -> TopicConfig {
        let show = |v: Option<u64>| v.map_or("-1".to_owned(), |v| v.to_string());
        [
            (RETENTION_MS.to_owned(), show(self.retention_ms)),
            (RETENTION_BYTES.to_owned(), show(self.retention_bytes)),
        ]
        .into()
    }

    /// Whether any limit applies.
    pub fn retains_forever(&self) -> bool {
        self.retention_ms.is_none() && self.retention_bytes.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> TopicConfig {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_explicit_values() {
        let d = TopicSettings::parse(&TopicConfig::new()).expect("defaults");
        assert_eq!(d.retention_ms, Some(604_800_000));
        assert_eq!(d.retention_bytes, None);
        let s = TopicSettings::parse(&config(&[
            ("retention.ms", "-1"),
            ("retention.bytes", "1048576"),
        ]))
        .expect("valid");
        assert_eq!(s.retention_ms, None);
        assert_eq!(s.retention_bytes, Some(1_048_576));
        assert_eq!(
            s.effective(),
            config(&[("retention.ms", "-1"), ("retention.bytes", "1048576")])
        );
    }

    #[test]
    fn bad_settings_say_what_to_write() {
        for (pairs, needle) in [
            (vec![("retention.time", "5")], "unknown topic setting"),
            (vec![("retention.ms", "soon")], "not a whole number"),
            (vec![("retention.ms", "0")], "out of range"),
            (vec![("retention.bytes", "-2")], "out of range"),
        ] {
            let err = TopicSettings::parse(&config(&pairs)).expect_err("refused");
            assert!(
                matches!(&err, MetaError::InvalidConfig(m) if m.contains(needle)),
                "{pairs:?}: {err}"
            );
        }
    }
}
