//! Logs: OTLP `ExportLogsServiceRequest` (protobuf, JSON), JSON lines and plain text to
//! [`LogRecord`]s. (Being written.)

use super::DecodeConfig;
use crate::record::{LogRecord, RawMessage};

/// A log decoding failure: what was wrong, for the dead-letter reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogDecodeError {
    #[error("logs: {0}")]
    Unsupported(String),
}

/// Decodes one logs message into `out`; every problem becomes one error.
pub fn decode_logs(msg: &RawMessage, _cfg: &DecodeConfig, _out: &mut Vec<LogRecord>, errors: &mut Vec<LogDecodeError>) {
    errors.push(LogDecodeError::Unsupported(format!("{:?} is not decoded yet", msg.encoding.format)));
}
