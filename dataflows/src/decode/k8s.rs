//! Kubernetes watch events to [`K8sEvent`]s.
//!
//! Input: one watch event per message, as the watch API and `kubectl get -w -o json` write it:
//! `{"type":"ADDED"|"MODIFIED"|"DELETED","object":{...}}`, for Deployment, StatefulSet,
//! DaemonSet, ReplicaSet, ConfigMap, Secret, Pod, Service and core/v1 Event objects.
//!
//! The decoder keeps only what change detection needs, in a typed form ([`Body`]); everything
//! else (status, managedFields, resourceVersion history, generation) is dropped here, which is
//! what makes those fields noise for the diff.
//!
//! # Secrets never leave the decoder
//! Values that may be secret are replaced by a keyed hash ([`KeyedHasher`], HMAC-SHA256 with the
//! configured key, truncated to 128 bits, written `hmac:<32 hex>`) before the record exists:
//! Secret and ConfigMap `data` / `stringData` / `binaryData` values, container `env` values and
//! annotation values. Two equal values hash equally, so a diff can say "changed" without ever
//! holding the value. Dead letters of this signal carry [`redact_payload`]'s rewrite of the
//! message, never the message itself.
//!
//! # Event time
//! In this order: a top-level `"ts"` on the envelope (RFC 3339 or epoch ms), added by some
//! shippers; for core/v1 Events `lastTimestamp`, `eventTime`, `firstTimestamp`; for every other
//! object the newest `metadata.managedFields[].time` (the API server stamps each update), else
//! `metadata.deletionTimestamp` (DELETED), else `metadata.creationTimestamp`. A message with
//! none of them is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::{DEFAULT_TENANT, DecodeConfig};
use crate::record::{EventTime, Origin, RawMessage};

/// What a watch event says happened to the object.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WatchAction {
    Added,
    Modified,
    Deleted,
}

/// The kinds of object followed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum K8sKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ConfigMap,
    Secret,
    Pod,
    Service,
    Event,
}

impl K8sKind {
    pub const ALL: [K8sKind; 9] = [
        K8sKind::Deployment,
        K8sKind::StatefulSet,
        K8sKind::DaemonSet,
        K8sKind::ReplicaSet,
        K8sKind::ConfigMap,
        K8sKind::Secret,
        K8sKind::Pod,
        K8sKind::Service,
        K8sKind::Event,
    ];

    /// The `kind` field as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            K8sKind::Deployment => "Deployment",
            K8sKind::StatefulSet => "StatefulSet",
            K8sKind::DaemonSet => "DaemonSet",
            K8sKind::ReplicaSet => "ReplicaSet",
            K8sKind::ConfigMap => "ConfigMap",
            K8sKind::Secret => "Secret",
            K8sKind::Pod => "Pod",
            K8sKind::Service => "Service",
            K8sKind::Event => "Event",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The short name used in resource URNs (`urn:k8s:<short>:<ns>/<name>`).
    pub fn urn_kind(self) -> &'static str {
        match self {
            K8sKind::Deployment => "deploy",
            K8sKind::StatefulSet => "statefulset",
            K8sKind::DaemonSet => "daemonset",
            K8sKind::ReplicaSet => "replicaset",
            K8sKind::ConfigMap => "configmap",
            K8sKind::Secret => "secret",
            K8sKind::Pod => "pod",
            K8sKind::Service => "svc",
            K8sKind::Event => "event",
        }
    }

    /// Deployment, StatefulSet, DaemonSet and ReplicaSet: objects with a pod template.
    pub fn is_workload(self) -> bool {
        matches!(self, K8sKind::Deployment | K8sKind::StatefulSet | K8sKind::DaemonSet | K8sKind::ReplicaSet)
    }
}

