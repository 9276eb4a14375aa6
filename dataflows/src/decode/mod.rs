//! Decoders: wire formats to typed records.
//!
//! A decoder is handed one [`RawMessage`](crate::record::RawMessage) and pushes what it could
//! decode plus one error per thing it could not. It never stops on bad input and never drops it
//! silently: the caller turns every error into a dead letter naming the reason and the origin.
//!
//! # Layout
//! - this file: [`DecodeConfig`], shared by all signals, and [`ResourceIdentity`], the tenant and
//!   resource URN rules (architecture section 2) that every OTLP decoder applies.
//! - [`metrics`]: metrics (OTLP protobuf, OTLP JSON, JSON lines) to
//!   [`MetricPoint`](crate::record::MetricPoint)s, and the canonical series form.
//! - [`spans`]: spans (OTLP protobuf, OTLP JSON) to [`Span`](crate::record::Span)s: the error,
//!   peer and sampling-multiplier rules pairing needs.
//! - [`logs`]: logs (OTLP protobuf, OTLP JSON, JSON lines, plain text with a header format) to
//!   [`LogRecord`](crate::record::LogRecord)s.
//! - [`k8s`]: Kubernetes watch events to [`K8sEvent`](k8s::K8sEvent)s, with every value that
//!   may be secret replaced by a keyed hash.
//! - [`archived`]: the raw archive's records as input ([`WireFormat::Archived`]): a compact,
//!   exact form of an already decoded record, which every signal's decoder reads back, so a
//!   replay runs the same dataflows over the archive.
//! - `otlp_json_common`: what the three OTLP JSON readers share.
//!
//! [`WireFormat::Archived`]: crate::record::WireFormat::Archived
//!
//! # Example
//! ```
//! use observebridge_dataflows::decode::{decode_metrics, DecodeConfig};
//! use observebridge_dataflows::record::{Encoding, Origin, RawMessage, Signal, WireFormat};
//!
//! let msg = RawMessage {
//!     origin: Origin { partition: 0, offset: 7 },
//!     encoding: Encoding::new(Signal::Metrics, WireFormat::JsonLines),
//!     payload: br#"{"ts":60000,"resource":"checkout","metric":"rps","value":12.5,"labels":{"route":"/pay"}}"#.to_vec(),
//! };
//! let (mut points, mut errors) = (Vec::new(), Vec::new());
//! decode_metrics(&msg, &DecodeConfig::default(), &mut points, &mut errors);
//! assert!(errors.is_empty());
//! assert_eq!(points[0].resource, "urn:k8s:svc:default/checkout");
//! assert_eq!(points[0].series, "route=/pay");
//! ```

pub mod archived;
pub mod k8s;
pub mod logs;
pub mod metrics;
mod otlp_json_common;
pub mod spans;

pub use logs::{LogDecodeError, decode_logs};
pub use spans::{SpanDecodeError, decode_spans};
pub use metrics::{
    DecodeError, MetricProblem, PointProblem, canonical_series, decode_metrics, series_labels_json,
};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use serde::{Deserialize, Serialize};

/// Decoder settings shared by all signals.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Resource attribute that names the tenant (default "tenant.id"); records without it belong to "default".
    #[serde(default = "default_tenant_attribute")]
    pub tenant_attribute: String,
    /// Span attribute holding a sampling multiplier (the adjusted count, >= 1). The W3C
    /// `tracestate` OpenTelemetry entry (`ot=th:` threshold, legacy `ot=p:`) is read as well.
    #[serde(default = "default_sampling_attribute")]
    pub sampling_attribute: String,
    /// Plain-text log sources' settings, indexed by `Encoding::profile`. Filled by the runtime
    /// from each text source's spec, not written in the job's `decode` section.
    #[serde(skip)]
    pub text_profiles: Vec<TextProfile>,
    /// Key of the HMAC that replaces values which may be secret (Secret and ConfigMap data, env
    /// values, annotations) in Kubernetes change records. Set it per deployment (it keeps the
    /// hashes from being matched against guessed values); the default is a fixed demo key.
    /// Never printed or serialized.
    #[serde(default = "default_secret_hash_key", skip_serializing)]
    pub secret_hash_key: SecretKey,
}

/// A key that never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(pub String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn default_secret_hash_key() -> SecretKey {
    SecretKey("observebridge-demo-key".to_owned())
}

fn default_sampling_attribute() -> String {
    "sampling.adjusted_count".to_owned()
}

/// How the plain-text lines of one source are read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextProfile {
    /// The service the lines belong to (`urn:k8s:svc:<namespace>/<service>`).
    pub service: String,
    /// Its namespace (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Its tenant (default [`DEFAULT_TENANT`]).
    #[serde(default)]
    pub tenant: Option<String>,
    /// A Loghub-style header format, e.g. `<Date> <Time> <Level> <Component>: <Content>`; absent:
    /// the whole line is the message.
    #[serde(default)]
    pub header: Option<String>,
}

fn default_tenant_attribute() -> String {
    "tenant.id".to_owned()
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            tenant_attribute: default_tenant_attribute(),
            sampling_attribute: default_sampling_attribute(),
            text_profiles: Vec::new(),
            secret_hash_key: default_secret_hash_key(),
        }
    }
}

/// The tenant used when a record does not name one.
pub const DEFAULT_TENANT: &str = "default";

/// Who an OTLP resource belongs to and what it is, by the rules of architecture section 2.
///
/// Every OTLP decoder computes this once per `Resource*` block (not per record), so the string
/// work is amortised over all the records of the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceIdentity {
    /// The string value of the configured tenant attribute, else [`DEFAULT_TENANT`].
    pub tenant: String,
    /// `urn:k8s:svc:<ns>/<service.name>` (ns from `k8s.namespace.name`, else `service.namespace`,
    /// else `default`); else `urn:host:<host.name>`; else `urn:unknown:default/unknown`.
    pub urn: String,
    /// True when the URN names a service (the resource has `service.name`).
    pub is_service: bool,
}

impl ResourceIdentity {
    /// Applies the identity rules to a resource's attributes. Empty strings count as absent, and
    /// only string values are used: a tenant or service named by an int would be a configuration
    /// mistake, and guessing a rendering for it would split one tenant into two.
    pub fn from_otlp(attributes: &[KeyValue], cfg: &DecodeConfig) -> Self {
        let text = |key: &str| match attribute(attributes, key) {
            Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        };
        let tenant = text(&cfg.tenant_attribute)
            .unwrap_or(DEFAULT_TENANT)
            .to_owned();
        if let Some(service) = text("service.name") {
            let ns = text("k8s.namespace.name")
                .or_else(|| text("service.namespace"))
                .unwrap_or("default");
            return Self {
                tenant,
                urn: format!("urn:k8s:svc:{ns}/{service}"),
                is_service: true,
            };
        }
        let urn = match text("host.name") {
            Some(host) => format!("urn:host:{host}"),
            None => "urn:unknown:default/unknown".to_owned(),
        };
        Self {
            tenant,
            urn,
            is_service: false,
        }
    }
}

/// The value of the first attribute named `key`. A linear scan: resources carry tens of
/// attributes and are looked up once per resource, where a map would cost more than it saves.
pub(crate) fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}
