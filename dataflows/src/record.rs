//! Records as they flow from sources into the dataflows.
//!
//! Sources hand the engine [`RawMessage`]s: bytes with an [`Encoding`] and an [`Origin`].
//! Decoders turn them into typed records ([`MetricPoint`], ...) or into [`DeadLetter`]s. Every
//! typed record keeps its origin, so a dead letter or an evidence link can point back at the exact
//! Kafka offset or file line.

use serde::{Deserialize, Serialize};

/// Event time: milliseconds since the Unix epoch, UTC.
pub type EventTime = i64;

/// Where a record came from.
///
/// `partition` is the engine-wide id of an input partition (a Kafka topic-partition, a file, a
/// generator stream); the runtime keeps the table from id to name. `offset` is the Kafka offset,
/// the file's line number (from 1), or the generator's sequence number.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub partition: u32,
    pub offset: u64,
}

/// The kind of telemetry a message carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Metrics,
}

/// How the bytes of a message are laid out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// OTLP protobuf (`Export*ServiceRequest`), the Collector's Kafka exporter default.
    OtlpProto,
    /// OTLP JSON (the protobuf JSON mapping with OTLP's rules: hex ids, int64 as strings allowed).
    OtlpJson,
    /// One JSON object per message (a line of a JSON-lines file or one Kafka message).
    JsonLines,
}

/// Signal and wire format together: what a decoder needs to know about a message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Encoding {
    pub signal: Signal,
    pub format: WireFormat,
}

/// One message from a source, before decoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RawMessage {
    pub origin: Origin,
    pub encoding: Encoding,
    pub payload: Vec<u8>,
}

/// One observation of a metric series.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub enum Observation {
    /// A gauge or sum sample: one value.
    Sample(f64),
    /// A histogram data point (explicit or exponential buckets): `count` observations with the
    /// given `sum`, `min`/`max` when reported, and a representative value per populated bucket.
    Distribution {
        count: u64,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
        buckets: Vec<(f64, u64)>,
    },
}

/// A decoded metric data point.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct MetricPoint {
    pub tenant: String,
    /// Resource URN, e.g. `urn:k8s:svc:shop/checkout` or `urn:host:node-1`.
    pub resource: String,
    pub metric: String,
    /// The series' label set in canonical form: `k=v` pairs sorted by key, joined by `,`.
    /// Values are escaped so that the form is unambiguous (`\,` `\=` `\\`).
    pub series: String,
    pub ts: EventTime,
    pub value: Observation,
    pub origin: Origin,
}

/// Why a record could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Short machine-readable class: `decode`, `late`, `invalid`.
    pub kind: String,
    /// Human-readable reason naming what was wrong.
    pub reason: String,
    pub origin: Origin,
    /// The offending bytes (the whole message for decode errors).
    pub payload: Vec<u8>,
}