/// A reference to another object (an owner, an Event's involved object).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// A container as the diff sees it. Env values are keyed hashes (or the `valueFrom` source).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// `name -> hmac:<hash>` of a literal value, or `secretKeyRef:<secret>/<key>`,
    /// `configMapKeyRef:<map>/<key>`, `fieldRef:<path>`, `resourceFieldRef:<resource>`.
    pub env: BTreeMap<String, String>,
    /// `resources` as canonical JSON (`{}` when absent).
    pub resources: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
}

/// A pod template or a pod spec, as the diff sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodSpec {
    /// Init containers first (named `init:<name>`), then containers, in spec order.
    pub containers: Vec<Container>,
    /// ConfigMaps and Secrets the pod uses (env, envFrom, volumes), as `configmap:<name>` /
    /// `secret:<name>`.
    pub uses: BTreeSet<String>,
}

/// What change detection needs of an object, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Body {
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet.
    Workload {
        replicas: Option<i64>,
        template_labels: BTreeMap<String, String>,
        /// Template annotation values are keyed hashes.
        template_annotations: BTreeMap<String, String>,
        pod: PodSpec,
    },
    /// ConfigMap and Secret: key -> keyed hash of the value.
    Data { entries: BTreeMap<String, String> },
    Service { selector: BTreeMap<String, String>, ports: Vec<String>, service_type: String },
    Pod { pod: PodSpec },
    /// A core/v1 Event.
    Event { reason: String, message: String, event_type: String, involved: ObjectRef, count: i64 },
}

/// A decoded watch event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct K8sEvent {
    pub tenant: String,
    /// Event time (see the module documentation).
    pub ts: EventTime,
    pub action: WatchAction,
    pub kind: K8sKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `metadata.resourceVersion` (the API server's etcd revision): orders the versions of an
    /// object; 0 when absent.
    pub resource_version: u64,
    /// `metadata.creationTimestamp` in ms, when present.
    pub created: Option<EventTime>,
    /// `metadata.labels`, without `pod-template-hash` and `controller-revision-hash`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` that matter (noise removed, see [`NOISY_ANNOTATIONS`]); values are
    /// keyed hashes.
    pub annotations: BTreeMap<String, String>,
    /// The controlling owner (`ownerReferences` with `controller: true`, else the first).
    pub owner: Option<ObjectRef>,
    /// The newest managedFields entry is an update of the `scale` subresource or made by an
    /// autoscaler manager: a replica change in it is an autoscaler's.
    pub by_autoscaler: bool,
    pub body: Body,
    pub origin: Origin,
}

impl K8sEvent {
    /// The object's identity within its tenant: (kind, namespace, name).
    pub fn object(&self) -> ObjectRef {
        ObjectRef { kind: self.kind.as_str().to_owned(), namespace: self.namespace.clone(), name: self.name.clone() }
    }
}

/// Annotations that change without changing what runs: never part of a diff.
pub const NOISY_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "kubectl.kubernetes.io/last-applied-configuration",
    "control-plane.alpha.kubernetes.io/leader",
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
];

/// Labels the controllers set on the objects they create: noise.
const NOISY_LABELS: &[&str] = &["pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name"];

/// A K8s watch event decoding failure, for the dead-letter reason. Never holds a value of the
/// object (only field names, kinds and positions).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum K8sDecodeError {
    #[error("k8s watch event: not JSON: {0}")]
    NotJson(String),
    #[error("k8s watch event: {0}")]
    Invalid(String),
    #[error("k8s watch event: unsupported kind {0:?} (followed: Deployment, StatefulSet, DaemonSet, ReplicaSet, ConfigMap, Secret, Pod, Service, Event)")]
    UnsupportedKind(String),
    /// The archived event (a replay's input, already decoded and hashed) is damaged.
    #[error("archived k8s event: {0}")]
    Archived(super::archived::ArchivedError),
}

/// HMAC-SHA256 with the configured key, for values that must never leave the engine.
#[derive(Clone)]
pub struct KeyedHasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher(<key redacted>)")
    }
}

impl KeyedHasher {
    pub fn new(key: &str) -> Self {
        // HMAC accepts keys of any length.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
        Self { mac }
    }

