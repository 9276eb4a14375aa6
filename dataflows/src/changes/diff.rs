//! Field-level diff of two versions of a Kubernetes object, and what kind of change it is.
//!
//! Only what [`K8sEvent`] keeps is compared, so status, managedFields, resourceVersion and
//! generation are noise by construction. Values that may be secret are keyed hashes already
//! (see [`crate::decode::k8s`]): a diff of a Secret says which keys were added, removed or
//! changed, with the hashes, never the values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::decode::k8s::{Body, Container, K8sEvent, K8sKind, PodSpec};

/// One changed field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// Dotted path: `replicas`, `containers[app].image`, `containers[app].env.DB_URL`,
    /// `data.password`, `template.annotations.kubectl.kubernetes.io/restartedAt`, `selector.app` ...
    pub field: String,
    /// `changed`, `added` or `removed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

fn entry(field: String, old: Option<&str>, new: Option<&str>) -> Option<DiffEntry> {
    let change = match (old, new) {
        (Some(a), Some(b)) if a == b => return None,
        (Some(_), Some(_)) => "changed",
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        (None, None) => return None,
    };
    Some(DiffEntry { field, change, old: old.map(str::to_owned), new: new.map(str::to_owned) })
}

fn diff_maps(prefix: &str, old: &BTreeMap<String, String>, new: &BTreeMap<String, String>, out: &mut Vec<DiffEntry>) {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        out.extend(entry(format!("{prefix}{key}"), old.get(key).map(String::as_str), new.get(key).map(String::as_str)));
    }
}

fn diff_container(old: &Container, new: &Container, out: &mut Vec<DiffEntry>) {
    let p = format!("containers[{}]", new.name);
    out.extend(entry(format!("{p}.image"), Some(&old.image), Some(&new.image)));
    diff_maps(&format!("{p}.env."), &old.env, &new.env, out);
    out.extend(entry(format!("{p}.resources"), Some(&old.resources), Some(&new.resources)));
    out.extend(entry(format!("{p}.command"), Some(&old.command.join(" ")), Some(&new.command.join(" "))));
    out.extend(entry(format!("{p}.args"), Some(&old.args.join(" ")), Some(&new.args.join(" "))));
}

fn diff_pods(old: &PodSpec, new: &PodSpec, out: &mut Vec<DiffEntry>) {
    for c in &new.containers {
        match old.containers.iter().find(|o| o.name == c.name) {
            Some(o) => diff_container(o, c, out),
            None => out.push(DiffEntry { field: format!("containers[{}]", c.name), change: "added", old: None, new: Some(c.image.clone()) }),
        }
    }
    for o in &old.containers {
        if !new.containers.iter().any(|c| c.name == o.name) {
            out.push(DiffEntry { field: format!("containers[{}]", o.name), change: "removed", old: Some(o.image.clone()), new: None });
        }
    }
}

/// The field-level diff from `old` to `new` (same object). `ignore_autoscaler`: a replica
/// change made by an autoscaler (see [`K8sEvent::by_autoscaler`]) is left out.
pub fn diff(old: &K8sEvent, new: &K8sEvent, ignore_autoscaler: bool) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    match (&old.body, &new.body) {
        (
            Body::Workload { replicas: r0, template_labels: l0, template_annotations: a0, pod: p0 },
            Body::Workload { replicas: r1, template_labels: l1, template_annotations: a1, pod: p1 },
        ) => {
            if !(ignore_autoscaler && new.by_autoscaler) {
                out.extend(entry("replicas".into(), r0.map(|r| r.to_string()).as_deref(), r1.map(|r| r.to_string()).as_deref()));
            }
            diff_pods(p0, p1, &mut out);
            diff_maps("template.labels.", l0, l1, &mut out);
            diff_maps("template.annotations.", a0, a1, &mut out);
        }
        (Body::Data { entries: d0 }, Body::Data { entries: d1 }) => diff_maps("data.", d0, d1, &mut out),
        (Body::Service { selector: s0, ports: p0, service_type: t0 }, Body::Service { selector: s1, ports: p1, service_type: t1 }) => {
            diff_maps("selector.", s0, s1, &mut out);
            out.extend(entry("ports".into(), Some(&p0.join(",")), Some(&p1.join(","))));
            out.extend(entry("type".into(), Some(t0), Some(t1)));
        }
        (Body::Pod { pod: p0 }, Body::Pod { pod: p1 }) => diff_pods(p0, p1, &mut out),
        _ => {}
    }
    diff_maps("labels.", &old.labels, &new.labels, &mut out);
    diff_maps("annotations.", &old.annotations, &new.annotations, &mut out);
    out
}

