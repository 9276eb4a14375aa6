//! The Kubernetes emitter: one watch event per message, as JSON.
//!
//! A message is what the watch API (and `kubectl get -w -o json`) writes for one change of one
//! object: `{"type":"ADDED"|"MODIFIED"|"DELETED","object":{...}}`, the object whole, in the
//! shape and field order of the API (maps with sorted keys, as Go writes them).
//!
//! At the start (tick 0) the cluster is listed: for every service of the estate, in estate
//! order, an ADDED for its Deployment (`apps/v1`), its ReplicaSet, its Pods (the estate's pod
//! names), its Service, its ConfigMap `<service>-config` and its Secret `<service>-credentials`
//! (type Opaque, `data` in base64), all in the service's namespace. Then the
//! [`Timeline`](super::Timeline)'s changes, each as the objects it touches, seconds after the
//! change (`+Ns`):
//!
//! | change | events |
//! |---|---|
//! | [`Change::Deploy`] | `+0s` Deployment MODIFIED (new image, `generation` + 1, annotation `deployment.kubernetes.io/revision` + 1), new ReplicaSet ADDED, Event `ScalingReplicaSet` (up); `+1s` new Pods ADDED (Pending); `+5..8s` new Pods MODIFIED (Running, ready); `+8s` old ReplicaSet MODIFIED (replicas 0), Event `ScalingReplicaSet` (down); `+8..11s` old Pods MODIFIED (`deletionTimestamp` set) with an Event `Killing` each; `+12..15s` old Pods DELETED; `+20s` Deployment MODIFIED (status only) |
//! | the bad deploy (a fault) also | `+60..63s` Event `Unhealthy` (readiness probe failed, Warning) for each new Pod; `+75s` one Event `BackOff` (Warning) for the first new Pod |
//! | [`Change::Scale`] | `+0s` Deployment MODIFIED (`spec.replicas` + 1, `generation` + 1), ReplicaSet MODIFIED, Event `ScalingReplicaSet`; `+1s` the added Pod ADDED; `+6s` it is MODIFIED (Running); `+10s` Deployment MODIFIED (status only) |
//! | [`Change::ConfigEdit`] | `+0s` ConfigMap MODIFIED (a value changed, a key added) |
//! | [`Change::SecretRotation`] | `+0s` Secret MODIFIED (a value changed) |
//!
//! Kubernetes writes times to the second, and so does the emitter: every event happens at a
//! whole second (the start's, floored, for the listing), and the bad deploy's Deployment
//! MODIFIED exactly at the bad deploy's offset.
//! The event time of a message is, for a core/v1 `Event`, its `lastTimestamp`, and for every
//! other object the newest `metadata.managedFields[].time`: each event updates (or adds) the
//! entry of the manager that made it (`kubectl` for spec and data edits,
//! `kube-controller-manager` for what the controllers do, `kube-scheduler` and `kubelet` for pod
//! status; `operation: Update`, `subresource: status` for status updates) to its own time. A DELETED carries the
//! object as last seen, with its `deletionTimestamp`, and the kubelet's last status update.
//!
//! `metadata.resourceVersion` is a cluster-wide counter (a decimal string) that strictly
//! increases in event-time order (at the same second, in the order of the table above; at the
//! start, in listing order), so it also increases per object. Uids are a hash of the seed, the
//! kind and the object's namespace and name; objects of a service whose tenant is not `default`
//! carry the label `tenant.id`, Events included.
//!
//! Messages are tick-aligned like the other emitters': the tick at `t` holds the events of
//! `(t - interval, t]`, in event-time order, so without disorder the partition is in event-time
//! order. Everything after the start is computed when the emitter is built (a few dozen events
//! per change); the listing at the start is encoded on demand, so large estates cost nothing
//! until they are handed out.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use super::estate::Service;
use super::schedule::Plan;
use super::timeline::Change;
use super::{World, noise};

/// Tag of the arrival delays of the k8s partition.
pub(crate) const DELAY_TAG: u64 = 0x0C8E_0001;

/// Coordinate tags of the emitter (apart from the ones in `noise::tag`).
mod tag {
    /// Object uids.
    pub const UID: u64 = 0x0C8E_0002;
    /// Where the resourceVersion counter starts, and its steps.
    pub const RESOURCE_VERSION: u64 = 0x0C8E_0003;
    /// Secret values.
    pub const SECRET: u64 = 0x0C8E_0004;
    /// Nodes, pod and cluster IPs, container and image ids.
    pub const PLACEMENT: u64 = 0x0C8E_0005;
}

/// The ConfigMap key a [`Change::ConfigEdit`] changes, its value before and after.
pub(crate) const CONFIG_EDITED_KEY: &str = "CACHE_TTL_SECONDS";
const CONFIG_EDITED_BEFORE: &str = "300";
pub(crate) const CONFIG_EDITED_VALUE: &str = "600";
/// The ConfigMap key a [`Change::ConfigEdit`] adds, and its value.
pub(crate) const CONFIG_ADDED_KEY: &str = "RETRY_BUDGET_PERCENT";
pub(crate) const CONFIG_ADDED_VALUE: &str = "20";
/// The Secret key a [`Change::SecretRotation`] rotates (the container reads it through a
/// `secretKeyRef`).
pub(crate) const SECRET_ROTATED_KEY: &str = "DB_PASSWORD";

/// Seconds a pod is given to stop (`terminationGracePeriodSeconds`).
const GRACE_SECONDS: u64 = 30;
/// Nodes the pods are spread over.
const NODES: u64 = 6;
/// Port the containers listen on.
const HTTP_PORT: u16 = 8080;
/// Port the containers expose metrics on.
const METRICS_PORT: u16 = 9464;
/// Objects listed at the start for a service, besides its pods: Deployment, ReplicaSet,
/// Service, ConfigMap, Secret.
const OBJECTS_PER_SERVICE: u64 = 5;

type Map = BTreeMap<String, String>;

