//! Dead letters: records the engine could not use, with the reason and where they came from.

use serde::{Deserialize, Serialize};

/// One dead letter as it is written out (a JSON object per Kafka message or file line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// `decode`, `late` or `invalid`.
    pub kind: String,
    /// What was wrong, naming the field or the rule.
    pub reason: String,
    /// Partition name (`kafka:<topic>/<p>`, `file:<path>`, `generator:<stream>`).
    pub source: String,
    /// Kafka offset or file line.
    pub offset: u64,
    /// The payload as UTF-8 when it is valid UTF-8 ...
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload: Option<String>,
    /// ... else base64 of the bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload_base64: Option<String>,
}

impl DeadLetterRecord {
    /// A dead letter for the record at `offset` of partition `source`: the payload goes to
    /// `payload` when it is UTF-8, else to `payload_base64` (standard alphabet, padded).
    pub fn new(kind: &str, reason: &str, source: &str, offset: u64, payload: &[u8]) -> Self {
        use base64::Engine;
        let (text, base64) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(payload))),
        };
        Self { kind: kind.to_owned(), reason: reason.to_owned(), source: source.to_owned(), offset, payload: text, payload_base64: base64 }
    }
}

/// Errors writing dead letters.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter file {path}: {source}")]
    File { path: String, #[source] source: std::io::Error },
    #[error("dead-letter topic {topic}: {message}")]
    Kafka { topic: String, message: String },
}

/// A dead-letter destination. `write` is durable when it returns `Ok`.
pub trait DeadLetterSink: Send {
    fn write(&mut self, records: &[DeadLetterRecord]) -> Result<(), DeadLetterError>;
}