/// What kind of change a diff of an object of `kind` is, by precedence: `image`, `env`,
/// `command`, `resources`, `rollout` (other pod-template changes, e.g. a restart annotation),
/// `scale`, `metadata`; for ConfigMaps `configmap`, Secrets `secret`, Services `service`.
pub fn change_type(kind: K8sKind, entries: &[DiffEntry]) -> &'static str {
    match kind {
        K8sKind::ConfigMap => return "configmap",
        K8sKind::Secret => return "secret",
        K8sKind::Service => return "service",
        _ => {}
    }
    let has = |pred: &dyn Fn(&str) -> bool| entries.iter().any(|e| pred(&e.field));
    if has(&|f| f.ends_with(".image") || (f.starts_with("containers[") && !f.contains("]."))) {
        "image"
    } else if has(&|f| f.contains("].env.")) {
        "env"
    } else if has(&|f| f.ends_with(".command") || f.ends_with(".args")) {
        "command"
    } else if has(&|f| f.ends_with(".resources")) {
        "resources"
    } else if has(&|f| f.starts_with("template.")) {
        "rollout"
    } else if has(&|f| f == "replicas") {
        "scale"
    } else {
        "metadata"
    }
}

/// A one-line summary of a change: `Deployment shop/checkout: image app 1.14.2 -> 1.15.0`.
pub fn summary(kind: K8sKind, namespace: &str, name: &str, entries: &[DiffEntry]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in entries.iter().take(4) {
        let text = match (e.field.as_str(), e.change) {
            (f, "changed") if f.ends_with(".image") || f == "replicas" || f == "type" || f == "ports" => {
                format!("{} {} -> {}", short_field(f), e.old.as_deref().unwrap_or(""), e.new.as_deref().unwrap_or(""))
            }
            (f, change) => format!("{} {change}", short_field(f)),
        };
        parts.push(text);
    }
    if entries.len() > 4 {
        parts.push(format!("and {} more", entries.len() - 4));
    }
    format!("{} {namespace}/{name}: {}", kind.as_str(), parts.join("; "))
}

