//! Logs decoding: OTLP `ExportLogsServiceRequest` (protobuf and JSON), JSON lines and plain text
//! lines to [`LogRecord`]s.
//!
//! [`decode_logs`] is called by the runtime for every logs message. OTLP JSON is read by a strict
//! model of its own (below, `otlp_json`) into the protobuf types and then decoded exactly like
//! protobuf, so both encodings of one request give the same records and the same errors.
//!
//! Fields of a [`LogRecord`]:
//! - tenant and resource: OTLP by [`ResourceIdentity`], once per `ResourceLogs`; JSON lines from
//!   `service` and `attributes`; text lines from the source's [`TextProfile`].
//! - `ts`: OTLP `time_unix_nano`, else `observed_time_unix_nano` (both 0 refuses the record);
//!   JSON lines `ts`; text lines the header's time fields (see "Plain text" below).
//! - `severity`: an OTLP severity number (1-24, 0 unspecified). OTLP `severity_number` when set,
//!   else [`severity_from_text`] of `severity_text`, else 0.
//! - `message`: a string body as is; any other body as compact JSON (bytes as a hex string, a
//!   non-finite double as a string); no body is the empty message.
//! - `trace_id`: when the record carries 16 bytes that are not all zero.
//!
//! # Plain text
//! A text line is read with the [`TextProfile`] its `Encoding::profile` names. With a header
//! format ([`HeaderFormat`]) the line is split into fields; `Content` is the message, `Level` (or
//! `Severity`) the severity, and the event time comes from the fields named (case-insensitively)
//! `Timestamp`, `Date`, `Time`, `Day` and `Month`:
//! - `Timestamp` as epoch digits (seconds up to 11 digits, else ms, µs or ns by length) wins:
//!   it is the only unambiguous one (BGL's `Time` is the machine's local wall clock);
//! - else a field holding a whole date-time (`Time` of Apache, BGL or HealthApp);
//! - else `Date` (`2015-10-18`, `2005.06.03`, `17/06/09`, `081109`, `20171223`, or a month
//!   name with `Day`/`Date` as the day of month) plus `Time` (`18:01:47,978`, `203615`,
//!   `15.42.50.675872`, HealthApp's unpadded `22:16:0:83` whose last part is milliseconds;
//!   midnight when absent).
//!
//! Times without a zone are read as UTC. Two-digit years are 20yy. A date without a year
//! (syslog-style `Dec 10 06:55:46`, OpenSSH) is put in 1970: a profile cannot say which year the
//! file is from, and a fixed year keeps such lines ordered and detectable rather than guessed.
//! A line that does not match the header, or whose time cannot be read, is refused with the
//! reason. Without a header format the whole line is the message, the event time is a leading
//! RFC 3339 or `YYYY-MM-DD HH:MM:SS[.fff]` timestamp (a line without one is refused: "no event
//! time"), and the severity a level word right after it (`ERROR`, `[warn]`, `INFO:`), else 0.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{DEFAULT_TENANT, DecodeConfig, ResourceIdentity, TextProfile};
use crate::logs::header::HeaderFormat;
use crate::record::{EventTime, LogRecord, Origin, RawMessage, WireFormat};

/// A log decoding failure: what was wrong, for the dead-letter reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogDecodeError {
    /// The message is not a protobuf `ExportLogsServiceRequest`; nothing was decoded.
    #[error("otlp protobuf: failed to decode ExportLogsServiceRequest: {0}")]
    OtlpProto(String),
    /// The message is not an OTLP JSON `ExportLogsServiceRequest`; nothing was decoded.
    #[error("otlp json: failed to decode ExportLogsServiceRequest: {0}")]
    OtlpJson(String),
    /// The JSON line is malformed or invalid; nothing was decoded.
    #[error("json line: {0}")]
    JsonLine(String),
    /// The text line could not be read with its profile; nothing was decoded.
    #[error("text line: {0}")]
    Text(String),
    /// The archived log record (a replay's input) is damaged; nothing was decoded.
    #[error("archived log record: {0}")]
    Archived(super::archived::ArchivedError),
    /// One OTLP log record (0-based index within the request, counted across all its resource
    /// and scope blocks) was refused; the others were decoded.
    #[error("log record {index}: {problem}")]
    Record {
        index: usize,
        problem: RecordProblem,
    },
}

/// Why one OTLP log record was refused.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordProblem {
    /// Both `time_unix_nano` and `observed_time_unix_nano` are 0: the record has no event time.
    #[error("timestamp is missing (time_unix_nano and observed_time_unix_nano are 0)")]
    MissingTimestamp,
    /// A `severity_number` outside the OTLP range.
    #[error("severity_number {0} is out of range (0-24)")]
    SeverityOutOfRange(i32),
}

/// Decodes one logs message. Pushes decoded records to `out`. A message that cannot be parsed at
/// all yields one error and no records; an OTLP record that is invalid yields one error naming
/// its index, and the other records are still decoded.
///
/// Called by the runtime's decode stage for every message whose signal is logs; the caller turns
/// each error into a dead letter for `msg`. Text lines use a [`LogDecoder`] kept per thread and
/// rebuilt when `cfg.text_profiles` change, so header formats are parsed once, not per line; a
/// caller that owns its config can keep a [`LogDecoder`] itself and skip that comparison.
pub fn decode_logs(
    msg: &RawMessage,
    cfg: &DecodeConfig,
    out: &mut Vec<LogRecord>,
    errors: &mut Vec<LogDecodeError>,
) {
    thread_local! {
        static TEXT: RefCell<Option<LogDecoder>> = const { RefCell::new(None) };
    }
    let text = |msg: &RawMessage| {
        TEXT.with_borrow_mut(|cached| {
            if cached.as_ref().is_some_and(|d| d.cfg != *cfg) {
                *cached = None;
            }
            cached
                .get_or_insert_with(|| LogDecoder::new(cfg))
                .read_text(msg)
        })
    };
    decode_message(msg, cfg, &text, out, errors);
}

/// A logs decoder with the text profiles of a [`DecodeConfig`] parsed once.
///
/// Equivalent to [`decode_logs`] with the config it was built from; the engine may keep one per
/// worker. A text profile with an invalid header format is reported on every line that uses it
/// (the runtime validates the formats at start-up, so this is a last line of defence).
#[derive(Clone, Debug)]
pub struct LogDecoder {
    cfg: DecodeConfig,
    /// One per `cfg.text_profiles`, same index.
    readers: Vec<Result<TextReader, String>>,
}

/// One text profile, ready to read lines.
#[derive(Clone, Debug)]
struct TextReader {
    tenant: String,
    resource: String,
    header: Option<HeaderFormat>,
}

impl LogDecoder {
    pub fn new(cfg: &DecodeConfig) -> Self {
        let readers = cfg
            .text_profiles
            .iter()
            .enumerate()
            .map(|(i, p)| {
                TextReader::new(p)
                    .map_err(|e| format!("text profile {i} (service `{}`): {e}", p.service))
            })
            .collect();
        Self {
            cfg: cfg.clone(),
            readers,
        }
    }

    /// Decodes one logs message, as [`decode_logs`] does.
    pub fn decode(
        &self,
        msg: &RawMessage,
        out: &mut Vec<LogRecord>,
        errors: &mut Vec<LogDecodeError>,
    ) {
        decode_message(msg, &self.cfg, &|msg| self.read_text(msg), out, errors);
    }

    fn read_text(&self, msg: &RawMessage) -> Result<LogRecord, String> {
        let profile = usize::from(msg.encoding.profile);
        match self.readers.get(profile) {
            None => Err(format!(
                "text profile {profile} is not configured ({} profiles)",
                self.readers.len()
            )),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(reader)) => reader.read(&msg.payload, msg.origin),
        }
    }
}

/// Dispatches on the wire format; `text` reads plain text lines.
fn decode_message(
    msg: &RawMessage,
    cfg: &DecodeConfig,
    text: &dyn Fn(&RawMessage) -> Result<LogRecord, String>,
    out: &mut Vec<LogRecord>,
    errors: &mut Vec<LogDecodeError>,
) {
    match msg.encoding.format {
        WireFormat::OtlpProto => match ExportLogsServiceRequest::decode(msg.payload.as_slice()) {
            Ok(request) => decode_request(request, msg.origin, cfg, out, errors),
            Err(e) => errors.push(LogDecodeError::OtlpProto(e.to_string())),
        },
        WireFormat::OtlpJson => match otlp_json::parse(&msg.payload) {
            Ok(request) => decode_request(request, msg.origin, cfg, out, errors),
            Err(e) => errors.push(LogDecodeError::OtlpJson(e)),
        },
        WireFormat::JsonLines => match json_line::decode(&msg.payload, msg.origin, cfg) {
            Ok(record) => out.push(record),
            Err(e) => errors.push(LogDecodeError::JsonLine(e)),
        },
        WireFormat::Text => match text(msg) {
            Ok(record) => out.push(record),
            Err(e) => errors.push(LogDecodeError::Text(e)),
        },
        WireFormat::Archived => match super::archived::decode_log(&msg.payload, msg.origin) {
            Ok(record) => out.push(record),
            Err(e) => errors.push(LogDecodeError::Archived(e)),
        },
    }
}