fn map<const N: usize>(entries: [(&str, String); N]) -> Map {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// RFC 3339 with `Z`, to the second, as Kubernetes writes times.
fn timestamp(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A 64-bit key of a name.
fn name_key(name: &str) -> u64 {
    noise::hash(0, &name.bytes().map(u64::from).collect::<Vec<_>>())
}

/// A deterministic RFC 4122 (version 4) uid for an object.
fn uid(seed: u64, kind: &str, namespace: &str, name: &str) -> String {
    let key = [
        tag::UID,
        name_key(kind),
        name_key(namespace),
        name_key(name),
    ];
    let hi = noise::hash(seed, &key);
    let lo = noise::hash(seed, &[key[0], key[1], key[2], key[3], 1]);
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0xC << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// 64 hex digits (a sha256 or a container id).
fn hex64(seed: u64, coords: &[u64]) -> String {
    (0..4u64)
        .map(|i| {
            let mut c = coords.to_vec();
            c.push(i);
            format!("{:016x}", noise::hash(seed, &c))
        })
        .collect()
}

/// The value of Secret key `key` of `service` after `rotation` rotations (0: at the start),
/// before base64.
pub(crate) fn secret_value(seed: u64, service: &str, key: &str, rotation: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..24u64)
        .map(|i| {
            let h = noise::hash(
                seed,
                &[tag::SECRET, name_key(service), name_key(key), rotation, i],
            );
            char::from(ALPHABET[(h % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

/// The data of a service's ConfigMap at the start.
fn config_data(svc: &Service) -> Map {
    map([
        ("LOG_LEVEL", "info".to_owned()),
        ("HTTP_PORT", HTTP_PORT.to_string()),
        (CONFIG_EDITED_KEY, CONFIG_EDITED_BEFORE.to_owned()),
        ("UPSTREAM_TIMEOUT_MS", "2000".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.observability.svc.cluster.local:4317".to_owned(),
        ),
        ("SERVICE_NAMESPACE", svc.namespace.clone()),
    ])
}

/// The plain data of a service's Secret at the start.
fn secret_data(seed: u64, svc: &Service) -> Map {
    map([
        ("DB_USER", format!("{}_svc", svc.name.replace('-', "_"))),
        (
            SECRET_ROTATED_KEY,
            secret_value(seed, &svc.name, SECRET_ROTATED_KEY, 0),
        ),
        (
            "API_KEY",
            format!("sk_live_{}", secret_value(seed, &svc.name, "API_KEY", 0)),
        ),
    ])
}

fn base64(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// The middle part of a pod name `<service>-<template hash>-<suffix>`.
fn template_hash(service: &str, pod: &str) -> String {
    pod.strip_prefix(service)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.split('-').next())
        .unwrap_or_default()
        .to_owned()
}

// The objects, in the API's shape and field order.

/// `managedFields[].fieldsV1`: a tree of `f:<field>` (and `k:<key>`, `.`) entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
struct Fields(BTreeMap<String, Fields>);

impl Fields {
    /// The tree holding each path (each path a list of entries from the root).
    fn of(paths: &[&[&str]]) -> Fields {
        let mut root = Fields::default();
        for path in paths {
            root.insert(path.iter().map(|p| (*p).to_owned()));
        }
        root
    }

    fn insert(&mut self, path: impl IntoIterator<Item = String>) {
        let mut node = self;
        for entry in path {
            node = node.0.entry(entry).or_default();
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ManagedField {
    manager: &'static str,
    operation: &'static str,
    api_version: &'static str,
    time: String,
    fields_type: &'static str,
    #[serde(rename = "fieldsV1")]
    fields_v1: Fields,
    #[serde(skip_serializing_if = "Option::is_none")]
    subresource: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReference {
    api_version: &'static str,
    kind: &'static str,
    name: String,
    uid: String,
    controller: bool,
    block_owner_deletion: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    generate_name: Option<String>,
    namespace: String,
    uid: String,
    resource_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    creation_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_grace_period_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    labels: Map,
    #[serde(skip_serializing_if = "Map::is_empty")]
    annotations: Map,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    owner_references: Vec<OwnerReference>,
    managed_fields: Vec<ManagedField>,
}

impl Meta {
    /// Sets the entry of `manager` (for `subresource`) to `time` and `fields`, adding it if the
    /// object has none: every event goes through here, so the newest entry is the event's time.
    fn touch(
        &mut self,
        manager: &'static str,
        subresource: Option<&'static str>,
        api_version: &'static str,
        time: i64,
        fields: Fields,
    ) {
        let time = timestamp(time);
        match self
            .managed_fields
            .iter_mut()
            .find(|m| m.manager == manager && m.subresource == subresource)
        {
            Some(entry) => {
                entry.time = time;
                entry.fields_v1 = fields;
            }
            None => self.managed_fields.push(ManagedField {
                manager,
                operation: "Update",
                api_version,
                time,
                fields_type: "FieldsV1",
                fields_v1: fields,
                subresource,
            }),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: Map,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateMeta {
    /// Always null in a template, as the API writes it.
    creation_timestamp: Option<String>,
    labels: Map,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    name: &'static str,
    container_port: u16,
    protocol: &'static str,
}

#[derive(Clone, Debug, Serialize)]
struct NameRef {
    name: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvFromSource {
    config_map_ref: NameRef,
}

#[derive(Clone, Debug, Serialize)]
struct SecretKeySelector {
    name: String,
    key: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvVarSource {
    secret_key_ref: SecretKeySelector,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvVar {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_from: Option<EnvVarSource>,
}

#[derive(Clone, Debug, Serialize)]
struct Resources {
    limits: Map,
    requests: Map,
}

#[derive(Clone, Debug, Serialize)]
struct HttpGet {
    path: &'static str,
    port: u16,
    scheme: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    http_get: HttpGet,
    timeout_seconds: u32,
    period_seconds: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: String,
    image: String,
    ports: Vec<ContainerPort>,
    env_from: Vec<EnvFromSource>,
    env: Vec<EnvVar>,
    resources: Resources,
    readiness_probe: Probe,
    termination_message_path: &'static str,
    termination_message_policy: &'static str,
    image_pull_policy: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    containers: Vec<Container>,
    restart_policy: &'static str,
    termination_grace_period_seconds: u64,
    dns_policy: &'static str,
    service_account_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_name: Option<String>,
    scheduler_name: &'static str,
}

#[derive(Clone, Debug, Serialize)]
struct PodTemplate {
    metadata: TemplateMeta,
    spec: PodSpec,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RollingUpdate {
    max_unavailable: &'static str,
    max_surge: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Strategy {
    #[serde(rename = "type")]
    kind: &'static str,
    rolling_update: RollingUpdate,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentSpec {
    replicas: u64,
    selector: Selector,
    template: PodTemplate,
    strategy: Strategy,
    revision_history_limit: u32,
    progress_deadline_seconds: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_update_time: Option<String>,
    last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentStatus {
    observed_generation: u64,
    replicas: u64,
    updated_replicas: u64,
    ready_replicas: u64,
    available_replicas: u64,
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Deployment {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    spec: DeploymentSpec,
    status: DeploymentStatus,
}

#[derive(Clone, Debug, Serialize)]
struct ReplicaSetSpec {
    replicas: u64,
    selector: Selector,
    template: PodTemplate,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicaSetStatus {
    replicas: u64,
    #[serde(skip_serializing_if = "is_zero")]
    fully_labeled_replicas: u64,
    #[serde(skip_serializing_if = "is_zero")]
    ready_replicas: u64,
    #[serde(skip_serializing_if = "is_zero")]
    available_replicas: u64,
    observed_generation: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicaSet {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    spec: ReplicaSetSpec,
    status: ReplicaSetStatus,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Running {
    started_at: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Terminated {
    exit_code: i32,
    reason: &'static str,
    started_at: String,
    finished_at: String,
}

#[derive(Clone, Debug, Serialize)]
struct Waiting {
    reason: &'static str,
}

#[derive(Clone, Debug, Default, Serialize)]
struct ContainerState {
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<Running>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminated: Option<Terminated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<Waiting>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    state: ContainerState,
    ready: bool,
    restart_count: u32,
    image: String,
    #[serde(rename = "imageID")]
    image_id: String,
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    started: bool,
}

#[derive(Clone, Debug, Serialize)]
struct PodIp {
    ip: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    phase: &'static str,
    conditions: Vec<Condition>,
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    host_ip: Option<String>,
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pod_ips: Vec<PodIp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    container_statuses: Vec<ContainerStatus>,
    qos_class: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Pod {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    spec: PodSpec,
    status: PodStatus,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServicePort {
    name: &'static str,
    protocol: &'static str,
    port: u16,
    target_port: u16,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSpec {
    ports: Vec<ServicePort>,
    selector: Map,
    #[serde(rename = "clusterIP")]
    cluster_ip: String,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Vec<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    session_affinity: &'static str,
    ip_families: Vec<&'static str>,
    ip_family_policy: &'static str,
    internal_traffic_policy: &'static str,
}

#[derive(Clone, Debug, Serialize)]
struct LoadBalancerStatus {}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceStatus {
    load_balancer: LoadBalancerStatus,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeService {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    spec: ServiceSpec,
    status: ServiceStatus,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMap {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    data: Map,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    /// Values in base64.
    data: Map,
    #[serde(rename = "type")]
    kind_of: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReference {
    kind: &'static str,
    namespace: String,
    name: String,
    uid: String,
    api_version: &'static str,
    resource_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field_path: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
struct EventSource {
    component: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeEvent {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    involved_object: ObjectReference,
    reason: &'static str,
    message: String,
    source: EventSource,
    first_timestamp: String,
    last_timestamp: String,
    count: u32,
    #[serde(rename = "type")]
    kind_of: &'static str,
    /// Always null for core/v1 Events written by these components.
    event_time: Option<String>,
    reporting_component: &'static str,
    reporting_instance: String,
}

/// Any object a watch event carries.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum Object {
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    Pod(Box<Pod>),
    Service(Box<KubeService>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Event(Box<KubeEvent>),
}

#[derive(Serialize)]
struct WatchEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    object: &'a Object,
}

const ADDED: &str = "ADDED";
const MODIFIED: &str = "MODIFIED";
const DELETED: &str = "DELETED";

fn render(kind: &'static str, object: &Object) -> Vec<u8> {
    serde_json::to_vec(&WatchEvent { kind, object }).unwrap_or_default()
}

// The fields each manager owns.

fn label_paths(labels: &Map) -> Vec<Vec<String>> {
    std::iter::once(".".to_owned())
        .chain(labels.keys().map(|k| format!("f:{k}")))
        .map(|leaf| vec!["f:metadata".to_owned(), "f:labels".to_owned(), leaf])
        .collect()
}

fn fields_from(paths: Vec<Vec<String>>) -> Fields {
    let mut root = Fields::default();
    for path in paths {
        root.insert(path);
    }
    root
}

/// What a pod template's owner (kubectl for a Deployment, the controller for a ReplicaSet or a
/// Pod) holds of its `spec` at `prefix`.
fn template_paths(prefix: &[&str], container: &str, labels: &Map) -> Vec<Vec<String>> {
    let k = format!("k:{{\"name\":\"{container}\"}}");
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut push = |rest: &[&str]| {
        out.push(prefix.iter().chain(rest).map(|s| (*s).to_owned()).collect());
    };
    let c = ["f:spec", "f:containers", k.as_str()];
    for leaf in [
        ".",
        "f:env",
        "f:envFrom",
        "f:image",
        "f:imagePullPolicy",
        "f:name",
        "f:ports",
        "f:readinessProbe",
        "f:resources",
        "f:terminationMessagePath",
        "f:terminationMessagePolicy",
    ] {
        push(&[c[0], c[1], c[2], leaf]);
    }
    for leaf in [
        "f:dnsPolicy",
        "f:restartPolicy",
        "f:schedulerName",
        "f:serviceAccountName",
        "f:terminationGracePeriodSeconds",
    ] {
        push(&["f:spec", leaf]);
    }
    for label in std::iter::once(".".to_owned()).chain(labels.keys().map(|k| format!("f:{k}"))) {
        push(&["f:metadata", "f:labels", label.as_str()]);
    }
    out
}

fn deployment_kubectl_fields(container: &str, labels: &Map) -> Fields {
    let mut paths = label_paths(labels);
    for leaf in [
        "f:progressDeadlineSeconds",
        "f:replicas",
        "f:revisionHistoryLimit",
        "f:selector",
        "f:strategy",
    ] {
        paths.push(vec!["f:spec".to_owned(), leaf.to_owned()]);
    }
    paths.extend(template_paths(&["f:spec", "f:template"], container, labels));
    fields_from(paths)
}

fn deployment_revision_fields() -> Fields {
    Fields::of(&[
        &["f:metadata", "f:annotations", "."],
        &[
            "f:metadata",
            "f:annotations",
            "f:deployment.kubernetes.io/revision",
        ],
    ])
}

fn deployment_status_fields() -> Fields {
    Fields::of(&[
        &["f:status", "f:availableReplicas"],
        &["f:status", "f:conditions", "."],
        &["f:status", "f:conditions", "k:{\"type\":\"Available\"}"],
        &["f:status", "f:conditions", "k:{\"type\":\"Progressing\"}"],
        &["f:status", "f:observedGeneration"],
        &["f:status", "f:readyReplicas"],
        &["f:status", "f:replicas"],
        &["f:status", "f:updatedReplicas"],
    ])
}

fn replica_set_fields(container: &str, labels: &Map, owner_uid: &str) -> Fields {
    let mut paths = label_paths(labels);
    for leaf in [
        ".",
        "f:deployment.kubernetes.io/desired-replicas",
        "f:deployment.kubernetes.io/max-replicas",
        "f:deployment.kubernetes.io/revision",
    ] {
        paths.push(
            ["f:metadata", "f:annotations", leaf]
                .map(str::to_owned)
                .to_vec(),
        );
    }
    paths.push(
        ["f:metadata", "f:ownerReferences", "."]
            .map(str::to_owned)
            .to_vec(),
    );
    paths.push(vec![
        "f:metadata".to_owned(),
        "f:ownerReferences".to_owned(),
        format!("k:{{\"uid\":\"{owner_uid}\"}}"),
    ]);
    for leaf in ["f:replicas", "f:selector"] {
        paths.push(vec!["f:spec".to_owned(), leaf.to_owned()]);
    }
    paths.extend(template_paths(&["f:spec", "f:template"], container, labels));
    fields_from(paths)
}

fn replica_set_status_fields() -> Fields {
    Fields::of(&[
        &["f:status", "f:availableReplicas"],
        &["f:status", "f:fullyLabeledReplicas"],
        &["f:status", "f:observedGeneration"],
        &["f:status", "f:readyReplicas"],
        &["f:status", "f:replicas"],
    ])
}

fn pod_fields(container: &str, labels: &Map, owner_uid: &str) -> Fields {
    let mut paths = template_paths(&[], container, labels);
    paths.push(vec!["f:metadata".to_owned(), "f:generateName".to_owned()]);
    paths.push(
        ["f:metadata", "f:ownerReferences", "."]
            .map(str::to_owned)
            .to_vec(),
    );
    paths.push(vec![
        "f:metadata".to_owned(),
        "f:ownerReferences".to_owned(),
        format!("k:{{\"uid\":\"{owner_uid}\"}}"),
    ]);
    fields_from(paths)
}

fn pod_status_fields(container_statuses: bool) -> Fields {
    let mut paths: Vec<&[&str]> = vec![
        &["f:status", "f:conditions", "."],
        &["f:status", "f:conditions", "k:{\"type\":\"PodScheduled\"}"],
        &["f:status", "f:phase"],
        &["f:status", "f:qosClass"],
    ];
    if container_statuses {
        paths.extend_from_slice(&[
            &[
                "f:status",
                "f:conditions",
                "k:{\"type\":\"ContainersReady\"}",
            ],
            &["f:status", "f:conditions", "k:{\"type\":\"Initialized\"}"],
            &["f:status", "f:conditions", "k:{\"type\":\"Ready\"}"],
            &["f:status", "f:containerStatuses"],
            &["f:status", "f:hostIP"],
            &["f:status", "f:podIP"],
            &["f:status", "f:podIPs"],
            &["f:status", "f:startTime"],
        ]);
    }
    Fields::of(&paths)
}

fn service_fields(labels: &Map) -> Fields {
    let mut paths = label_paths(labels);
    for rest in [
        ["f:spec", "f:internalTrafficPolicy", ""],
        ["f:spec", "f:ports", "."],
        ["f:spec", "f:ports", "k:{\"port\":80,\"protocol\":\"TCP\"}"],
        ["f:spec", "f:selector", ""],
        ["f:spec", "f:sessionAffinity", ""],
        ["f:spec", "f:type", ""],
    ] {
        paths.push(
            rest.iter()
                .filter(|s| !s.is_empty())
                .map(|s| (*s).to_owned())
                .collect(),
        );
    }
    fields_from(paths)
}

fn data_fields(labels: &Map, data: &Map, secret: bool) -> Fields {
    let mut paths = label_paths(labels);
    for leaf in std::iter::once(".".to_owned()).chain(data.keys().map(|k| format!("f:{k}"))) {
        paths.push(vec!["f:data".to_owned(), leaf]);
    }
    if secret {
        paths.push(vec!["f:type".to_owned()]);
    }
    fields_from(paths)
}

fn event_fields() -> Fields {
    Fields::of(&[
        &["f:count"],
        &["f:firstTimestamp"],
        &["f:involvedObject"],
        &["f:lastTimestamp"],
        &["f:message"],
        &["f:reason"],
        &["f:reportingComponent"],
        &["f:reportingInstance"],
        &["f:source", "f:component"],
        &["f:type"],
    ])
}

/// What the objects of a run are made of: the world, seen from Kubernetes.
struct Cluster<'a> {
    world: &'a World,
    /// The start, in whole seconds since the epoch (floored).
    start_s: i64,
}

impl<'a> Cluster<'a> {
    fn new(world: &'a World) -> Cluster<'a> {
        Cluster {
            world,
            start_s: i64::try_from(world.start_ns / 1_000_000_000).unwrap_or(i64::MAX),
        }
    }

    fn svc(&self, s: usize) -> &'a Service {
        &self.world.estate.services[s]
    }

    fn seed(&self) -> u64 {
        self.world.seed
    }

    fn uid(&self, kind: &str, s: usize, name: &str) -> String {
        uid(self.seed(), kind, &self.svc(s).namespace, name)
    }

    /// The labels of every object of a service: its name, and its tenant unless `default`.
    fn labels(&self, s: usize) -> Map {
        let mut labels = map([("app.kubernetes.io/name", self.svc(s).name.clone())]);
        let tenants = &self.world.tenants;
        let tenant = &tenants[s % tenants.len()];
        if tenant != "default" {
            labels.insert("tenant.id".to_owned(), tenant.clone());
        }
        labels
    }

    fn pod_labels(&self, s: usize, hash: &str) -> Map {
        let mut labels = self.labels(s);
        labels.insert("pod-template-hash".to_owned(), hash.to_owned());
        labels
    }

    fn meta(&self, s: usize, kind: &str, name: &str, t: i64) -> Meta {
        let svc = self.svc(s);
        Meta {
            name: name.to_owned(),
            generate_name: None,
            namespace: svc.namespace.clone(),
            uid: self.uid(kind, s, name),
            resource_version: String::new(),
            generation: None,
            creation_timestamp: timestamp(t),
            deletion_timestamp: None,
            deletion_grace_period_seconds: None,
            labels: self.labels(s),
            annotations: Map::new(),
            owner_references: Vec::new(),
            managed_fields: Vec::new(),
        }
    }

    fn image(&self, s: usize, version: &str) -> String {
        let svc = self.svc(s);
        format!(
            "registry.example.com/{}/{}:{version}",
            svc.namespace, svc.name
        )
    }

    fn image_id(&self, s: usize, version: &str) -> String {
        let svc = self.svc(s);
        let digest = hex64(
            self.seed(),
            &[tag::PLACEMENT, 1, name_key(&svc.name), name_key(version)],
        );
        format!(
            "registry.example.com/{}/{}@sha256:{digest}",
            svc.namespace, svc.name
        )
    }

    fn container(&self, s: usize, version: &str) -> Container {
        let svc = self.svc(s);
        // Requests from the service's size, limits twice that.
        let cpu_m = ((svc.cpu_at_peak * 1000.0 / 50.0).round() as u64).max(1) * 50;
        let memory_mi = (svc.memory_bytes >> 20).div_ceil(64).max(1) * 64;
        Container {
            name: svc.name.clone(),
            image: self.image(s, version),
            ports: vec![
                ContainerPort {
                    name: "http",
                    container_port: HTTP_PORT,
                    protocol: "TCP",
                },
                ContainerPort {
                    name: "metrics",
                    container_port: METRICS_PORT,
                    protocol: "TCP",
                },
            ],
            env_from: vec![EnvFromSource {
                config_map_ref: NameRef {
                    name: format!("{}-config", svc.name),
                },
            }],
            env: vec![
                EnvVar {
                    name: "OTEL_SERVICE_NAME".to_owned(),
                    value: Some(svc.name.clone()),
                    value_from: None,
                },
                EnvVar {
                    name: "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
                    value: Some(format!("service.namespace={}", svc.namespace)),
                    value_from: None,
                },
                EnvVar {
                    name: "PORT".to_owned(),
                    value: Some(HTTP_PORT.to_string()),
                    value_from: None,
                },
                EnvVar {
                    name: SECRET_ROTATED_KEY.to_owned(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: SecretKeySelector {
                            name: format!("{}-credentials", svc.name),
                            key: SECRET_ROTATED_KEY.to_owned(),
                        },
                    }),
                },
            ],
            resources: Resources {
                limits: map([
                    ("cpu", format!("{}m", 2 * cpu_m)),
                    ("memory", format!("{}Mi", 2 * memory_mi)),
                ]),
                requests: map([
                    ("cpu", format!("{cpu_m}m")),
                    ("memory", format!("{memory_mi}Mi")),
                ]),
            },
            readiness_probe: Probe {
                http_get: HttpGet {
                    path: "/healthz/ready",
                    port: HTTP_PORT,
                    scheme: "HTTP",
                },
                timeout_seconds: 1,
                period_seconds: 10,
                success_threshold: 1,
                failure_threshold: 3,
            },
            termination_message_path: "/dev/termination-log",
            termination_message_policy: "File",
            image_pull_policy: "IfNotPresent",
        }
    }

    fn pod_spec(&self, s: usize, version: &str, node: Option<String>) -> PodSpec {
        PodSpec {
            containers: vec![self.container(s, version)],
            restart_policy: "Always",
            termination_grace_period_seconds: GRACE_SECONDS,
            dns_policy: "ClusterFirst",
            service_account_name: "default",
            node_name: node,
            scheduler_name: "default-scheduler",
        }
    }

    fn template(&self, s: usize, version: &str, labels: Map) -> PodTemplate {
        PodTemplate {
            metadata: TemplateMeta {
                creation_timestamp: None,
                labels,
            },
            spec: self.pod_spec(s, version, None),
        }
    }

    fn deployment_conditions(&self, rs: &str, t: i64, since: i64) -> Vec<Condition> {
        vec![
            Condition {
                kind: "Available",
                status: "True",
                last_update_time: Some(timestamp(since)),
                last_transition_time: timestamp(since),
                reason: Some("MinimumReplicasAvailable"),
                message: Some("Deployment has minimum availability.".to_owned()),
            },
            Condition {
                kind: "Progressing",
                status: "True",
                last_update_time: Some(timestamp(t)),
                last_transition_time: timestamp(since),
                reason: Some("NewReplicaSetAvailable"),
                message: Some(format!("ReplicaSet \"{rs}\" has successfully progressed.")),
            },
        ]
    }

    /// A service's Deployment as listed at the start.
    fn deployment(&self, s: usize) -> Deployment {
        let svc = self.svc(s);
        let t = self.start_s;
        let replicas = svc.pods.len() as u64;
        let labels = self.labels(s);
        let mut metadata = self.meta(s, "Deployment", &svc.name, t);
        metadata.generation = Some(1);
        metadata.annotations.insert(
            "deployment.kubernetes.io/revision".to_owned(),
            "1".to_owned(),
        );
        metadata.touch(
            "kubectl",
            None,
            "apps/v1",
            t,
            deployment_kubectl_fields(&svc.name, &labels),
        );
        metadata.touch(
            "kube-controller-manager",
            None,
            "apps/v1",
            t,
            deployment_revision_fields(),
        );
        metadata.touch(
            "kube-controller-manager",
            Some("status"),
            "apps/v1",
            t,
            deployment_status_fields(),
        );
        let hash = self.listed_hash(s);
        Deployment {
            api_version: "apps/v1",
            kind: "Deployment",
            metadata,
            spec: DeploymentSpec {
                replicas,
                selector: Selector {
                    match_labels: map([("app.kubernetes.io/name", svc.name.clone())]),
                },
                template: self.template(s, &svc.version, labels),
                strategy: Strategy {
                    kind: "RollingUpdate",
                    rolling_update: RollingUpdate {
                        max_unavailable: "25%",
                        max_surge: "25%",
                    },
                },
                revision_history_limit: 10,
                progress_deadline_seconds: 600,
            },
            status: DeploymentStatus {
                observed_generation: 1,
                replicas,
                updated_replicas: replicas,
                ready_replicas: replicas,
                available_replicas: replicas,
                conditions: self.deployment_conditions(&format!("{}-{hash}", svc.name), t, t),
            },
        }
    }

    /// A new ReplicaSet of a service for `version`, created at `t`, its pods not running yet.
    fn replica_set(
        &self,
        s: usize,
        version: &str,
        hash: &str,
        replicas: u64,
        revision: u64,
        t: i64,
    ) -> ReplicaSet {
        let svc = self.svc(s);
        let name = format!("{}-{hash}", svc.name);
        let labels = self.pod_labels(s, hash);
        let owner_uid = self.uid("Deployment", s, &svc.name);
        let mut metadata = self.meta(s, "ReplicaSet", &name, t);
        metadata.generation = Some(1);
        metadata.labels = labels.clone();
        metadata.annotations = replica_set_annotations(replicas, revision);
        metadata.owner_references = vec![OwnerReference {
            api_version: "apps/v1",
            kind: "Deployment",
            name: svc.name.clone(),
            uid: owner_uid.clone(),
            controller: true,
            block_owner_deletion: true,
        }];
        metadata.touch(
            "kube-controller-manager",
            None,
            "apps/v1",
            t,
            replica_set_fields(&svc.name, &labels, &owner_uid),
        );
        ReplicaSet {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            metadata,
            spec: ReplicaSetSpec {
                replicas,
                selector: Selector {
                    match_labels: map([
                        ("app.kubernetes.io/name", svc.name.clone()),
                        ("pod-template-hash", hash.to_owned()),
                    ]),
                },
                template: self.template(s, version, labels),
            },
            status: ReplicaSetStatus {
                replicas: 0,
                fully_labeled_replicas: 0,
                ready_replicas: 0,
                available_replicas: 0,
                observed_generation: 1,
            },
        }
    }

    /// The node a pod runs on: (name, host IP).
    fn node(&self, pod: &str) -> (String, String) {
        let i = noise::hash(self.seed(), &[tag::PLACEMENT, 2, name_key(pod)]) % NODES;
        let h = noise::hash(self.seed(), &[tag::PLACEMENT, 3, i]);
        let (c, d) = (h % 64 + 16 * (i % 4), (h >> 8) % 250 + 2);
        (
            format!("ip-10-0-{c}-{d}.ec2.internal"),
            format!("10.0.{c}.{d}"),
        )
    }

    fn pod_ip(&self, pod: &str) -> String {
        let h = noise::hash(self.seed(), &[tag::PLACEMENT, 4, name_key(pod)]);
        format!("10.244.{}.{}", h % 200, (h >> 8) % 250 + 2)
    }

    /// A pod of a service, created at `t`; running (and ready) since `t` when `running`, else
    /// scheduled and pending.
    fn pod(&self, s: usize, version: &str, pod: &str, t: i64, running: bool) -> Pod {
        let svc = self.svc(s);
        let hash = template_hash(&svc.name, pod);
        let rs = format!("{}-{hash}", svc.name);
        let labels = self.pod_labels(s, &hash);
        let owner_uid = self.uid("ReplicaSet", s, &rs);
        let mut metadata = self.meta(s, "Pod", pod, t);
        metadata.generate_name = Some(format!("{rs}-"));
        metadata.labels = labels.clone();
        metadata.owner_references = vec![OwnerReference {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            name: rs,
            uid: owner_uid.clone(),
            controller: true,
            block_owner_deletion: true,
        }];
        metadata.touch(
            "kube-controller-manager",
            None,
            "v1",
            t,
            pod_fields(&svc.name, &labels, &owner_uid),
        );
        metadata.touch(
            "kube-scheduler",
            Some("status"),
            "v1",
            t,
            pod_status_fields(false),
        );
        let (node, _) = self.node(pod);
        let mut out = Pod {
            api_version: "v1",
            kind: "Pod",
            metadata,
            spec: self.pod_spec(s, version, Some(node)),
            status: PodStatus {
                phase: "Pending",
                conditions: vec![Condition {
                    kind: "PodScheduled",
                    status: "True",
                    last_update_time: None,
                    last_transition_time: timestamp(t),
                    reason: None,
                    message: None,
                }],
                host_ip: None,
                pod_ip: None,
                pod_ips: Vec::new(),
                start_time: None,
                container_statuses: vec![ContainerStatus {
                    name: svc.name.clone(),
                    state: ContainerState {
                        waiting: Some(Waiting {
                            reason: "ContainerCreating",
                        }),
                        ..ContainerState::default()
                    },
                    ready: false,
                    restart_count: 0,
                    image: self.image(s, version),
                    image_id: String::new(),
                    container_id: None,
                    started: false,
                }],
                qos_class: "Burstable",
            },
        };
        if running {
            self.run(s, version, &mut out, t);
        }
        out
    }

    /// The pod's status once its container runs and is ready, at `t`.
    fn run(&self, s: usize, version: &str, pod: &mut Pod, t: i64) {
        let svc = self.svc(s);
        let name = pod.metadata.name.clone();
        let (_, host_ip) = self.node(&name);
        let pod_ip = self.pod_ip(&name);
        let created = pod.metadata.creation_timestamp.clone();
        let condition = |kind| Condition {
            kind,
            status: "True",
            last_update_time: None,
            last_transition_time: if kind == "Ready" || kind == "ContainersReady" {
                timestamp(t)
            } else {
                created.clone()
            },
            reason: None,
            message: None,
        };
        let status = &mut pod.status;
        status.phase = "Running";
        status.conditions = ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .map(condition)
            .to_vec();
        status.host_ip = Some(host_ip);
        status.pod_ip = Some(pod_ip.clone());
        status.pod_ips = vec![PodIp { ip: pod_ip }];
        status.start_time = Some(created);
        status.container_statuses = vec![ContainerStatus {
            name: svc.name.clone(),
            state: ContainerState {
                running: Some(Running {
                    started_at: timestamp(t),
                }),
                ..ContainerState::default()
            },
            ready: true,
            restart_count: 0,
            image: self.image(s, version),
            image_id: self.image_id(s, version),
            container_id: Some(format!(
                "containerd://{}",
                hex64(self.seed(), &[tag::PLACEMENT, 5, name_key(&name)])
            )),
            started: true,
        }];
        pod.metadata
            .touch("kubelet", Some("status"), "v1", t, pod_status_fields(true));
    }

    fn service(&self, s: usize) -> KubeService {
        let svc = self.svc(s);
        let t = self.start_s;
        let labels = self.labels(s);
        let mut metadata = self.meta(s, "Service", &svc.name, t);
        metadata.touch("kubectl", None, "v1", t, service_fields(&labels));
        let h = noise::hash(self.seed(), &[tag::PLACEMENT, 6, name_key(&svc.name)]);
        let cluster_ip = format!("10.96.{}.{}", h % 250, (h >> 8) % 250 + 2);
        KubeService {
            api_version: "v1",
            kind: "Service",
            metadata,
            spec: ServiceSpec {
                ports: vec![ServicePort {
                    name: "http",
                    protocol: "TCP",
                    port: 80,
                    target_port: HTTP_PORT,
                }],
                selector: map([("app.kubernetes.io/name", svc.name.clone())]),
                cluster_ip: cluster_ip.clone(),
                cluster_ips: vec![cluster_ip],
                kind: "ClusterIP",
                session_affinity: "None",
                ip_families: vec!["IPv4"],
                ip_family_policy: "SingleStack",
                internal_traffic_policy: "Cluster",
            },
            status: ServiceStatus {
                load_balancer: LoadBalancerStatus {},
            },
        }
    }

    fn config_map(&self, s: usize) -> ConfigMap {
        let svc = self.svc(s);
        let t = self.start_s;
        let data = config_data(svc);
        let mut metadata = self.meta(s, "ConfigMap", &format!("{}-config", svc.name), t);
        let fields = data_fields(&metadata.labels, &data, false);
        metadata.touch("kubectl", None, "v1", t, fields);
        ConfigMap {
            api_version: "v1",
            kind: "ConfigMap",
            metadata,
            data,
        }
    }

    fn secret(&self, s: usize) -> Secret {
        let svc = self.svc(s);
        let t = self.start_s;
        let data: Map = secret_data(self.seed(), svc)
            .into_iter()
            .map(|(k, v)| (k, base64(&v)))
            .collect();
        let mut metadata = self.meta(s, "Secret", &format!("{}-credentials", svc.name), t);
        let fields = data_fields(&metadata.labels, &data, true);
        metadata.touch("kubectl", None, "v1", t, fields);
        Secret {
            api_version: "v1",
            kind: "Secret",
            metadata,
            data,
            kind_of: "Opaque",
        }
    }

    /// The template hash of the pods of a service at the start.
    fn listed_hash(&self, s: usize) -> String {
        let svc = self.svc(s);
        template_hash(&svc.name, svc.pods.first().map_or("", String::as_str))
    }

    /// A service's ReplicaSet as listed at the start.
    fn listed_replica_set(&self, s: usize) -> ReplicaSet {
        let svc = self.svc(s);
        let (hash, pods, t) = (self.listed_hash(s), svc.pods.len() as u64, self.start_s);
        let mut rs = self.replica_set(s, &svc.version, &hash, pods, 1, t);
        rs.status = ReplicaSetStatus {
            replicas: pods,
            fully_labeled_replicas: pods,
            ready_replicas: pods,
            available_replicas: pods,
            observed_generation: 1,
        };
        rs.metadata.touch(
            "kube-controller-manager",
            Some("status"),
            "apps/v1",
            t,
            replica_set_status_fields(),
        );
        rs
    }

    /// Object `j` of service `s` in the listing at the start: its Deployment, ReplicaSet, pods,
    /// Service, ConfigMap and Secret, in that order.
    fn listed(&self, s: usize, j: u64) -> Option<Object> {
        let svc = self.svc(s);
        let pods = svc.pods.len() as u64;
        let pod = |i: u64| svc.pods.get(usize::try_from(i).ok()?);
        Some(match j {
            0 => Object::Deployment(Box::new(self.deployment(s))),
            1 => Object::ReplicaSet(Box::new(self.listed_replica_set(s))),
            j if j < 2 + pods => Object::Pod(Box::new(self.pod(
                s,
                &svc.version,
                pod(j - 2)?,
                self.start_s,
                true,
            ))),
            j if j == 2 + pods => Object::Service(Box::new(self.service(s))),
            j if j == 3 + pods => Object::ConfigMap(Box::new(self.config_map(s))),
            j if j == 4 + pods => Object::Secret(Box::new(self.secret(s))),
            _ => return None,
        })
    }
}

fn replica_set_annotations(replicas: u64, revision: u64) -> Map {
    map([
        (
            "deployment.kubernetes.io/desired-replicas",
            replicas.to_string(),
        ),
        (
            "deployment.kubernetes.io/max-replicas",
            (replicas + replicas.div_ceil(4)).to_string(),
        ),
        ("deployment.kubernetes.io/revision", revision.to_string()),
    ])
}

impl Object {
    fn meta(&self) -> &Meta {
        match self {
            Object::Deployment(o) => &o.metadata,
            Object::ReplicaSet(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Event(o) => &o.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Object::Deployment(o) => &mut o.metadata,
            Object::ReplicaSet(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
            Object::Event(o) => &mut o.metadata,
        }
    }
}

// What happens after the start.

/// What an Event is about.
#[derive(Clone, Debug)]
enum Involved {
    Deployment,
    Pod(String),
}

/// One step of a change: one watch event.
#[derive(Clone, Debug)]
enum Action {
    /// The Deployment's spec changes to the incident's (image or replicas).
    DeploymentSpec { incident: usize },
    /// The Deployment controller reports the rollout done.
    DeploymentStatus,
    /// A new ReplicaSet for a deploy.
    NewReplicaSet { incident: usize, hash: String },
    /// A ReplicaSet is scaled.
    ScaleReplicaSet { hash: String, replicas: u64 },
    /// A pod of the newest ReplicaSet is created (Pending).
    PodAdded { pod: String },
    /// A pod runs and is ready.
    PodReady { pod: String },
    /// A pod is marked for deletion.
    PodTerminating { pod: String },
    /// A pod is gone.
    PodDeleted { pod: String },
    /// A core/v1 Event about the Deployment or a pod.
    Event {
        reason: &'static str,
        message: String,
        warning: bool,
        involved: Involved,
        count: u32,
        /// Seconds before the event's time it was first seen (`count` > 1).
        first_before: i64,
    },
    /// The ConfigMap takes the incident's edit.
    ConfigEdit { incident: usize },
    /// The Secret takes the incident's rotation.
    SecretRotation { incident: usize },
}

/// An action at a moment of event time.
#[derive(Clone, Debug)]
struct Step {
    /// Event time, whole seconds since the epoch.
    at: i64,
    service: usize,
    action: Action,
}

/// The steps of the timeline's changes in event-time order (a stable sort: at the same second,
/// in the order they are written).
fn plan(cx: &Cluster<'_>) -> Vec<Step> {
    let world = cx.world;
    let estate = &world.estate;
    let mut steps = Vec::new();
    // Per service: the pods and template hash running now, as the changes go.
    let mut running: Vec<Option<(Vec<String>, String)>> = vec![None; estate.services.len()];
    for (i, inc) in world.timeline.incidents.iter().enumerate() {
        let s = inc.service;
        let Some(svc) = estate.services.get(s) else {
            continue;
        };
        let t0 = cx
            .start_s
            .saturating_add(i64::try_from(inc.at.as_secs()).unwrap_or(i64::MAX));
        let mut push = |delay: i64, action: Action| {
            steps.push(Step {
                at: t0.saturating_add(delay),
                service: s,
                action,
            });
        };
        let (pods, hash) = running[s].get_or_insert_with(|| {
            let first = svc.pods.first().map_or("", String::as_str);
            (svc.pods.clone(), template_hash(&svc.name, first))
        });
        match &inc.change {
            Change::Deploy(deploy) => {
                let old_pods = std::mem::replace(pods, deploy.pods.clone());
                let new_hash =
                    template_hash(&svc.name, deploy.pods.first().map_or("", String::as_str));
                let old_hash = std::mem::replace(hash, new_hash.clone());
                let (n_new, n_old) = (deploy.pods.len(), old_pods.len());
                push(0, Action::DeploymentSpec { incident: i });
                push(
                    0,
                    Action::NewReplicaSet {
                        incident: i,
                        hash: new_hash.clone(),
                    },
                );
                push(
                    0,
                    Action::Event {
                        reason: "ScalingReplicaSet",
                        message: format!(
                            "Scaled up replica set {}-{new_hash} to {n_new} from 0",
                            svc.name
                        ),
                        warning: false,
                        involved: Involved::Deployment,
                        count: 1,
                        first_before: 0,
                    },
                );
                for pod in &deploy.pods {
                    push(1, Action::PodAdded { pod: pod.clone() });
                }
                for (j, pod) in deploy.pods.iter().enumerate() {
                    push(5 + (j % 4) as i64, Action::PodReady { pod: pod.clone() });
                }
                push(
                    8,
                    Action::ScaleReplicaSet {
                        hash: old_hash.clone(),
                        replicas: 0,
                    },
                );
                push(
                    8,
                    Action::Event {
                        reason: "ScalingReplicaSet",
                        message: format!(
                            "Scaled down replica set {}-{old_hash} to 0 from {n_old}",
                            svc.name
                        ),
                        warning: false,
                        involved: Involved::Deployment,
                        count: 1,
                        first_before: 0,
                    },
                );
                for (j, pod) in old_pods.iter().enumerate() {
                    let delay = 8 + (j % 4) as i64;
                    push(delay, Action::PodTerminating { pod: pod.clone() });
                    push(
                        delay,
                        Action::Event {
                            reason: "Killing",
                            message: format!("Stopping container {}", svc.name),
                            warning: false,
                            involved: Involved::Pod(pod.clone()),
                            count: 1,
                            first_before: 0,
                        },
                    );
                }
                for (j, pod) in old_pods.iter().enumerate() {
                    push(12 + (j % 4) as i64, Action::PodDeleted { pod: pod.clone() });
                }
                push(20, Action::DeploymentStatus);
                if deploy.fault.is_some() {
                    for (j, pod) in deploy.pods.iter().enumerate() {
                        push(
                            60 + (j % 4) as i64,
                            Action::Event {
                                reason: "Unhealthy",
                                message:
                                    "Readiness probe failed: HTTP probe failed with statuscode: 503"
                                        .to_owned(),
                                warning: true,
                                involved: Involved::Pod(pod.clone()),
                                count: 3,
                                first_before: 20,
                            },
                        );
                    }
                    if let Some(pod) = deploy.pods.first() {
                        push(
                            75,
                            Action::Event {
                                reason: "BackOff",
                                message: format!(
                                    "Back-off restarting failed container {} in pod {pod}_{}({})",
                                    svc.name,
                                    svc.namespace,
                                    cx.uid("Pod", s, pod)
                                ),
                                warning: true,
                                involved: Involved::Pod(pod.clone()),
                                count: 1,
                                first_before: 0,
                            },
                        );
                    }
                }
            }
            Change::Scale(scale) => {
                pods.extend(scale.added.iter().cloned());
                let from = pods.len() - scale.added.len();
                push(0, Action::DeploymentSpec { incident: i });
                push(
                    0,
                    Action::ScaleReplicaSet {
                        hash: hash.clone(),
                        replicas: scale.replicas as u64,
                    },
                );
                push(
                    0,
                    Action::Event {
                        reason: "ScalingReplicaSet",
                        message: format!(
                            "Scaled up replica set {}-{hash} to {} from {from}",
                            svc.name, scale.replicas
                        ),
                        warning: false,
                        involved: Involved::Deployment,
                        count: 1,
                        first_before: 0,
                    },
                );
                for pod in &scale.added {
                    push(1, Action::PodAdded { pod: pod.clone() });
                    push(6, Action::PodReady { pod: pod.clone() });
                }
                push(10, Action::DeploymentStatus);
            }
            Change::ConfigEdit(_) => push(0, Action::ConfigEdit { incident: i }),
            Change::SecretRotation(_) => push(0, Action::SecretRotation { incident: i }),
        }
    }
    steps.sort_by_key(|step| step.at);
    steps
}

/// The objects of a service a change touched, as last seen.
struct ServiceObjects {
    deployment: Object,
    /// Revision annotation of the Deployment.
    revision: u64,
    /// Version its template runs.
    version: String,
    /// Template hash of its newest ReplicaSet.
    hash: String,
    /// ReplicaSets by template hash.
    replica_sets: BTreeMap<String, Object>,
    /// Pods not deleted yet, by name.
    pods: BTreeMap<String, Object>,
    config_map: Object,
    secret: Object,
}

/// Replays the steps on the objects, one watch event each.
struct Replay<'a, 'c> {
    cx: &'c Cluster<'a>,
    rv: &'c ResourceVersions,
    /// First unit of each service in the listing at the start.
    first: &'c [u64],
    services: BTreeMap<usize, ServiceObjects>,
}

impl Replay<'_, '_> {
    /// The objects of service `s`, as listed at the start, on first use.
    fn objects(&mut self, s: usize) -> &mut ServiceObjects {
        let (cx, rv, first) = (self.cx, self.rv, self.first);
        self.services.entry(s).or_insert_with(|| {
            let svc = cx.svc(s);
            let pods = svc.pods.len() as u64;
            // As listed: object `j` of the service is event `first[s] + j`.
            let listed = |j: u64, mut object: Object| {
                object.meta_mut().resource_version = rv.at(first[s] + j);
                object
            };
            let hash = cx.listed_hash(s);
            ServiceObjects {
                deployment: listed(0, Object::Deployment(Box::new(cx.deployment(s)))),
                revision: 1,
                version: svc.version.clone(),
                hash: hash.clone(),
                replica_sets: BTreeMap::from([(
                    hash,
                    listed(1, Object::ReplicaSet(Box::new(cx.listed_replica_set(s)))),
                )]),
                pods: svc
                    .pods
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let pod = cx.pod(s, &svc.version, p, cx.start_s, true);
                        (p.clone(), listed(2 + i as u64, Object::Pod(Box::new(pod))))
                    })
                    .collect(),
                config_map: listed(3 + pods, Object::ConfigMap(Box::new(cx.config_map(s)))),
                secret: listed(4 + pods, Object::Secret(Box::new(cx.secret(s)))),
            }
        })
    }

    /// Applies `step` as the `k`-th event of the run and renders its watch event.
    fn apply(&mut self, step: &Step, k: u64) -> Vec<u8> {
        let cx = self.cx;
        let rv = self.rv.at(k);
        let (s, t) = (step.service, step.at);
        let svc = cx.svc(s);
        let incident = |i: usize| &cx.world.timeline.incidents[i].change;
        let objects = self.objects(s);
        let stamp = |object: &mut Object| {
            object.meta_mut().resource_version = rv.clone();
        };
        match &step.action {
            Action::DeploymentSpec { incident: i } => {
                let Object::Deployment(d) = &mut objects.deployment else {
                    return Vec::new();
                };
                match incident(*i) {
                    Change::Deploy(deploy) => {
                        objects.revision += 1;
                        objects.version = deploy.version.clone();
                        d.spec.template.spec.containers = vec![cx.container(s, &deploy.version)];
                        d.metadata.annotations.insert(
                            "deployment.kubernetes.io/revision".to_owned(),
                            objects.revision.to_string(),
                        );
                        d.metadata.touch(
                            "kube-controller-manager",
                            None,
                            "apps/v1",
                            t,
                            deployment_revision_fields(),
                        );
                    }
                    Change::Scale(scale) => d.spec.replicas = scale.replicas as u64,
                    _ => {}
                }
                d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
                let labels = d.metadata.labels.clone();
                d.metadata.touch(
                    "kubectl",
                    None,
                    "apps/v1",
                    t,
                    deployment_kubectl_fields(&svc.name, &labels),
                );
                stamp(&mut objects.deployment);
                render(MODIFIED, &objects.deployment)
            }
            Action::DeploymentStatus => {
                let Object::Deployment(d) = &mut objects.deployment else {
                    return Vec::new();
                };
                let replicas = d.spec.replicas;
                // Available since the start: a rolling update keeps it so.
                let rs = format!("{}-{}", svc.name, objects.hash);
                d.status = DeploymentStatus {
                    observed_generation: d.metadata.generation.unwrap_or(1),
                    replicas,
                    updated_replicas: replicas,
                    ready_replicas: replicas,
                    available_replicas: replicas,
                    conditions: cx.deployment_conditions(&rs, t, cx.start_s),
                };
                d.metadata.touch(
                    "kube-controller-manager",
                    Some("status"),
                    "apps/v1",
                    t,
                    deployment_status_fields(),
                );
                stamp(&mut objects.deployment);
                render(MODIFIED, &objects.deployment)
            }
            Action::NewReplicaSet { incident: i, hash } => {
                let Change::Deploy(deploy) = incident(*i) else {
                    return Vec::new();
                };
                let mut object = Object::ReplicaSet(Box::new(cx.replica_set(
                    s,
                    &deploy.version,
                    hash,
                    deploy.pods.len() as u64,
                    objects.revision,
                    t,
                )));
                stamp(&mut object);
                let out = render(ADDED, &object);
                objects.replica_sets.insert(hash.clone(), object);
                objects.hash = hash.clone();
                out
            }
            Action::ScaleReplicaSet { hash, replicas } => {
                let desired = match &objects.deployment {
                    Object::Deployment(d) => d.spec.replicas,
                    _ => *replicas,
                };
                let Some(object) = objects.replica_sets.get_mut(hash) else {
                    return Vec::new();
                };
                if let Object::ReplicaSet(r) = object {
                    r.spec.replicas = *replicas;
                    r.metadata.generation = Some(r.metadata.generation.unwrap_or(0) + 1);
                    // What the Deployment wants, as the controller writes it on every ReplicaSet.
                    let revision = r
                        .metadata
                        .annotations
                        .get("deployment.kubernetes.io/revision")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    r.metadata.annotations = replica_set_annotations(desired, revision);
                    let owner_uid = cx.uid("Deployment", s, &svc.name);
                    let labels = r.metadata.labels.clone();
                    r.metadata.touch(
                        "kube-controller-manager",
                        None,
                        "apps/v1",
                        t,
                        replica_set_fields(&svc.name, &labels, &owner_uid),
                    );
                }
                stamp(object);
                render(MODIFIED, object)
            }
            Action::PodAdded { pod } => {
                let mut object = Object::Pod(Box::new(cx.pod(s, &objects.version, pod, t, false)));
                stamp(&mut object);
                let out = render(ADDED, &object);
                objects.pods.insert(pod.clone(), object);
                out
            }
            Action::PodReady { pod } => {
                let version = objects.version.clone();
                let Some(object) = objects.pods.get_mut(pod) else {
                    return Vec::new();
                };
                if let Object::Pod(p) = object {
                    cx.run(s, &version, p, t);
                }
                stamp(object);
                render(MODIFIED, object)
            }
            Action::PodTerminating { pod } => {
                let Some(object) = objects.pods.get_mut(pod) else {
                    return Vec::new();
                };
                if let Object::Pod(p) = object {
                    p.metadata.deletion_timestamp =
                        Some(timestamp(t.saturating_add(GRACE_SECONDS as i64)));
                    p.metadata.deletion_grace_period_seconds = Some(GRACE_SECONDS);
                    let owner = p
                        .metadata
                        .owner_references
                        .first()
                        .map(|o| o.uid.clone())
                        .unwrap_or_default();
                    let labels = p.metadata.labels.clone();
                    p.metadata.touch(
                        "kube-controller-manager",
                        None,
                        "v1",
                        t,
                        pod_fields(&svc.name, &labels, &owner),
                    );
                }
                stamp(object);
                render(MODIFIED, object)
            }
            Action::PodDeleted { pod } => {
                let Some(mut object) = objects.pods.remove(pod) else {
                    return Vec::new();
                };
                if let Object::Pod(p) = &mut object {
                    let started = p.status.start_time.clone().unwrap_or_default();
                    for c in &mut p.status.container_statuses {
                        c.ready = false;
                        c.started = false;
                        c.state = ContainerState {
                            terminated: Some(Terminated {
                                exit_code: 0,
                                reason: "Completed",
                                started_at: started.clone(),
                                finished_at: timestamp(t),
                            }),
                            ..ContainerState::default()
                        };
                    }
                    for c in &mut p.status.conditions {
                        if c.kind == "Ready" || c.kind == "ContainersReady" {
                            c.status = "False";
                            c.last_transition_time = timestamp(t);
                            c.reason = Some("PodCompleted");
                        }
                    }
                    p.metadata
                        .touch("kubelet", Some("status"), "v1", t, pod_status_fields(true));
                }
                stamp(&mut object);
                render(DELETED, &object)
            }
            Action::Event {
                reason,
                message,
                warning,
                involved,
                count,
                first_before,
            } => {
                let (kind, api_version, name, uid, resource_version, field_path, host) =
                    match involved {
                        Involved::Deployment => (
                            "Deployment",
                            "apps/v1",
                            svc.name.clone(),
                            cx.uid("Deployment", s, &svc.name),
                            objects.deployment.meta().resource_version.clone(),
                            None,
                            None,
                        ),
                        Involved::Pod(pod) => (
                            "Pod",
                            "v1",
                            pod.clone(),
                            cx.uid("Pod", s, pod),
                            objects
                                .pods
                                .get(pod)
                                .map(|o| o.meta().resource_version.clone())
                                .unwrap_or_default(),
                            Some(format!("spec.containers{{{}}}", svc.name)),
                            Some(cx.node(pod).0),
                        ),
                    };
                let first = t.saturating_sub(*first_before);
                // Named like the API names them: the object and the first time, in hex ns.
                let event_name = format!(
                    "{name}.{:x}",
                    u64::try_from(first).unwrap_or(0) * 1_000_000_000 + k % 1_000_000_000
                );
                let (component, manager) = match involved {
                    Involved::Deployment => ("deployment-controller", "kube-controller-manager"),
                    Involved::Pod(_) => ("kubelet", "kubelet"),
                };
                let mut metadata = cx.meta(s, "Event", &event_name, first);
                // Only the tenant: Events carry no labels of their own.
                metadata.labels.remove("app.kubernetes.io/name");
                metadata.touch(manager, None, "v1", t, event_fields());
                metadata.resource_version = rv;
                let event = Object::Event(Box::new(KubeEvent {
                    api_version: "v1",
                    kind: "Event",
                    metadata,
                    involved_object: ObjectReference {
                        kind,
                        namespace: svc.namespace.clone(),
                        name,
                        uid,
                        api_version,
                        resource_version,
                        field_path,
                    },
                    reason,
                    message: message.clone(),
                    source: EventSource {
                        component,
                        host: host.clone(),
                    },
                    first_timestamp: timestamp(first),
                    last_timestamp: timestamp(t),
                    count: *count,
                    kind_of: if *warning { "Warning" } else { "Normal" },
                    event_time: None,
                    reporting_component: component,
                    reporting_instance: host.unwrap_or_default(),
                }));
                render(ADDED, &event)
            }
            Action::ConfigEdit { incident: i } => {
                let Change::ConfigEdit(edit) = incident(*i) else {
                    return Vec::new();
                };
                if let Object::ConfigMap(c) = &mut objects.config_map {
                    for (key, value) in edit.changed.iter().chain(&edit.added) {
                        c.data.insert(key.clone(), value.clone());
                    }
                    let fields = data_fields(&c.metadata.labels, &c.data, false);
                    c.metadata.touch("kubectl", None, "v1", t, fields);
                }
                stamp(&mut objects.config_map);
                render(MODIFIED, &objects.config_map)
            }
            Action::SecretRotation { incident: i } => {
                let Change::SecretRotation(rotation) = incident(*i) else {
                    return Vec::new();
                };
                if let Object::Secret(secret) = &mut objects.secret {
                    for (key, value) in &rotation.rotated {
                        secret.data.insert(key.clone(), base64(value));
                    }
                    let fields = data_fields(&secret.metadata.labels, &secret.data, true);
                    secret.metadata.touch("kubectl", None, "v1", t, fields);
                }
                stamp(&mut objects.secret);
                render(MODIFIED, &objects.secret)
            }
        }
    }
}

/// The cluster's resourceVersion counter: strictly increasing with the event's index `k` in
/// event-time order, in uneven steps (other objects of the cluster change too).
struct ResourceVersions {
    seed: u64,
    base: u64,
}

impl ResourceVersions {
    fn new(seed: u64) -> ResourceVersions {
        ResourceVersions {
            seed,
            base: 1_000_000 + noise::hash(seed, &[tag::RESOURCE_VERSION]) % 9_000_000,
        }
    }

    /// The resourceVersion of event `k`: `base + 7k + r` with `r` in `0..7`, so each is
    /// above the one before.
    fn at(&self, k: u64) -> String {
        let step = noise::hash(self.seed, &[tag::RESOURCE_VERSION, k]) % 7;
        self.base
            .saturating_add(k.saturating_mul(7))
            .saturating_add(step)
            .to_string()
    }
}

/// Builds the watch events of the run; see the module documentation.
pub(crate) struct K8sEmitter {
    /// First unit of each service in the listing at the start, and the total at the end.
    first: Vec<u64>,
    /// `(tick, units, index of its first event)` of every tick with events, in order.
    ticks: Vec<(u64, u64, u64)>,
    /// The events after the listing, rendered, in order.
    later: Vec<Vec<u8>>,
    rv: ResourceVersions,
}

impl K8sEmitter {
    pub(crate) fn new(world: &World) -> K8sEmitter {
        let cx = Cluster::new(world);
        let mut first = Vec::with_capacity(world.estate.services.len() + 1);
        let mut total = 0u64;
        for svc in &world.estate.services {
            first.push(total);
            total += OBJECTS_PER_SERVICE + svc.pods.len() as u64;
        }
        first.push(total);
        let rv = ResourceVersions::new(world.seed);
        let steps = plan(&cx);
        let mut replay = Replay {
            cx: &cx,
            rv: &rv,
            first: &first,
            services: BTreeMap::new(),
        };
        let later: Vec<Vec<u8>> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| replay.apply(step, total + i as u64))
            .collect();

        // Every event in the tick whose interval `(t - interval, t]` holds its time.
        let tick_of = |at: i64| -> u64 {
            let ns = u64::try_from(at).unwrap_or(0).saturating_mul(1_000_000_000);
            if ns <= world.start_ns {
                0
            } else {
                (ns - world.start_ns).div_ceil(world.interval_ns)
            }
        };
        let mut ticks: Vec<(u64, u64, u64)> = Vec::new();
        let events = std::iter::repeat_n(tick_of(cx.start_s), total as usize)
            .chain(steps.iter().map(|step| tick_of(step.at)));
        for (k, tick) in events.enumerate() {
            match ticks.last_mut() {
                Some((t, units, _)) if *t == tick => *units += 1,
                _ => ticks.push((tick, 1, k as u64)),
            }
        }
        K8sEmitter {
            first,
            ticks,
            later,
            rv,
        }
    }

    /// The ticks with events and how many each has.
    pub(crate) fn plan(&self) -> Plan {
        Plan::Listed(self.ticks.iter().map(|&(t, units, _)| (t, units)).collect())
    }

    /// Encodes event `unit` of tick `tick`.
    pub(crate) fn encode(&mut self, world: &World, tick: u64, unit: usize) -> Vec<u8> {
        let Ok(i) = self.ticks.binary_search_by_key(&tick, |&(t, _, _)| t) else {
            return Vec::new();
        };
        let (_, units, start) = self.ticks[i];
        if unit as u64 >= units {
            return Vec::new();
        }
        let k = start + unit as u64;
        let listed = self.first.last().copied().unwrap_or(0);
        if k >= listed {
            return usize::try_from(k - listed)
                .ok()
                .and_then(|i| self.later.get(i))
                .cloned()
                .unwrap_or_default();
        }
        // In the listing at the start: service `s`, its object `k - first[s]`.
        let s = self.first.partition_point(|&f| f <= k) - 1;
        let cx = Cluster::new(world);
        match cx.listed(s, k - self.first[s]) {
            Some(mut object) => {
                object.meta_mut().resource_version = self.rv.at(k);
                render(ADDED, &object)
            }
            None => Vec::new(),
        }
    }
}
