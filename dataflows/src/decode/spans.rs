//! Spans decoding: OTLP `ExportTraceServiceRequest` (protobuf and JSON) to [`Span`]s, the calls
//! that pairing and the `service_call_5m` view work on.
//!
//! [`decode_spans`] is called by the runtime for every spans message. OTLP JSON goes through a
//! strict model of its own (below, `otlp_json`) and is then decoded exactly like protobuf, so
//! both encodings of one request give the same spans and the same errors.
//!
//! What a span becomes:
//! - only spans that take part in a call are kept: SERVER, CLIENT, PRODUCER and CONSUMER.
//!   INTERNAL and UNSPECIFIED spans are work inside one service; they are skipped without an
//!   error (they are valid input, just not calls).
//! - identity: the resource's tenant and URN ([`ResourceIdentity`]), computed once per
//!   `ResourceSpans`.
//! - `ts` is the end time in whole milliseconds (floored), `duration_ms` is `end - start` in
//!   fractional milliseconds.
//! - `error`: status code ERROR, or an HTTP status (`http.response.status_code`, older
//!   `http.status_code`; int or numeric string) of 500 or more, or a gRPC status
//!   (`rpc.grpc.status_code`) that means a server fault: UNKNOWN (2), DEADLINE_EXCEEDED (4),
//!   UNIMPLEMENTED (12), INTERNAL (13), UNAVAILABLE (14), DATA_LOSS (15).
//! - `weight`, the sampling multiplier: the span attribute named
//!   [`DecodeConfig::sampling_attribute`] (double or int, at least 1); else the W3C
//!   `tracestate` OpenTelemetry entry, `ot=th:<T>` (the rejection threshold, 1 to 14 hex
//!   digits, right-padded to 56 bits: the adjusted count is `2^56 / (2^56 - T)`) or the legacy
//!   `ot=p:<n>` (0 to 62: `2^n`); else 1.
//! - `peer`: the attributes that name the other side of the call ([`Peer`], with the older
//!   conventions' fallbacks its fields list), `None` when there are none.
//!
//! A span is refused, with one error naming its index in the message and its name, when its
//! trace id is not 16 bytes or all zero, its span id not 8 bytes or all zero, its parent id
//! neither empty nor 8 bytes, its start or end time missing, its end before its start, its kind
//! unknown, or its sampling multiplier invalid. An empty or all-zero parent id makes a root span.
//!
//! Speed: one pass over each span's attributes, matching keys without allocating; the only
//! allocations are the strings a [`Span`] keeps (tenant, service, and peer values when present).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{self as pb, span, status};
use prost::Message as _;

use super::{DecodeConfig, ResourceIdentity};
use crate::record::{Origin, Peer, RawMessage, Span, SpanKind, WireFormat};

/// A span decoding failure: what was wrong, for the dead-letter reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpanDecodeError {
    /// The message is not a protobuf `ExportTraceServiceRequest`; nothing was decoded.
    #[error("otlp protobuf: failed to decode ExportTraceServiceRequest: {0}")]
    OtlpProto(String),
    /// The message is not an OTLP JSON `ExportTraceServiceRequest`; nothing was decoded.
    #[error("otlp json: failed to decode ExportTraceServiceRequest: {0}")]
    OtlpJson(String),
    /// The message's wire format cannot carry spans; nothing was decoded.
    #[error("spans: {} is not a spans format. Spans accept otlp_proto or otlp_json.", format_name(*.0))]
    UnsupportedFormat(WireFormat),
    /// The archived span (a replay's input) is damaged; nothing was decoded.
    #[error("archived span: {0}")]
    Archived(super::archived::ArchivedError),
    /// One span (0-based index over all spans of the message, in order) was refused; the others
    /// were decoded.
    #[error("span {index} `{name}`: {problem}")]
    Span {
        index: usize,
        name: String,
        problem: SpanProblem,
    },
}

fn format_name(format: WireFormat) -> &'static str {
    match format {
        WireFormat::OtlpProto => "otlp_proto",
        WireFormat::OtlpJson => "otlp_json",
        WireFormat::JsonLines => "json_lines",
        WireFormat::Text => "text",
        WireFormat::Archived => "archived",
    }
}

/// Why one span was refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum SpanProblem {
    /// The trace id does not have 16 bytes.
    #[error("trace id has {0} bytes, expected 16")]
    TraceIdLength(usize),
    /// The trace id is all zero (invalid in OTLP).
    #[error("trace id is all zero")]
    TraceIdZero,
    /// The span id does not have 8 bytes.
    #[error("span id has {0} bytes, expected 8")]
    SpanIdLength(usize),
    /// The span id is all zero (invalid in OTLP).
    #[error("span id is all zero")]
    SpanIdZero,
    /// The parent span id is neither empty (a root span) nor 8 bytes.
    #[error("parent span id has {0} bytes, expected 8 (or none for a root span)")]
    ParentIdLength(usize),
    /// `start_time_unix_nano` is 0: the span has no duration.
    #[error("start time is missing (start_time_unix_nano is 0)")]
    MissingStartTime,
    /// `end_time_unix_nano` is 0: the span has no event time.
    #[error("end time is missing (end_time_unix_nano is 0)")]
    MissingEndTime,
    /// The span ends before it starts.
    #[error("end time {end} ns is before start time {start} ns")]
    EndBeforeStart { start: u64, end: u64 },
    /// The kind is not one of OTLP's span kinds.
    #[error("kind {0} is not an OTLP span kind")]
    UnknownKind(i32),
    /// The sampling attribute is not a finite number of at least 1.
    #[error("sampling attribute `{attribute}` is {value}, expected a finite number >= 1")]
    SamplingAttribute { attribute: String, value: String },
    /// The `tracestate` OpenTelemetry entry holds a threshold that cannot be read.
    #[error(
        "tracestate entry `ot={value}` has an invalid sampling threshold, expected th:<1 to 14 hex digits> or p:<0 to 62>"
    )]
    TraceState { value: String },
}

/// Decodes one spans message. Pushes decoded spans to `out`. A message that cannot be parsed at
/// all yields one error and no spans; a span that is invalid (see the module documentation)
/// yields one error naming its index and name, and the other spans are still decoded. INTERNAL
/// and UNSPECIFIED spans are skipped: they are not calls.
///
/// Called by the runtime's decode stage for every message whose signal is spans; the caller
/// turns each error into a dead letter for `msg`.
pub fn decode_spans(
    msg: &RawMessage,
    cfg: &DecodeConfig,
    out: &mut Vec<Span>,
    errors: &mut Vec<SpanDecodeError>,
) {
    match msg.encoding.format {
        WireFormat::OtlpProto => match ExportTraceServiceRequest::decode(msg.payload.as_slice()) {
            Ok(request) => decode_request(&request, msg.origin, cfg, out, errors),
            Err(e) => errors.push(SpanDecodeError::OtlpProto(e.to_string())),
        },
        WireFormat::OtlpJson => match otlp_json::parse(&msg.payload) {
            Ok(request) => decode_request(&request, msg.origin, cfg, out, errors),
            Err(e) => errors.push(SpanDecodeError::OtlpJson(e)),
        },
        format @ (WireFormat::JsonLines | WireFormat::Text) => {
            errors.push(SpanDecodeError::UnsupportedFormat(format))
        }
        WireFormat::Archived => match super::archived::decode_span(&msg.payload, msg.origin) {
            Ok(span) => out.push(span),
            Err(e) => errors.push(SpanDecodeError::Archived(e)),
        },
    }
}