/// Decodes a parsed OTLP request, taking its strings rather than copying them. Shared by the
/// protobuf and the JSON path, so that both encodings of one request give the same result.
fn decode_request(
    request: ExportLogsServiceRequest,
    origin: Origin,
    cfg: &DecodeConfig,
    out: &mut Vec<LogRecord>,
    errors: &mut Vec<LogDecodeError>,
) {
    let mut index = 0;
    for rl in request.resource_logs {
        let attributes = rl
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let identity = ResourceIdentity::from_otlp(attributes, cfg);
        for record in rl.scope_logs.into_iter().flat_map(|sl| sl.log_records) {
            let ns = if record.time_unix_nano != 0 {
                record.time_unix_nano
            } else {
                record.observed_time_unix_nano
            };
            let severity = match record.severity_number {
                0 => severity_from_text(&record.severity_text).unwrap_or(0),
                n => match u8::try_from(n) {
                    Ok(n) if n <= MAX_SEVERITY => n,
                    _ => {
                        errors.push(LogDecodeError::Record {
                            index,
                            problem: RecordProblem::SeverityOutOfRange(n),
                        });
                        index += 1;
                        continue;
                    }
                },
            };
            if ns == 0 {
                errors.push(LogDecodeError::Record {
                    index,
                    problem: RecordProblem::MissingTimestamp,
                });
                index += 1;
                continue;
            }
            out.push(LogRecord {
                tenant: identity.tenant.clone(),
                resource: identity.urn.clone(),
                // u64::MAX ns is about 1.8e13 ms: the cast cannot wrap.
                ts: (ns / 1_000_000) as i64,
                severity,
                message: render_body(record.body.and_then(|b| b.value)),
                trace_id: trace_id(&record.trace_id),
                origin,
            });
            index += 1;
        }
    }
}

/// The highest OTLP severity number (`FATAL4`).
const MAX_SEVERITY: u8 = 24;

/// A trace id when `bytes` is a valid one: 16 bytes, not all zero.
fn trace_id(bytes: &[u8]) -> Option<[u8; 16]> {
    let id: [u8; 16] = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

/// The OTLP severity number a level word stands for, case-insensitively:
///
/// | text | number |
/// |---|---|
/// | `TRACE` | 1 |
/// | `DEBUG` | 5 |
/// | `INFO`, `INFORMATION`, `INFORMATIONAL` | 9 |
/// | `NOTICE` | 10 (INFO2, as OTLP maps syslog) |
/// | `WARN`, `WARNING` | 13 |
/// | `ERROR`, `ERR`, `SEVERE` | 17 |
/// | `FATAL`, `CRITICAL`, `CRIT`, `ALERT`, `EMERG`, `EMERGENCY`, `PANIC`, `FAILURE` | 21 |
///
/// The six OTLP names take a numbered form (`ERROR2` is 18, `INFO4` is 12), with or without
/// the `SEVERITY_NUMBER_` prefix of the protobuf enum; a number 0-24 is itself. `FAILURE` is
/// BGL's level above `FATAL`. Anything else is `None`.
///
/// Used for OTLP `severity_text`, JSON lines' `severity` and text lines' level fields.
pub fn severity_from_text(text: &str) -> Option<u8> {
    let text = text.trim();
    let text = match text.get(..16) {
        Some(prefix) if prefix.eq_ignore_ascii_case("SEVERITY_NUMBER_") => &text[16..],
        _ => text,
    };
    if !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().filter(|n| *n <= MAX_SEVERITY);
    }
    // A numbered form: one of the six names followed by 1-4.
    if let [name @ .., digit @ b'1'..=b'4'] = text.as_bytes() {
        const NUMBERED: [(&str, u8); 6] = [
            ("TRACE", 1),
            ("DEBUG", 5),
            ("INFO", 9),
            ("WARN", 13),
            ("ERROR", 17),
            ("FATAL", 21),
        ];
        return NUMBERED
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, base)| base + (digit - b'1'));
    }
    const NAMES: [(&str, u8); 19] = [
        ("INFO", 9),
        ("DEBUG", 5),
        ("WARN", 13),
        ("ERROR", 17),
        ("WARNING", 13),
        ("TRACE", 1),
        ("FATAL", 21),
        ("NOTICE", 10),
        ("INFORMATION", 9),
        ("INFORMATIONAL", 9),
        ("ERR", 17),
        ("SEVERE", 17),
        ("CRITICAL", 21),
        ("CRIT", 21),
        ("ALERT", 21),
        ("EMERG", 21),
        ("EMERGENCY", 21),
        ("PANIC", 21),
        ("FAILURE", 21),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(text))
        .map(|(_, number)| *number)
}

/// The message of an OTLP body: a string as is, anything else as compact JSON.
fn render_body(body: Option<any_value::Value>) -> String {
    match body {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s,
        Some(value) => {
            let mut json = Vec::new();
            write_json(&mut json, Some(&value));
            // Only whole UTF-8 strings and ASCII were written.
            String::from_utf8(json).unwrap_or_default()
        }
    }
}

