//! Writes the protobuf seeds of `corpus/otlp_proto` from the OTLP JSON seeds of
//! `corpus/otlp_json` (the opentelemetry-proto examples, Apache-2.0), reading them with
//! opentelemetry-proto's own OTLP JSON support and encoding them with prost: the same requests in
//! the Collector's Kafka exporter default encoding. Also writes one request of each signal with
//! the shapes pairing and metric_1m care about (a client/server pair, a database call, a histogram
//! and an exponential histogram).
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --target-dir fuzz/target --example make_seeds

use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let json = |name: &str| std::fs::read_to_string(corpus.join("otlp_json").join(name));
    let out = corpus.join("otlp_proto");
    std::fs::create_dir_all(&out)?;

    let trace: ExportTraceServiceRequest = serde_json::from_str(&json("trace.json")?)?;
    std::fs::write(out.join("trace.pb"), trace.encode_to_vec())?;
    let logs: ExportLogsServiceRequest = serde_json::from_str(&json("logs.json")?)?;
    std::fs::write(out.join("logs.pb"), logs.encode_to_vec())?;
    let metrics: ExportMetricsServiceRequest = serde_json::from_str(&json("metrics.json")?)?;
    std::fs::write(out.join("metrics.pb"), metrics.encode_to_vec())?;

    std::fs::write(out.join("call-pair.pb"), call_pair().encode_to_vec())?;
    std::fs::write(out.join("histograms.pb"), histograms().encode_to_vec())?;
    std::fs::write(out.join("error-logs.pb"), error_logs().encode_to_vec())?;
    println!("wrote the seeds to {}", out.display());
    Ok(())
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }), ..Default::default() }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![text("service.name", service), text("k8s.namespace.name", "shop"), text("tenant.id", "acme")], ..Default::default() })
}

const T0: u64 = 1_763_730_300_000_000_000;

/// checkout (CLIENT) -> payments (SERVER), and checkout -> postgres (a CLIENT span with db.*).
fn call_pair() -> ExportTraceServiceRequest {
    let trace_id = vec![0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c];
    let make = |id: u8, parent: Option<u8>, kind: span::SpanKind, name: &str, ms: u64, attributes: Vec<KeyValue>, error: bool| Span {
        trace_id: trace_id.clone(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent.map(|p| vec![0, 0, 0, 0, 0, 0, 0, p]).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + ms * 1_000_000,
        attributes,
        status: Some(Status { code: if error { status::StatusCode::Error } else { status::StatusCode::Ok } as i32, message: String::new() }),
        ..Default::default()
    };
    let scope = |spans| vec![ScopeSpans { spans, ..Default::default() }];
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource("checkout"),
                scope_spans: scope(vec![
                    make(1, None, span::SpanKind::Server, "POST /checkout", 120, vec![text("http.route", "/checkout"), int("http.response.status_code", 200)], false),
                    make(2, Some(1), span::SpanKind::Client, "POST /pay", 80, vec![text("peer.service", "payments"), int("sampling.adjusted_count", 4)], false),
                    make(3, Some(1), span::SpanKind::Client, "SELECT orders", 9, vec![text("db.system", "postgresql"), text("db.name", "orders")], false),
                ]),
                ..Default::default()
            },
            ResourceSpans {
                resource: resource("payments"),
                scope_spans: scope(vec![make(4, Some(2), span::SpanKind::Server, "POST /pay", 75, vec![int("http.response.status_code", 503)], true)]),
                ..Default::default()
            },
        ],
    }
}

/// An explicit-bucket histogram and an exponential histogram (delta).
fn histograms() -> ExportMetricsServiceRequest {
    let histogram = Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![text("http.route", "/pay")],
                time_unix_nano: T0,
                count: 10,
                sum: Some(2.5),
                bucket_counts: vec![1, 4, 3, 2, 0],
                explicit_bounds: vec![0.05, 0.1, 0.25, 0.5],
                min: Some(0.01),
                max: Some(0.7),
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    let exponential = Metric {
        name: "rpc.client.duration".into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: T0,
                count: 7,
                sum: Some(31.0),
                scale: 3,
                zero_count: 1,
                positive: Some(Buckets { offset: 10, bucket_counts: vec![1, 2, 3] }),
                negative: Some(Buckets { offset: -2, bucket_counts: vec![0] }),
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics { resource: resource("checkout"), scope_metrics: vec![ScopeMetrics { metrics: vec![histogram, exponential], ..Default::default() }], ..Default::default() }],
    }
}

/// Log records with a body, a severity text instead of a number, and a trace id.
fn error_logs() -> ExportLogsServiceRequest {
    let record = |body: &str, severity_number: i32, severity_text: &str| LogRecord {
        time_unix_nano: T0,
        severity_number,
        severity_text: severity_text.into(),
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.into())) }),
        trace_id: vec![1; 16],
        attributes: vec![text("code.function", "pay")],
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("payments"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record("payment 4711 failed after 250ms: upstream 10.0.0.7:8443 returned 503", 17, "ERROR"),
                    record("retrying payment 4711 (attempt 2/3)", 0, "WARN"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
