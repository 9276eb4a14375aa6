//! Metrics decoding: OTLP `ExportMetricsServiceRequest` (protobuf and JSON) and JSON lines to
//! [`MetricPoint`]s, and the canonical series form the `metric_1m` view keys on.
//!
//! [`decode_metrics`] is called by the runtime for every metrics message. OTLP JSON goes through a
//! lenient model of its own (below, `otlp_json`) and is then decoded exactly like protobuf, so
//! both encodings of one request give the same points and the same errors.
//!
//! Data point kinds:
//! - gauge and sum number points (int or double) become [`Observation::Sample`]; the sum's
//!   temporality and monotonicity are not interpreted here.
//! - explicit-bucket histograms become [`Observation::Distribution`] with one representative value
//!   per populated bucket: bucket `i` covers `(bounds[i-1], bounds[i]]` and is represented by its
//!   midpoint; the first bucket `(-inf, bounds[0]]` by the reported min, else `bounds[0]`; the
//!   last `(bounds[last], +inf)` by the reported max, else `bounds[last]`.
//! - exponential histograms become [`Observation::Distribution`]: index `i` at scale `s` covers
//!   `(base^i, base^(i+1)]` with `base = 2^(2^-s)` and is represented by `base^(i+0.5)` (negative
//!   buckets negated); the zero bucket by `0.0`. Buckets are listed in ascending value order.
//! - summaries are refused: their quantiles cannot be merged into the view's histograms.
//!
//! Points flagged `NO_RECORDED_VALUE` (staleness markers, e.g. from the Prometheus receiver)
//! carry no observation and are skipped without an error.

use std::borrow::Cow;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    DataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};
use prost::Message as _;
use serde::Deserialize;

use super::{DEFAULT_TENANT, DecodeConfig, ResourceIdentity, attribute};
use crate::record::{MetricPoint, Observation, Origin, RawMessage, WireFormat};

/// A decoding failure: what was wrong, for the dead-letter reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The message is not a protobuf `ExportMetricsServiceRequest`; nothing was decoded.
    #[error("otlp protobuf: failed to decode ExportMetricsServiceRequest: {0}")]
    OtlpProto(String),
    /// The message is not an OTLP JSON `ExportMetricsServiceRequest`; nothing was decoded.
    #[error("otlp json: failed to decode ExportMetricsServiceRequest: {0}")]
    OtlpJson(String),
    /// The JSON line is malformed or invalid; nothing was decoded.
    #[error("json line: {0}")]
    JsonLine(String),
    /// The archived record (a replay's input) is damaged; nothing was decoded.
    #[error("archived metric point: {0}")]
    Archived(super::archived::ArchivedError),
    /// A whole metric was refused; the other metrics of the message were decoded.
    #[error("metric `{metric}`: {problem}")]
    Metric {
        metric: String,
        problem: MetricProblem,
    },
    /// One data point (0-based index within its metric) was refused; the others were decoded.
    #[error("metric `{metric}` data point {index}: {problem}")]
    DataPoint {
        metric: String,
        index: usize,
        problem: PointProblem,
    },
}

/// Why a whole OTLP metric was refused.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricProblem {
    /// A summary: its precomputed quantiles cannot be merged into the views' histograms.
    #[error("summary data points are not supported")]
    Summary,
    /// The metric carries no data points of any kind.
    #[error("metric has no data (no gauge, sum, histogram or exponential histogram)")]
    NoData,
    /// The metric has no name, so its series could not be told apart from others.
    #[error("metric name is empty")]
    EmptyName,
}

/// Why one OTLP data point was refused.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PointProblem {
    /// `time_unix_nano` is 0: the point has no event time.
    #[error("timestamp is missing (time_unix_nano is 0)")]
    MissingTimestamp,
    /// A gauge or sum point without a value.
    #[error("value is missing (neither as_double nor as_int is set)")]
    MissingValue,
    /// A gauge or sum value that is NaN or infinite.
    #[error("value is not finite")]
    NonFiniteValue,
    /// Without a sum the view can give neither `sum` nor `avg`; OTLP allows omitting it only for
    /// cumulative histograms that saw negative values.
    #[error("histogram sum is missing")]
    MissingSum,
    /// A histogram sum, min or max that is NaN or infinite.
    #[error("histogram sum, min or max is not finite")]
    NonFiniteStatistic,
    /// Explicit bounds that are not finite and strictly increasing: buckets would overlap.
    #[error("histogram explicit bounds are not finite and strictly increasing")]
    InvalidBounds,
    /// An exponential bucket whose representative value overflows f64 (extreme scale or index).
    #[error("exponential histogram bucket value is out of the f64 range")]
    BucketOutOfRange,
}

/// Decodes one metrics message. Pushes decoded points to `out`. A message that cannot be parsed at all
/// yields one error and no points; a data point that is invalid (no timestamp, non-finite value, ...)
/// yields one error naming the metric and the point index, and the other points are still decoded.
///
/// Called by the runtime's decode stage for every message whose signal is metrics; the caller
/// turns each error into a dead letter for `msg`.
pub fn decode_metrics(
    msg: &RawMessage,
    cfg: &DecodeConfig,
    out: &mut Vec<MetricPoint>,
    errors: &mut Vec<DecodeError>,
) {
    match msg.encoding.format {
        WireFormat::OtlpProto => {
            match ExportMetricsServiceRequest::decode(msg.payload.as_slice()) {
                Ok(request) => decode_request(&request, msg.origin, cfg, out, errors),
                Err(e) => errors.push(DecodeError::OtlpProto(e.to_string())),
            }
        }
        WireFormat::OtlpJson => match otlp_json::parse(&msg.payload) {
            Ok(request) => decode_request(&request, msg.origin, cfg, out, errors),
            Err(e) => errors.push(DecodeError::OtlpJson(e)),
        },
        WireFormat::JsonLines => match decode_json_line(&msg.payload, msg.origin) {
            Ok(point) => out.push(point),
            Err(e) => errors.push(e),
        },
        WireFormat::Text => errors.push(DecodeError::JsonLine(
            "plain text is not a metrics format (use otlp_proto, otlp_json or json_lines)".to_owned(),
        )),
        WireFormat::Archived => match super::archived::decode_point(&msg.payload, msg.origin) {
            Ok(point) => out.push(point),
            Err(e) => errors.push(DecodeError::Archived(e)),
        },
    }
}

/// Resource attributes that become series labels: they tell instances of one resource apart.
/// `host.name` only counts for services; for a host it is already in the URN.
const SERIES_RESOURCE_ATTRIBUTES: [&str; 3] = ["k8s.pod.name", "service.instance.id", "host.name"];

/// Decodes a parsed OTLP request. Shared by the protobuf and the JSON path, so that both
/// encodings of one request give the same points and errors.
fn decode_request(
    request: &ExportMetricsServiceRequest,
    origin: Origin,
    cfg: &DecodeConfig,
    out: &mut Vec<MetricPoint>,
    errors: &mut Vec<DecodeError>,
) {
    // Reused for every point: the label list only borrows from the request.
    let mut labels = Vec::new();
    for rm in &request.resource_metrics {
        let attributes = rm
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let identity = ResourceIdentity::from_otlp(attributes, cfg);
        let resource_labels: Vec<(&str, Cow<'_, str>)> = SERIES_RESOURCE_ATTRIBUTES
            .iter()
            .filter(|key| identity.is_service || **key != "host.name")
            .filter_map(|key| attribute(attributes, key).map(|v| (*key, render_value(v))))
            .collect();
        for metric in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            let name = metric.name.as_str();
            let mut sink = PointSink {
                identity: &identity,
                metric: name,
                origin,
                resource_labels: &resource_labels,
                labels: &mut labels,
                out,
                errors,
            };
            match &metric.data {
                _ if name.is_empty() => sink.refuse(MetricProblem::EmptyName),
                None => sink.refuse(MetricProblem::NoData),
                Some(metric::Data::Summary(_)) => sink.refuse(MetricProblem::Summary),
                Some(metric::Data::Gauge(g)) => sink.numbers(&g.data_points),
                Some(metric::Data::Sum(s)) => sink.numbers(&s.data_points),
                Some(metric::Data::Histogram(h)) => {
                    for (i, p) in h.data_points.iter().enumerate() {
                        if !no_recorded_value(p.flags) {
                            sink.push(i, p.time_unix_nano, &p.attributes, explicit_histogram(p));
                        }
                    }
                }
                Some(metric::Data::ExponentialHistogram(h)) => {
                    for (i, p) in h.data_points.iter().enumerate() {
                        if !no_recorded_value(p.flags) {
                            sink.push(i, p.time_unix_nano, &p.attributes, exponential_histogram(p));
                        }
                    }
                }
            }
        }
    }
}

fn no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