/// Compact JSON for an OTLP value. Bytes become a hex string and non-finite doubles, which JSON
/// cannot hold, strings (`"NaN"`, `"inf"`). Writing to a `Vec` cannot fail.
fn write_json(out: &mut Vec<u8>, value: Option<&any_value::Value>) {
    let string = |out: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *out, s);
    };
    match value {
        None => out.extend_from_slice(b"null"),
        Some(any_value::Value::StringValue(s)) => string(out, s),
        Some(any_value::Value::BoolValue(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        Some(any_value::Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(any_value::Value::DoubleValue(d)) if d.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, d);
        }
        Some(any_value::Value::DoubleValue(d)) => string(out, &d.to_string()),
        Some(any_value::Value::BytesValue(b)) => string(out, &hex::encode(b)),
        Some(any_value::Value::StringValueStrindex(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(any_value::Value::ArrayValue(array)) => {
            out.push(b'[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, v.value.as_ref());
            }
            out.push(b']');
        }
        Some(any_value::Value::KvlistValue(list)) => {
            out.push(b'{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, &kv.key);
                out.push(b':');
                write_json(out, kv.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push(b'}');
        }
    }
}

/// The OTLP JSON encoding of `ExportLogsServiceRequest`, read into the protobuf types.
///
/// As for metrics, opentelemetry-proto's own serde support is not used for the envelope: this
/// model takes every integer as a JSON number or a string, `severityNumber` also as the enum's
/// name (`"SEVERITY_NUMBER_WARN"`), `null` as the default, ignores unknown fields (as OTLP
/// requires), and fails loudly on anything else (a `traceId` that is not hex). Bodies use the
/// crate's `AnyValue`, which reads every value kind (`intValue` as a string, base64 bytes).
mod otlp_json {
    use crate::decode::otlp_json_common::{nullable, Resource};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::logs::v1 as pb;
    use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
    use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

    /// Parses an OTLP JSON logs request; the error is the reason for the dead letter.
    pub(super) fn parse(payload: &[u8]) -> Result<ExportLogsServiceRequest, String> {
        let request: Request = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let resource_logs = request
            .resource_logs
            .into_iter()
            .map(|rl| pb::ResourceLogs {
                resource: rl.resource.map(|r| PbResource {
                    attributes: r.attributes,
                    ..Default::default()
                }),
                scope_logs: rl
                    .scope_logs
                    .into_iter()
                    .map(|sl| pb::ScopeLogs {
                        log_records: sl.log_records.into_iter().map(Record::into_proto).collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        Ok(ExportLogsServiceRequest { resource_logs })
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request {
        #[serde(default, deserialize_with = "nullable")]
        resource_logs: Vec<ResourceLogs>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ResourceLogs {
        resource: Option<Resource>,
        #[serde(default, deserialize_with = "nullable")]
        scope_logs: Vec<ScopeLogs>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ScopeLogs {
        #[serde(default, deserialize_with = "nullable")]
        log_records: Vec<Record>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Record {
        #[serde(default)]
        time_unix_nano: Int<u64>,
        #[serde(default)]
        observed_time_unix_nano: Int<u64>,
        #[serde(default)]
        severity_number: Int<i32>,
        #[serde(default, deserialize_with = "nullable")]
        severity_text: String,
        body: Option<AnyValue>,
        #[serde(default)]
        trace_id: Hex,
    }

    impl Record {
        fn into_proto(self) -> pb::LogRecord {
            pb::LogRecord {
                time_unix_nano: self.time_unix_nano.0,
                observed_time_unix_nano: self.observed_time_unix_nano.0,
                severity_number: self.severity_number.0,
                severity_text: self.severity_text,
                body: self.body,
                trace_id: self.trace_id.0,
                ..Default::default()
            }
        }
    }

    /// An integer field: a JSON number or a string holding one; `null` is the default. For
    /// `i32` (the severity number) also the protobuf enum name.
    #[derive(Default)]
    struct Int<T>(T);

    impl<'de, T> Deserialize<'de> for Int<T>
    where
        T: Default + TryFrom<i64> + TryFrom<u64> + std::str::FromStr,
    {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct IntVisitor<T>(std::marker::PhantomData<T>);
            impl<T> Visitor<'_> for IntVisitor<T>
            where
                T: Default + TryFrom<i64> + TryFrom<u64> + std::str::FromStr,
            {
                type Value = Int<T>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(
                        f,
                        "a {} as a JSON number or string",
                        std::any::type_name::<T>()
                    )
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int<T>, E> {
                    T::try_from(v)
                        .map(Int)
                        .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int<T>, E> {
                    T::try_from(v)
                        .map(Int)
                        .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Int<T>, E> {
                    if let Some(severity) = pb::SeverityNumber::from_str_name(v)
                        && let Ok(n) = T::try_from(severity as i64)
                    {
                        return Ok(Int(n));
                    }
                    v.parse()
                        .map(Int)
                        .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Int<T>, E> {
                    Ok(Int(T::default()))
                }
            }
            deserializer.deserialize_any(IntVisitor(std::marker::PhantomData))
        }
    }

    /// A `traceId`: hex digits (either case); `null` and `""` are empty.
    #[derive(Default)]
    struct Hex(Vec<u8>);

    impl<'de> Deserialize<'de> for Hex {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct HexVisitor;
            impl Visitor<'_> for HexVisitor {
                type Value = Hex;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a hex string")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Hex, E> {
                    hex::decode(v)
                        .map(Hex)
                        .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Hex, E> {
                    Ok(Hex::default())
                }
            }
            deserializer.deserialize_any(HexVisitor)
        }
    }
}

/// JSON lines: `{"ts","service","severity","message","trace_id"?,"attributes"?}`.
///
/// Read by a hand-written visitor rather than a derived struct so that a wrong type is reported
/// with the field's name (`field `ts`: expected ..., found a boolean`), and unknown fields are
/// skipped without being parsed into values. Strings are borrowed from the message unless
/// escapes force a copy.
mod json_line {
    use super::*;

    /// One JSON value, as far as a JSON line needs it: objects only keep their entries where
    /// asked (`attributes`), arrays never.
    enum Json<'a> {
        Str(Cow<'a, str>),
        Int(i64),
        /// A fraction, or an integer beyond i64.
        OtherNumber,
        Bool,
        Null,
        Array,
        Object(Vec<(Cow<'a, str>, Json<'a>)>),
    }

    impl Json<'_> {
        fn kind(&self) -> &'static str {
            match self {
                Json::Str(_) => "a string",
                Json::Int(_) => "an integer",
                Json::OtherNumber => "a number that is not a 64-bit integer",
                Json::Bool => "a boolean",
                Json::Null => "null",
                Json::Array => "an array",
                Json::Object(_) => "an object",
            }
        }
    }

    /// Reads one value; `entries` keeps an object's entries (one level deep).
    struct JsonSeed {
        entries: bool,
    }

    impl<'de> DeserializeSeed<'de> for JsonSeed {
        type Value = Json<'de>;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for JsonSeed {
        type Value = Json<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json<'de>, E> {
            Ok(Json::Bool)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'de>, E> {
            Ok(Json::Int(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'de>, E> {
            Ok(i64::try_from(v).map_or(Json::OtherNumber, Json::Int))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json<'de>, E> {
            Ok(Json::OtherNumber)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
            Ok(Json::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
            Ok(Json::Str(Cow::Owned(v.to_owned())))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
            Ok(Json::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Json::Array)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
            let mut entries = Vec::new();
            while let Some(key) = map.next_key::<Key<'de>>()? {
                if self.entries {
                    entries.push((key.0, map.next_value_seed(JsonSeed { entries: false })?));
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Json::Object(entries))
        }
    }

    /// An object key, borrowed unless escaped.
    struct Key<'a>(Cow<'a, str>);

    impl<'de> de::Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            match (JsonSeed { entries: false }).deserialize(deserializer)? {
                Json::Str(s) => Ok(Key(s)),
                _ => Err(de::Error::custom("object key is not a string")),
            }
        }
    }

    /// The known fields of a line, each as found; checked after parsing so that errors can name
    /// the field. A repeated field keeps its last value.
    #[derive(Default)]
    struct Fields<'a> {
        ts: Option<Json<'a>>,
        service: Option<Json<'a>>,
        severity: Option<Json<'a>>,
        level: Option<Json<'a>>,
        message: Option<Json<'a>>,
        trace_id: Option<Json<'a>>,
        attributes: Option<Json<'a>>,
    }

    impl<'de> de::Deserialize<'de> for Fields<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct FieldsVisitor;
            impl<'de> Visitor<'de> for FieldsVisitor {
                type Value = Fields<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                    let mut fields = Fields::default();
                    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                        let slot = match key.as_ref() {
                            "ts" => &mut fields.ts,
                            "service" => &mut fields.service,
                            "severity" => &mut fields.severity,
                            "level" => &mut fields.level,
                            "message" => &mut fields.message,
                            "trace_id" => &mut fields.trace_id,
                            "attributes" => {
                                fields.attributes =
                                    Some(map.next_value_seed(JsonSeed { entries: true })?);
                                continue;
                            }
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                                continue;
                            }
                        };
                        *slot = Some(map.next_value_seed(JsonSeed { entries: false })?);
                    }
                    Ok(fields)
                }
            }
            deserializer.deserialize_map(FieldsVisitor)
        }
    }

    fn wrong_type(field: &str, expected: &str, found: &Json<'_>) -> String {
        format!(
            "field `{field}`: expected {expected}, found {}",
            found.kind()
        )
    }

    fn missing(field: &str) -> String {
        format!("missing field `{field}`")
    }

    /// Decodes one JSON line; the error is the dead-letter reason.
    pub(super) fn decode(
        payload: &[u8],
        origin: Origin,
        cfg: &DecodeConfig,
    ) -> Result<LogRecord, String> {
        let fields: Fields<'_> = serde_json::from_slice(payload).map_err(json_error)?;

        const TS: &str = "an RFC 3339 time string or integer milliseconds since the epoch";
        let ts = match fields.ts.ok_or_else(|| missing("ts"))? {
            Json::Int(ms) => ms,
            Json::Str(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|e| format!("field `ts`: invalid time `{text}` ({e}): expected {TS}"))?
                .timestamp_millis(),
            other => return Err(wrong_type("ts", TS, &other)),
        };

        let service = match fields.service.ok_or_else(|| missing("service"))? {
            Json::Str(s) if s.is_empty() => return Err("field `service` is empty".to_owned()),
            Json::Str(s) => s,
            other => return Err(wrong_type("service", "a string", &other)),
        };

        let (name, severity) = match (fields.severity, fields.level) {
            (Some(s), _) => ("severity", s),
            (None, Some(l)) => ("level", l),
            (None, None) => return Err("missing field `severity` (or `level`)".to_owned()),
        };
        let severity = match severity {
            Json::Str(text) => severity_from_text(&text).unwrap_or(0),
            Json::Int(n) => u8::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_SEVERITY)
                .ok_or_else(|| {
                    format!("field `{name}`: severity number {n} is out of range (0-24)")
                })?,
            other => {
                return Err(wrong_type(
                    name,
                    "a level name or an OTLP severity number",
                    &other,
                ));
            }
        };

        let message = match fields.message.ok_or_else(|| missing("message"))? {
            Json::Str(s) => s.into_owned(),
            other => return Err(wrong_type("message", "a string", &other)),
        };

        let trace_id = match fields.trace_id {
            None | Some(Json::Null) => None,
            Some(Json::Str(s)) if s.is_empty() => None,
            Some(Json::Str(s)) => {
                let mut id = [0u8; 16];
                hex::decode_to_slice(s.as_bytes(), &mut id).map_err(|_| {
                    format!("field `trace_id`: expected 32 hex digits, found `{s}`")
                })?;
                (id != [0; 16]).then_some(id)
            }
            Some(other) => return Err(wrong_type("trace_id", "a hex string", &other)),
        };

        let attributes = match fields.attributes {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Object(entries)) => entries,
            Some(other) => return Err(wrong_type("attributes", "an object", &other)),
        };
        let text = |key: &str| {
            attributes.iter().find_map(|(k, v)| match v {
                Json::Str(s) if k == key && !s.is_empty() => Some(s.as_ref()),
                _ => None,
            })
        };
        let tenant = text(&cfg.tenant_attribute)
            .unwrap_or(DEFAULT_TENANT)
            .to_owned();
        let resource = if service.starts_with("urn:") {
            service.into_owned()
        } else {
            let ns = text("k8s.namespace.name")
                .or_else(|| text("service.namespace"))
                .unwrap_or("default");
            format!("urn:k8s:svc:{ns}/{service}")
        };

        Ok(LogRecord {
            tenant,
            resource,
            ts,
            severity,
            message,
            trace_id,
            origin,
        })
    }

    /// serde_json's message without the position for data errors: a JSON line is one object,
    /// and the position only makes the dead-letter reason noisy.
    fn json_error(e: serde_json::Error) -> String {
        let mut reason = e.to_string();
        if e.classify() == serde_json::error::Category::Data {
            let position = format!(" at line {} column {}", e.line(), e.column());
            if reason.ends_with(&position) {
                reason.truncate(reason.len() - position.len());
            }
        }
        reason
    }
}

