//! The `paxlog` commands that talk to a running cluster: `topic`, `produce`, `consume`,
//! `group`, `trigger`
//! (`status` is in [`crate::status`]). Argument parsing stays in the binary
//! (`src/bin/paxlog/main.rs`); these functions take plain options, a
//! [`Connection`](crate::connection::Connection) and an output writer, so tests can drive
//! them without a terminal.
//!
//! Output is for people by default and, with `--json`, for programs: one JSON document per
//! command, or one JSON object per line for streams (`produce`, `consume`).
//!
//! Record bytes in JSON: `"value"` is the value as UTF-8 text (invalid sequences replaced
//! by U+FFFD), and `"value_base64"` (standard alphabet, padded) is added with the exact
//! bytes only when the value is not valid UTF-8. Text values stay readable and binary
//! values are not lost. Keys and header values follow the same rule (`"key"` is `null` for
//! a record without key).

pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;
pub mod trigger;

use crate::error::Error;
use base64::Engine;
use serde::Serialize;
use std::io::Write;

/// Writes `text` and a newline, flushing so that streams show up line by line.
pub fn write_line(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|source| Error::Stream {
            action: "write output",
            source,
        })
}

/// One JSON object on one line.
pub(crate) fn json_line(value: &impl Serialize) -> String {
    // Our output types hold strings, numbers and maps with string keys: serializing them
    // cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// One JSON document, indented for people who read it too.
pub(crate) fn json_document(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Bytes in JSON: text (UTF-8, lossy) plus base64 of the exact bytes when they are not
/// UTF-8; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonBytes {
    /// The bytes as text; invalid UTF-8 replaced by U+FFFD.
    pub text: String,
    /// The exact bytes in base64, only when they are not valid UTF-8.
    pub base64: Option<String>,
}

impl JsonBytes {
    /// Encodes `bytes`.
    pub fn new(bytes: &[u8]) -> JsonBytes {
        match std::str::from_utf8(bytes) {
            Ok(text) => JsonBytes {
                text: text.to_owned(),
                base64: None,
            },
            Err(_) => JsonBytes {
                text: String::from_utf8_lossy(bytes).into_owned(),
                base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            },
        }
    }
}

/// `1 record`, `2 records`.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes as one field of a tab-separated line: UTF-8 (lossy), with backslash, tab, newline
/// and carriage return escaped as `\\`, `\t`, `\n` and `\r` so one record stays one line.
pub fn escape_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bytes_stay_text_and_binary_bytes_keep_base64() {
        assert_eq!(
            JsonBytes::new(b"hello"),
            JsonBytes {
                text: "hello".into(),
                base64: None
            }
        );
        let binary = JsonBytes::new(&[0x66, 0xff, 0x6f]);
        assert_eq!(binary.text, "f\u{fffd}o");
        assert_eq!(binary.base64.as_deref(), Some("Zv9v"));
        assert_eq!(plural(1, "record"), "1 record");
        assert_eq!(plural(0, "record"), "0 records");
    }

    #[test]
    fn text_fields_keep_one_record_per_line() {
        assert_eq!(escape_text(b"a\tb\nc\\d\re"), "a\\tb\\nc\\\\d\\re");
        assert_eq!(escape_text(b"plain words"), "plain words");
    }
}
