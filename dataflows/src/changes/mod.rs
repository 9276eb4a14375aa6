//! Kubernetes change detection: watch events to change records ([`ChangeEventRow`]).
//!
//! The detector keeps the last version of every object it follows (bounded by object count:
//! `max_objects` per worker, least recently updated evicted first) and turns each MODIFIED into a
//! change when the field-level [`diff`] is not empty.
//!
//! - **Order.** Events wait until the watermark passes their event time, then are applied in
//!   `(event time, resourceVersion)` order, so the outcome does not depend on arrival order or
//!   batching. An event whose resourceVersion is not newer than the object's is a repeat and is
//!   skipped (counted). An event that arrives after the watermark passed its time is a `late`
//!   dead letter; the object's state still follows it (so the next diff is right) but it makes
//!   no change record.
//! - **Routing.** Events are exchanged by (tenant, namespace): every object of a namespace lives
//!   on one worker, so an Event finds its involved object, a Pod its ReplicaSet and Deployment,
//!   a ConfigMap the workloads that use it.
//! - **Noise.** status, managedFields, resourceVersion and generation never reach the diff;
//!   replica changes by an autoscaler are dropped when `ignore_autoscaler`; ReplicaSets and Pods
//!   owned by a controller make no changes of their own, nor do `ScalingReplicaSet` / `Killing` /
//!   `SuccessfulCreate` / `SuccessfulDelete` Events: a rollout is one change, the Deployment's.
//!   ADDED objects are baselines (a watch starts with an ADDED per existing object).
//! - **Pod trouble.** Events `BackOff`, `OOMKilling`, `Unhealthy`, `FailedScheduling`,
//!   `Failed`, `FailedMount` and `Evicted` become changes `event:<reason>` on the involved
//!   object's service (one per Event object: its repeats only raise `count`).
//! - **Services.** A workload maps to a service by the configured label, else
//!   `app.kubernetes.io/name`, else `app` (template labels first), else by a Service whose
//!   selector matches its template labels, else its own name. A Service object is its own
//!   service; a ConfigMap or Secret maps by its labels, else to the first workload that uses it.

pub mod diff;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use xxhash_rust::xxh3::Xxh3;

use crate::decode::k8s::{Body, K8sEvent, K8sKind, ObjectRef, WatchAction};
use crate::record::{DeadLetter, EventTime};
use crate::views::change_event::ChangeEventRow;
use crate::views::ViewRow;
use crate::window::{epoch_by_epoch, fmt_ms};

/// Change detection settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeConfig {
    /// Object versions kept per worker; beyond it the least recently updated is forgotten (its
    /// next MODIFIED becomes a baseline).
    pub max_objects: usize,
    /// A label naming the service, looked at before `app.kubernetes.io/name` and `app`.
    pub service_label: Option<String>,
    /// Drop replica changes made by an autoscaler.
    pub ignore_autoscaler: bool,
}

impl Default for ChangeConfig {
    fn default() -> Self {
        Self { max_objects: 100_000, service_label: None, ignore_autoscaler: true }
    }
}

/// Event reasons that make a change of their own.
pub const TROUBLE_REASONS: &[&str] = &["BackOff", "OOMKilling", "Unhealthy", "FailedScheduling", "Failed", "FailedMount", "Evicted"];
/// Event reasons that are part of a rollout (the Deployment's change covers them).
pub const ROLLOUT_REASONS: &[&str] = &["ScalingReplicaSet", "Killing", "SuccessfulCreate", "SuccessfulDelete", "Scheduled", "Pulling", "Pulled", "Created", "Started"];

/// Counters of the detector on one worker (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectCounters {
    pub events: u64,
    pub changes: u64,
    pub repeats: u64,
    pub late: u64,
    pub noise: u64,
    pub owned: u64,
    pub baselines: u64,
    pub evicted: u64,
    pub objects: u64,
}

/// What the detector emits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DetectEvent {
    /// A new change (emitted once).
    Change(ChangeEventRow),
    /// The changes of an hour of event time that the watermark made final, for Parquet.
    Final(ChangeEventRow),
    Late(DeadLetter),
    Counters(DetectCounters),
}

type ObjectKey = (String, K8sKind, String, String);

struct Stored {
    event: K8sEvent,
    touched: (EventTime, u64),
}