impl TextReader {
    fn new(profile: &TextProfile) -> Result<Self, String> {
        if profile.service.is_empty() {
            return Err("service is empty".to_owned());
        }
        let header = match &profile.header {
            Some(format) => Some(
                HeaderFormat::parse(format)
                    .map_err(|e| format!("invalid header format `{format}`: {e}"))?,
            ),
            None => None,
        };
        let ns = profile
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        Ok(Self {
            tenant: profile
                .tenant
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or(DEFAULT_TENANT)
                .to_owned(),
            resource: if profile.service.starts_with("urn:") {
                profile.service.clone()
            } else {
                format!("urn:k8s:svc:{ns}/{}", profile.service)
            },
            header,
        })
    }

    /// Reads one line (a trailing `\n` or `\r\n` is ignored); the error is the dead-letter reason.
    fn read(&self, payload: &[u8], origin: Origin) -> Result<LogRecord, String> {
        let line = std::str::from_utf8(payload).map_err(|e| format!("line is not UTF-8 ({e})"))?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (ts, severity, message) = match &self.header {
            Some(format) => {
                let header = format
                    .split(line)
                    .ok_or("line does not match the profile's header format")?;
                let mut stamp = stamp::Stamp::default();
                let mut severity = 0;
                for &(name, value) in &header.fields {
                    let value = value.trim();
                    if name.eq_ignore_ascii_case("level") || name.eq_ignore_ascii_case("severity") {
                        severity = severity_from_text(value).unwrap_or(0);
                    } else {
                        stamp.field(name, value)?;
                    }
                }
                (stamp.resolve()?, severity, header.content)
            }
            None => {
                let (ts, rest) = stamp::leading(line).ok_or(
                    "no event time: the line does not start with an RFC 3339 or `YYYY-MM-DD HH:MM:SS` timestamp, and the profile has no header format",
                )?;
                (ts, leading_level(rest), line)
            }
        };
        Ok(LogRecord {
            tenant: self.tenant.clone(),
            resource: self.resource.clone(),
            ts,
            severity,
            message: message.to_owned(),
            trace_id: None,
            origin,
        })
    }
}

/// The severity of a level word at the start of `rest` (after separators such as ` - `):
/// `ERROR`, `[warn]`, `INFO:`; 0 without one.
fn leading_level(rest: &str) -> u8 {
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '-' || c == '|');
    let word = rest.split(char::is_whitespace).next().unwrap_or("");
    let word = word.trim_end_matches([':', ',']);
    let word = word
        .strip_prefix('[')
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or(word);
    severity_from_text(word).unwrap_or(0)
}

/// Event time from header fields and leading timestamps (rules in the module doc). Hand-written
/// scanners: a few comparisons per character, no allocation, one pass over each field.
mod stamp {
    use chrono::NaiveDate;

    use super::EventTime;