/// Turns the data points of one metric into [`MetricPoint`]s or errors.
struct PointSink<'s, 'r> {
    identity: &'s ResourceIdentity,
    metric: &'r str,
    origin: Origin,
    resource_labels: &'s [(&'r str, Cow<'r, str>)],
    labels: &'s mut Vec<(&'r str, Cow<'r, str>)>,
    out: &'s mut Vec<MetricPoint>,
    errors: &'s mut Vec<DecodeError>,
}

impl<'r> PointSink<'_, 'r> {
    fn refuse(&mut self, problem: MetricProblem) {
        self.errors.push(DecodeError::Metric {
            metric: self.metric.to_owned(),
            problem,
        });
    }

    fn numbers(&mut self, points: &'r [NumberDataPoint]) {
        for (i, p) in points.iter().enumerate() {
            if no_recorded_value(p.flags) {
                continue;
            }
            let value = match p.value {
                Some(number_data_point::Value::AsDouble(v)) if v.is_finite() => {
                    Ok(Observation::Sample(v))
                }
                Some(number_data_point::Value::AsDouble(_)) => Err(PointProblem::NonFiniteValue),
                Some(number_data_point::Value::AsInt(v)) => Ok(Observation::Sample(v as f64)),
                None => Err(PointProblem::MissingValue),
            };
            self.push(i, p.time_unix_nano, &p.attributes, value);
        }
    }

    fn push(
        &mut self,
        index: usize,
        time_unix_nano: u64,
        attributes: &'r [KeyValue],
        value: Result<Observation, PointProblem>,
    ) {
        let value = if time_unix_nano == 0 {
            Err(PointProblem::MissingTimestamp)
        } else {
            value
        };
        match value {
            Ok(value) => {
                self.labels.clear();
                self.labels.extend(attributes.iter().map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.as_str(), v.map_or(Cow::Borrowed(""), render_value))
                }));
                // After the point's own attributes, so that these win on a repeated key.
                self.labels.extend(self.resource_labels.iter().cloned());
                self.out.push(MetricPoint {
                    tenant: self.identity.tenant.clone(),
                    resource: self.identity.urn.clone(),
                    metric: self.metric.to_owned(),
                    series: write_canonical(self.labels),
                    // u64::MAX ns is about 1.8e13 ms: the cast cannot wrap.
                    ts: (time_unix_nano / 1_000_000) as i64,
                    value,
                    origin: self.origin,
                });
            }
            Err(problem) => self.errors.push(DecodeError::DataPoint {
                metric: self.metric.to_owned(),
                index,
                problem,
            }),
        }
    }
}

/// Checks a histogram's sum, min and max and returns the sum.
fn histogram_statistics(
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<f64, PointProblem> {
    let sum = sum.ok_or(PointProblem::MissingSum)?;
    if [Some(sum), min, max]
        .into_iter()
        .flatten()
        .all(f64::is_finite)
    {
        Ok(sum)
    } else {
        Err(PointProblem::NonFiniteStatistic)
    }
}

/// An explicit-bucket histogram point as a distribution (rules in the module doc).
///
/// OTLP wants `bounds.len() + 1` bucket counts. Producers get this wrong (the official example
/// file has three counts for one bound), so extra counts are folded into the overflow bucket and
/// missing ones count as empty, rather than dead-lettering the whole point.
fn explicit_histogram(p: &HistogramDataPoint) -> Result<Observation, PointProblem> {
    let sum = histogram_statistics(p.sum, p.min, p.max)?;
    let bounds = p.explicit_bounds.as_slice();
    if !bounds.iter().all(|b| b.is_finite()) || !bounds.windows(2).all(|w| w[0] < w[1]) {
        return Err(PointProblem::InvalidBounds);
    }
    let n = bounds.len();
    let counts = p.bucket_counts.as_slice();
    let (bounded, overflow) = counts.split_at(n.min(counts.len()));
    let overflow = overflow.iter().fold(0u64, |acc, c| acc.saturating_add(*c));
    let mut buckets = Vec::with_capacity(counts.len().min(n + 1));
    for (i, &count) in bounded.iter().enumerate() {
        if count > 0 {
            // `a * 0.5 + b * 0.5` rather than `(a + b) / 2`: it cannot overflow to infinity.
            let value = if i == 0 {
                p.min.unwrap_or(bounds[0])
            } else {
                bounds[i - 1] * 0.5 + bounds[i] * 0.5
            };
            buckets.push((value, count));
        }
    }
    if overflow > 0 {
        // With no bounds the only bucket is (-inf, +inf): the mean represents it best.
        let value = match bounds.last() {
            Some(last) => p.max.unwrap_or(*last),
            None => sum / overflow as f64,
        };
        buckets.push((value, overflow));
    }
    Ok(Observation::Distribution {
        count: p.count,
        sum,
        min: p.min,
        max: p.max,
        buckets,
    })
}

/// An exponential histogram point as a distribution (rules in the module doc).
fn exponential_histogram(p: &ExponentialHistogramDataPoint) -> Result<Observation, PointProblem> {
    let sum = histogram_statistics(p.sum, p.min, p.max)?;
    // log2 of the base: base^(i + 0.5) = 2^((i + 0.5) * 2^-scale), one exp2 per bucket.
    let step = (-f64::from(p.scale)).exp2();
    let representative = |offset: i32, k: usize| {
        let v = ((f64::from(offset) + k as f64 + 0.5) * step).exp2();
        if v.is_finite() {
            Ok(v)
        } else {
            Err(PointProblem::BucketOutOfRange)
        }
    };
    let len = |b: &Option<Buckets>| b.as_ref().map_or(0, |b| b.bucket_counts.len());
    let mut buckets = Vec::with_capacity(len(&p.negative) + len(&p.positive) + 1);
    if let Some(negative) = &p.negative {
        for (k, &count) in negative.bucket_counts.iter().enumerate().rev() {
            if count > 0 {
                buckets.push((-representative(negative.offset, k)?, count));
            }
        }
    }
    if p.zero_count > 0 {
        buckets.push((0.0, p.zero_count));
    }
    if let Some(positive) = &p.positive {
        for (k, &count) in positive.bucket_counts.iter().enumerate() {
            if count > 0 {
                buckets.push((representative(positive.offset, k)?, count));
            }
        }
    }
    Ok(Observation::Distribution {
        count: p.count,
        sum,
        min: p.min,
        max: p.max,
        buckets,
    })
}

/// Renders an attribute value as a label value: strings as is, ints, doubles and bools via
/// `Display`, arrays and kvlists as compact JSON, bytes as lowercase hex. Borrows when it can:
/// most attribute values are strings.
fn render_value(value: &any_value::Value) -> Cow<'_, str> {
    match value {
        any_value::Value::StringValue(s) => Cow::Borrowed(s),
        any_value::Value::BoolValue(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => Cow::Owned(i.to_string()),
        any_value::Value::DoubleValue(d) => Cow::Owned(d.to_string()),
        any_value::Value::BytesValue(b) => Cow::Owned(hex::encode(b)),
        any_value::Value::StringValueStrindex(i) => Cow::Owned(i.to_string()),
        any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => {
            let mut json = String::new();
            write_json_value(&mut json, Some(value));
            Cow::Owned(json)
        }
    }
}

/// Compact JSON for an attribute value inside an array or kvlist. Non-finite doubles, which
/// JSON cannot hold, become strings (`"NaN"`, `"inf"`).
fn write_json_value(out: &mut String, value: Option<&any_value::Value>) {
    // Writing to a String cannot fail: the fmt::Results below are always Ok.
    match value {
        None => out.push_str("null"),
        Some(any_value::Value::StringValue(s)) => write_json_str(out, s),
        Some(any_value::Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(any_value::Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(any_value::Value::DoubleValue(d)) if d.is_finite() => {
            let _ = write!(out, "{d}");
        }
        Some(any_value::Value::DoubleValue(d)) => write_json_str(out, &d.to_string()),
        Some(any_value::Value::BytesValue(b)) => write_json_str(out, &hex::encode(b)),
        Some(any_value::Value::StringValueStrindex(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(any_value::Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(out, v.value.as_ref());
            }
            out.push(']');
        }
        Some(any_value::Value::KvlistValue(list)) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, &kv.key);
                out.push(':');
                write_json_value(out, kv.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push('}');
        }
    }
}

/// Writes `s` as a JSON string literal.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The canonical form of a label set, the `series` of a [`MetricPoint`]: `k=v` pairs sorted by
/// key, joined by `,`, with `\`, `,` and `=` in keys and values escaped by a backslash.
///
/// Sorts `labels` in place and drops repeated keys (the first occurrence wins, so callers list
/// the labels that take precedence first). Called by sources and tests that build points
/// themselves (the generator); the decoders use the same code on borrowed labels.
pub fn canonical_series(labels: &mut Vec<(String, String)>) -> String {
    write_canonical(labels)
}

fn write_canonical<K: AsRef<str>, V: AsRef<str>>(labels: &mut Vec<(K, V)>) -> String {
    // Stable, so that the first of repeated keys stays first and survives the dedup.
    labels.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    labels.dedup_by(|later, earlier| later.0.as_ref() == earlier.0.as_ref());
    let len = labels
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut series = String::with_capacity(len);
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            series.push(',');
        }
        push_escaped(&mut series, k.as_ref());
        series.push('=');
        push_escaped(&mut series, v.as_ref());
    }
    series
}

fn push_escaped(out: &mut String, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'\\' | b',' | b'=')) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Turns a canonical series (see [`canonical_series`]) back into a JSON object string with the
/// labels in key order, e.g. `a=1,b=x\,y` into `{"a":"1","b":"x,y"}`. The `metric_1m` view calls
/// it for its `labels` column, so the series never has to be stored twice.
///
/// Total: it accepts strings that no canonical form produces (a pair without `=` gets an empty
/// value, a trailing lone `\` is kept as is) rather than failing a view row.
pub fn series_labels_json(series: &str) -> String {
    if series.is_empty() {
        return "{}".to_owned();
    }
    let mut json = String::with_capacity(series.len() + 16);
    json.push('{');
    let (mut key, mut value) = (String::new(), String::new());
    let mut in_value = false;
    let mut chars = series.chars();
    loop {
        let c = chars.next();
        match c {
            Some('\\') => {
                let target = if in_value { &mut value } else { &mut key };
                target.push(chars.next().unwrap_or('\\'));
            }
            Some('=') if !in_value => in_value = true,
            Some(',') | None => {
                if json.len() > 1 {
                    json.push(',');
                }
                write_json_str(&mut json, &key);
                json.push(':');
                write_json_str(&mut json, &value);
                if c.is_none() {
                    break;
                }
                key.clear();
                value.clear();
                in_value = false;
            }
            Some(c) => (if in_value { &mut value } else { &mut key }).push(c),
        }
    }
    json.push('}');
    json
}

