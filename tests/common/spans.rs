//! OTLP span messages as the end-to-end tests produce them.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

pub const MS: u64 = 1_000_000;

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

/// One span: (trace, id, parent, kind, end ms, duration ms, error, attributes).
pub struct S(pub u32, pub u8, pub Option<u8>, pub span::SpanKind, pub i64, pub u64, pub bool, pub Vec<KeyValue>);

pub fn pb(s: &S) -> Span {
    let id = |n: u8| {
        let mut v = s.0.to_be_bytes().to_vec();
        v.extend([0, 0, 0, n]);
        v
    };
    let mut trace = vec![0x11; 12];
    trace.extend(s.0.to_be_bytes());
    let end = s.4 as u64 * MS;
    Span {
        trace_id: trace,
        span_id: id(s.1),
        parent_span_id: s.2.map(id).unwrap_or_default(),
        name: "op".into(),
        kind: s.3 as i32,
        start_time_unix_nano: end - s.5 * MS,
        end_time_unix_nano: end,
        attributes: s.7.clone(),
        status: s.6.then(|| Status { code: status::StatusCode::Error as i32, message: "boom".into() }),
        ..Default::default()
    }
}

/// One OTLP message per service holding its spans, as a Collector per service would export.
pub fn message(service: &str, spans: &[S]) -> Vec<u8> {
    message_for(service, None, spans)
}

/// [`message`] of a tenant's service (resource attribute `tenant.id`).
pub fn message_for(service: &str, tenant: Option<&str>, spans: &[S]) -> Vec<u8> {
    let mut attributes = vec![kv("service.name", service), kv("k8s.namespace.name", "shop")];
    attributes.extend(tenant.map(|t| kv("tenant.id", t)));
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes, ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans: spans.iter().map(pb).collect(), ..Default::default() }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&request)
}


/// Keeps one trace in `one_in` (whole traces, by trace id) of a span message, so that a debug
/// build keeps up with the generator's estate; `None` when no span is left.
pub fn sample_traces(payload: &[u8], one_in: u32) -> Option<Vec<u8>> {
    use prost::Message as _;
    let mut request = ExportTraceServiceRequest::decode(payload).expect("otlp spans");
    for resource in &mut request.resource_spans {
        for scope in &mut resource.scope_spans {
            scope.spans.retain(|s| s.trace_id.iter().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(*b))) % one_in == 0);
        }
        resource.scope_spans.retain(|s| !s.spans.is_empty());
    }
    request.resource_spans.retain(|r| !r.scope_spans.is_empty());
    (!request.resource_spans.is_empty()).then(|| request.encode_to_vec())
}