    /// `hmac:` and the first 16 bytes of HMAC-SHA256(key, value), in hex.
    pub fn hash(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        format!("hmac:{}", hex::encode(&digest[..16]))
    }
}

/// Decodes one watch event. Pushes at most one event; an error leaves `out` untouched.
pub fn decode_k8s(msg: &RawMessage, cfg: &DecodeConfig, hasher: &KeyedHasher, out: &mut Vec<K8sEvent>, errors: &mut Vec<K8sDecodeError>) {
    if msg.encoding.format == crate::record::WireFormat::Archived {
        // A replay's input: decoded (and its secret values hashed) when it was archived.
        match super::archived::decode_event(&msg.payload, msg.origin) {
            Ok(event) => out.push(event),
            Err(e) => errors.push(K8sDecodeError::Archived(e)),
        }
        return;
    }
    match decode_one(&msg.payload, cfg, hasher, msg.origin) {
        Ok(event) => out.push(event),
        Err(e) => errors.push(e),
    }
}

fn decode_one(payload: &[u8], cfg: &DecodeConfig, hasher: &KeyedHasher, origin: Origin) -> Result<K8sEvent, K8sDecodeError> {
    let envelope: Value = serde_json::from_slice(payload).map_err(|e| K8sDecodeError::NotJson(e.to_string()))?;
    let envelope = envelope.as_object().ok_or_else(|| K8sDecodeError::Invalid("the message is not a JSON object".into()))?;
    let action = match envelope.get("type").and_then(Value::as_str) {
        Some("ADDED") => WatchAction::Added,
        Some("MODIFIED") => WatchAction::Modified,
        Some("DELETED") => WatchAction::Deleted,
        Some("BOOKMARK") => return Err(K8sDecodeError::Invalid("BOOKMARK events carry no object change".into())),
        Some("ERROR") => return Err(K8sDecodeError::Invalid("an ERROR watch event (the watch itself failed)".into())),
        Some(other) => return Err(K8sDecodeError::Invalid(format!("`type` is {other:?}, expected ADDED, MODIFIED or DELETED"))),
        None => return Err(K8sDecodeError::Invalid("`type` is missing or not a string".into())),
    };
    let object = envelope.get("object").and_then(Value::as_object).ok_or_else(|| K8sDecodeError::Invalid("`object` is missing or not an object".into()))?;
    let kind_name = object.get("kind").and_then(Value::as_str).ok_or_else(|| K8sDecodeError::Invalid("`object.kind` is missing".into()))?;
    let kind = K8sKind::parse(kind_name).ok_or_else(|| K8sDecodeError::UnsupportedKind(kind_name.to_owned()))?;
    let meta = object.get("metadata").and_then(Value::as_object).ok_or_else(|| K8sDecodeError::Invalid("`object.metadata` is missing".into()))?;
    let text = |m: &serde_json::Map<String, Value>, key: &str| m.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = text(meta, "name");
    if name.is_empty() {
        return Err(K8sDecodeError::Invalid("`object.metadata.name` is missing".into()));
    }
    let namespace = match text(meta, "namespace") {
        n if n.is_empty() => "default".to_owned(),
        n => n,
    };
    let resource_version = match meta.get("resourceVersion") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(Value::String(s)) => s.parse::<u64>().map_err(|_| K8sDecodeError::Invalid(format!("`metadata.resourceVersion` {s:?} is not a decimal revision")))?,
        Some(_) => return Err(K8sDecodeError::Invalid("`metadata.resourceVersion` is not a string".into())),
    };
    let time_of = |v: Option<&Value>, field: &str| -> Result<Option<EventTime>, K8sDecodeError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| K8sDecodeError::Invalid(format!("`{field}` {s:?} is not an RFC 3339 time"))),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| K8sDecodeError::Invalid(format!("`{field}` is not an integer of ms"))),
            Some(_) => Err(K8sDecodeError::Invalid(format!("`{field}` is not a time"))),
        }
    };
    let created = time_of(meta.get("creationTimestamp"), "metadata.creationTimestamp")?;
    let deleted = time_of(meta.get("deletionTimestamp"), "metadata.deletionTimestamp")?;
    let mut managed_time: Option<EventTime> = None;
    let mut by_autoscaler = false;
    if let Some(fields) = meta.get("managedFields").and_then(Value::as_array) {
        for (i, entry) in fields.iter().enumerate() {
            let Some(t) = time_of(entry.get("time"), &format!("metadata.managedFields[{i}].time"))? else { continue };
            if managed_time.is_none_or(|m| t >= m) {
                managed_time = Some(t);
                let manager = entry.get("manager").and_then(Value::as_str).unwrap_or_default();
                by_autoscaler = entry.get("subresource").and_then(Value::as_str) == Some("scale")
                    || manager.contains("horizontal-pod-autoscaler")
                    || manager.contains("keda")
                    || manager.contains("autoscaler");
            }
        }
    }
    let ts = match time_of(envelope.get("ts"), "ts")? {
        Some(t) => t,
        None => {
            let event_times = if kind == K8sKind::Event {
                let a = time_of(object.get("lastTimestamp"), "object.lastTimestamp")?;
                let b = time_of(object.get("eventTime"), "object.eventTime")?;
                let c = time_of(object.get("firstTimestamp"), "object.firstTimestamp")?;
                a.or(b).or(c)
            } else {
                None
            };
            event_times
                .or(managed_time)
                .or(if action == WatchAction::Deleted { deleted } else { None })
                .or(created)
                .ok_or_else(|| K8sDecodeError::Invalid("no event time: none of `ts`, managedFields times, deletionTimestamp, creationTimestamp (or an Event's timestamps) is set".into()))?
        }
    };
    let string_map = |v: Option<&Value>| -> BTreeMap<String, String> {
        v.and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))).collect())
            .unwrap_or_default()
    };
    let mut labels = string_map(meta.get("labels"));
    let tenant = labels.get(&cfg.tenant_attribute).filter(|t| !t.is_empty()).cloned().unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    labels.retain(|k, _| !NOISY_LABELS.contains(&k.as_str()));
    let annotations = hashed_annotations(meta.get("annotations"), hasher);
    let owner = meta.get("ownerReferences").and_then(Value::as_array).and_then(|owners| {
        let pick = owners.iter().find(|o| o.get("controller").and_then(Value::as_bool) == Some(true)).or_else(|| owners.first())?;
        Some(ObjectRef { kind: pick.get("kind")?.as_str()?.to_owned(), namespace: namespace.clone(), name: pick.get("name")?.as_str()?.to_owned() })
    });
    let spec = object.get("spec");
    let body = match kind {
        K8sKind::Deployment | K8sKind::StatefulSet | K8sKind::DaemonSet | K8sKind::ReplicaSet => {
            let template = spec.and_then(|s| s.get("template"));
            let template_meta = template.and_then(|t| t.get("metadata"));
            let mut template_labels = string_map(template_meta.and_then(|m| m.get("labels")));
            template_labels.retain(|k, _| !NOISY_LABELS.contains(&k.as_str()));
            Body::Workload {
                replicas: spec.and_then(|s| s.get("replicas")).and_then(Value::as_i64),
                template_labels,
                template_annotations: hashed_annotations(template_meta.and_then(|m| m.get("annotations")), hasher),
                pod: pod_spec(template.and_then(|t| t.get("spec")), hasher),
            }
        }
        K8sKind::ConfigMap | K8sKind::Secret => {
            let mut entries = BTreeMap::new();
            for field in ["data", "binaryData", "stringData"] {
                if let Some(map) = object.get(field).and_then(Value::as_object) {
                    for (key, value) in map {
                        let raw = value.as_str().map(|s| s.as_bytes().to_vec()).unwrap_or_else(|| value.to_string().into_bytes());
                        // stringData is the plain form of data: hash what data would hold.
                        let raw = if field == "stringData" { base64_encode(&raw).into_bytes() } else { raw };
                        entries.insert(key.clone(), hasher.hash(&raw));
                    }
                }
            }
            Body::Data { entries }
        }
        K8sKind::Service => {
            let ports = spec
                .and_then(|s| s.get("ports"))
                .and_then(Value::as_array)
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| {
                            let field = |k: &str| p.get(k).map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).unwrap_or_default();
                            format!("{}:{}/{}->{}", field("name"), field("port"), match field("protocol") { s if s.is_empty() => "TCP".to_owned(), s => s }, field("targetPort"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Body::Service {
                selector: string_map(spec.and_then(|s| s.get("selector"))),
                ports,
                service_type: spec.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("ClusterIP").to_owned(),
            }
        }
        K8sKind::Pod => Body::Pod { pod: pod_spec(spec, hasher) },
        K8sKind::Event => {
            let involved = object.get("involvedObject").or_else(|| object.get("regarding"));
            let field = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or_default().to_owned();
            let top = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            // core/v1 writes `message`; events.k8s.io/v1 writes `note`.
            let message = match top("message") {
                m if m.is_empty() => top("note"),
                m => m,
            };
            Body::Event {
                reason: top("reason"),
                message: message.chars().take(300).collect(),
                event_type: top("type"),
                involved: ObjectRef {
                    kind: field(involved, "kind"),
                    namespace: match field(involved, "namespace") {
                        n if n.is_empty() => namespace.clone(),
                        n => n,
                    },
                    name: field(involved, "name"),
                },
                count: object.get("count").and_then(Value::as_i64).unwrap_or(1),
            }
        }
    };
    Ok(K8sEvent {
        tenant,
        ts,
        action,
        kind,
        namespace,
        name,
        uid: text(meta, "uid"),
        resource_version,
        created,
        labels,
        annotations,
        owner,
        by_autoscaler,
        body,
        origin,
    })
}

fn hashed_annotations(v: Option<&Value>, hasher: &KeyedHasher) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !NOISY_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), hasher.hash(v.as_str().map(str::as_bytes).unwrap_or(v.to_string().as_bytes()))))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_spec(spec: Option<&Value>, hasher: &KeyedHasher) -> PodSpec {
    let mut pod = PodSpec::default();
    let Some(spec) = spec else { return pod };
    for (field, prefix) in [("initContainers", "init:"), ("containers", "")] {
        let Some(list) = spec.get(field).and_then(Value::as_array) else { continue };
        for c in list {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let strings = |k: &str| c.get(k).and_then(Value::as_array).map(|a| a.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect()).unwrap_or_default();
            let mut env = BTreeMap::new();
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                let Some(name) = e.get("name").and_then(Value::as_str) else { continue };
                let value = if let Some(from) = e.get("valueFrom") {
                    if let Some(r) = from.get("secretKeyRef") {
                        let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
                        pod.uses.insert(format!("secret:{n}"));
                        format!("secretKeyRef:{n}/{}", r.get("key").and_then(Value::as_str).unwrap_or_default())
                    } else if let Some(r) = from.get("configMapKeyRef") {
                        let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
                        pod.uses.insert(format!("configmap:{n}"));
                        format!("configMapKeyRef:{n}/{}", r.get("key").and_then(Value::as_str).unwrap_or_default())
                    } else if let Some(r) = from.get("fieldRef") {
                        format!("fieldRef:{}", r.get("fieldPath").and_then(Value::as_str).unwrap_or_default())
                    } else if let Some(r) = from.get("resourceFieldRef") {
                        format!("resourceFieldRef:{}", r.get("resource").and_then(Value::as_str).unwrap_or_default())
                    } else {
                        "valueFrom".to_owned()
                    }
                } else {
                    hasher.hash(e.get("value").and_then(Value::as_str).unwrap_or_default().as_bytes())
                };
                env.insert(name.to_owned(), value);
            }
            for from in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                if let Some(n) = from.get("configMapRef").and_then(|r| r.get("name")).and_then(Value::as_str) {
                    pod.uses.insert(format!("configmap:{n}"));
                }
                if let Some(n) = from.get("secretRef").and_then(|r| r.get("name")).and_then(Value::as_str) {
                    pod.uses.insert(format!("secret:{n}"));
                }
            }
            pod.containers.push(Container {
                name: format!("{prefix}{}", s("name")),
                image: s("image"),
                env,
                resources: c.get("resources").map(canonical_json).unwrap_or_else(|| "{}".to_owned()),
                command: strings("command"),
                args: strings("args"),
            });
        }
    }
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        if let Some(n) = v.get("configMap").and_then(|r| r.get("name")).and_then(Value::as_str) {
            pod.uses.insert(format!("configmap:{n}"));
        }
        if let Some(n) = v.get("secret").and_then(|r| r.get("secretName")).and_then(Value::as_str) {
            pod.uses.insert(format!("secret:{n}"));
        }
    }
    pod
}