/// One JSON-lines metric, borrowing its strings from the message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine<'a> {
    #[serde(borrow)]
    ts: JsonTs<'a>,
    #[serde(borrow)]
    resource: Text<'a>,
    #[serde(borrow)]
    metric: Text<'a>,
    value: f64,
    #[serde(borrow)]
    labels: Option<Labels<'a>>,
    #[serde(borrow)]
    tenant: Option<Text<'a>>,
}

fn decode_json_line(payload: &[u8], origin: Origin) -> Result<MetricPoint, DecodeError> {
    let line: JsonLine<'_> = serde_json::from_slice(payload).map_err(json_line_error)?;
    let ts = match line.ts {
        JsonTs::Millis(ms) => ms,
        JsonTs::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|e| {
                DecodeError::JsonLine(format!(
                    "invalid ts `{text}` ({e}): expected an RFC 3339 time or integer milliseconds since the epoch"
                ))
            })?
            .timestamp_millis(),
    };
    let (resource, metric) = (line.resource.0, line.metric.0);
    for (field, text) in [("resource", &resource), ("metric", &metric)] {
        if text.is_empty() {
            return Err(DecodeError::JsonLine(format!("field `{field}` is empty")));
        }
    }
    let resource = if resource.starts_with("urn:") {
        resource.into_owned()
    } else {
        format!("urn:k8s:svc:default/{resource}")
    };
    let tenant = match line.tenant {
        Some(Text(t)) if !t.is_empty() => t.into_owned(),
        _ => DEFAULT_TENANT.to_owned(),
    };
    let mut labels = line.labels.map(|l| l.0).unwrap_or_default();
    Ok(MetricPoint {
        tenant,
        resource,
        metric: metric.into_owned(),
        series: write_canonical(&mut labels),
        ts,
        value: Observation::Sample(line.value),
        origin,
    })
}

/// serde_json's message without the position for data errors (missing or unknown field, wrong
/// type): a JSON line is one object, and the position only makes the dead-letter reason noisy.
fn json_line_error(e: serde_json::Error) -> DecodeError {
    let mut reason = e.to_string();
    if e.classify() == serde_json::error::Category::Data {
        let position = format!(" at line {} column {}", e.line(), e.column());
        if reason.ends_with(&position) {
            reason.truncate(reason.len() - position.len());
        }
    }
    DecodeError::JsonLine(reason)
}

/// A JSON string, borrowed from the message unless escapes forced a copy.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The `ts` of a JSON line: integer milliseconds since the epoch, or RFC 3339 text (parsed after
/// deserialization, so that its error can quote it).
enum JsonTs<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonTs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> serde::de::Visitor<'de> for TsVisitor {
            type Value = JsonTs<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 time string or integer milliseconds since the epoch")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<JsonTs<'de>, E> {
                Ok(JsonTs::Millis(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<JsonTs<'de>, E> {
                i64::try_from(v)
                    .map(JsonTs::Millis)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<JsonTs<'de>, E> {
                Ok(JsonTs::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JsonTs<'de>, E> {
                Ok(JsonTs::Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// The `labels` object of a JSON line, in document order (sorted later by [`write_canonical`]).
struct Labels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;
        impl<'de> serde::de::Visitor<'de> for LabelsVisitor {
            type Value = Labels<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of string labels")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Labels<'de>, A::Error> {
                let mut labels = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Text(k), Text(v))) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    labels.push((k, v));
                }
                Ok(Labels(labels))
            }
        }
        deserializer.deserialize_map(LabelsVisitor)
    }
}

