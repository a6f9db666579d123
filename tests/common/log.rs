//! vinod's log as the tests read it: the daemons the tests start log JSON (`log.format =
//! "json"`, see [`super::host::config_text`]), one record per line, and tests count records by
//! their structured fields, never by matching rendered text.

use serde_json::Value;

/// The JSON records of a daemon's log.
pub struct LogRecords {
    records: Vec<Value>,
}

impl LogRecords {
    /// Parses `text`. Lines that are not JSON (e.g. a panic message) are kept out of the
    /// records. Panics if the text holds an escape sequence: a log written to a file or pipe
    /// must be plain.
    pub fn parse(text: &str) -> LogRecords {
        assert_no_escape(text);
        let records = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect();
        LogRecords { records }
    }

    /// Records whose message is `message`.
    pub fn with_message<'a>(&'a self, message: &'a str) -> impl Iterator<Item = &'a Value> {
        self.records
            .iter()
            .filter(move |r| r["fields"]["message"].as_str() == Some(message))
    }

    /// How many records have message `message`.
    pub fn count(&self, message: &str) -> usize {
        self.with_message(message).count()
    }

    /// Host operations applied, one record each (`applied` with an `op` field).
    pub fn host_operations(&self) -> usize {
        self.with_message("applied")
            .filter(|r| r["fields"]["op"].is_string())
            .count()
    }

    /// Whether any record's message starts with `prefix`.
    pub fn has_message_starting(&self, prefix: &str) -> bool {
        self.records.iter().any(|r| {
            r["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(prefix))
        })
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }
}

/// Panics if `text` holds an ANSI escape (ESC, 0x1b).
pub fn assert_no_escape(text: &str) {
    if let Some(at) = text.find('\u{1b}') {
        let line = text[..at].lines().count();
        panic!("escape sequence in a log written to a file or pipe, line {line}");
    }
}