/// JSON with object keys sorted (serde_json's map is ordered by key without `preserve_order`).
fn canonical_json(v: &Value) -> String {
    v.to_string()
}

fn parse_time(s: &str) -> Option<EventTime> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The payload of a K8s message as it may appear in a dead letter: every value that could be
/// secret replaced by its keyed hash (`data`, `stringData`, `binaryData` values anywhere,
/// `env[].value`, annotation values). A message that is not JSON is replaced by a note with its
/// length and keyed hash: it cannot be told apart from a Secret.
pub fn redact_payload(payload: &[u8], hasher: &KeyedHasher) -> Vec<u8> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(mut v) => {
            redact(&mut v, hasher, None);
            v.to_string().into_bytes()
        }
        Err(_) => serde_json::json!({
            "redacted": "the message is not JSON; its bytes are withheld because they may hold secret values",
            "bytes": payload.len(),
            "hash": hasher.hash(payload),
        })
        .to_string()
        .into_bytes(),
    }
}

fn redact(v: &mut Value, hasher: &KeyedHasher, parent: Option<&str>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let secret_map = matches!(key.as_str(), "data" | "stringData" | "binaryData" | "annotations");
                let env_value = key == "value" && parent == Some("env");
                if (secret_map && child.is_object()) || env_value {
                    hash_leaves(child, hasher);
                } else {
                    redact(child, hasher, Some(key.as_str()));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                redact(item, hasher, parent);
            }
        }
        _ => {}
    }
}