/// Decodes a parsed OTLP request. Shared by the protobuf and the JSON path, so that both
/// encodings of one request give the same spans and errors.
fn decode_request(
    request: &ExportTraceServiceRequest,
    origin: Origin,
    cfg: &DecodeConfig,
    out: &mut Vec<Span>,
    errors: &mut Vec<SpanDecodeError>,
) {
    let mut index = 0;
    for rs in &request.resource_spans {
        let attributes = rs
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let identity = ResourceIdentity::from_otlp(attributes, cfg);
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            match decode_span(span, &identity, origin, cfg) {
                Ok(Some(decoded)) => out.push(decoded),
                Ok(None) => {}
                Err(problem) => errors.push(SpanDecodeError::Span {
                    index,
                    name: span.name.clone(),
                    problem,
                }),
            }
            index += 1;
        }
    }
}

/// One span, or `None` for a span that is not part of a call (INTERNAL, UNSPECIFIED).
fn decode_span(
    span: &pb::Span,
    identity: &ResourceIdentity,
    origin: Origin,
    cfg: &DecodeConfig,
) -> Result<Option<Span>, SpanProblem> {
    let kind = match span::SpanKind::try_from(span.kind) {
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        Ok(span::SpanKind::Internal | span::SpanKind::Unspecified) => return Ok(None),
        Err(_) => return Err(SpanProblem::UnknownKind(span.kind)),
    };
    let trace_id: [u8; 16] = span
        .trace_id
        .as_slice()
        .try_into()
        .map_err(|_| SpanProblem::TraceIdLength(span.trace_id.len()))?;
    if trace_id == [0; 16] {
        return Err(SpanProblem::TraceIdZero);
    }
    let span_id: [u8; 8] = span
        .span_id
        .as_slice()
        .try_into()
        .map_err(|_| SpanProblem::SpanIdLength(span.span_id.len()))?;
    if span_id == [0; 8] {
        return Err(SpanProblem::SpanIdZero);
    }
    let parent_span_id = match span.parent_span_id.as_slice() {
        [] => None,
        id => match <[u8; 8]>::try_from(id) {
            Ok([0, 0, 0, 0, 0, 0, 0, 0]) => None,
            Ok(id) => Some(id),
            Err(_) => return Err(SpanProblem::ParentIdLength(id.len())),
        },
    };
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    if start == 0 {
        return Err(SpanProblem::MissingStartTime);
    }
    if end == 0 {
        return Err(SpanProblem::MissingEndTime);
    }
    if end < start {
        return Err(SpanProblem::EndBeforeStart { start, end });
    }

    let scan = AttributeScan::of(span, cfg);
    let weight = match scan.weight {
        Some(value) => attribute_weight(value).ok_or_else(|| SpanProblem::SamplingAttribute {
            attribute: cfg.sampling_attribute.clone(),
            value: describe(value),
        })?,
        None => tracestate_weight(&span.trace_state)?,
    };
    let status_error = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == status::StatusCode::Error as i32);
    Ok(Some(Span {
        tenant: identity.tenant.clone(),
        service: identity.urn.clone(),
        trace_id,
        span_id,
        parent_span_id,
        kind,
        // u64::MAX ns is about 1.8e13 ms: the cast cannot wrap.
        ts: (end / 1_000_000) as i64,
        duration_ms: (end - start) as f64 / 1e6,
        error: status_error || scan.error,
        weight,
        peer: scan.peer(kind),
        origin,
    }))
}

/// What one pass over a span's attributes found, borrowing from the span. Where a key repeats
/// (OTLP forbids it), the first occurrence counts, as in [`super::attribute`].
#[derive(Default)]
struct AttributeScan<'a> {
    weight: Option<&'a any_value::Value>,
    error: bool,
    peer_service: Option<&'a str>,
    server_address: Option<&'a str>,
    net_peer_name: Option<&'a str>,
    http_host: Option<&'a str>,
    net_host_name: Option<&'a str>,
    db_system: Option<&'a str>,
    db_system_name: Option<&'a str>,
    db_name: Option<&'a str>,
    db_namespace: Option<&'a str>,
    messaging_system: Option<&'a str>,
    messaging_destination_name: Option<&'a str>,
    messaging_destination: Option<&'a str>,
    client_address: Option<&'a str>,
    net_sock_peer_addr: Option<&'a str>,
    net_peer_ip: Option<&'a str>,
}

impl<'a> AttributeScan<'a> {
    fn of(span: &'a pb::Span, cfg: &DecodeConfig) -> Self {
        let mut scan = AttributeScan::default();
        for kv in &span.attributes {
            let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
                continue;
            };
            if kv.key == cfg.sampling_attribute {
                scan.weight = scan.weight.or(Some(value));
                continue;
            }
            let slot = match kv.key.as_str() {
                "http.response.status_code" | "http.status_code" => {
                    scan.error |= integer(value).is_some_and(|code| code >= 500);
                    continue;
                }
                "rpc.grpc.status_code" => {
                    scan.error |= matches!(integer(value), Some(2 | 4 | 12 | 13 | 14 | 15));
                    continue;
                }
                "peer.service" => &mut scan.peer_service,
                "server.address" => &mut scan.server_address,
                "net.peer.name" => &mut scan.net_peer_name,
                "http.host" => &mut scan.http_host,
                "net.host.name" => &mut scan.net_host_name,
                "db.system" => &mut scan.db_system,
                "db.system.name" => &mut scan.db_system_name,
                "db.name" => &mut scan.db_name,
                "db.namespace" => &mut scan.db_namespace,
                "messaging.system" => &mut scan.messaging_system,
                "messaging.destination.name" => &mut scan.messaging_destination_name,
                "messaging.destination" => &mut scan.messaging_destination,
                "client.address" => &mut scan.client_address,
                "net.sock.peer.addr" => &mut scan.net_sock_peer_addr,
                "net.peer.ip" => &mut scan.net_peer_ip,
                _ => continue,
            };
            if slot.is_none() {
                *slot = text(value);
            }
        }
        scan
    }

    /// The peer attributes, newer conventions before older ones; `None` when there are none.
    fn peer(&self, kind: SpanKind) -> Option<Box<Peer>> {
        let server_address =
            self.server_address
                .or(self.net_peer_name)
                .or(if kind == SpanKind::Client {
                    self.http_host.or(self.net_host_name)
                } else {
                    None
                });
        let client_address = if kind == SpanKind::Server {
            self.client_address
                .or(self.net_sock_peer_addr)
                .or(self.net_peer_ip)
        } else {
            None
        };
        let fields = [
            self.peer_service,
            server_address,
            self.db_system.or(self.db_system_name),
            self.db_name.or(self.db_namespace),
            self.messaging_system,
            self.messaging_destination_name
                .or(self.messaging_destination),
            client_address,
        ];
        if fields.iter().all(Option::is_none) {
            return None;
        }
        let [
            peer_service,
            server_address,
            db_system,
            db_name,
            messaging_system,
            messaging_destination,
            client_address,
        ] = fields.map(|f| f.map(str::to_owned));
        Some(Box::new(Peer {
            peer_service,
            server_address,
            db_system,
            db_name,
            messaging_system,
            messaging_destination,
            client_address,
        }))
    }
}