/// The state of one worker's detector. Public for the from-scratch tests: feeding it the same
/// events in one go gives the same changes as the operator.
pub struct Detector {
    config: ChangeConfig,
    objects: HashMap<ObjectKey, Stored>,
    /// Least recently updated first.
    lru: BTreeSet<((EventTime, u64), ObjectKey)>,
    /// Objects per (tenant, namespace), for service lookups.
    by_namespace: BTreeMap<(String, String), BTreeSet<(K8sKind, String)>>,
    seq: u64,
    pub counters: DetectCounters,
}

impl Detector {
    pub fn new(config: ChangeConfig) -> Self {
        Self { config, objects: HashMap::new(), lru: BTreeSet::new(), by_namespace: BTreeMap::new(), seq: 0, counters: DetectCounters::default() }
    }

    /// Applies events in `(ts, resourceVersion)` order; pushes the changes they make. With
    /// `emit = false` the state follows but no change is made (late events).
    pub fn apply(&mut self, mut events: Vec<K8sEvent>, emit: bool, out: &mut Vec<ChangeEventRow>) {
        events.sort_by(|a, b| (a.ts, a.resource_version, &a.tenant, &a.namespace, a.kind, &a.name).cmp(&(b.ts, b.resource_version, &b.tenant, &b.namespace, b.kind, &b.name)));
        for e in events {
            if let Some(change) = self.apply_one(e) {
                if emit {
                    self.counters.changes += 1;
                    out.push(change);
                }
            }
        }
        self.counters.objects = self.objects.len() as u64;
    }