    /// A byte cursor over a field.
    struct Cursor<'a> {
        s: &'a [u8],
        pos: usize,
    }

    impl<'a> Cursor<'a> {
        fn new(s: &'a str) -> Self {
            Self {
                s: s.as_bytes(),
                pos: 0,
            }
        }

        fn done(&self) -> bool {
            self.pos == self.s.len()
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.pos).copied()
        }

        fn eat(&mut self, b: u8) -> bool {
            let hit = self.peek() == Some(b);
            self.pos += usize::from(hit);
            hit
        }

        fn eat_any(&mut self, set: &[u8]) -> Option<u8> {
            let b = self.peek().filter(|b| set.contains(b))?;
            self.pos += 1;
            Some(b)
        }

        fn spaces(&mut self) -> usize {
            let start = self.pos;
            while self.eat(b' ') {}
            self.pos - start
        }

        /// A run of `min..=max` digits (the run must end there); its value and length.
        fn number(&mut self, min: usize, max: usize) -> Option<(u64, usize)> {
            let run = self.s[self.pos..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if run < min || run > max {
                return None;
            }
            let value = self.s[self.pos..self.pos + run]
                .iter()
                .try_fold(0u64, |n, d| {
                    n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })?;
            self.pos += run;
            Some((value, run))
        }

        fn word(&mut self) -> &'a [u8] {
            let start = self.pos;
            while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                self.pos += 1;
            }
            &self.s[start..self.pos]
        }
    }

    type Date = (i32, u32, u32);
    /// Hours, minutes, seconds, nanoseconds.
    type Time = (u32, u32, u32, u32);

    const MONTHS: [&[u8]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    const WEEKDAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

    /// A month by its English name or three-letter abbreviation.
    fn month(word: &[u8]) -> Option<u32> {
        let i = MONTHS
            .iter()
            .position(|m| word.len() >= 3 && word[..3].eq_ignore_ascii_case(m))?;
        Some(i as u32 + 1)
    }

    fn weekday(word: &[u8]) -> bool {
        word.len() >= 3 && WEEKDAYS.iter().any(|d| word[..3].eq_ignore_ascii_case(d))
    }

    /// `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYY.MM.DD`, `YYYYMMDD`, `YYMMDD`, `YY/MM/DD` (20yy);
    /// with `iso` only `YYYY-MM-DD`.
    fn date(c: &mut Cursor<'_>, iso: bool) -> Option<Date> {
        let (n, len) = c.number(2, 8)?;
        let n = n as u32;
        let (y, m, d) = match len {
            8 if !iso => (n / 10_000, n / 100 % 100, n % 100),
            6 if !iso => (2000 + n / 10_000, n / 100 % 100, n % 100),
            4 | 2 if !iso || len == 4 => {
                let sep = c.eat_any(if iso { b"-" } else { b"-/." })?;
                let (m, _) = c.number(1, 2)?;
                if !c.eat(sep) {
                    return None;
                }
                let (d, _) = c.number(1, 2)?;
                let y = if len == 2 { 2000 + n } else { n };
                (y, m as u32, d as u32)
            }
            _ => return None,
        };
        Some((y as i32, m, d))
    }

    /// `HH:MM:SS` or `HH.MM.SS` (minutes and seconds also with one digit, as HealthApp writes
    /// them) with an optional fraction: decimal after `.` or `,`, integer milliseconds after
    /// `:` (HealthApp's `22:16:0:83` is 83 ms); or `HHMMSS`.
    fn time(c: &mut Cursor<'_>) -> Option<Time> {
        let (h, len) = c.number(1, 6)?;
        let (h, m, s) = match len {
            6 => (h / 10_000, h / 100 % 100, h % 100),
            1 | 2 => {
                let sep = c.eat_any(b":.")?;
                let (m, _) = c.number(1, 2)?;
                if !c.eat(sep) {
                    return None;
                }
                let (s, _) = c.number(1, 2)?;
                (h, m, s)
            }
            _ => return None,
        };
        if h > 23 || m > 59 || s > 59 {
            return None;
        }
        // An optional fraction; a separator not followed by digits is left alone.
        let before = c.pos;
        let nanos = match c.eat_any(b".,:") {
            Some(b':') => match c.number(1, 3) {
                Some((ms, _)) => ms * 1_000_000,
                None => {
                    c.pos = before;
                    0
                }
            },
            Some(_) => match c.number(1, 18) {
                // The first nine digits: nanoseconds.
                Some((f, digits)) if digits <= 9 => f * 10u64.pow((9 - digits) as u32),
                Some((f, digits)) => f / 10u64.pow((digits - 9) as u32),
                None => {
                    c.pos = before;
                    0
                }
            },
            None => 0,
        };
        Some((h as u32, m as u32, s as u32, nanos as u32))
    }

    /// An optional zone after a time: `Z` or `±HH:MM` / `±HHMM`; seconds east of UTC.
    fn zone(c: &mut Cursor<'_>) -> i64 {
        if c.eat(b'Z') || c.eat(b'z') {
            return 0;
        }
        let before = c.pos;
        let Some(sign) = c.eat_any(b"+-") else {
            return 0;
        };
        let parsed = (|| {
            let (hm, len) = c.number(2, 4)?;
            let (h, m) = match len {
                4 => (hm / 100, hm % 100),
                2 if c.eat(b':') => (hm, c.number(2, 2)?.0),
                _ => return None,
            };
            Some((h * 3600 + m * 60) as i64)
        })();
        match parsed {
            Some(seconds) if sign == b'-' => -seconds,
            Some(seconds) => seconds,
            None => {
                c.pos = before;
                0
            }
        }
    }

    fn millis(date: Date, time: Time, offset: i64) -> Option<EventTime> {
        let (h, m, s, ns) = time;
        let t = NaiveDate::from_ymd_opt(date.0, date.1, date.2)?.and_hms_nano_opt(h, m, s, ns)?;
        Some(t.and_utc().timestamp_millis() - offset * 1000)
    }

    /// A whole date-time: `<date>[T -]<time>[zone]` with the dates of [`date`] (BGL
    /// `2005-06-03-15.42.50.675872`, HealthApp `20171223-22:15:29:606`), or
    /// `[Weekday ]Month Day HH:MM:SS[ YYYY]` (Apache `Sun Dec 04 04:47:44 2005`; no year: 1970).
    /// With `iso` only `YYYY-MM-DD[T ]HH:MM:SS[.fff][zone]`.
    fn datetime(c: &mut Cursor<'_>, iso: bool) -> Option<EventTime> {
        if !iso && c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            let mut word = c.word();
            if weekday(word) {
                if c.spaces() == 0 {
                    return None;
                }
                word = c.word();
            }
            let m = month(word)?;
            if c.spaces() == 0 {
                return None;
            }
            let (d, _) = c.number(1, 2)?;
            if c.spaces() == 0 {
                return None;
            }
            let t = time(c)?;
            let before = c.pos;
            let year = match (c.spaces() > 0).then(|| c.number(4, 4)).flatten() {
                Some((y, _)) => y as i32,
                None => {
                    c.pos = before;
                    1970
                }
            };
            return millis((year, m, d as u32), t, 0);
        }
        let d = date(c, iso)?;
        c.eat_any(if iso { b"Tt " } else { b"Tt -" })?;
        let t = time(c)?;
        let offset = zone(c);
        millis(d, t, offset)
    }

    /// Runs `parse` over the whole of `value`.
    fn whole<T>(value: &str, parse: impl FnOnce(&mut Cursor<'_>) -> Option<T>) -> Option<T> {
        let mut c = Cursor::new(value);
        parse(&mut c).filter(|_| c.done())
    }

    /// A leading timestamp of a plain line, and the rest of the line after it. The timestamp
    /// must end at whitespace or the end of the line.
    pub(super) fn leading(line: &str) -> Option<(EventTime, &str)> {
        let mut c = Cursor::new(line);
        let ts = datetime(&mut c, true)?;
        let rest = &line[c.pos..];
        (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some((ts, rest))
    }

    /// The time fields of one header line, as they are found.
    #[derive(Default)]
    pub(super) struct Stamp {
        epoch: Option<EventTime>,
        full: Option<EventTime>,
        date: Option<Date>,
        month: Option<u32>,
        day: Option<u32>,
        time: Option<Time>,
    }

    impl Stamp {
        /// Takes in one header field; fields other than the time fields are ignored.
        pub(super) fn field(&mut self, name: &str, value: &str) -> Result<(), String> {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            let ok = if is("timestamp") || is("datetime") {
                if let Some(ms) = whole(value, |c| c.number(1, 19)).and_then(epoch) {
                    self.epoch = Some(ms);
                    true
                } else {
                    self.set_full(value)
                }
            } else if is("date") {
                if let Some(d) = whole(value, |c| date(c, false)) {
                    self.date = Some(d);
                    true
                } else if let Some((d, _)) = whole(value, |c| c.number(1, 2)) {
                    self.day = Some(d as u32);
                    true
                } else if let Some(m) = whole(value, |c| month(c.word())) {
                    self.month = Some(m);
                    true
                } else {
                    self.set_full(value)
                }
            } else if is("time") {
                if let Some(t) = whole(value, time) {
                    self.time = Some(t);
                    true
                } else {
                    self.set_full(value)
                }
            } else if is("day") {
                match whole(value, |c| c.number(1, 2)) {
                    Some((d, _)) => {
                        self.day = Some(d as u32);
                        true
                    }
                    // A weekday name says nothing the date does not.
                    None => whole(value, |c| Some(weekday(c.word()))).unwrap_or(false),
                }
            } else if is("month") {
                match whole(value, |c| c.number(1, 2)) {
                    Some((m, _)) => self.month = Some(m as u32),
                    None => self.month = whole(value, |c| month(c.word())),
                }
                self.month.is_some()
            } else {
                true
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "field `{name}`: `{value}` is not a date or time this decoder reads"
                ))
            }
        }

        fn set_full(&mut self, value: &str) -> bool {
            self.full = whole(value, |c| datetime(c, false));
            self.full.is_some()
        }

        /// The event time in ms.
        pub(super) fn resolve(&self) -> Result<EventTime, String> {
            if let Some(ms) = self.epoch.or(self.full) {
                return Ok(ms);
            }
            let date = match (self.date, self.month, self.day) {
                (Some(d), _, _) => d,
                (None, Some(m), Some(d)) => (1970, m, d),
                _ if self.time.is_some() => {
                    return Err(
                        "no event time: the header has a time of day but no date".to_owned()
                    );
                }
                _ => {
                    return Err(
                        "no event time: the header has no Date, Time or Timestamp field".to_owned(),
                    );
                }
            };
            millis(date, self.time.unwrap_or((0, 0, 0, 0)), 0).ok_or_else(|| {
                format!(
                    "no event time: {:04}-{:02}-{:02} is not a date",
                    date.0, date.1, date.2
                )
            })
        }
    }

    /// Epoch digits: seconds up to 11 digits, else ms (up to 14), µs (up to 17) or ns.
    fn epoch((n, digits): (u64, usize)) -> Option<EventTime> {
        let ms = match digits {
            0..=11 => n.checked_mul(1000)?,
            12..=14 => n,
            15..=17 => n / 1000,
            _ => n / 1_000_000,
        };
        i64::try_from(ms).ok()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{
        LogRecord as PbLogRecord, ResourceLogs, ScopeLogs, SeverityNumber,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;
    use crate::record::{Encoding, Signal};

    /// 2023-11-14T22:13:20.123456789Z; whole milliseconds: 1_700_000_000_123.
    const T0: u64 = 1_700_000_000_123_456_789;
    const T0_MS: i64 = 1_700_000_000_123;
    const ORIGIN: Origin = Origin {
        partition: 2,
        offset: 9,
    };
    const TRACE: [u8; 16] = [
        0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6,
        0x0c,
    ];

    fn text_kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    fn body(value: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(value) })
    }

    fn resource_logs(attributes: Vec<KeyValue>, records: Vec<PbLogRecord>) -> ResourceLogs {
        ResourceLogs {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn decode_as(
        format: WireFormat,
        payload: impl Into<Vec<u8>>,
        cfg: &DecodeConfig,
    ) -> (Vec<LogRecord>, Vec<LogDecodeError>) {
        let msg = RawMessage {
            origin: ORIGIN,
            encoding: Encoding::new(Signal::Logs, format),
            payload: payload.into(),
        };
        let (mut records, mut errors) = (Vec::new(), Vec::new());
        decode_logs(&msg, cfg, &mut records, &mut errors);
        (records, errors)
    }

    /// Decodes `req` as OTLP protobuf and as OTLP JSON (written by opentelemetry-proto's
    /// serializer: int64 as strings, bytes as base64, hex ids), checks that both agree, and
    /// returns the result.
    fn decode_otlp(req: &ExportLogsServiceRequest) -> (Vec<LogRecord>, Vec<LogDecodeError>) {
        let cfg = DecodeConfig::default();
        let proto = decode_as(WireFormat::OtlpProto, req.encode_to_vec(), &cfg);
        let json = decode_as(WireFormat::OtlpJson, serde_json::to_vec(req).unwrap(), &cfg);
        assert_eq!(proto, json, "protobuf and JSON decodes differ");
        proto
    }

    fn record(resource: &str, ts: i64, severity: u8, message: &str) -> LogRecord {
        LogRecord {
            tenant: "default".to_owned(),
            resource: resource.to_owned(),
            ts,
            severity,
            message: message.to_owned(),
            trace_id: None,
            origin: ORIGIN,
        }
    }

    #[test]
    fn otlp_json_matches_protobuf() {
        let at = |time_unix_nano, observed_time_unix_nano| PbLogRecord {
            time_unix_nano,
            observed_time_unix_nano,
            ..Default::default()
        };
        let checkout = vec![
            text_kv("service.name", "checkout"),
            text_kv("k8s.namespace.name", "shop"),
            text_kv("tenant.id", "acme"),
        ];
        let req = ExportLogsServiceRequest {
            resource_logs: vec![
                resource_logs(
                    checkout,
                    vec![
                        PbLogRecord {
                            severity_number: SeverityNumber::Error2 as i32,
                            severity_text: "INFO".to_owned(),
                            body: body(any_value::Value::StringValue(
                                "payment \"failed\"".to_owned(),
                            )),
                            trace_id: TRACE.to_vec(),
                            ..at(T0, 0)
                        },
                        PbLogRecord {
                            severity_text: "warning".to_owned(),
                            body: body(any_value::Value::IntValue(42)),
                            trace_id: vec![0; 16],
                            ..at(0, T0)
                        },
                        // Both times missing: refused, the next one is still decoded.
                        at(0, 0),
                        PbLogRecord {
                            severity_number: 30,
                            ..at(T0, 0)
                        },
                        PbLogRecord {
                            severity_text: "Error3".to_owned(),
                            body: body(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![
                                    text_kv("user", "ann\n"),
                                    KeyValue {
                                        key: "ids".to_owned(),
                                        value: body(any_value::Value::ArrayValue(ArrayValue {
                                            values: vec![
                                                AnyValue {
                                                    value: Some(any_value::Value::DoubleValue(1.5)),
                                                },
                                                AnyValue {
                                                    value: Some(any_value::Value::BoolValue(true)),
                                                },
                                                AnyValue {
                                                    value: Some(any_value::Value::BytesValue(
                                                        vec![1, 0xab],
                                                    )),
                                                },
                                            ],
                                        })),
                                        ..Default::default()
                                    },
                                ],
                            })),
                            trace_id: vec![1, 2, 3],
                            ..at(T0, 5)
                        },
                    ],
                ),
                resource_logs(
                    vec![text_kv("host.name", "node-1")],
                    vec![PbLogRecord {
                        severity_text: "loud".to_owned(),
                        ..at(T0 + 2_000_000, 0)
                    }],
                ),
            ],
        };
        let (records, errors) = decode_otlp(&req);
        let shop = |ts, severity, message: &str| LogRecord {
            tenant: "acme".to_owned(),
            ..record("urn:k8s:svc:shop/checkout", ts, severity, message)
        };
        assert_eq!(
            records,
            vec![
                LogRecord {
                    trace_id: Some(TRACE),
                    ..shop(T0_MS, 18, "payment \"failed\"")
                },
                shop(T0_MS, 13, "42"),
                shop(T0_MS, 19, r#"{"user":"ann\n","ids":[1.5,true,"01ab"]}"#),
                record("urn:host:node-1", T0_MS + 2, 0, ""),
            ]
        );
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "log record 2: timestamp is missing (time_unix_nano and observed_time_unix_nano are 0)",
                "log record 3: severity_number 30 is out of range (0-24)",
            ]
        );
    }

    #[test]
    fn otlp_json_reads_strings_names_and_nulls() {
        let json = r#"{"resourceLogs":[{"resource":null,"scopeLogs":[{"scope":{"name":"x"},"logRecords":[
            {"timeUnixNano":"1700000000123456789","severityNumber":"SEVERITY_NUMBER_WARN","body":{"stringValue":"a"},"traceId":"5B8EFFF798038103D269B633813FC60C","flags":1},
            {"timeUnixNano":1700000000123456789,"severityNumber":"17","severityText":null,"body":null,"traceId":null,"attributes":null,"unknown":{"x":[1]}}
          ]}]}, {"scopeLogs":null}]}"#;
        let (records, errors) = decode_as(WireFormat::OtlpJson, json, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        let unknown = "urn:unknown:default/unknown";
        assert_eq!(
            records,
            vec![
                LogRecord {
                    trace_id: Some(TRACE),
                    ..record(unknown, T0_MS, 13, "a")
                },
                record(unknown, T0_MS, 17, ""),
            ]
        );
    }

    #[test]
    fn otlp_json_structural_errors_refuse_the_message() {
        let wrap = |record: &str| {
            format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{record}]}}]}}]}}"#)
        };
        for (record, reason) in [
            (
                r#"{"timeUnixNano":"soon"}"#,
                "invalid value: string \"soon\", expected a u64 as a JSON number or string",
            ),
            (
                r#"{"timeUnixNano":1,"traceId":"xyz"}"#,
                "invalid value: string \"xyz\", expected a hex string",
            ),
            (
                r#"{"timeUnixNano":1,"severityNumber":"LOUD"}"#,
                "invalid value: string \"LOUD\", expected a i32 as a JSON number or string",
            ),
            (
                r#"{"timeUnixNano":1.5}"#,
                "invalid type: floating point `1.5`, expected a u64 as a JSON number or string",
            ),
        ] {
            let (records, errors) =
                decode_as(WireFormat::OtlpJson, wrap(record), &DecodeConfig::default());
            assert_eq!(records, vec![]);
            // The reason, then serde_json's position.
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let expected = format!(
                "otlp json: failed to decode ExportLogsServiceRequest: {reason} at line 1 column "
            );
            assert!(
                reasons.len() == 1 && reasons[0].starts_with(&expected),
                "{reasons:?}"
            );
        }
    }

    #[test]
    fn official_otlp_json_example_decodes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/otlp/opentelemetry-proto/logs.json"
        );
        let Ok(json) = std::fs::read(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        let (records, errors) = decode_as(WireFormat::OtlpJson, json, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        // severityText "Information" and no severityNumber: INFO.
        assert_eq!(
            records,
            vec![LogRecord {
                trace_id: Some(TRACE),
                ..record(
                    "urn:k8s:svc:default/my.service",
                    1_544_712_660_300,
                    9,
                    "Example log record"
                )
            }]
        );
    }

    #[test]
    fn severity_mapping() {
        for (text, number) in [
            ("TRACE", Some(1)),
            ("trace3", Some(3)),
            ("debug", Some(5)),
            ("DEBUG4", Some(8)),
            ("Info", Some(9)),
            ("INFORMATION", Some(9)),
            ("informational", Some(9)),
            ("INFO2", Some(10)),
            ("notice", Some(10)),
            ("WARN", Some(13)),
            ("Warning", Some(13)),
            ("warn4", Some(16)),
            ("ERROR", Some(17)),
            ("err", Some(17)),
            ("SEVERE", Some(17)),
            ("ERROR2", Some(18)),
            ("FATAL", Some(21)),
            ("critical", Some(21)),
            ("CRIT", Some(21)),
            ("emerg", Some(21)),
            ("PANIC", Some(21)),
            ("FAILURE", Some(21)),
            ("FATAL4", Some(24)),
            ("SEVERITY_NUMBER_ERROR", Some(17)),
            ("severity_number_info3", Some(11)),
            (" warn ", Some(13)),
            ("17", Some(17)),
            ("0", Some(0)),
            ("25", None),
            ("ERROR5", None),
            ("ERROR0", None),
            ("NOTICE2", None),
            ("verbose", None),
            ("", None),
            ("information2", None),
        ] {
            assert_eq!(severity_from_text(text), number, "{text:?}");
        }
    }

    fn json_line(line: &str) -> (Vec<LogRecord>, Vec<String>) {
        let (records, errors) = decode_as(WireFormat::JsonLines, line, &DecodeConfig::default());
        (records, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn json_lines_decode() {
        let line = r#"{"ts":"2024-05-01T14:00:00.250+02:00","service":"checkout","severity":"warn","message":"slow \"pay\"",
            "trace_id":"5b8efff798038103d269b633813fc60c","attributes":{"k8s.namespace.name":"shop","tenant.id":"acme","n":3,"o":{"x":1}},
            "host":"ignored","extra":[1,{"a":2}]}"#;
        assert_eq!(
            json_line(line),
            (
                vec![LogRecord {
                    tenant: "acme".to_owned(),
                    trace_id: Some(TRACE),
                    ..record(
                        "urn:k8s:svc:shop/checkout",
                        1_714_564_800_250,
                        13,
                        "slow \"pay\""
                    )
                }],
                vec![]
            )
        );
        // `level` as the severity, a number; service.namespace; a URN kept; null trace id.
        let line = r#"{"ts":1714564800000,"service":"cart","level":18,"message":"x","trace_id":null,"attributes":{"service.namespace":"web"}}"#;
        assert_eq!(
            json_line(line).0,
            vec![record("urn:k8s:svc:web/cart", 1_714_564_800_000, 18, "x")]
        );
        let line = r#"{"ts":0,"service":"urn:host:node-1","severity":"chatty","message":"","trace_id":"00000000000000000000000000000000"}"#;
        assert_eq!(json_line(line).0, vec![record("urn:host:node-1", 0, 0, "")]);
        // `severity` wins over `level`.
        let line = r#"{"ts":1,"service":"a","severity":"ERROR","level":"INFO","message":"m"}"#;
        assert_eq!(json_line(line).0[0].severity, 17);
    }

    #[test]
    fn json_lines_refuse_bad_lines_naming_the_field() {
        let refused = |line: &str, reason: &str| {
            assert_eq!(
                json_line(line),
                (vec![], vec![format!("json line: {reason}")]),
                "{line}"
            )
        };
        let ok = r#""service":"a","severity":"INFO","message":"m""#;
        refused(&format!("{{{ok}}}"), "missing field `ts`");
        refused(
            &format!(r#"{{"ts":true,{ok}}}"#),
            "field `ts`: expected an RFC 3339 time string or integer milliseconds since the epoch, found a boolean",
        );
        refused(
            &format!(r#"{{"ts":1.5,{ok}}}"#),
            "field `ts`: expected an RFC 3339 time string or integer milliseconds since the epoch, found a number that is not a 64-bit integer",
        );
        refused(
            &format!(r#"{{"ts":"yesterday",{ok}}}"#),
            "field `ts`: invalid time `yesterday` (premature end of input): expected an RFC 3339 time string or integer milliseconds since the epoch",
        );
        refused(
            r#"{"ts":1,"service":7,"severity":"INFO","message":"m"}"#,
            "field `service`: expected a string, found an integer",
        );
        refused(
            r#"{"ts":1,"service":"","severity":"INFO","message":"m"}"#,
            "field `service` is empty",
        );
        refused(
            r#"{"ts":1,"service":"a","message":"m"}"#,
            "missing field `severity` (or `level`)",
        );
        refused(
            r#"{"ts":1,"service":"a","level":[1],"message":"m"}"#,
            "field `level`: expected a level name or an OTLP severity number, found an array",
        );
        refused(
            r#"{"ts":1,"service":"a","severity":99,"message":"m"}"#,
            "field `severity`: severity number 99 is out of range (0-24)",
        );
        refused(
            r#"{"ts":1,"service":"a","severity":"INFO","message":{"a":1}}"#,
            "field `message`: expected a string, found an object",
        );
        refused(
            r#"{"ts":1,"service":"a","severity":"INFO"}"#,
            "missing field `message`",
        );
        refused(
            &format!(r#"{{"ts":1,{ok},"trace_id":"abc"}}"#),
            "field `trace_id`: expected 32 hex digits, found `abc`",
        );
        refused(
            &format!(r#"{{"ts":1,{ok},"trace_id":5}}"#),
            "field `trace_id`: expected a hex string, found an integer",
        );
        refused(
            &format!(r#"{{"ts":1,{ok},"attributes":["a"]}}"#),
            "field `attributes`: expected an object, found an array",
        );
        refused("[1,2]", "invalid type: sequence, expected a JSON object");
        refused(
            &format!(r#"{{"ts":1,{ok}}} x"#),
            "trailing characters at line 1 column 56",
        );
    }

    #[test]
    fn garbage_is_one_error_and_nothing_else() {
        let garbage = vec![0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef];
        let truncated = {
            let req = ExportLogsServiceRequest {
                resource_logs: vec![resource_logs(
                    vec![text_kv("service.name", "a")],
                    vec![PbLogRecord {
                        time_unix_nano: T0,
                        body: body(any_value::Value::StringValue("hello".to_owned())),
                        ..Default::default()
                    }],
                )],
            };
            let mut bytes = req.encode_to_vec();
            bytes.truncate(bytes.len() - 3);
            bytes
        };
        for (format, payload, prefix) in [
            (
                WireFormat::OtlpProto,
                garbage.clone(),
                "otlp protobuf: failed to decode ExportLogsServiceRequest: ",
            ),
            (
                WireFormat::OtlpProto,
                truncated,
                "otlp protobuf: failed to decode ExportLogsServiceRequest: ",
            ),
            (
                WireFormat::OtlpJson,
                garbage.clone(),
                "otlp json: failed to decode ExportLogsServiceRequest: ",
            ),
            (WireFormat::JsonLines, garbage.clone(), "json line: "),
            (WireFormat::JsonLines, Vec::new(), "json line: "),
        ] {
            let (records, errors) = decode_as(format, payload, &DecodeConfig::default());
            assert_eq!(records, vec![]);
            assert_eq!(errors.len(), 1, "{format:?}: {errors:?}");
            let reason = errors[0].to_string();
            assert!(
                reason.starts_with(prefix) && reason.len() > prefix.len(),
                "{reason}"
            );
        }
    }

    /// The header formats of Loghub's eight systems (FORMATS.md).
    const LOGHUB: [(&str, &str); 8] = [
        ("HDFS", "<Date> <Time> <Pid> <Level> <Component>: <Content>"),
        (
            "Hadoop",
            r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
        ),
        ("Spark", "<Date> <Time> <Level> <Component>: <Content>"),
        (
            "Zookeeper",
            r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
        ),
        (
            "BGL",
            "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
        ),
        ("Apache", r"\[<Time>\] \[<Level>\] <Content>"),
        (
            "OpenSSH",
            r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
        ),
        ("HealthApp", r"<Time>\|<Component>\|<Pid>\|<Content>"),
    ];

    /// A config whose profile `i` is Loghub system `i` (service `<system>` in namespace `loghub`,
    /// tenant `lab`), then one profile without a header.
    fn loghub_config() -> DecodeConfig {
        let mut profiles: Vec<TextProfile> = LOGHUB
            .iter()
            .map(|(system, header)| TextProfile {
                service: system.to_lowercase(),
                namespace: Some("loghub".to_owned()),
                tenant: Some("lab".to_owned()),
                header: Some((*header).to_owned()),
            })
            .collect();
        profiles.push(TextProfile {
            service: "plain".to_owned(),
            ..Default::default()
        });
        DecodeConfig {
            text_profiles: profiles,
            ..Default::default()
        }
    }

    fn text_line(cfg: &DecodeConfig, profile: u16, line: &str) -> Result<LogRecord, String> {
        let msg = RawMessage {
            origin: ORIGIN,
            encoding: Encoding {
                profile,
                ..Encoding::new(Signal::Logs, WireFormat::Text)
            },
            payload: line.as_bytes().to_vec(),
        };
        let (mut records, mut errors) = (Vec::new(), Vec::new());
        decode_logs(&msg, cfg, &mut records, &mut errors);
        // The explicit decoder gives the same.
        let (mut again, mut again_errors) = (Vec::new(), Vec::new());
        LogDecoder::new(cfg).decode(&msg, &mut again, &mut again_errors);
        assert_eq!((&records, &errors), (&again, &again_errors));
        match (records.pop(), errors.pop()) {
            (Some(r), None) => Ok(r),
            (None, Some(e)) => Err(e.to_string()),
            other => panic!("one record or one error expected: {other:?}"),
        }
    }

    #[test]
    fn loghub_lines_decode() {
        let cfg = loghub_config();
        let cases: [(&str, i64, u8, &str); 8] = [
            (
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
                1_226_262_975_000,
                9,
                "PacketResponder 1 for block blk_38865049064139660 terminating",
            ),
            (
                "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001",
                1_445_191_307_978,
                9,
                "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
            ),
            (
                "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for [TERM, HUP, INT]",
                1_497_039_040_000,
                9,
                "Registered signal handlers for [TERM, HUP, INT]",
            ),
            (
                "2015-07-29 17:41:44,747 - WARN  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
                1_438_191_704_747,
                13,
                "Notification time out: 3200",
            ),
            (
                // The epoch Timestamp (22:42:50Z) wins over the local Time (15.42.50, PDT).
                "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL FATAL instruction cache parity error corrected",
                1_117_838_570_000,
                21,
                "instruction cache parity error corrected",
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
                1_133_671_664_000,
                17,
                "mod_jk child workerEnv in error state 6",
            ),
            (
                // No year in the line: 1970.
                "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
                29_660_146_000,
                0,
                "Invalid user webmaster from 173.234.31.186",
            ),
            (
                "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579\r\n",
                1_514_067_329_606,
                0,
                "onStandStepChanged 3579",
            ),
        ];
        for (profile, (line, ts, severity, message)) in cases.into_iter().enumerate() {
            let service = LOGHUB[profile].0.to_lowercase();
            assert_eq!(
                text_line(&cfg, profile as u16, line),
                Ok(LogRecord {
                    tenant: "lab".to_owned(),
                    ..record(
                        &format!("urn:k8s:svc:loghub/{service}"),
                        ts,
                        severity,
                        message
                    )
                }),
                "{line}"
            );
        }
    }

    #[test]
    fn loghub_files_decode() {
        let cfg = loghub_config();
        let decoder = LogDecoder::new(&cfg);
        for (profile, (system, _)) in LOGHUB.iter().enumerate() {
            let path = format!(
                "{}/../../shared/data/loghub_2k/{system}/{system}_2k.log",
                env!("CARGO_MANIFEST_DIR")
            );
            let Ok(text) = std::fs::read_to_string(&path) else {
                eprintln!("skipping: {path} not found");
                continue;
            };
            let (mut records, mut errors) = (Vec::new(), Vec::new());
            for (i, line) in text.lines().enumerate() {
                let msg = RawMessage {
                    origin: Origin {
                        partition: 0,
                        offset: i as u64 + 1,
                    },
                    encoding: Encoding {
                        profile: profile as u16,
                        ..Encoding::new(Signal::Logs, WireFormat::Text)
                    },
                    payload: line.as_bytes().to_vec(),
                };
                decoder.decode(&msg, &mut records, &mut errors);
            }
            assert_eq!(errors, vec![], "{system}");
            assert_eq!(records.len(), 2000, "{system}");
            // Every level the file has is recognised: no record is unspecified unless the format
            // has no level field.
            let has_level = LOGHUB[profile].1.contains("<Level>");
            assert_eq!(
                records.iter().all(|r| r.severity > 0),
                has_level,
                "{system}"
            );
            assert!(
                records
                    .iter()
                    .all(|r| !r.message.is_empty() || system == &"HDFS"),
                "{system}"
            );
        }
    }

    #[test]
    fn plain_lines_take_a_leading_timestamp() {
        let cfg = loghub_config();
        let plain = LOGHUB.len() as u16;
        let rec = |ts, severity, message: &str| {
            Ok(record("urn:k8s:svc:default/plain", ts, severity, message))
        };
        for (line, expected) in [
            (
                "2024-05-01T14:00:00.250+02:00 ERROR payment failed",
                rec(
                    1_714_564_800_250,
                    17,
                    "2024-05-01T14:00:00.250+02:00 ERROR payment failed",
                ),
            ),
            (
                "2024-05-01 12:00:00.123 [warn] disk 91% full\n",
                rec(
                    1_714_564_800_123,
                    13,
                    "2024-05-01 12:00:00.123 [warn] disk 91% full",
                ),
            ),
            (
                "2024-05-01 12:00:00,123 - INFO: started",
                rec(
                    1_714_564_800_123,
                    9,
                    "2024-05-01 12:00:00,123 - INFO: started",
                ),
            ),
            (
                "2024-05-01T12:00:00Z",
                rec(1_714_564_800_000, 0, "2024-05-01T12:00:00Z"),
            ),
            (
                "2024-05-01 12:00:00 informed the user",
                rec(
                    1_714_564_800_000,
                    0,
                    "2024-05-01 12:00:00 informed the user",
                ),
            ),
        ] {
            assert_eq!(text_line(&cfg, plain, line), expected, "{line}");
        }
        let no_time = "text line: no event time: the line does not start with an RFC 3339 or `YYYY-MM-DD HH:MM:SS` timestamp, and the profile has no header format";
        for line in [
            "ERROR something broke",
            "",
            "2024-05-01",
            "2024-05-01 12:00:00x",
            "2024-13-01 12:00:00 x",
            "17/06/09 20:10:40 INFO x",
        ] {
            assert_eq!(
                text_line(&cfg, plain, line),
                Err(no_time.to_owned()),
                "{line}"
            );
        }
    }

    #[test]
    fn text_lines_refused_with_the_reason() {
        let mut cfg = loghub_config();
        cfg.text_profiles.push(TextProfile {
            service: "broken".to_owned(),
            header: Some("[<Time>] <Content>".to_owned()),
            ..Default::default()
        });
        cfg.text_profiles.push(TextProfile {
            service: "timeless".to_owned(),
            header: Some("<Level> <Content>".to_owned()),
            ..Default::default()
        });
        cfg.text_profiles.push(TextProfile {
            service: "clock".to_owned(),
            header: Some("<Time> <Content>".to_owned()),
            ..Default::default()
        });
        let err = |profile, line: &str| text_line(&cfg, profile, line).unwrap_err();
        assert_eq!(
            err(0, "not an hdfs line"),
            "text line: line does not match the profile's header format"
        );
        assert_eq!(
            err(0, "081109 25:36:15 148 INFO dfs.DataNode: x"),
            "text line: field `Time`: `25:36:15` is not a date or time this decoder reads"
        );
        assert_eq!(
            err(0, "081340 203615 148 INFO dfs.DataNode: x"),
            "text line: no event time: 2008-13-40 is not a date"
        );
        assert_eq!(
            err(5, "[yesterday] [error] x"),
            "text line: field `Time`: `yesterday` is not a date or time this decoder reads"
        );
        assert!(err(9, "[x] y").starts_with(
            "text line: text profile 9 (service `broken`): invalid header format `[<Time>] <Content>`: unescaped `[`"
        ));
        assert_eq!(
            err(10, "INFO started"),
            "text line: no event time: the header has no Date, Time or Timestamp field"
        );
        assert_eq!(
            err(11, "12:00:00 started"),
            "text line: no event time: the header has a time of day but no date"
        );
        assert_eq!(
            err(12, "x"),
            "text line: text profile 12 is not configured (12 profiles)"
        );
        assert_eq!(
            text_line(
                &cfg,
                0,
                "081109 203615 148 INFO dfs.DataNode: d\u{e9}j\u{e0} vu"
            )
            .map(|r| r.message),
            Ok("d\u{e9}j\u{e0} vu".to_owned()),
        );
        let msg = RawMessage {
            origin: ORIGIN,
            encoding: Encoding::new(Signal::Logs, WireFormat::Text),
            payload: vec![b'a', 0xff],
        };
        let (mut records, mut errors) = (Vec::new(), Vec::new());
        decode_logs(&msg, &cfg, &mut records, &mut errors);
        assert_eq!(records, vec![]);
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["text line: line is not UTF-8 (invalid utf-8 sequence of 1 bytes from index 1)"]
        );
    }

    #[test]
    fn header_time_fields() {
        let cfg = DecodeConfig {
            text_profiles: vec![
                TextProfile {
                    service: "s".to_owned(),
                    header: Some("<Timestamp> <Content>".to_owned()),
                    ..Default::default()
                },
                TextProfile {
                    service: "s".to_owned(),
                    header: Some("<Month> <Date> <Time> <Content>".to_owned()),
                    ..Default::default()
                },
                TextProfile {
                    service: "s".to_owned(),
                    header: Some("<Date> <Content>".to_owned()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let ts = |profile, line: &str| text_line(&cfg, profile, line).map(|r| r.ts);
        assert_eq!(ts(0, "1700000000 x"), Ok(1_700_000_000_000));
        assert_eq!(ts(0, "1700000000123 x"), Ok(1_700_000_000_123));
        assert_eq!(ts(0, "1700000000123456 x"), Ok(1_700_000_000_123));
        assert_eq!(ts(0, "1700000000123456789 x"), Ok(1_700_000_000_123));
        assert_eq!(
            ts(0, "2023-11-14T22:13:20.123456789Z x"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            ts(0, "2023-11-14T23:13:20.123+01:00 x"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            ts(0, "2023-11-14T22:13:20.123-0130 x"),
            Ok(1_700_005_400_123)
        );
        assert_eq!(
            ts(0, "Tue Nov 14 22:13:20 2023 x").ok(),
            None,
            "the field is one token"
        );
        // Linux-style: month name, day of month, no year.
        assert_eq!(ts(1, "Jun 14 15:16:01 x"), Ok(14_224_561_000));
        assert_eq!(ts(1, "6 14 15:16:01 x"), Ok(14_224_561_000));
        assert_eq!(ts(2, "2023/11/14 x"), Ok(1_699_920_000_000));
        assert_eq!(ts(2, "20231114 x"), Ok(1_699_920_000_000));
    }
}