fn short_field(field: &str) -> String {
    field.replace("containers[", "").replace("].", " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::k8s::{decode_k8s, KeyedHasher};
    use crate::decode::DecodeConfig;
    use crate::record::{Encoding, Origin, RawMessage, Signal, WireFormat};

    fn event(json: &serde_json::Value) -> K8sEvent {
        let msg = RawMessage { origin: Origin::default(), encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload: json.to_string().into_bytes() };
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        decode_k8s(&msg, &DecodeConfig::default(), &KeyedHasher::new("key"), &mut out, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        out.pop().unwrap()
    }

    /// The real objects of ../shared/data/k8s_audit_falco (API-server audit events), as watch
    /// events: a diff of the object with itself is empty, and edits give the fields named.
    fn falco(file: &str) -> Option<serde_json::Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/k8s_audit_falco").join(file);
        let text = std::fs::read_to_string(path).ok()?;
        let audit: serde_json::Value = serde_json::from_str(&text).ok()?;
        let mut object = audit.get("responseObject").filter(|o| o.get("metadata").is_some()).or_else(|| audit.get("requestObject"))?.clone();
        let meta = object["metadata"].as_object_mut()?;
        meta.insert("creationTimestamp".into(), serde_json::json!("2026-11-22T10:00:00Z"));
        meta.insert("namespace".into(), serde_json::json!(meta.get("namespace").cloned().unwrap_or(serde_json::json!("default"))));
        Some(serde_json::json!({"type": "MODIFIED", "object": object}))
    }

    #[test]
    fn real_deployment_image_replicas_env_and_noise() {
        let Some(base) = falco("create_deployment.json") else { return };
        let old = event(&base);
        assert!(diff(&old, &old, true).is_empty());
        let mut v = base.clone();
        v["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = serde_json::json!("nginx:1.27");
        v["object"]["spec"]["replicas"] = serde_json::json!(3);
        v["object"]["spec"]["template"]["spec"]["containers"][0]["env"] = serde_json::json!([{"name": "MODE", "value": "x"}]);
        v["object"]["status"] = serde_json::json!({"replicas": 3, "observedGeneration": 9});
        v["object"]["metadata"]["generation"] = serde_json::json!(9);
        v["object"]["metadata"]["resourceVersion"] = serde_json::json!("999");
        let new = event(&v);
        let d = diff(&old, &new, true);
        let fields: Vec<&str> = d.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["replicas", "containers[nginx1].image", "containers[nginx1].env.MODE"], "{d:?}");
        assert_eq!(d[1].old.as_deref(), Some("nginx"));
        assert_eq!(d[1].new.as_deref(), Some("nginx:1.27"));
        assert_eq!(change_type(K8sKind::Deployment, &d), "image");
        assert_eq!(summary(K8sKind::Deployment, "default", "nginx-deployment", &d[..2]), "Deployment default/nginx-deployment: replicas 1 -> 3; nginx1 image nginx -> nginx:1.27");
    }

    #[test]
    fn real_secret_and_configmap_keys_by_hash_only() {
        for (file, kind) in [("create_secret.json", "secret"), ("create_configmap.json", "configmap")] {
            let Some(base) = falco(file) else { return };
            let old = event(&base);
            let mut v = base.clone();
            let data = v["object"]["data"].as_object_mut().unwrap();
            let first = data.keys().next().unwrap().clone();
            data.insert(first.clone(), serde_json::json!("Q0FOQVJZ"));
            data.insert("added-key".into(), serde_json::json!("Q0FOQVJZMg=="));
            let new = event(&v);
            let d = diff(&old, &new, true);
            assert_eq!(d.len(), 2, "{d:?}");
            assert!(d.iter().any(|e| e.field == format!("data.{first}") && e.change == "changed"));
            assert!(d.iter().any(|e| e.field == "data.added-key" && e.change == "added"));
            let json = serde_json::to_string(&d).unwrap();
            assert!(!json.contains("Q0FOQVJZ") && json.contains("hmac:"), "{json}");
            assert_eq!(change_type(new.kind, &d), kind);
        }
    }

    #[test]
    fn autoscaler_replica_changes_are_optional_noise() {
        let obj = |replicas: i64, subresource: &str| {
            serde_json::json!({"type":"MODIFIED","object":{"kind":"Deployment","metadata":{"name":"a","resourceVersion":"1","managedFields":[{"manager":"kube-controller-manager","subresource":subresource,"time":"2026-11-22T10:00:00Z"}]},"spec":{"replicas":replicas}}})
        };
        let (old, new) = (event(&obj(2, "scale")), event(&obj(5, "scale")));
        assert!(diff(&old, &new, true).is_empty());
        assert_eq!(change_type(K8sKind::Deployment, &diff(&old, &new, false)), "scale");
        let manual = event(&obj(5, ""));
        assert_eq!(diff(&old, &manual, true).len(), 1);
    }
}