    fn apply_one(&mut self, e: K8sEvent) -> Option<ChangeEventRow> {
        self.counters.events += 1;
        let key: ObjectKey = (e.tenant.clone(), e.kind, e.namespace.clone(), e.name.clone());
        if let Some(stored) = self.objects.get(&key) {
            if e.resource_version != 0 && e.resource_version <= stored.event.resource_version {
                self.counters.repeats += 1;
                return None;
            }
        }
        if let Body::Event { reason, message, involved, .. } = &e.body {
            let first = e.action == WatchAction::Added && !self.objects.contains_key(&key);
            let change = if !first {
                None
            } else if TROUBLE_REASONS.contains(&reason.as_str()) {
                let service = self.service_of_ref(&e.tenant, involved);
                let diff = serde_json::json!([{"field": "reason", "change": "added", "new": reason}, {"field": "message", "change": "added", "new": message}]).to_string();
                Some(self.row(&e, &format!("urn:k8s:{}:{}/{}", K8sKind::parse(&involved.kind).map_or("object", K8sKind::urn_kind), involved.namespace, involved.name), &service, &involved.kind, &format!("event:{reason}"), format!("{reason} on {} {}/{}: {message}", involved.kind, involved.namespace, involved.name), diff))
            } else {
                self.counters.noise += 1;
                None
            };
            if e.action == WatchAction::Deleted {
                self.forget(&key);
            } else {
                self.remember(key, e);
            }
            return change;
        }
        let owned = matches!(e.kind, K8sKind::Pod | K8sKind::ReplicaSet) && e.owner.is_some();
        let change = match e.action {
            _ if owned => {
                self.counters.owned += 1;
                None
            }
            WatchAction::Added => {
                self.counters.baselines += 1;
                None
            }
            WatchAction::Modified => match self.objects.get(&key) {
                None => {
                    self.counters.baselines += 1;
                    None
                }
                Some(stored) => {
                    let entries = diff::diff(&stored.event, &e, self.config.ignore_autoscaler);
                    if entries.is_empty() {
                        self.counters.noise += 1;
                        None
                    } else {
                        let change_type = diff::change_type(e.kind, &entries);
                        let summary = diff::summary(e.kind, &e.namespace, &e.name, &entries);
                        let service = self.service_of(&e);
                        let diff = serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into());
                        Some(self.row(&e, &resource_urn(&e), &service, e.kind.as_str(), change_type, summary, diff))
                    }
                }
            },
            WatchAction::Deleted => {
                let service = self.service_of(&e);
                Some(self.row(&e, &resource_urn(&e), &service, e.kind.as_str(), "deleted", format!("{} {}/{} deleted", e.kind.as_str(), e.namespace, e.name), "[]".into()))
            }
        };
        if e.action == WatchAction::Deleted {
            self.forget(&key);
        } else {
            self.remember(key, e);
        }
        change
    }

    fn row(&self, e: &K8sEvent, resource: &str, service: &str, kind: &str, change_type: &str, summary: String, diff: String) -> ChangeEventRow {
        let mut h = Xxh3::new();
        for part in [e.tenant.as_str(), e.kind.as_str(), &e.namespace, &e.name, &e.uid] {
            h.update(part.as_bytes());
            h.update(&[0xff]);
        }
        h.update(&e.resource_version.to_le_bytes());
        h.update(&e.ts.to_le_bytes());
        ChangeEventRow {
            tenant: e.tenant.clone(),
            change_id: format!("{:016x}", h.digest()),
            resource: resource.to_owned(),
            service: service.to_owned(),
            kind: kind.to_owned(),
            change_type: change_type.to_owned(),
            detected_at: e.ts,
            summary,
            diff,
        }
    }

    fn remember(&mut self, key: ObjectKey, e: K8sEvent) {
        self.seq += 1;
        let touched = (e.ts, self.seq);
        if let Some(old) = self.objects.insert(key.clone(), Stored { event: e, touched }) {
            self.lru.remove(&(old.touched, key.clone()));
        } else {
            self.by_namespace.entry((key.0.clone(), key.2.clone())).or_default().insert((key.1, key.3.clone()));
        }
        self.lru.insert((touched, key));
        while self.objects.len() > self.config.max_objects.max(1) {
            let Some((_, oldest)) = self.lru.pop_first() else { break };
            self.counters.evicted += 1;
            self.forget(&oldest);
        }
    }

    fn forget(&mut self, key: &ObjectKey) {
        if let Some(old) = self.objects.remove(key) {
            self.lru.remove(&(old.touched, key.clone()));
            if let Some(set) = self.by_namespace.get_mut(&(key.0.clone(), key.2.clone())) {
                set.remove(&(key.1, key.3.clone()));
                if set.is_empty() {
                    self.by_namespace.remove(&(key.0.clone(), key.2.clone()));
                }
            }
        }
    }

    fn get(&self, tenant: &str, kind: K8sKind, namespace: &str, name: &str) -> Option<&K8sEvent> {
        self.objects.get(&(tenant.to_owned(), kind, namespace.to_owned(), name.to_owned())).map(|s| &s.event)
    }

    fn label_service(&self, labels: &BTreeMap<String, String>) -> Option<String> {
        let configured = self.config.service_label.as_deref();
        configured.into_iter().chain(["app.kubernetes.io/name", "app"]).find_map(|l| labels.get(l).filter(|v| !v.is_empty()).cloned())
    }

    /// The service URN of an object (see the module documentation).
    fn service_of(&self, e: &K8sEvent) -> String {
        service_urn(&e.namespace, &self.service_name(e, 0))
    }

    fn service_name(&self, e: &K8sEvent, depth: u8) -> String {
        match &e.body {
            Body::Workload { template_labels, .. } => {
                if let Some(s) = self.label_service(template_labels).or_else(|| self.label_service(&e.labels)) {
                    return s;
                }
                // A Service whose selector matches the pod template.
                let ns = self.by_namespace.get(&(e.tenant.clone(), e.namespace.clone()));
                for (kind, name) in ns.into_iter().flatten() {
                    if *kind != K8sKind::Service {
                        continue;
                    }
                    if let Some(Body::Service { selector, .. }) = self.get(&e.tenant, *kind, &e.namespace, name).map(|s| &s.body) {
                        if !selector.is_empty() && selector.iter().all(|(k, v)| template_labels.get(k) == Some(v)) {
                            return name.clone();
                        }
                    }
                }
                e.name.clone()
            }
            Body::Service { .. } => e.name.clone(),
            Body::Pod { .. } => self.label_service(&e.labels).or_else(|| self.owner_service(e, depth)).unwrap_or_else(|| e.name.clone()),
            Body::Data { .. } => self.label_service(&e.labels).unwrap_or_else(|| {
                let wanted = format!("{}:{}", if e.kind == K8sKind::Secret { "secret" } else { "configmap" }, e.name);
                let ns = self.by_namespace.get(&(e.tenant.clone(), e.namespace.clone()));
                ns.into_iter()
                    .flatten()
                    .filter(|(kind, _)| kind.is_workload())
                    .filter_map(|(kind, name)| self.get(&e.tenant, *kind, &e.namespace, name))
                    .filter(|w| w.owner.is_none() && matches!(&w.body, Body::Workload { pod, .. } if pod.uses.contains(&wanted)))
                    .map(|w| self.service_name(w, depth + 1))
                    .next()
                    .unwrap_or_else(|| e.name.clone())
            }),
            Body::Event { involved, .. } => self.service_of_ref(&e.tenant, involved),
        }
    }

    fn owner_service(&self, e: &K8sEvent, depth: u8) -> Option<String> {
        let owner = e.owner.as_ref()?;
        if depth > 3 {
            return None;
        }
        let kind = K8sKind::parse(&owner.kind)?;
        let parent = self.get(&e.tenant, kind, &e.namespace, &owner.name)?;
        Some(match parent.owner {
            Some(_) if self.get(&e.tenant, K8sKind::parse(&parent.owner.as_ref()?.kind)?, &e.namespace, &parent.owner.as_ref()?.name).is_some() => self.owner_service(parent, depth + 1)?,
            _ => self.service_name(parent, depth + 1),
        })
    }

    /// The service URN of a referenced object (an Event's involved object).
    fn service_of_ref(&self, tenant: &str, r: &ObjectRef) -> String {
        let name = K8sKind::parse(&r.kind).and_then(|k| self.get(tenant, k, &r.namespace, &r.name)).map(|o| self.service_name(o, 0)).unwrap_or_else(|| r.name.clone());
        service_urn(&r.namespace, &name)
    }
}