fn hash_leaves(v: &mut Value, hasher: &KeyedHasher) {
    match v {
        Value::Object(map) => map.values_mut().for_each(|c| hash_leaves(c, hasher)),
        Value::Array(items) => items.iter_mut().for_each(|c| hash_leaves(c, hasher)),
        Value::Null => {}
        other => {
            let raw = other.as_str().map(|s| s.as_bytes().to_vec()).unwrap_or_else(|| other.to_string().into_bytes());
            *other = Value::String(hasher.hash(&raw));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Encoding, Signal, WireFormat};

    fn msg(json: &str) -> RawMessage {
        RawMessage { origin: Origin { partition: 0, offset: 1 }, encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload: json.as_bytes().to_vec() }
    }

    fn decode(json: &str) -> Result<K8sEvent, K8sDecodeError> {
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        decode_k8s(&msg(json), &DecodeConfig::default(), &KeyedHasher::new("k"), &mut out, &mut errors);
        match (out.pop(), errors.pop()) {
            (Some(e), None) => Ok(e),
            (None, Some(e)) => Err(e),
            other => panic!("one event or one error, got {other:?}"),
        }
    }

    #[test]
    fn deployment_fields_and_event_time_from_managed_fields() {
        let e = decode(r#"{"type":"MODIFIED","object":{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"checkout","namespace":"shop","uid":"u1","resourceVersion":"42","labels":{"app.kubernetes.io/name":"checkout","tenant.id":"acme"},
            "annotations":{"deployment.kubernetes.io/revision":"3","team":"payments"},
            "managedFields":[{"manager":"kubectl","time":"2026-11-22T10:00:00Z"},{"manager":"kube-controller-manager","subresource":"status","time":"2026-11-22T10:05:00Z"}]},
            "spec":{"replicas":3,"template":{"metadata":{"labels":{"app.kubernetes.io/name":"checkout","pod-template-hash":"abc"}},"spec":{"containers":[{"name":"app","image":"r/checkout:1.2","env":[{"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}},{"name":"MODE","value":"fast"}],"resources":{"limits":{"cpu":"1"}}}]}}},
            "status":{"replicas":3}}}"#).unwrap();
        assert_eq!(e.tenant, "acme");
        assert_eq!(e.ts, parse_time("2026-11-22T10:05:00Z").unwrap());
        assert_eq!(e.resource_version, 42);
        assert_eq!((e.kind, e.action), (K8sKind::Deployment, WatchAction::Modified));
        assert!(!e.annotations.contains_key("deployment.kubernetes.io/revision"));
        assert!(e.annotations["team"].starts_with("hmac:"));
        let Body::Workload { replicas, template_labels, pod, .. } = &e.body else { panic!("workload") };
        assert_eq!(*replicas, Some(3));
        assert!(!template_labels.contains_key("pod-template-hash"));
        assert_eq!(pod.containers[0].image, "r/checkout:1.2");
        assert_eq!(pod.containers[0].env["DB_PASSWORD"], "secretKeyRef:db/password");
        assert!(pod.containers[0].env["MODE"].starts_with("hmac:"));
        assert!(pod.uses.contains("secret:db"));
    }

    #[test]
    fn secret_values_are_hashed_and_equal_values_hash_equally() {
        let a = decode(r#"{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":"db","creationTimestamp":"2026-11-22T10:00:00Z"},"data":{"password":"Q0FOQVJZ"},"stringData":{"user":"CANARY"}}}"#).unwrap();
        let Body::Data { entries } = &a.body else { panic!("data") };
        assert!(entries.values().all(|v| v.starts_with("hmac:")));
        assert_eq!(entries["password"], entries["user"], "stringData hashes as its base64 form");
        assert!(!format!("{a:?}").contains("CANARY") && !format!("{a:?}").contains("Q0FOQVJZ"));
    }

    #[test]
    fn malformed_events_name_the_problem() {
        assert!(matches!(decode("not json"), Err(K8sDecodeError::NotJson(_))));
        assert_eq!(decode(r#"{"type":"ADDED"}"#).unwrap_err().to_string(), "k8s watch event: `object` is missing or not an object");
        assert!(matches!(decode(r#"{"type":"ADDED","object":{"kind":"Endpoints","metadata":{"name":"x"}}}"#), Err(K8sDecodeError::UnsupportedKind(k)) if k == "Endpoints"));
        assert!(decode(r#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"x"}}}"#).unwrap_err().to_string().contains("no event time"));
        assert!(decode(r#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"x","resourceVersion":"abc","creationTimestamp":"2026-11-22T10:00:00Z"}}}"#).unwrap_err().to_string().contains("resourceVersion"));
    }

    #[test]
    fn redaction_removes_every_secret_value() {
        let hasher = KeyedHasher::new("k");
        let payload = br#"{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":"db","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"p\":\"CANARY1\"}}"}},"data":{"p":"CANARY2"},"spec":{"containers":[{"env":[{"name":"X","value":"CANARY3"}]}]}}}"#;
        let out = String::from_utf8(redact_payload(payload, &hasher)).unwrap();
        assert!(!out.contains("CANARY"), "{out}");
        assert!(out.contains("\"name\":\"db\""), "names stay: {out}");
        let out = String::from_utf8(redact_payload(b"CANARY4 not json", &hasher)).unwrap();
        assert!(!out.contains("CANARY"));
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b"CANARY"), "Q0FOQVJZ");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"a"), "YQ==");
    }
}
