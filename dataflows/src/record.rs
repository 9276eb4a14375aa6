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
    Spans,
    Logs,
    /// Kubernetes watch events (JSON, one per message).
    K8s,
}

impl Signal {
    /// The signal's name, as in job specs, object keys and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Spans => "spans",
            Signal::Logs => "logs",
            Signal::K8s => "k8s",
        }
    }
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
    /// One plain text line per message (logs only), read with the source's [`TextProfile`]
    /// (`Encoding::profile` indexes `DecodeConfig::text_profiles`).
    ///
    /// [`TextProfile`]: crate::decode::TextProfile
    Text,
    /// One record of the raw archive, already decoded (a replay reads them back from the
    /// archive's Parquet objects): the compact form of [`crate::decode::archived`]. Decoding it
    /// yields the record the original decode produced, with the message's origin.
    Archived,
}

/// Signal and wire format together: what a decoder needs to know about a message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Encoding {
    pub signal: Signal,
    pub format: WireFormat,
    /// For [`WireFormat::Text`]: the index of the source's text profile in
    /// `DecodeConfig::text_profiles`; 0 otherwise.
    pub profile: u16,
}

impl Encoding {
    /// A binary or JSON encoding (no text profile).
    pub const fn new(signal: Signal, format: WireFormat) -> Self {
        Self { signal, format, profile: 0 }
    }
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

/// The role of a span in a call (OTLP `SpanKind`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// Span attributes that name the other side of a call: they name virtual nodes (databases,
/// queues, external hosts) for unpaired client spans and the caller of root server spans.
/// Absent and empty attributes are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Peer {
    /// `peer.service`.
    pub peer_service: Option<String>,
    /// `server.address`, else the older `net.peer.name`, else `http.host` / `net.host.name` on client spans.
    pub server_address: Option<String>,
    /// `db.system` (`db.system.name` in newer conventions).
    pub db_system: Option<String>,
    /// `db.name` (`db.namespace` in newer conventions).
    pub db_name: Option<String>,
    /// `messaging.system`.
    pub messaging_system: Option<String>,
    /// `messaging.destination.name` (older: `messaging.destination`).
    pub messaging_destination: Option<String>,
    /// `client.address` (older: `net.sock.peer.addr`, `net.peer.ip`), on server spans.
    pub client_address: Option<String>,
}

/// A decoded span: what pairing and the call views need of it, nothing more.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Span {
    pub tenant: String,
    /// The service's resource URN (`urn:k8s:svc:<ns>/<name>`), or the resource's URN when it
    /// names no service.
    pub service: String,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a root span (absent or all-zero parent id).
    pub parent_span_id: Option<[u8; 8]>,
    pub kind: SpanKind,
    /// Event time: the span's end, in ms (spans are exported when they end).
    pub ts: EventTime,
    /// `end - start` in ms (fractional), never negative.
    pub duration_ms: f64,
    /// Status ERROR, or an HTTP 5xx / gRPC error status attribute.
    pub error: bool,
    /// Sampling multiplier (the adjusted count): how many real spans this one stands for (>= 1).
    pub weight: f64,
    /// Peer attributes; `None` when the span has none (the common case for paired spans).
    pub peer: Option<Box<Peer>>,
    pub origin: Origin,
}

/// A decoded log record.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct LogRecord {
    pub tenant: String,
    /// Resource URN of the emitting service (or host).
    pub resource: String,
    /// Event time in ms.
    pub ts: EventTime,
    /// OTLP severity number (1-24; 0 = unspecified). ERROR and worse (>= 17) counts as an error.
    pub severity: u8,
    /// The log line / body as text.
    pub message: String,
    pub trace_id: Option<[u8; 16]>,
    pub origin: Origin,
}

impl LogRecord {
    /// OTLP `SEVERITY_NUMBER_ERROR`: this and above count as errors.
    pub const ERROR: u8 = 17;

    pub fn is_error(&self) -> bool {
        self.severity >= Self::ERROR
    }
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