/// The OTLP JSON encoding of `ExportMetricsServiceRequest`, read into the protobuf types.
///
/// opentelemetry-proto 0.33's own serde support (`with-serde`) reads the official example and
/// int64 fields given as strings, but it is not safe to use on its own: a flattened oneof that
/// fails to parse silently becomes `None` (`{"asDouble":"NaN"}` loses its value; a histogram with
/// `"sum":"3.5"` or an exponential histogram with `"scale":"2"` loses its whole data), doubles
/// given as strings (`"NaN"`, `"Infinity"`, `"1.5"`, legal in the protobuf JSON mapping) are
/// refused, and so is `null` for a repeated field. This model takes every number as a JSON
/// number or a string, `null` as the default, ignores unknown fields (as OTLP requires), and
/// fails loudly on anything else. Attributes still use the crate's `KeyValue`, which reads them
/// correctly (`intValue` as a string, nested arrays and kvlists, base64 bytes).
mod otlp_json {
    use crate::decode::otlp_json_common::{nullable, Resource};
    use std::marker::PhantomData;
    use std::str::FromStr;

    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::metrics::v1 as pb;
    use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, Unexpected, Visitor};

    /// Parses an OTLP JSON metrics request; the error is the reason for the dead letter.
    pub(super) fn parse(payload: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
        let request: Request = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let resource_metrics = request
            .resource_metrics
            .into_iter()
            .map(|rm| {
                let scope_metrics = rm
                    .scope_metrics
                    .into_iter()
                    .map(|sm| {
                        let metrics = sm
                            .metrics
                            .into_iter()
                            .map(Metric::into_proto)
                            .collect::<Result<_, _>>()?;
                        Ok(pb::ScopeMetrics {
                            metrics,
                            ..Default::default()
                        })
                    })
                    .collect::<Result<_, String>>()?;
                let resource = rm.resource.map(|r| PbResource {
                    attributes: r.attributes,
                    ..Default::default()
                });
                Ok(pb::ResourceMetrics {
                    resource,
                    scope_metrics,
                    ..Default::default()
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(ExportMetricsServiceRequest { resource_metrics })
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request {
        #[serde(default, deserialize_with = "nullable")]
        resource_metrics: Vec<ResourceMetrics>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ResourceMetrics {
        resource: Option<Resource>,
        #[serde(default, deserialize_with = "nullable")]
        scope_metrics: Vec<ScopeMetrics>,
    }

    #[derive(serde::Deserialize)]
    struct ScopeMetrics {
        #[serde(default, deserialize_with = "nullable")]
        metrics: Vec<Metric>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metric {
        name: Option<String>,
        gauge: Option<DataPoints<NumberPoint>>,
        sum: Option<DataPoints<NumberPoint>>,
        histogram: Option<DataPoints<HistogramPoint>>,
        exponential_histogram: Option<DataPoints<ExponentialPoint>>,
        summary: Option<IgnoredAny>,
    }

    impl Metric {
        fn into_proto(self) -> Result<pb::Metric, String> {
            use pb::metric::Data;
            let name = self.name.unwrap_or_default();
            let mut data = Vec::with_capacity(1);
            if let Some(g) = self.gauge {
                data.push(Data::Gauge(pb::Gauge {
                    data_points: numbers(g.data_points, &name)?,
                }));
            }
            if let Some(s) = self.sum {
                data.push(Data::Sum(pb::Sum {
                    data_points: numbers(s.data_points, &name)?,
                    ..Default::default()
                }));
            }
            if let Some(h) = self.histogram {
                let data_points = h
                    .data_points
                    .into_iter()
                    .map(HistogramPoint::into_proto)
                    .collect();
                data.push(Data::Histogram(pb::Histogram {
                    data_points,
                    ..Default::default()
                }));
            }
            if let Some(h) = self.exponential_histogram {
                let data_points = h
                    .data_points
                    .into_iter()
                    .map(ExponentialPoint::into_proto)
                    .collect();
                data.push(Data::ExponentialHistogram(pb::ExponentialHistogram {
                    data_points,
                    ..Default::default()
                }));
            }
            if self.summary.is_some() {
                // Only its presence matters: the decoder refuses summaries.
                data.push(Data::Summary(pb::Summary::default()));
            }
            if data.len() > 1 {
                return Err(format!(
                    "metric `{name}` has more than one of gauge, sum, histogram, exponentialHistogram and summary"
                ));
            }
            Ok(pb::Metric {
                name,
                data: data.pop(),
                ..Default::default()
            })
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", bound = "P: Deserialize<'de>")]
    struct DataPoints<P> {
        #[serde(default = "Vec::new", deserialize_with = "nullable")]
        data_points: Vec<P>,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct NumberPoint {
        #[serde(default, deserialize_with = "nullable")]
        attributes: Vec<KeyValue>,
        #[serde(default)]
        time_unix_nano: Num<u64>,
        as_double: Option<Num<f64>>,
        as_int: Option<Num<i64>>,
        #[serde(default)]
        flags: Num<u32>,
    }

    fn numbers(points: Vec<NumberPoint>, metric: &str) -> Result<Vec<pb::NumberDataPoint>, String> {
        use pb::number_data_point::Value;
        points
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let value = match (p.as_double, p.as_int) {
                    (Some(Num(v)), None) => Some(Value::AsDouble(v)),
                    (None, Some(Num(v))) => Some(Value::AsInt(v)),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "metric `{metric}` data point {i} has both asDouble and asInt"
                        ));
                    }
                };
                Ok(pb::NumberDataPoint {
                    attributes: p.attributes,
                    time_unix_nano: p.time_unix_nano.0,
                    flags: p.flags.0,
                    value,
                    ..Default::default()
                })
            })
            .collect()
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct HistogramPoint {
        #[serde(default, deserialize_with = "nullable")]
        attributes: Vec<KeyValue>,
        #[serde(default)]
        time_unix_nano: Num<u64>,
        #[serde(default)]
        count: Num<u64>,
        sum: Option<Num<f64>>,
        #[serde(default, deserialize_with = "nullable")]
        bucket_counts: Vec<Num<u64>>,
        #[serde(default, deserialize_with = "nullable")]
        explicit_bounds: Vec<Num<f64>>,
        #[serde(default)]
        flags: Num<u32>,
        min: Option<Num<f64>>,
        max: Option<Num<f64>>,
    }

    impl HistogramPoint {
        fn into_proto(self) -> pb::HistogramDataPoint {
            pb::HistogramDataPoint {
                attributes: self.attributes,
                time_unix_nano: self.time_unix_nano.0,
                count: self.count.0,
                sum: self.sum.map(|n| n.0),
                bucket_counts: self.bucket_counts.into_iter().map(|n| n.0).collect(),
                explicit_bounds: self.explicit_bounds.into_iter().map(|n| n.0).collect(),
                flags: self.flags.0,
                min: self.min.map(|n| n.0),
                max: self.max.map(|n| n.0),
                ..Default::default()
            }
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ExponentialPoint {
        #[serde(default, deserialize_with = "nullable")]
        attributes: Vec<KeyValue>,
        #[serde(default)]
        time_unix_nano: Num<u64>,
        #[serde(default)]
        count: Num<u64>,
        sum: Option<Num<f64>>,
        #[serde(default)]
        scale: Num<i32>,
        #[serde(default)]
        zero_count: Num<u64>,
        positive: Option<Buckets>,
        negative: Option<Buckets>,
        #[serde(default)]
        flags: Num<u32>,
        min: Option<Num<f64>>,
        max: Option<Num<f64>>,
    }

    impl ExponentialPoint {
        fn into_proto(self) -> pb::ExponentialHistogramDataPoint {
            pb::ExponentialHistogramDataPoint {
                attributes: self.attributes,
                time_unix_nano: self.time_unix_nano.0,
                count: self.count.0,
                sum: self.sum.map(|n| n.0),
                scale: self.scale.0,
                zero_count: self.zero_count.0,
                positive: self.positive.map(Buckets::into_proto),
                negative: self.negative.map(Buckets::into_proto),
                flags: self.flags.0,
                min: self.min.map(|n| n.0),
                max: self.max.map(|n| n.0),
                ..Default::default()
            }
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Buckets {
        #[serde(default)]
        offset: Num<i32>,
        #[serde(default, deserialize_with = "nullable")]
        bucket_counts: Vec<Num<u64>>,
    }

    impl Buckets {
        fn into_proto(self) -> pb::exponential_histogram_data_point::Buckets {
            pb::exponential_histogram_data_point::Buckets {
                offset: self.offset.0,
                bucket_counts: self.bucket_counts.into_iter().map(|n| n.0).collect(),
            }
        }
    }

    /// A number field: a JSON number or a string holding one (`"NaN"`, `"Infinity"` and
    /// `"-Infinity"` included for doubles); `null` is the default.
    #[derive(Default)]
    struct Num<T>(T);

    /// The number types OTLP uses, with the conversions a JSON number may need.
    trait JsonNumber: Default + FromStr {
        fn from_i64(v: i64) -> Option<Self>;
        fn from_u64(v: u64) -> Option<Self>;
        fn from_f64(v: f64) -> Option<Self>;
    }

    impl JsonNumber for f64 {
        fn from_i64(v: i64) -> Option<Self> {
            Some(v as f64)
        }
        fn from_u64(v: u64) -> Option<Self> {
            Some(v as f64)
        }
        fn from_f64(v: f64) -> Option<Self> {
            Some(v)
        }
    }

    macro_rules! integer_json_number {
        ($($t:ty),*) => {$(
            impl JsonNumber for $t {
                fn from_i64(v: i64) -> Option<Self> {
                    Self::try_from(v).ok()
                }
                fn from_u64(v: u64) -> Option<Self> {
                    Self::try_from(v).ok()
                }
                fn from_f64(_: f64) -> Option<Self> {
                    None
                }
            }
        )*};
    }
    integer_json_number!(u64, i64, i32, u32);

    impl<'de, T: JsonNumber> Deserialize<'de> for Num<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct NumVisitor<T>(PhantomData<T>);
            impl<T: JsonNumber> Visitor<'_> for NumVisitor<T> {
                type Value = Num<T>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(
                        f,
                        "a {} as a JSON number or string",
                        std::any::type_name::<T>()
                    )
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num<T>, E> {
                    T::from_i64(v)
                        .map(Num)
                        .ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num<T>, E> {
                    T::from_u64(v)
                        .map(Num)
                        .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num<T>, E> {
                    T::from_f64(v)
                        .map(Num)
                        .ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Num<T>, E> {
                    v.parse()
                        .map(Num)
                        .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Num<T>, E> {
                    Ok(Num(T::default()))
                }
            }
            deserializer.deserialize_any(NumVisitor(PhantomData))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
        Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use proptest::prelude::*;

    use super::*;
    use crate::record::{Encoding, Signal};

    /// 2023-11-14T22:13:20.123456789Z; whole milliseconds: 1_700_000_000_123.
    const T0: u64 = 1_700_000_000_123_456_789;
    const T0_MS: i64 = 1_700_000_000_123;
    const ORIGIN: Origin = Origin {
        partition: 3,
        offset: 42,
    };

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

    fn number(
        attributes: Vec<KeyValue>,
        time_unix_nano: u64,
        value: number_data_point::Value,
    ) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            time_unix_nano,
            value: Some(value),
            ..Default::default()
        }
    }

    fn gauge(name: &str, data_points: Vec<NumberDataPoint>) -> Metric {
        Metric {
            name: name.to_owned(),
            data: Some(metric::Data::Gauge(Gauge { data_points })),
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn decode_as(
        format: WireFormat,
        payload: Vec<u8>,
        cfg: &DecodeConfig,
    ) -> (Vec<MetricPoint>, Vec<DecodeError>) {
        let msg = RawMessage {
            origin: ORIGIN,
            encoding: Encoding::new(Signal::Metrics, format),
            payload,
        };
        let (mut points, mut errors) = (Vec::new(), Vec::new());
        decode_metrics(&msg, cfg, &mut points, &mut errors);
        (points, errors)
    }

    /// Decodes `req` as OTLP protobuf bytes and as OTLP JSON (written by opentelemetry-proto's
    /// serializer: int64 as strings, bytes as base64, nulls for absent optionals), checks that
    /// both give the same result, and returns it.
    fn decode_otlp(
        req: &ExportMetricsServiceRequest,
        cfg: &DecodeConfig,
    ) -> (Vec<MetricPoint>, Vec<DecodeError>) {
        let proto = decode_as(WireFormat::OtlpProto, req.encode_to_vec(), cfg);
        let json = decode_as(WireFormat::OtlpJson, serde_json::to_vec(req).unwrap(), cfg);
        assert_eq!(proto, json, "protobuf and JSON decodes differ");
        proto
    }

    fn point(resource: &str, metric: &str, series: &str, value: Observation) -> MetricPoint {
        MetricPoint {
            tenant: "default".to_owned(),
            resource: resource.to_owned(),
            metric: metric.to_owned(),
            series: series.to_owned(),
            ts: T0_MS,
            value,
            origin: ORIGIN,
        }
    }

    const CHECKOUT: &str = "urn:k8s:svc:shop/checkout";

    fn checkout() -> Vec<KeyValue> {
        vec![
            text("service.name", "checkout"),
            text("k8s.namespace.name", "shop"),
        ]
    }

    #[test]
    fn gauge_points_become_samples() {
        use number_data_point::Value::{AsDouble, AsInt};
        let req = request(
            checkout(),
            vec![gauge(
                "cpu.utilization",
                vec![
                    number(
                        vec![text("cpu", "0"), text("state", "user")],
                        T0,
                        AsDouble(0.25),
                    ),
                    number(vec![text("cpu", "1")], T0 + 500_000, AsInt(-3)),
                ],
            )],
        );
        let (points, errors) = decode_otlp(&req, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        assert_eq!(
            points,
            vec![
                point(
                    CHECKOUT,
                    "cpu.utilization",
                    "cpu=0,state=user",
                    Observation::Sample(0.25)
                ),
                point(
                    CHECKOUT,
                    "cpu.utilization",
                    "cpu=1",
                    Observation::Sample(-3.0)
                ),
            ]
        );
    }

    #[test]
    fn sum_points_int_and_double_become_samples() {
        use number_data_point::Value::{AsDouble, AsInt};
        let sum = |name: &str, points| Metric {
            name: name.to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let req = request(
            checkout(),
            vec![
                sum(
                    "http.requests",
                    vec![number(
                        vec![text("code", "200")],
                        T0,
                        AsInt(1_234_567_890_123),
                    )],
                ),
                sum("bytes.sent", vec![number(vec![], T0, AsDouble(1.5e9))]),
            ],
        );
        let (points, errors) = decode_otlp(&req, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        assert_eq!(
            points,
            vec![
                point(
                    CHECKOUT,
                    "http.requests",
                    "code=200",
                    Observation::Sample(1_234_567_890_123.0)
                ),
                point(CHECKOUT, "bytes.sent", "", Observation::Sample(1.5e9)),
            ]
        );
    }

    fn histogram(point: HistogramDataPoint) -> Metric {
        Metric {
            name: "latency".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![point],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        }
    }

    fn decode_histogram(p: HistogramDataPoint) -> Result<Observation, Vec<DecodeError>> {
        let (mut points, errors) = decode_otlp(
            &request(checkout(), vec![histogram(p)]),
            &DecodeConfig::default(),
        );
        match (points.pop(), errors.is_empty()) {
            (Some(point), true) if points.is_empty() => Ok(point.value),
            _ => Err(errors),
        }
    }

    fn explicit(min: Option<f64>, max: Option<f64>) -> HistogramDataPoint {
        HistogramDataPoint {
            time_unix_nano: T0,
            count: 6,
            sum: Some(250.0),
            bucket_counts: vec![1, 0, 2, 3],
            explicit_bounds: vec![10.0, 20.0, 50.0],
            min,
            max,
            ..Default::default()
        }
    }

    #[test]
    fn explicit_histogram_uses_min_and_max_for_the_open_buckets() {
        assert_eq!(
            decode_histogram(explicit(Some(2.0), Some(80.0))),
            Ok(Observation::Distribution {
                count: 6,
                sum: 250.0,
                min: Some(2.0),
                max: Some(80.0),
                buckets: vec![(2.0, 1), (35.0, 2), (80.0, 3)],
            })
        );
    }

    #[test]
    fn explicit_histogram_without_min_and_max_uses_the_outer_bounds() {
        assert_eq!(
            decode_histogram(explicit(None, None)),
            Ok(Observation::Distribution {
                count: 6,
                sum: 250.0,
                min: None,
                max: None,
                buckets: vec![(10.0, 1), (35.0, 2), (50.0, 3)],
            })
        );
    }

    #[test]
    fn explicit_histogram_edge_shapes() {
        // No bounds: one bucket for everything, represented by the mean.
        let single = HistogramDataPoint {
            time_unix_nano: T0,
            count: 4,
            sum: Some(10.0),
            bucket_counts: vec![4],
            ..Default::default()
        };
        assert_eq!(
            decode_histogram(single),
            Ok(Observation::Distribution {
                count: 4,
                sum: 10.0,
                min: None,
                max: None,
                buckets: vec![(2.5, 4)]
            })
        );
        // Only count and sum.
        let bare = HistogramDataPoint {
            time_unix_nano: T0,
            count: 4,
            sum: Some(10.0),
            ..Default::default()
        };
        assert_eq!(
            decode_histogram(bare),
            Ok(Observation::Distribution {
                count: 4,
                sum: 10.0,
                min: None,
                max: None,
                buckets: vec![]
            })
        );
        // Too many counts fold into the overflow bucket; too few leave buckets empty.
        let long = HistogramDataPoint {
            bucket_counts: vec![1, 0, 2, 3, 4, 5],
            ..explicit(None, Some(99.0))
        };
        assert_eq!(
            decode_histogram(long),
            Ok(Observation::Distribution {
                count: 6,
                sum: 250.0,
                min: None,
                max: Some(99.0),
                buckets: vec![(10.0, 1), (35.0, 2), (99.0, 12)],
            })
        );
        let short = HistogramDataPoint {
            bucket_counts: vec![1, 5],
            ..explicit(None, None)
        };
        assert_eq!(
            decode_histogram(short),
            Ok(Observation::Distribution {
                count: 6,
                sum: 250.0,
                min: None,
                max: None,
                buckets: vec![(10.0, 1), (15.0, 5)]
            })
        );
    }

    #[test]
    fn invalid_histograms_are_refused_per_point() {
        let refused = |p: HistogramDataPoint, problem| {
            assert_eq!(
                decode_histogram(p),
                Err(vec![DecodeError::DataPoint {
                    metric: "latency".to_owned(),
                    index: 0,
                    problem
                }])
            );
        };
        refused(
            HistogramDataPoint {
                sum: None,
                ..explicit(None, None)
            },
            PointProblem::MissingSum,
        );
        refused(
            HistogramDataPoint {
                explicit_bounds: vec![10.0, 10.0, 50.0],
                ..explicit(None, None)
            },
            PointProblem::InvalidBounds,
        );
        refused(
            HistogramDataPoint {
                explicit_bounds: vec![10.0, 20.0, 20.5, 19.0],
                ..explicit(None, None)
            },
            PointProblem::InvalidBounds,
        );
        // Protobuf only: serde_json writes infinities as null, which would read differently.
        for p in [
            HistogramDataPoint {
                max: Some(f64::INFINITY),
                ..explicit(None, None)
            },
            HistogramDataPoint {
                sum: Some(f64::NAN),
                ..explicit(None, None)
            },
            HistogramDataPoint {
                explicit_bounds: vec![10.0, 20.0, f64::INFINITY],
                ..explicit(None, None)
            },
        ] {
            let problem = if p.explicit_bounds[2].is_finite() {
                PointProblem::NonFiniteStatistic
            } else {
                PointProblem::InvalidBounds
            };
            let bytes = request(checkout(), vec![histogram(p)]).encode_to_vec();
            assert_eq!(
                decode_as(WireFormat::OtlpProto, bytes, &DecodeConfig::default()),
                (
                    vec![],
                    vec![DecodeError::DataPoint {
                        metric: "latency".to_owned(),
                        index: 0,
                        problem
                    }]
                )
            );
        }
    }

    fn exponential(p: ExponentialHistogramDataPoint) -> Metric {
        Metric {
            name: "latency".to_owned(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![p],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        }
    }

    #[test]
    fn exponential_histogram_buckets_get_geometric_midpoints() {
        // Scale -1: base 4, bucket i is (4^i, 4^(i+1)], represented by 4^(i+0.5) = 2^(2i+1).
        let p = ExponentialHistogramDataPoint {
            time_unix_nano: T0,
            count: 15,
            sum: Some(3.0),
            scale: -1,
            zero_count: 5,
            positive: Some(Buckets {
                offset: -1,
                bucket_counts: vec![1, 0, 2],
            }),
            negative: Some(Buckets {
                offset: 0,
                bucket_counts: vec![3, 4],
            }),
            min: Some(-9.0),
            max: Some(10.0),
            ..Default::default()
        };
        let (points, errors) = decode_otlp(
            &request(checkout(), vec![exponential(p)]),
            &DecodeConfig::default(),
        );
        assert_eq!(errors, vec![]);
        assert_eq!(
            points,
            vec![point(
                CHECKOUT,
                "latency",
                "",
                Observation::Distribution {
                    count: 15,
                    sum: 3.0,
                    min: Some(-9.0),
                    max: Some(10.0),
                    buckets: vec![(-8.0, 4), (-2.0, 3), (0.0, 5), (0.5, 1), (8.0, 2)],
                }
            )]
        );
    }

    #[test]
    fn exponential_histogram_fine_scale_representative_lies_inside_its_bucket() {
        // Scale 3: base 2^(1/8); index 5 covers (2^(5/8), 2^(6/8)], represented by 2^(5.5/8).
        let p = ExponentialHistogramDataPoint {
            time_unix_nano: T0,
            count: 1,
            sum: Some(1.6),
            scale: 3,
            positive: Some(Buckets {
                offset: 5,
                bucket_counts: vec![1],
            }),
            ..Default::default()
        };
        let (points, errors) = decode_otlp(
            &request(checkout(), vec![exponential(p)]),
            &DecodeConfig::default(),
        );
        assert_eq!(errors, vec![]);
        let Observation::Distribution { buckets, .. } = &points[0].value else {
            panic!("not a distribution")
        };
        let (value, count) = buckets[0];
        assert_eq!(count, 1);
        assert!((value - 2f64.powf(5.5 / 8.0)).abs() < 1e-12, "{value}");
        assert!(value > 2f64.powf(5.0 / 8.0) && value <= 2f64.powf(6.0 / 8.0));
    }

    #[test]
    fn exponential_histogram_beyond_the_f64_range_is_refused() {
        // Scale -10: base 2^1024; index 1 is represented by 2^1536.
        let p = ExponentialHistogramDataPoint {
            time_unix_nano: T0,
            count: 1,
            sum: Some(1.0),
            scale: -10,
            positive: Some(Buckets {
                offset: 1,
                bucket_counts: vec![1],
            }),
            ..Default::default()
        };
        let (points, errors) = decode_otlp(
            &request(checkout(), vec![exponential(p)]),
            &DecodeConfig::default(),
        );
        assert_eq!(points, vec![]);
        assert_eq!(
            errors,
            vec![DecodeError::DataPoint {
                metric: "latency".to_owned(),
                index: 0,
                problem: PointProblem::BucketOutOfRange
            }]
        );
    }

    #[test]
    fn summaries_are_refused_and_other_metrics_kept() {
        let summary = Metric {
            name: "rpc.duration".to_owned(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: T0,
                    count: 2,
                    sum: 3.0,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let g = gauge(
            "up",
            vec![number(vec![], T0, number_data_point::Value::AsInt(1))],
        );
        let (points, errors) = decode_otlp(
            &request(checkout(), vec![summary, g]),
            &DecodeConfig::default(),
        );
        assert_eq!(
            points,
            vec![point(CHECKOUT, "up", "", Observation::Sample(1.0))]
        );
        assert_eq!(
            errors,
            vec![DecodeError::Metric {
                metric: "rpc.duration".to_owned(),
                problem: MetricProblem::Summary
            }]
        );
        assert_eq!(
            errors[0].to_string(),
            "metric `rpc.duration`: summary data points are not supported"
        );
    }

    #[test]
    fn metrics_without_name_or_data_are_refused() {
        let nameless = gauge(
            "",
            vec![number(vec![], T0, number_data_point::Value::AsInt(1))],
        );
        let empty = Metric {
            name: "empty".to_owned(),
            ..Default::default()
        };
        let (points, errors) = decode_otlp(
            &request(checkout(), vec![nameless, empty]),
            &DecodeConfig::default(),
        );
        assert_eq!(points, vec![]);
        assert_eq!(
            errors,
            vec![
                DecodeError::Metric {
                    metric: String::new(),
                    problem: MetricProblem::EmptyName
                },
                DecodeError::Metric {
                    metric: "empty".to_owned(),
                    problem: MetricProblem::NoData
                },
            ]
        );
    }

    #[test]
    fn point_without_timestamp_is_refused_and_the_others_kept() {
        use number_data_point::Value::AsDouble;
        let g = gauge(
            "cpu",
            vec![
                number(vec![], T0, AsDouble(1.0)),
                number(vec![], 0, AsDouble(2.0)),
                number(vec![], T0, AsDouble(3.0)),
            ],
        );
        let (points, errors) = decode_otlp(&request(checkout(), vec![g]), &DecodeConfig::default());
        assert_eq!(
            points,
            vec![
                point(CHECKOUT, "cpu", "", Observation::Sample(1.0)),
                point(CHECKOUT, "cpu", "", Observation::Sample(3.0))
            ]
        );
        assert_eq!(
            errors,
            vec![DecodeError::DataPoint {
                metric: "cpu".to_owned(),
                index: 1,
                problem: PointProblem::MissingTimestamp
            }]
        );
        assert_eq!(
            errors[0].to_string(),
            "metric `cpu` data point 1: timestamp is missing (time_unix_nano is 0)"
        );
    }

    #[test]
    fn non_finite_and_missing_values_are_refused_per_point() {
        use number_data_point::Value::AsDouble;
        let g = gauge(
            "cpu",
            vec![
                number(vec![], T0, AsDouble(1.0)),
                number(vec![], T0, AsDouble(f64::INFINITY)),
                NumberDataPoint {
                    time_unix_nano: T0,
                    value: None,
                    ..Default::default()
                },
                number(vec![], T0, AsDouble(f64::NAN)),
            ],
        );
        // Protobuf only: serde_json writes NaN as null, which would read as a missing value.
        let (points, errors) = decode_as(
            WireFormat::OtlpProto,
            request(checkout(), vec![g]).encode_to_vec(),
            &DecodeConfig::default(),
        );
        assert_eq!(
            points,
            vec![point(CHECKOUT, "cpu", "", Observation::Sample(1.0))]
        );
        let refused = |index, problem| DecodeError::DataPoint {
            metric: "cpu".to_owned(),
            index,
            problem,
        };
        assert_eq!(
            errors,
            vec![
                refused(1, PointProblem::NonFiniteValue),
                refused(2, PointProblem::MissingValue),
                refused(3, PointProblem::NonFiniteValue),
            ]
        );
        assert_eq!(
            errors[2].to_string(),
            "metric `cpu` data point 3: value is not finite"
        );
    }

    #[test]
    fn points_without_recorded_value_are_skipped_silently() {
        let stale = NumberDataPoint {
            time_unix_nano: T0,
            value: Some(number_data_point::Value::AsDouble(f64::NAN)),
            flags: DataPointFlags::NoRecordedValueMask as u32,
            ..Default::default()
        };
        let g = gauge(
            "up",
            vec![
                stale,
                number(vec![], T0, number_data_point::Value::AsInt(1)),
            ],
        );
        let (points, errors) = decode_as(
            WireFormat::OtlpProto,
            request(checkout(), vec![g]).encode_to_vec(),
            &DecodeConfig::default(),
        );
        assert_eq!(
            points,
            vec![point(CHECKOUT, "up", "", Observation::Sample(1.0))]
        );
        assert_eq!(errors, vec![]);
    }

    fn identity_of(resource: Vec<KeyValue>, cfg: &DecodeConfig) -> (String, String, String) {
        let g = gauge(
            "up",
            vec![number(vec![], T0, number_data_point::Value::AsInt(1))],
        );
        let (mut points, errors) = decode_otlp(&request(resource, vec![g]), cfg);
        assert_eq!(errors, vec![]);
        let p = points.remove(0);
        (p.tenant, p.resource, p.series)
    }

    #[test]
    fn tenant_comes_from_the_configured_resource_attribute() {
        let default = DecodeConfig::default();
        let tenant = |resource, cfg| identity_of(resource, cfg).0;
        assert_eq!(tenant(vec![text("tenant.id", "acme")], &default), "acme");
        assert_eq!(tenant(vec![text("org", "acme")], &default), "default");
        assert_eq!(tenant(vec![text("tenant.id", "")], &default), "default");
        assert_eq!(
            tenant(
                vec![kv("tenant.id", any_value::Value::IntValue(7))],
                &default
            ),
            "default"
        );
        let org = DecodeConfig {
            tenant_attribute: "org".to_owned(),
            ..DecodeConfig::default()
        };
        assert_eq!(
            tenant(vec![text("org", "acme"), text("tenant.id", "other")], &org),
            "acme"
        );
        assert_eq!(tenant(vec![text("tenant.id", "other")], &org), "default");
    }

    #[test]
    fn resource_urn_and_resource_series_labels() {
        let cfg = DecodeConfig::default();
        let id = |resource| {
            let (_, urn, series) = identity_of(resource, &cfg);
            (urn, series)
        };
        let pair = |urn: &str, series: &str| (urn.to_owned(), series.to_owned());
        assert_eq!(
            id(vec![
                text("service.name", "cart"),
                text("service.namespace", "team-a"),
                text("k8s.namespace.name", "shop"),
                text("k8s.pod.name", "cart-7d9f-x2"),
                text("service.instance.id", "i-1"),
                text("host.name", "node-1"),
                text("cloud.region", "eu"),
            ]),
            pair(
                "urn:k8s:svc:shop/cart",
                "host.name=node-1,k8s.pod.name=cart-7d9f-x2,service.instance.id=i-1"
            )
        );
        assert_eq!(
            id(vec![
                text("service.name", "cart"),
                text("service.namespace", "team-a")
            ]),
            pair("urn:k8s:svc:team-a/cart", "")
        );
        assert_eq!(
            id(vec![text("service.name", "cart")]),
            pair("urn:k8s:svc:default/cart", "")
        );
        // A host resource: host.name is in the URN, not in the series.
        assert_eq!(
            id(vec![text("host.name", "node-1"), text("k8s.pod.name", "p")]),
            pair("urn:host:node-1", "k8s.pod.name=p")
        );
        assert_eq!(
            id(vec![text("cloud.region", "eu")]),
            pair("urn:unknown:default/unknown", "")
        );
        assert_eq!(id(vec![]), pair("urn:unknown:default/unknown", ""));
    }

    #[test]
    fn resource_block_without_resource_is_unknown() {
        let mut req = request(
            vec![],
            vec![gauge(
                "up",
                vec![number(vec![], T0, number_data_point::Value::AsInt(1))],
            )],
        );
        req.resource_metrics[0].resource = None;
        let (points, errors) = decode_otlp(&req, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        assert_eq!(
            points,
            vec![point(
                "urn:unknown:default/unknown",
                "up",
                "",
                Observation::Sample(1.0)
            )]
        );
    }

    #[test]
    fn attribute_values_render_into_the_series() {
        use any_value::Value;
        let attrs = vec![
            kv("int", Value::IntValue(-42)),
            kv("double", Value::DoubleValue(1.5)),
            kv("bool", Value::BoolValue(true)),
            kv("bytes", Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "array",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::StringValue("a\"b".to_owned())),
                        },
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "kv",
                Value::KvlistValue(KeyValueList {
                    values: vec![text("k", "v"), kv("n", Value::DoubleValue(2.0))],
                }),
            ),
            text("host.name", "from-point"),
        ];
        let resource = vec![
            text("service.name", "cart"),
            text("host.name", "from-resource"),
        ];
        let g = gauge(
            "up",
            vec![number(attrs, T0, number_data_point::Value::AsInt(1))],
        );
        let (points, errors) = decode_otlp(&request(resource, vec![g]), &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        assert_eq!(
            points[0].series,
            r#"array=["a\\"b"\,1\,null],bool=true,bytes=dead,double=1.5,host.name=from-point,int=-42,kv={"k":"v"\,"n":2}"#
        );
    }

    #[test]
    fn canonical_series_sorts_escapes_and_dedups() {
        let mut labels: Vec<(String, String)> =
            [("b", "x,y"), ("a=1", "p\\q"), ("b", "dropped"), ("c", "")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let series = canonical_series(&mut labels);
        assert_eq!(series, r"a\=1=p\\q,b=x\,y,c=");
        assert_eq!(
            series_labels_json(&series),
            r#"{"a=1":"p\\q","b":"x,y","c":""}"#
        );
        assert_eq!(canonical_series(&mut vec![]), "");
        assert_eq!(series_labels_json(""), "{}");
        assert_eq!(series_labels_json("k=\"\n\u{1}"), r#"{"k":"\"\n\u0001"}"#);
    }

    proptest! {
        #[test]
        fn labels_json_round_trips(labels in proptest::collection::vec(
            (r#"[a-c=,\\"\n é]{0,4}"#, r#"[a-c=,\\"\n é]{0,4}"#), 0..6)
        ) {
            let mut expected = BTreeMap::new();
            for (k, v) in &labels {
                expected.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let series = canonical_series(&mut labels.clone());
            let json: BTreeMap<String, String> = serde_json::from_str(&series_labels_json(&series)).unwrap();
            prop_assert_eq!(&json, &expected);
            let mut back: Vec<(String, String)> = json.into_iter().collect();
            prop_assert_eq!(canonical_series(&mut back), series);
        }
    }

    #[test]
    fn otlp_json_matches_protobuf_for_every_kind() {
        use number_data_point::Value::{AsDouble, AsInt};
        let sum = Metric {
            name: "requests".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number(vec![text("code", "500")], T0, AsInt(i64::MAX))],
                ..Default::default()
            })),
            ..Default::default()
        };
        let exp = exponential(ExponentialHistogramDataPoint {
            time_unix_nano: T0,
            count: 3,
            sum: Some(7.5),
            scale: 2,
            zero_count: 1,
            positive: Some(Buckets {
                offset: -3,
                bucket_counts: vec![1, 1],
            }),
            attributes: vec![kv("bytes", any_value::Value::BytesValue(vec![1, 2]))],
            ..Default::default()
        });
        let req = request(
            vec![
                text("service.name", "cart"),
                text("tenant.id", "acme"),
                kv("service.instance.id", any_value::Value::IntValue(9)),
            ],
            vec![
                gauge(
                    "g",
                    vec![number(
                        vec![kv("f", any_value::Value::DoubleValue(0.1))],
                        T0,
                        AsDouble(-0.5),
                    )],
                ),
                sum,
                histogram(explicit(Some(1.0), None)),
                exp,
                Metric {
                    name: "nothing".to_owned(),
                    ..Default::default()
                },
            ],
        );
        // decode_otlp asserts that both encodings agree; check that they decoded what we expect.
        let (points, errors) = decode_otlp(&req, &DecodeConfig::default());
        let summary: Vec<_> = points
            .iter()
            .map(|p| {
                (
                    p.tenant.as_str(),
                    p.resource.as_str(),
                    p.metric.as_str(),
                    p.series.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "acme",
                    "urn:k8s:svc:default/cart",
                    "g",
                    "f=0.1,service.instance.id=9"
                ),
                (
                    "acme",
                    "urn:k8s:svc:default/cart",
                    "requests",
                    "code=500,service.instance.id=9"
                ),
                (
                    "acme",
                    "urn:k8s:svc:default/cart",
                    "latency",
                    "service.instance.id=9"
                ),
                (
                    "acme",
                    "urn:k8s:svc:default/cart",
                    "latency",
                    "bytes=0102,service.instance.id=9"
                ),
            ]
        );
        assert_eq!(points[1].value, Observation::Sample(i64::MAX as f64));
        assert_eq!(
            errors,
            vec![DecodeError::Metric {
                metric: "nothing".to_owned(),
                problem: MetricProblem::NoData
            }]
        );
    }

    #[test]
    fn otlp_json_accepts_numbers_as_strings_special_doubles_and_nulls() {
        let json = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"n1"}}]},
            "scopeMetrics":[{"scope":null,"metrics":[
              {"name":"g","unit":"1","gauge":{"dataPoints":[
                {"asInt":"5","timeUnixNano":"1700000000123456789","attributes":null},
                {"asDouble":"NaN","timeUnixNano":"1700000000123456789"},
                {"asDouble":"-Infinity","timeUnixNano":1700000000123456789},
                {"asDouble":"2.5","timeUnixNano":"1700000000123456789","exemplars":[],"unknownField":{"x":1}}]}},
              {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[
                {"timeUnixNano":"1700000000123456789","count":"3","sum":"6.5","bucketCounts":["1","2"],"explicitBounds":["2"],"min":null,"max":"4"}]}},
              {"name":"e","exponentialHistogram":{"dataPoints":[
                {"timeUnixNano":"1700000000123456789","count":"2","sum":4,"scale":"-1","zeroCount":"1","positive":{"offset":"0","bucketCounts":["1"]},"negative":null}]}}
            ]}]}]}"#;
        let (points, errors) = decode_as(
            WireFormat::OtlpJson,
            json.as_bytes().to_vec(),
            &DecodeConfig::default(),
        );
        let host = "urn:host:n1";
        assert_eq!(
            points,
            vec![
                point(host, "g", "", Observation::Sample(5.0)),
                point(host, "g", "", Observation::Sample(2.5)),
                point(
                    host,
                    "h",
                    "",
                    Observation::Distribution {
                        count: 3,
                        sum: 6.5,
                        min: None,
                        max: Some(4.0),
                        buckets: vec![(2.0, 1), (4.0, 2)]
                    }
                ),
                point(
                    host,
                    "e",
                    "",
                    Observation::Distribution {
                        count: 2,
                        sum: 4.0,
                        min: None,
                        max: None,
                        buckets: vec![(0.0, 1), (2.0, 1)]
                    }
                ),
            ]
        );
        let refused = |index| DecodeError::DataPoint {
            metric: "g".to_owned(),
            index,
            problem: PointProblem::NonFiniteValue,
        };
        assert_eq!(errors, vec![refused(1), refused(2)]);
    }

    #[test]
    fn otlp_json_structural_errors_refuse_the_message() {
        let cases = [
            (
                r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asInt":"x"}]}}]}]}]}"#,
                "otlp json: failed to decode ExportMetricsServiceRequest: invalid value: string \"x\", expected a i64 as a JSON number or string at line 1 column 96",
            ),
            (
                r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[]},"sum":{"dataPoints":[]}}]}]}]}"#,
                "otlp json: failed to decode ExportMetricsServiceRequest: metric `g` has more than one of gauge, sum, histogram, exponentialHistogram and summary",
            ),
            (
                r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asInt":1,"asDouble":2}]}}]}]}]}"#,
                "otlp json: failed to decode ExportMetricsServiceRequest: metric `g` data point 0 has both asDouble and asInt",
            ),
        ];
        for (json, reason) in cases {
            let (points, errors) = decode_as(
                WireFormat::OtlpJson,
                json.as_bytes().to_vec(),
                &DecodeConfig::default(),
            );
            assert_eq!(points, vec![]);
            assert_eq!(
                errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                vec![reason.to_owned()]
            );
        }
    }

    #[test]
    fn official_otlp_json_example_decodes() {
        let path = "/work/shared/data/otlp/opentelemetry-proto/metrics.json";
        let Ok(json) = std::fs::read(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        let (points, errors) = decode_as(WireFormat::OtlpJson, json, &DecodeConfig::default());
        assert_eq!(errors, vec![]);
        // One sum, one gauge and one histogram point. The histogram has three bucket counts for
        // one bound: the two past the bound fold into the overflow bucket.
        let at = |mut p: MetricPoint| {
            p.ts = 1_544_712_660_300;
            p
        };
        let svc = "urn:k8s:svc:default/my.service";
        assert_eq!(
            points,
            vec![
                at(point(
                    svc,
                    "my.counter",
                    "my.counter.attr=some value",
                    Observation::Sample(5.0)
                )),
                at(point(
                    svc,
                    "my.gauge",
                    "my.gauge.attr=some value",
                    Observation::Sample(10.0)
                )),
                at(point(
                    svc,
                    "my.histogram",
                    "my.histogram.attr=some value",
                    Observation::Distribution {
                        count: 3,
                        sum: 3.0,
                        min: Some(1.0),
                        max: Some(1.0),
                        buckets: vec![(1.0, 1), (1.0, 2)]
                    }
                )),
            ]
        );
    }

    fn json_line(line: &str) -> (Vec<MetricPoint>, Vec<String>) {
        let (points, errors) = decode_as(
            WireFormat::JsonLines,
            line.as_bytes().to_vec(),
            &DecodeConfig::default(),
        );
        (points, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn json_lines_decode() {
        let line = r#"{"ts":"2024-05-01T14:00:00.250+02:00","resource":"checkout","metric":"http.requests","value":3,
                       "labels":{"route":"/a,b","code":"200","q":"say \"hi\""},"tenant":"acme"}"#;
        assert_eq!(
            json_line(line),
            (
                vec![MetricPoint {
                    tenant: "acme".to_owned(),
                    resource: "urn:k8s:svc:default/checkout".to_owned(),
                    metric: "http.requests".to_owned(),
                    series: r#"code=200,q=say "hi",route=/a\,b"#.to_owned(),
                    ts: 1_714_564_800_250,
                    value: Observation::Sample(3.0),
                    origin: ORIGIN,
                }],
                vec![]
            )
        );
        let line = "{\"ts\":1714564800000,\"resource\":\"urn:host:node-1\",\"metric\":\"load\\u0031\",\"value\":-0.5}\n";
        assert_eq!(
            json_line(line),
            (
                vec![MetricPoint {
                    tenant: "default".to_owned(),
                    resource: "urn:host:node-1".to_owned(),
                    metric: "load1".to_owned(),
                    series: String::new(),
                    ts: 1_714_564_800_000,
                    value: Observation::Sample(-0.5),
                    origin: ORIGIN,
                }],
                vec![]
            )
        );
    }

    #[test]
    fn json_lines_refuse_bad_lines() {
        let refused = |line: &str, reason: &str| {
            assert_eq!(json_line(line), (vec![], vec![reason.to_owned()]), "{line}")
        };
        refused(
            r#"{"ts":1,"resource":"a","metric":"m","value":1,"color":"red"}"#,
            "json line: unknown field `color`, expected one of `ts`, `resource`, `metric`, `value`, `labels`, `tenant`",
        );
        refused(
            r#"{"ts":"yesterday","resource":"a","metric":"m","value":1}"#,
            "json line: invalid ts `yesterday` (premature end of input): expected an RFC 3339 time or integer milliseconds since the epoch",
        );
        refused(
            r#"{"ts":1.5,"resource":"a","metric":"m","value":1}"#,
            "json line: invalid type: floating point `1.5`, expected an RFC 3339 time string or integer milliseconds since the epoch",
        );
        refused(
            r#"{"ts":1,"resource":"a","metric":"m"}"#,
            "json line: missing field `value`",
        );
        refused(
            r#"{"resource":"a","metric":"m","value":1}"#,
            "json line: missing field `ts`",
        );
        refused(
            r#"{"ts":1,"resource":"a","metric":"m","value":"1"}"#,
            "json line: invalid type: string \"1\", expected f64",
        );
        refused(
            r#"{"ts":1,"resource":"a","metric":"m","value":1,"labels":{"code":200}}"#,
            "json line: invalid type: integer `200`, expected a string",
        );
        refused(
            r#"{"ts":1,"resource":"","metric":"m","value":1}"#,
            "json line: field `resource` is empty",
        );
        refused(
            r#"{"ts":1,"resource":"a","metric":"m","value":1} x"#,
            "json line: trailing characters at line 1 column 48",
        );
    }

    #[test]
    fn garbage_is_one_error_and_no_points() {
        let garbage = vec![0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef];
        let truncated = {
            let mut bytes = request(
                checkout(),
                vec![gauge(
                    "up",
                    vec![number(vec![], T0, number_data_point::Value::AsInt(1))],
                )],
            )
            .encode_to_vec();
            bytes.truncate(bytes.len() - 3);
            bytes
        };
        for (format, payload, prefix) in [
            (
                WireFormat::OtlpProto,
                garbage.clone(),
                "otlp protobuf: failed to decode ExportMetricsServiceRequest: ",
            ),
            (
                WireFormat::OtlpProto,
                truncated,
                "otlp protobuf: failed to decode ExportMetricsServiceRequest: ",
            ),
            (
                WireFormat::OtlpJson,
                garbage.clone(),
                "otlp json: failed to decode ExportMetricsServiceRequest: ",
            ),
            (WireFormat::JsonLines, garbage.clone(), "json line: "),
            (WireFormat::JsonLines, Vec::new(), "json line: "),
        ] {
            let (points, errors) = decode_as(format, payload, &DecodeConfig::default());
            assert_eq!(points, vec![]);
            assert_eq!(errors.len(), 1, "{format:?}: {errors:?}");
            let reason = errors[0].to_string();
            assert!(
                reason.starts_with(prefix) && reason.len() > prefix.len(),
                "{reason}"
            );
        }
    }

    #[test]
    fn decode_config_defaults_and_refuses_unknown_fields() {
        assert_eq!(
            serde_json::from_str::<DecodeConfig>("{}").unwrap(),
            DecodeConfig::default()
        );
        assert_eq!(DecodeConfig::default().tenant_attribute, "tenant.id");
        assert!(serde_json::from_str::<DecodeConfig>(r#"{"tenant":"x"}"#).is_err());
    }
}