/// `urn:k8s:svc:<ns>/<name>`, the service identity spans and logs use.
pub fn service_urn(namespace: &str, name: &str) -> String {
    format!("urn:k8s:svc:{namespace}/{name}")
}

/// `urn:k8s:<kind>:<ns>/<name>` of the object itself.
pub fn resource_urn(e: &K8sEvent) -> String {
    format!("urn:k8s:{}:{}/{}", e.kind.urn_kind(), e.namespace, e.name)
}

fn route(e: &K8sEvent) -> u64 {
    let mut h = Xxh3::new();
    h.update(e.tenant.as_bytes());
    h.update(&[0xff]);
    let ns = match &e.body {
        Body::Event { involved, .. } => &involved.namespace,
        _ => &e.namespace,
    };
    h.update(ns.as_bytes());
    h.digest()
}

/// Runs change detection over decoded watch events (see the module documentation).
pub fn detect_changes<'s>(config: ChangeConfig, events: StreamVec<'s, u64, K8sEvent>, watermarks: StreamVec<'s, u64, EventTime>) -> StreamVec<'s, u64, DetectEvent> {
    let mut detector = Detector::new(config);
    let mut pending: Vec<K8sEvent> = Vec::new();
    let mut watermark: Option<EventTime> = None;
    // Emitted changes by hour of detection, until the hour is final (then written to Parquet).
    let mut hours: BTreeMap<EventTime, Vec<ChangeEventRow>> = BTreeMap::new();
    let mut reported = DetectCounters::default();
    epoch_by_epoch("k8s_changes", events, watermarks, route, move |records, new_wm, out| {
        let mut late = Vec::new();
        for e in records {
            if watermark.is_some_and(|w| e.ts < w) {
                detector.counters.late += 1;
                let payload = serde_json::json!({"kind": e.kind.as_str(), "namespace": e.namespace, "name": e.name, "resourceVersion": e.resource_version.to_string(), "ts": fmt_ms(e.ts)}).to_string().into_bytes();
                out.push(DetectEvent::Late(DeadLetter {
                    kind: "late".into(),
                    reason: format!("late k8s event: event time {} is before the watermark {}; the object's state follows it, but it makes no change record", fmt_ms(e.ts), watermark.map(fmt_ms).unwrap_or_default()),
                    origin: e.origin,
                    payload,
                }));
                late.push(e);
            } else {
                pending.push(e);
            }
        }
        let mut changes = Vec::new();
        detector.apply(late, false, &mut changes);
        if let Some(wm) = new_wm {
            watermark = Some(watermark.map_or(wm, |w| w.max(wm)));
        }
        if let Some(wm) = watermark {
            let (ready, waiting): (Vec<K8sEvent>, Vec<K8sEvent>) = std::mem::take(&mut pending).into_iter().partition(|e| e.ts < wm);
            pending = waiting;
            detector.apply(ready, true, &mut changes);
            for c in changes {
                hours.entry(c.window_start().unwrap_or_default()).or_default().push(c.clone());
                out.push(DetectEvent::Change(c));
            }
            while let Some(first) = hours.first_entry() {
                if *first.key() + 3_600_000 > wm {
                    break;
                }
                out.extend(first.remove().into_iter().map(DetectEvent::Final));
            }
        }
        if detector.counters != reported {
            reported = detector.counters;
            out.push(DetectEvent::Counters(reported));
        }
    })
}