/// A non-empty string value.
fn text(value: &any_value::Value) -> Option<&str> {
    match value {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// An int value, or a string holding one (some instrumentations write status codes as text).
fn integer(value: &any_value::Value) -> Option<i64> {
    match value {
        any_value::Value::IntValue(i) => Some(*i),
        any_value::Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The sampling attribute as a multiplier: a double or int, finite and at least 1.
fn attribute_weight(value: &any_value::Value) -> Option<f64> {
    let w = match value {
        any_value::Value::DoubleValue(d) => *d,
        any_value::Value::IntValue(i) => *i as f64,
        _ => return None,
    };
    (w.is_finite() && w >= 1.0).then_some(w)
}

/// An attribute value as a dead-letter reason shows it.
fn describe(value: &any_value::Value) -> String {
    match value {
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::StringValue(s) => format!("the string {s:?}"),
        any_value::Value::BoolValue(b) => format!("the bool {b}"),
        any_value::Value::BytesValue(_) => "a bytes value".to_owned(),
        any_value::Value::ArrayValue(_) => "an array".to_owned(),
        any_value::Value::KvlistValue(_) => "a key-value list".to_owned(),
        any_value::Value::StringValueStrindex(_) => "a string table reference".to_owned(),
    }
}

/// 2^56: the OpenTelemetry sampling thresholds and randomness are 56-bit numbers.
const THRESHOLD_RANGE: u64 = 1 << 56;

/// The multiplier the W3C `tracestate` OpenTelemetry entry gives: `th` (the rejection threshold)
/// if present, else the legacy `p`, else 1. An `ot` entry whose `th` or `p` cannot be read is an
/// error naming the entry.
fn tracestate_weight(trace_state: &str) -> Result<f64, SpanProblem> {
    // Cheap rejection of the common cases: no tracestate, or none of ours.
    if !trace_state.contains("ot=") {
        return Ok(1.0);
    }
    let Some(ot) = trace_state
        .split(',')
        .map(|member| member.trim_matches([' ', '\t']))
        .find_map(|member| member.strip_prefix("ot="))
    else {
        return Ok(1.0);
    };
    let invalid = || SpanProblem::TraceState {
        value: ot.to_owned(),
    };
    let (mut th, mut p) = (None, None);
    for field in ot.split(';') {
        if let Some(v) = field.strip_prefix("th:") {
            th = th.or(Some(v));
        } else if let Some(v) = field.strip_prefix("p:") {
            p = p.or(Some(v));
        }
    }
    if let Some(th) = th {
        if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let t = u64::from_str_radix(th, 16).map_err(|_| invalid())? << (4 * (14 - th.len()));
        return Ok(THRESHOLD_RANGE as f64 / (THRESHOLD_RANGE - t) as f64);
    }
    if let Some(p) = p {
        return match p.parse::<u8>() {
            Ok(n) if n <= 62 => Ok((1u64 << n) as f64),
            _ => Err(invalid()),
        };
    }
    Ok(1.0)
}

/// The OTLP JSON encoding of `ExportTraceServiceRequest`, read into the protobuf types.
///
/// As for metrics, opentelemetry-proto's own serde support is not used on its own: this model
/// takes int64 nanoseconds as JSON numbers or strings, span kinds and status codes as ints or
/// their enum names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`), ids as hex in either case,
/// `null` as the default, ignores unknown fields (events, links, flags, ...), as OTLP
/// requires, and fails loudly on anything else. Attributes use the crate's `KeyValue`, which
/// reads them correctly.
mod otlp_json {
    use crate::decode::otlp_json_common::{nullable, Resource};
    use std::marker::PhantomData;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
    use opentelemetry_proto::tonic::trace::v1 as pb;
    use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

    /// Parses an OTLP JSON trace request; the error is the reason for the dead letter.
    pub(super) fn parse(payload: &[u8]) -> Result<ExportTraceServiceRequest, String> {
        let request: Request = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let resource_spans = request
            .resource_spans
            .into_iter()
            .map(|rs| pb::ResourceSpans {
                resource: rs.resource.map(|r| PbResource {
                    attributes: r.attributes,
                    ..Default::default()
                }),
                scope_spans: rs
                    .scope_spans
                    .into_iter()
                    .map(|ss| pb::ScopeSpans {
                        spans: ss.spans.into_iter().map(Span::into_proto).collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        Ok(ExportTraceServiceRequest { resource_spans })
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request {
        #[serde(default, deserialize_with = "nullable")]
        resource_spans: Vec<ResourceSpans>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ResourceSpans {
        resource: Option<Resource>,
        #[serde(default, deserialize_with = "nullable")]
        scope_spans: Vec<ScopeSpans>,
    }

    #[derive(serde::Deserialize)]
    struct ScopeSpans {
        #[serde(default, deserialize_with = "nullable")]
        spans: Vec<Span>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Span {
        #[serde(default)]
        trace_id: HexId,
        #[serde(default)]
        span_id: HexId,
        #[serde(default)]
        parent_span_id: HexId,
        #[serde(default, deserialize_with = "nullable")]
        trace_state: String,
        #[serde(default, deserialize_with = "nullable")]
        name: String,
        #[serde(default)]
        kind: Enum<SpanKindNames>,
        #[serde(default)]
        start_time_unix_nano: Nanos,
        #[serde(default)]
        end_time_unix_nano: Nanos,
        #[serde(default, deserialize_with = "nullable")]
        attributes: Vec<KeyValue>,
        status: Option<Status>,
    }

    impl Span {
        fn into_proto(self) -> pb::Span {
            pb::Span {
                trace_id: self.trace_id.0,
                span_id: self.span_id.0,
                parent_span_id: self.parent_span_id.0,
                trace_state: self.trace_state,
                name: self.name,
                kind: self.kind.0,
                start_time_unix_nano: self.start_time_unix_nano.0,
                end_time_unix_nano: self.end_time_unix_nano.0,
                attributes: self.attributes,
                status: self.status.map(|s| pb::Status {
                    code: s.code.0,
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
    }

    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        code: Enum<StatusCodeNames>,
    }

    /// A trace, span or parent id: a hex string (either case); `""` and `null` are empty.
    #[derive(Default)]
    struct HexId(Vec<u8>);

    impl<'de> Deserialize<'de> for HexId {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct HexVisitor;
            impl Visitor<'_> for HexVisitor {
                type Value = HexId;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an id as a hex string")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<HexId, E> {
                    hex::decode(v)
                        .map(HexId)
                        .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<HexId, E> {
                    Ok(HexId::default())
                }
            }
            deserializer.deserialize_any(HexVisitor)
        }
    }

    /// An int64 of nanoseconds: a JSON number or a string holding one; `null` is 0.
    #[derive(Default)]
    struct Nanos(u64);

    impl<'de> Deserialize<'de> for Nanos {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct NanosVisitor;
            impl Visitor<'_> for NanosVisitor {
                type Value = Nanos;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("nanoseconds as a JSON integer or string")
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Nanos, E> {
                    Ok(Nanos(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nanos, E> {
                    u64::try_from(v)
                        .map(Nanos)
                        .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Nanos, E> {
                    v.parse()
                        .map(Nanos)
                        .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Nanos, E> {
                    Ok(Nanos(0))
                }
            }
            deserializer.deserialize_any(NanosVisitor)
        }
    }

    /// The names of a protobuf enum's values, for [`Enum`].
    trait EnumNames {
        const WHAT: &'static str;
        fn value(name: &str) -> Option<i32>;
    }

    struct SpanKindNames;

    impl EnumNames for SpanKindNames {
        const WHAT: &'static str = "a span kind (an int or a name like SPAN_KIND_SERVER)";
        fn value(name: &str) -> Option<i32> {
            pb::span::SpanKind::from_str_name(name).map(|k| k as i32)
        }
    }

    struct StatusCodeNames;

    impl EnumNames for StatusCodeNames {
        const WHAT: &'static str = "a status code (an int or a name like STATUS_CODE_ERROR)";
        fn value(name: &str) -> Option<i32> {
            pb::status::StatusCode::from_str_name(name).map(|c| c as i32)
        }
    }

    /// A protobuf enum: its int value (kept as is when unknown, as protobuf does; the decoder
    /// judges it) or its value name; `null` is 0.
    struct Enum<N>(i32, PhantomData<N>);

    impl<N> Default for Enum<N> {
        fn default() -> Self {
            Enum(0, PhantomData)
        }
    }

    impl<'de, N: EnumNames> Deserialize<'de> for Enum<N> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct EnumVisitor<N>(PhantomData<N>);
            impl<N: EnumNames> Visitor<'_> for EnumVisitor<N> {
                type Value = Enum<N>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(N::WHAT)
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Enum<N>, E> {
                    i32::try_from(v)
                        .map(|v| Enum(v, PhantomData))
                        .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Enum<N>, E> {
                    i32::try_from(v)
                        .map(|v| Enum(v, PhantomData))
                        .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Enum<N>, E> {
                    N::value(v)
                        .map(|v| Enum(v, PhantomData))
                        .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Enum<N>, E> {
                    Ok(Enum::default())
                }
            }
            deserializer.deserialize_any(EnumVisitor(PhantomData))
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
    use span::SpanKind as Pk;

    use super::*;
    use crate::record::{Encoding, Signal};

    /// End time of the test spans: 2023-11-14T22:13:20.123456789Z, 1_700_000_000_123 ms.
    const T0: u64 = 1_700_000_000_123_456_789;
    const T0_MS: i64 = 1_700_000_000_123;
    /// The test spans last 2.5 ms.
    const LENGTH: u64 = 2_500_000;
    const ORIGIN: Origin = Origin {
        partition: 1,
        offset: 9,
    };
    const TRACE: [u8; 16] = [
        0x5b, 0x8e, 0xff, 0xf7, 0x98, 3, 0x81, 3, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
    ];

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(key: &str, value: &str) -> KeyValue {
        kv(key, any_value::Value::StringValue(value.to_owned()))
    }

    fn int(key: &str, value: i64) -> KeyValue {
        kv(key, any_value::Value::IntValue(value))
    }

    fn double(key: &str, value: f64) -> KeyValue {
        kv(key, any_value::Value::DoubleValue(value))
    }

    fn id(n: u8) -> [u8; 8] {
        [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, n]
    }

    /// A valid span of `kind` with span id `id(n)`, the given parent and attributes.
    fn span(kind: Pk, n: u8, parent: Option<u8>, attributes: Vec<KeyValue>) -> pb::Span {
        pb::Span {
            trace_id: TRACE.to_vec(),
            span_id: id(n).to_vec(),
            parent_span_id: parent.map(|p| id(p).to_vec()).unwrap_or_default(),
            name: format!("op-{n}"),
            kind: kind as i32,
            start_time_unix_nano: T0 - LENGTH,
            end_time_unix_nano: T0,
            attributes,
            ..Default::default()
        }
    }

    fn request(resources: Vec<(Vec<KeyValue>, Vec<pb::Span>)>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: resources
                .into_iter()
                .map(|(attributes, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn checkout() -> Vec<KeyValue> {
        vec![
            text("service.name", "checkout"),
            text("k8s.namespace.name", "shop"),
            text("tenant.id", "acme"),
        ]
    }

    fn decode_as(
        format: WireFormat,
        payload: Vec<u8>,
        cfg: &DecodeConfig,
    ) -> (Vec<Span>, Vec<SpanDecodeError>) {
        let msg = RawMessage {
            origin: ORIGIN,
            encoding: Encoding::new(Signal::Spans, format),
            payload,
        };
        let (mut spans, mut errors) = (Vec::new(), Vec::new());
        decode_spans(&msg, cfg, &mut spans, &mut errors);
        (spans, errors)
    }

    /// Decodes `req` as OTLP protobuf bytes and as OTLP JSON (written by opentelemetry-proto's
    /// serializer: hex ids, int64 as strings, kinds as ints), checks that both give the same
    /// result, and returns it.
    fn decode_otlp(
        req: &ExportTraceServiceRequest,
        cfg: &DecodeConfig,
    ) -> (Vec<Span>, Vec<SpanDecodeError>) {
        let proto = decode_as(WireFormat::OtlpProto, req.encode_to_vec(), cfg);
        let json = decode_as(WireFormat::OtlpJson, serde_json::to_vec(req).unwrap(), cfg);
        assert_eq!(proto, json, "protobuf and JSON decodes differ");
        proto
    }

    /// The span `span(kind, n, parent, ..)` decodes to when nothing else is set, in checkout.
    fn decoded(kind: SpanKind, n: u8, parent: Option<u8>) -> Span {
        Span {
            tenant: "acme".to_owned(),
            service: "urn:k8s:svc:shop/checkout".to_owned(),
            trace_id: TRACE,
            span_id: id(n),
            parent_span_id: parent.map(id),
            kind,
            ts: T0_MS,
            duration_ms: 2.5,
            error: false,
            weight: 1.0,
            peer: None,
            origin: ORIGIN,
        }
    }

    /// Decodes one checkout span (both encodings) and returns the decoded span or the reasons.
    fn one(s: pb::Span) -> Result<Span, Vec<String>> {
        let (mut spans, errors) = decode_otlp(
            &request(vec![(checkout(), vec![s])]),
            &DecodeConfig::default(),
        );
        match (spans.pop(), errors.is_empty()) {
            (Some(s), true) if spans.is_empty() => Ok(s),
            _ => Err(errors.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn proto_and_json_give_the_same_spans() {
        let req = request(vec![
            (
                checkout(),
                vec![
                    span(
                        Pk::Server,
                        1,
                        None,
                        vec![
                            text("client.address", "203.0.113.7"),
                            text("http.route", "/checkout"),
                        ],
                    ),
                    span(
                        Pk::Client,
                        2,
                        Some(1),
                        vec![
                            text("peer.service", "payments"),
                            int("http.response.status_code", 201),
                        ],
                    ),
                    span(Pk::Internal, 3, Some(1), vec![]),
                    span(
                        Pk::Producer,
                        4,
                        Some(1),
                        vec![
                            text("messaging.system", "kafka"),
                            text("messaging.destination.name", "orders"),
                        ],
                    ),
                    span(Pk::Unspecified, 5, Some(1), vec![]),
                ],
            ),
            (
                vec![
                    text("service.name", "mailer"),
                    text("service.namespace", "ops"),
                ],
                vec![span(
                    Pk::Consumer,
                    6,
                    Some(4),
                    vec![double("sampling.adjusted_count", 4.0)],
                )],
            ),
            (
                vec![text("host.name", "node-1")],
                vec![span(Pk::Client, 7, None, vec![text("db.system", "redis")])],
            ),
        ]);
        let (spans, errors) = decode_otlp(&req, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        let peer = |p: Peer| Some(Box::new(p));
        assert_eq!(
            spans,
            vec![
                Span {
                    peer: peer(Peer {
                        client_address: Some("203.0.113.7".into()),
                        ..Peer::default()
                    }),
                    ..decoded(SpanKind::Server, 1, None)
                },
                Span {
                    peer: peer(Peer {
                        peer_service: Some("payments".into()),
                        ..Peer::default()
                    }),
                    ..decoded(SpanKind::Client, 2, Some(1))
                },
                Span {
                    peer: peer(Peer {
                        messaging_system: Some("kafka".into()),
                        messaging_destination: Some("orders".into()),
                        ..Peer::default()
                    }),
                    ..decoded(SpanKind::Producer, 4, Some(1))
                },
                Span {
                    tenant: "default".into(),
                    service: "urn:k8s:svc:ops/mailer".into(),
                    weight: 4.0,
                    ..decoded(SpanKind::Consumer, 6, Some(4))
                },
                Span {
                    tenant: "default".into(),
                    service: "urn:host:node-1".into(),
                    peer: peer(Peer {
                        db_system: Some("redis".into()),
                        ..Peer::default()
                    }),
                    ..decoded(SpanKind::Client, 7, None)
                },
            ]
        );
    }

    #[test]
    fn every_refused_span_names_what_was_wrong() {
        let server = |n| span(Pk::Server, n, None, vec![]);
        let bad = vec![
            pb::Span {
                trace_id: vec![1; 15],
                ..server(0)
            },
            pb::Span {
                trace_id: vec![0; 16],
                ..server(1)
            },
            pb::Span {
                span_id: vec![],
                ..server(2)
            },
            pb::Span {
                span_id: vec![0; 8],
                ..server(3)
            },
            pb::Span {
                parent_span_id: vec![7; 4],
                ..server(4)
            },
            pb::Span {
                end_time_unix_nano: 0,
                ..server(5)
            },
            pb::Span {
                start_time_unix_nano: 0,
                ..server(6)
            },
            pb::Span {
                start_time_unix_nano: T0 + 1,
                ..server(7)
            },
            pb::Span {
                kind: 9,
                ..server(8)
            },
            span(
                Pk::Server,
                9,
                None,
                vec![double("sampling.adjusted_count", 0.5)],
            ),
            span(
                Pk::Server,
                10,
                None,
                vec![double("sampling.adjusted_count", -3.0)],
            ),
            span(
                Pk::Server,
                11,
                None,
                vec![text("sampling.adjusted_count", "")],
            ),
            span(
                Pk::Server,
                12,
                None,
                vec![int("sampling.adjusted_count", 0)],
            ),
            span(
                Pk::Server,
                13,
                None,
                vec![text("sampling.adjusted_count", "10")],
            ),
            pb::Span {
                trace_state: "ot=th:xyz".into(),
                ..server(14)
            },
            pb::Span {
                trace_state: "ot=th:123456789abcdef".into(),
                ..server(15)
            },
            pb::Span {
                trace_state: "ot=p:63;rv:01".into(),
                ..server(16)
            },
            pb::Span {
                trace_state: "ot=th:".into(),
                ..server(17)
            },
            // Not refused: INTERNAL spans are skipped before they are checked.
            pb::Span {
                trace_id: vec![],
                ..span(Pk::Internal, 18, None, vec![])
            },
            server(19),
        ];
        let (spans, errors) =
            decode_otlp(&request(vec![(checkout(), bad)]), &DecodeConfig::default());
        assert_eq!(spans, vec![decoded(SpanKind::Server, 19, None)]);
        let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "span 0 `op-0`: trace id has 15 bytes, expected 16",
                "span 1 `op-1`: trace id is all zero",
                "span 2 `op-2`: span id has 0 bytes, expected 8",
                "span 3 `op-3`: span id is all zero",
                "span 4 `op-4`: parent span id has 4 bytes, expected 8 (or none for a root span)",
                "span 5 `op-5`: end time is missing (end_time_unix_nano is 0)",
                "span 6 `op-6`: start time is missing (start_time_unix_nano is 0)",
                "span 7 `op-7`: end time 1700000000123456789 ns is before start time 1700000000123456790 ns",
                "span 8 `op-8`: kind 9 is not an OTLP span kind",
                "span 9 `op-9`: sampling attribute `sampling.adjusted_count` is 0.5, expected a finite number >= 1",
                "span 10 `op-10`: sampling attribute `sampling.adjusted_count` is -3, expected a finite number >= 1",
                "span 11 `op-11`: sampling attribute `sampling.adjusted_count` is the string \"\", expected a finite number >= 1",
                "span 12 `op-12`: sampling attribute `sampling.adjusted_count` is 0, expected a finite number >= 1",
                "span 13 `op-13`: sampling attribute `sampling.adjusted_count` is the string \"10\", expected a finite number >= 1",
                "span 14 `op-14`: tracestate entry `ot=th:xyz` has an invalid sampling threshold, expected th:<1 to 14 hex digits> or p:<0 to 62>",
                "span 15 `op-15`: tracestate entry `ot=th:123456789abcdef` has an invalid sampling threshold, expected th:<1 to 14 hex digits> or p:<0 to 62>",
                "span 16 `op-16`: tracestate entry `ot=p:63;rv:01` has an invalid sampling threshold, expected th:<1 to 14 hex digits> or p:<0 to 62>",
                "span 17 `op-17`: tracestate entry `ot=th:` has an invalid sampling threshold, expected th:<1 to 14 hex digits> or p:<0 to 62>",
            ]
        );
    }

    #[test]
    fn non_finite_sampling_multipliers_are_refused() {
        // Protobuf only: JSON cannot carry NaN or infinity as a number.
        for (w, shown) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            let req = request(vec![(
                checkout(),
                vec![span(
                    Pk::Client,
                    1,
                    None,
                    vec![double("sampling.adjusted_count", w)],
                )],
            )]);
            let (spans, errors) = decode_as(
                WireFormat::OtlpProto,
                req.encode_to_vec(),
                &DecodeConfig::default(),
            );
            assert_eq!(spans, vec![]);
            assert_eq!(
                errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                vec![format!(
                    "span 0 `op-1`: sampling attribute `sampling.adjusted_count` is {shown}, expected a finite number >= 1"
                )]
            );
        }
    }

    #[test]
    fn roots_have_no_parent() {
        for parent in [vec![], vec![0; 8]] {
            let s = pb::Span {
                parent_span_id: parent,
                ..span(Pk::Server, 1, None, vec![])
            };
            assert_eq!(one(s), Ok(decoded(SpanKind::Server, 1, None)));
        }
    }

    #[test]
    fn time_is_the_end_in_whole_milliseconds() {
        let s = pb::Span {
            start_time_unix_nano: 1_000_000_000_000_999_999,
            end_time_unix_nano: 1_000_000_000_002_000_001,
            ..span(Pk::Client, 1, None, vec![])
        };
        let decoded = one(s).unwrap();
        assert_eq!(decoded.ts, 1_000_000_000_002);
        assert_eq!(decoded.duration_ms, 1.000_002);
        let instant = pb::Span {
            start_time_unix_nano: T0,
            ..span(Pk::Client, 1, None, vec![])
        };
        assert_eq!(one(instant).unwrap().duration_ms, 0.0);
    }

    fn weight(attributes: Vec<KeyValue>, trace_state: &str) -> f64 {
        let s = pb::Span {
            trace_state: trace_state.to_owned(),
            ..span(Pk::Server, 1, None, attributes)
        };
        one(s).unwrap().weight
    }

    #[test]
    fn weights_come_from_the_attribute_else_the_tracestate() {
        let attr = |w| vec![double("sampling.adjusted_count", w)];
        assert_eq!(weight(vec![], ""), 1.0);
        assert_eq!(weight(attr(10.0), ""), 10.0);
        assert_eq!(weight(attr(1.0), ""), 1.0);
        assert_eq!(weight(vec![int("sampling.adjusted_count", 4)], ""), 4.0);
        // th: the rejection threshold, right-padded to 56 bits; adjusted count 2^56 / (2^56 - T).
        assert_eq!(weight(vec![], "ot=th:0"), 1.0);
        assert_eq!(weight(vec![], "ot=th:8"), 2.0);
        assert_eq!(weight(vec![], "ot=th:c"), 4.0);
        assert_eq!(weight(vec![], "ot=th:f"), 16.0);
        assert_eq!(weight(vec![], "ot=th:ff"), 256.0);
        assert_eq!(weight(vec![], "ot=th:ffffffffffffff"), 2f64.powi(56));
        // The OpenTelemetry specification's 1% example: th:fd70a3d70a3d71.
        assert!((weight(vec![], "ot=th:fd70a3d70a3d71") - 100.0).abs() < 1e-9);
        assert_eq!(
            weight(
                vec![],
                "congo=t61rcWkgMzE, ot=rv:abcdefabcdef12;th:8 ,rojo=00f067aa0ba902b7"
            ),
            2.0
        );
        // Legacy p: 2^p; th wins over p.
        assert_eq!(weight(vec![], "ot=p:3"), 8.0);
        assert_eq!(weight(vec![], "ot=p:0"), 1.0);
        assert_eq!(weight(vec![], "ot=p:62"), 2f64.powi(62));
        assert_eq!(weight(vec![], "ot=p:3;th:8"), 2.0);
        // An ot entry without a threshold, or other vendors' entries only.
        assert_eq!(weight(vec![], "ot=rv:abcdefabcdef12"), 1.0);
        assert_eq!(weight(vec![], "xot=th:8,rot=p:2"), 1.0);
        // The attribute wins over the tracestate.
        assert_eq!(weight(attr(10.0), "ot=th:8"), 10.0);
        // The attribute's name is configured.
        let cfg = DecodeConfig {
            sampling_attribute: "SampleRate".to_owned(),
            ..DecodeConfig::default()
        };
        let req = request(vec![(
            checkout(),
            vec![span(
                Pk::Server,
                1,
                None,
                vec![
                    int("SampleRate", 20),
                    double("sampling.adjusted_count", 5.0),
                ],
            )],
        )]);
        let (spans, errors) = decode_otlp(&req, &cfg);
        assert_eq!(errors, vec![]);
        assert_eq!(spans[0].weight, 20.0);
    }

    fn is_error(attributes: Vec<KeyValue>, status: Option<status::StatusCode>) -> bool {
        let s = pb::Span {
            status: status.map(|code| Status {
                code: code as i32,
                message: "boom".into(),
            }),
            ..span(Pk::Server, 1, None, attributes)
        };
        one(s).unwrap().error
    }

    #[test]
    fn error_rules() {
        use status::StatusCode::{Error, Ok, Unset};
        assert!(!is_error(vec![], None));
        assert!(!is_error(vec![], Some(Unset)));
        assert!(!is_error(vec![], Some(Ok)));
        assert!(is_error(vec![], Some(Error)));
        assert!(is_error(vec![int("http.response.status_code", 500)], None));
        assert!(is_error(
            vec![int("http.response.status_code", 503)],
            Some(Ok)
        ));
        assert!(!is_error(vec![int("http.response.status_code", 499)], None));
        assert!(!is_error(vec![int("http.response.status_code", 404)], None));
        assert!(is_error(vec![int("http.status_code", 502)], None));
        assert!(is_error(vec![text("http.status_code", "504")], None));
        assert!(!is_error(
            vec![text("http.response.status_code", "200")],
            None
        ));
        assert!(!is_error(
            vec![text("http.response.status_code", "5xx")],
            None
        ));
        for code in [2, 4, 12, 13, 14, 15] {
            assert!(
                is_error(vec![int("rpc.grpc.status_code", code)], None),
                "grpc {code}"
            );
        }
        for code in [0, 1, 3, 5, 6, 7, 8, 9, 10, 11, 16] {
            assert!(
                !is_error(vec![int("rpc.grpc.status_code", code)], None),
                "grpc {code}"
            );
        }
        assert!(is_error(vec![text("rpc.grpc.status_code", "14")], None));
    }

    fn peer(kind: Pk, attributes: Vec<KeyValue>) -> Option<Peer> {
        one(span(kind, 1, None, attributes))
            .unwrap()
            .peer
            .map(|p| *p)
    }

    #[test]
    fn peer_attributes_with_the_older_conventions() {
        assert_eq!(peer(Pk::Client, vec![text("http.route", "/x")]), None);
        assert_eq!(
            peer(Pk::Client, vec![text("peer.service", "")]),
            None,
            "empty counts as absent"
        );
        assert_eq!(
            peer(Pk::Client, vec![int("server.address", 7)]),
            None,
            "only strings name peers"
        );
        let server_address = |a: &str| {
            Some(Peer {
                server_address: Some(a.to_owned()),
                ..Peer::default()
            })
        };
        // server.address, else net.peer.name, else (client spans) http.host, else net.host.name.
        assert_eq!(
            peer(
                Pk::Client,
                vec![text("net.peer.name", "old"), text("server.address", "new")]
            ),
            server_address("new")
        );
        assert_eq!(
            peer(
                Pk::Client,
                vec![text("http.host", "host"), text("net.peer.name", "old")]
            ),
            server_address("old")
        );
        assert_eq!(
            peer(
                Pk::Client,
                vec![text("net.host.name", "nh"), text("http.host", "host")]
            ),
            server_address("host")
        );
        assert_eq!(
            peer(Pk::Client, vec![text("net.host.name", "nh")]),
            server_address("nh")
        );
        assert_eq!(
            peer(
                Pk::Server,
                vec![text("http.host", "me"), text("net.host.name", "me")]
            ),
            None
        );
        assert_eq!(
            peer(Pk::Server, vec![text("server.address", "api")]),
            server_address("api")
        );
        // Databases and queues, newer names as fallbacks.
        assert_eq!(
            peer(
                Pk::Client,
                vec![
                    text("db.system.name", "postgresql"),
                    text("db.namespace", "orders")
                ]
            ),
            Some(Peer {
                db_system: Some("postgresql".into()),
                db_name: Some("orders".into()),
                ..Peer::default()
            })
        );
        assert_eq!(
            peer(
                Pk::Client,
                vec![
                    text("db.system.name", "other"),
                    text("db.system", "redis"),
                    text("db.name", "a"),
                    text("db.namespace", "b")
                ]
            ),
            Some(Peer {
                db_system: Some("redis".into()),
                db_name: Some("a".into()),
                ..Peer::default()
            })
        );
        assert_eq!(
            peer(
                Pk::Producer,
                vec![
                    text("messaging.system", "kafka"),
                    text("messaging.destination", "old-topic")
                ]
            ),
            Some(Peer {
                messaging_system: Some("kafka".into()),
                messaging_destination: Some("old-topic".into()),
                ..Peer::default()
            })
        );
        assert_eq!(
            peer(
                Pk::Consumer,
                vec![
                    text("messaging.destination", "old"),
                    text("messaging.destination.name", "new")
                ]
            ),
            Some(Peer {
                messaging_destination: Some("new".into()),
                ..Peer::default()
            })
        );
        // client.address, else net.sock.peer.addr, else net.peer.ip, on server spans only.
        let client = |a: &str| {
            Some(Peer {
                client_address: Some(a.to_owned()),
                ..Peer::default()
            })
        };
        assert_eq!(
            peer(
                Pk::Server,
                vec![
                    text("net.peer.ip", "10.0.0.3"),
                    text("net.sock.peer.addr", "10.0.0.2"),
                    text("client.address", "10.0.0.1")
                ]
            ),
            client("10.0.0.1")
        );
        assert_eq!(
            peer(
                Pk::Server,
                vec![
                    text("net.peer.ip", "10.0.0.3"),
                    text("net.sock.peer.addr", "10.0.0.2")
                ]
            ),
            client("10.0.0.2")
        );
        assert_eq!(
            peer(Pk::Server, vec![text("net.peer.ip", "10.0.0.3")]),
            client("10.0.0.3")
        );
        assert_eq!(
            peer(Pk::Client, vec![text("client.address", "10.0.0.1")]),
            None
        );
        // A repeated key: the first one counts.
        assert_eq!(
            peer(
                Pk::Client,
                vec![text("peer.service", "a"), text("peer.service", "b")]
            ),
            Some(Peer {
                peer_service: Some("a".into()),
                ..Peer::default()
            })
        );
    }

    #[test]
    fn otlp_json_accepts_names_numbers_strings_and_nulls() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
            "scopeSpans":[{"scope":null,"spans":[
              {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b101","parentSpanId":"","name":"op-1",
               "kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1700000000120956789","endTimeUnixNano":1700000000123456789,
               "status":{"code":"STATUS_CODE_ERROR","message":"boom"},"events":[{"name":"e"}],"links":[],"flags":257,
               "attributes":[{"key":"http.response.status_code","value":{"intValue":"404"}}]},
              {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b102","parentSpanId":"eee19b7ec3c1b101","name":null,
               "kind":3,"startTimeUnixNano":1700000000120956789,"endTimeUnixNano":"1700000000123456789","status":{"code":0},
               "traceState":"ot=th:c","attributes":null,"droppedAttributesCount":2},
              {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b103","parentSpanId":null,
               "kind":"SPAN_KIND_INTERNAL","startTimeUnixNano":"1","endTimeUnixNano":"2"},
              {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b104","name":"no end","kind":4,
               "startTimeUnixNano":"1700000000120956789","status":null}
            ]}]}]}"#;
        let (spans, errors) = decode_as(
            WireFormat::OtlpJson,
            json.as_bytes().to_vec(),
            &DecodeConfig::default(),
        );
        let cart = |s: Span| Span {
            tenant: "default".into(),
            service: "urn:k8s:svc:default/cart".into(),
            ..s
        };
        assert_eq!(
            spans,
            vec![
                cart(Span {
                    error: true,
                    ..decoded(SpanKind::Server, 1, None)
                }),
                cart(Span {
                    weight: 4.0,
                    ..decoded(SpanKind::Client, 2, Some(1))
                }),
            ]
        );
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["span 3 `no end`: end time is missing (end_time_unix_nano is 0)"]
        );
    }

    #[test]
    fn otlp_json_structural_errors_refuse_the_message() {
        let cases = [
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"eee19b7ec3c1b101","kind":2}]}]}]}"#,
                "otlp json: failed to decode ExportTraceServiceRequest: invalid value: string \"xyz\", expected an id as a hex string at line 1 column 59",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_SERVR"}]}]}]}"#,
                "otlp json: failed to decode ExportTraceServiceRequest: invalid value: string \"SPAN_KIND_SERVR\", expected a span kind (an int or a name like SPAN_KIND_SERVER) at line 1 column 68",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"status":{"code":"ERROR"}}]}]}]}"#,
                "otlp json: failed to decode ExportTraceServiceRequest: invalid value: string \"ERROR\", expected a status code (an int or a name like STATUS_CODE_ERROR) at line 1 column 68",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":"soon"}]}]}]}"#,
                "otlp json: failed to decode ExportTraceServiceRequest: invalid value: string \"soon\", expected nanoseconds as a JSON integer or string at line 1 column 68",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":-5}]}]}]}"#,
                "otlp json: failed to decode ExportTraceServiceRequest: invalid value: integer `-5`, expected nanoseconds as a JSON integer or string at line 1 column 64",
            ),
        ];
        for (json, reason) in cases {
            let (spans, errors) = decode_as(
                WireFormat::OtlpJson,
                json.as_bytes().to_vec(),
                &DecodeConfig::default(),
            );
            assert_eq!(spans, vec![]);
            assert_eq!(
                errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                vec![reason.to_owned()]
            );
        }
    }

    #[test]
    fn garbage_and_other_formats_are_one_error_and_no_spans() {
        let garbage = vec![0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef];
        let truncated = {
            let mut bytes = request(vec![(checkout(), vec![span(Pk::Server, 1, None, vec![])])])
                .encode_to_vec();
            bytes.truncate(bytes.len() - 3);
            bytes
        };
        for (format, payload, prefix) in [
            (
                WireFormat::OtlpProto,
                garbage.clone(),
                "otlp protobuf: failed to decode ExportTraceServiceRequest: ",
            ),
            (
                WireFormat::OtlpProto,
                truncated,
                "otlp protobuf: failed to decode ExportTraceServiceRequest: ",
            ),
            (
                WireFormat::OtlpJson,
                garbage.clone(),
                "otlp json: failed to decode ExportTraceServiceRequest: ",
            ),
            (
                WireFormat::OtlpJson,
                br#"{"resourceSpans":5}"#.to_vec(),
                "otlp json: failed to decode ExportTraceServiceRequest: ",
            ),
        ] {
            let (spans, errors) = decode_as(format, payload, &DecodeConfig::default());
            assert_eq!(spans, vec![]);
            assert_eq!(errors.len(), 1, "{format:?}: {errors:?}");
            let reason = errors[0].to_string();
            assert!(
                reason.starts_with(prefix) && reason.len() > prefix.len(),
                "{reason}"
            );
        }
        for (format, name) in [
            (WireFormat::JsonLines, "json_lines"),
            (WireFormat::Text, "text"),
        ] {
            let (spans, errors) = decode_as(format, b"{}".to_vec(), &DecodeConfig::default());
            assert_eq!(spans, vec![]);
            assert_eq!(
                errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                vec![format!(
                    "spans: {name} is not a spans format. Spans accept otlp_proto or otlp_json."
                )]
            );
        }
        // An empty request is valid and holds nothing.
        assert_eq!(
            decode_as(WireFormat::OtlpProto, Vec::new(), &DecodeConfig::default()),
            (vec![], vec![])
        );
        assert_eq!(
            decode_as(
                WireFormat::OtlpJson,
                b"{}".to_vec(),
                &DecodeConfig::default()
            ),
            (vec![], vec![])
        );
    }

    /// A file under /work/shared/data, or `None` (the test then passes) when it is absent.
    fn shared(path: &str) -> Option<Vec<u8>> {
        let full = format!("{}/../../shared/data/{path}", env!("CARGO_MANIFEST_DIR"));
        match std::fs::read(&full) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                eprintln!("skipping: {full}: {e}");
                None
            }
        }
    }

    fn fixture_span(
        service: &str,
        trace: &str,
        span: &str,
        parent: Option<&str>,
        kind: SpanKind,
        peer: Option<Peer>,
    ) -> Span {
        let bytes = |h: &str| hex::decode(h).unwrap();
        Span {
            tenant: "default".into(),
            service: format!("urn:k8s:svc:default/{service}"),
            trace_id: bytes(trace).try_into().unwrap(),
            span_id: bytes(span).try_into().unwrap(),
            parent_span_id: parent.map(|p| bytes(p).try_into().unwrap()),
            kind,
            ts: 1_800_000_000_000,
            duration_ms: 0.001,
            error: false,
            weight: 1.0,
            peer: peer.map(Box::new),
            origin: ORIGIN,
        }
    }

    #[test]
    fn official_otlp_json_example_decodes() {
        let Some(json) = shared("otlp/opentelemetry-proto/trace.json") else {
            return;
        };
        let (spans, errors) = decode_as(WireFormat::OtlpJson, json, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        assert_eq!(
            spans,
            vec![Span {
                ts: 1_544_712_661_000,
                duration_ms: 1000.0,
                ..fixture_span(
                    "my.service",
                    "5b8efff798038103d269b633813fc60c",
                    "eee19b7ec3c1b174",
                    Some("eee19b7ec3c1b173"),
                    SpanKind::Server,
                    None
                )
            }]
        );
    }

    #[test]
    fn collector_servicegraph_fixtures_decode() {
        const TRACE: &str = "a0000000000000000000000000000000";
        const FOO: &str = "a000000000000000";
        const BAR: &str = "a000000000000001";
        let client = |peer| fixture_span("foo-server", TRACE, FOO, None, SpanKind::Client, peer);
        let server = |trace, parent, peer| {
            fixture_span("bar-requester", trace, BAR, parent, SpanKind::Server, peer)
        };
        let cases = [
            (
                "extra-dimensions-queue-db-trace.yaml",
                vec![
                    client(Some(Peer {
                        messaging_system: Some("kafka".into()),
                        ..Peer::default()
                    })),
                    server(
                        TRACE,
                        Some(FOO),
                        Some(Peer {
                            db_system: Some("postgresql".into()),
                            ..Peer::default()
                        }),
                    ),
                ],
            ),
            (
                "messaging-system-trace.yaml",
                vec![client(None), server(TRACE, Some(FOO), None)],
            ),
            (
                "virtual-node-label-trace.yaml",
                vec![
                    client(None),
                    server(
                        "a0000000000000000000000000000001",
                        None,
                        Some(Peer {
                            peer_service: Some("external-platform".into()),
                            ..Peer::default()
                        }),
                    ),
                ],
            ),
        ];
        for (file, expected) in cases {
            let Some(yaml) = shared(&format!("otlp/collector-contrib-servicegraph/{file}")) else {
                return;
            };
            let value: serde_json::Value = serde_yaml_ng::from_slice(&yaml).unwrap();
            let (spans, errors) = decode_as(
                WireFormat::OtlpJson,
                serde_json::to_vec(&value).unwrap(),
                &DecodeConfig::default(),
            );
            assert_eq!(errors, vec![], "{file}");
            assert_eq!(spans, expected, "{file}");
        }
    }

    /// Throughput of the protobuf path on generator-like messages; run with `--ignored --nocapture`
    /// in release mode for a figure.
    #[test]
    #[ignore]
    fn protobuf_throughput() {
        let spans: Vec<pb::Span> = (0..200u8)
            .map(|n| {
                let attributes = vec![
                    text("http.request.method", "GET"),
                    text("http.route", "/cart/{user_id}"),
                    int("http.response.status_code", 200),
                    int("sampling.adjusted_count", 10),
                ];
                span(
                    if n % 2 == 0 { Pk::Server } else { Pk::Client },
                    n.max(1),
                    Some(n.wrapping_add(1)),
                    attributes,
                )
            })
            .collect();
        let payload = request(vec![(checkout(), spans)]).encode_to_vec();
        let msg = RawMessage {
            origin: ORIGIN,
            encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto),
            payload,
        };
        let cfg = DecodeConfig::default();
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        let started = std::time::Instant::now();
        let rounds = 5_000;
        for _ in 0..rounds {
            out.clear();
            decode_spans(&msg, &cfg, &mut out, &mut errors);
        }
        let rate = (rounds * 200) as f64 / started.elapsed().as_secs_f64();
        // The share of it that is prost's decoding into the generated types.
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            let request = ExportTraceServiceRequest::decode(msg.payload.as_slice()).unwrap();
            std::hint::black_box(request);
        }
        let prost_rate = (rounds * 200) as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "{rate:.0} spans/s, prost alone {prost_rate:.0} spans/s ({} bytes per message)",
            msg.payload.len()
        );
        assert!(errors.is_empty());
    }
}
