//! Change detection and correlation through the whole dataflow: a scripted incident (a bad
//! deploy on a callee, decoys on the service itself, earlier, and on an unrelated service), and
//! properties (batching and worker count do not change the result; the detector equals a
//! from-scratch run; regressions equal a from-scratch computation over the final windows).

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use observebridge_dataflows::changes::{ChangeConfig, Detector};
use observebridge_dataflows::decode::k8s::{decode_k8s, KeyedHasher};
use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::engine::{run_epochs, ChangesConfig, EngineConfig, EpochInput, EpochReport, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::{CallerNaming, PairingConfig};
use observebridge_dataflows::record::{Encoding, EventTime, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::correlation::{find_regressions, CorrelationConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span as PbSpan, Status};
use prost::Message as _;
use serde_json::json;

const T0: EventTime = 1_800_000_000_000; // a 5-minute boundary
const MIN: i64 = 60_000;
const BAD_AT: i64 = 60 * MIN;
const ROLLBACK_AT: i64 = 90 * MIN;
const END: i64 = 125 * MIN;
const CANARY: &str = "CANARY-s3cr3t-value";

fn config() -> EngineConfig {
    EngineConfig {
        lateness_ms: 120_000,
        raw_archive: None,
        decode: DecodeConfig::default(),
        metric_1m: None,
        service_call: Some(ServiceCallConfig {
            pairing: PairingConfig { wait_ms: 10_000, window_ms: 300_000, caller: CallerNaming::Peer },
            graph: CallGraphConfig::default(),
            max_hops: 16,
        }),
        log_pattern: None,
        changes: Some(ChangesConfig { detect: ChangeConfig::default(), correlation: Some(CorrelationConfig { wait_ms: 10_000, ..CorrelationConfig::default() }) }),
    }
}

type Table = BTreeMap<Vec<String>, Vec<String>>;

fn cells(batch: &RecordBatch, row: usize, columns: &[usize]) -> Vec<String> {
    columns
        .iter()
        .map(|&c| {
            let col = batch.column(c);
            match col.data_type() {
                arrow::datatypes::DataType::Timestamp(..) => {
                    let ts = col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                    if ts.is_null(row) { String::new() } else { (ts.value(row) / 1000).to_string() }
                }
                _ => array_value_to_string(col, row).expect("cell"),
            }
        })
        .collect()
}

fn apply(table: &mut Table, report: &EpochReport, view: &str) {
    for change in report.views.iter().filter(|v| v.view == view) {
        let schema = change.upserts.schema();
        let keys: Vec<usize> = change.key_columns.iter().map(|k| schema.index_of(k).expect("key")).collect();
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        for row in 0..change.deletes.num_rows() {
            let key_idx: Vec<usize> = (0..change.deletes.num_columns()).collect();
            table.remove(&cells(&change.deletes, row, &key_idx));
        }
        for row in 0..change.upserts.num_rows() {
            table.insert(cells(&change.upserts, row, &keys), cells(&change.upserts, row, &all));
        }
    }
}

/// Every view's table after the reports of epochs `..=through`.
fn tables(reports: &[EpochReport], through: u64) -> BTreeMap<&'static str, Table> {
    let mut out: BTreeMap<&'static str, Table> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.epoch <= through) {
        let views: std::collections::BTreeSet<&'static str> = r.views.iter().map(|v| v.view).collect();
        for view in views {
            apply(out.entry(view).or_default(), r, view);
        }
    }
    out
}

fn column(view: &str, name: &str) -> usize {
    let schema = match view {
        "change_event" => <observebridge_dataflows::views::change_event::ChangeEventRow as observebridge_dataflows::views::ViewRow>::schema(),
        "regression" => <observebridge_dataflows::views::correlation::RegressionRow as observebridge_dataflows::views::ViewRow>::schema(),
        "regression_suspect" => <observebridge_dataflows::views::correlation::RegressionSuspectRow as observebridge_dataflows::views::ViewRow>::schema(),
        "change_impact" => <observebridge_dataflows::views::correlation::ChangeImpactRow as observebridge_dataflows::views::ViewRow>::schema(),
        other => panic!("{other}"),
    };
    schema.index_of(name).expect("column")
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }), ..Default::default() }
}

/// One request: frontend -> checkout -> payments, and an unrelated admin -> catalog call, as
/// one OTLP message.
fn request(n: u64, ts: EventTime, payments_slow: bool, payments_error: bool) -> Vec<u8> {
    let trace: Vec<u8> = (0..16).map(|i| ((n >> (8 * (i % 8))) as u8).wrapping_add(i as u8 + 1)).collect();
    let id = |k: u8| -> Vec<u8> { let mut v = (n as u32).to_be_bytes().to_vec(); v.extend([k, 0, 0, 1]); v };
    let pay_ms: i64 = if payments_slow { 80 } else { 20 };
    let end = ts as u64 * 1_000_000;
    let span = |span_id: Vec<u8>, parent: Vec<u8>, kind: span::SpanKind, dur_ms: i64, error: bool| PbSpan {
        trace_id: trace.clone(),
        span_id,
        parent_span_id: parent,
        name: "op".into(),
        kind: kind as i32,
        start_time_unix_nano: end - dur_ms as u64 * 1_000_000,
        end_time_unix_nano: end,
        status: Some(Status { code: if error { status::StatusCode::Error as i32 } else { status::StatusCode::Ok as i32 }, ..Default::default() }),
        ..Default::default()
    };
    let service = |name: &str, spans: Vec<PbSpan>| ResourceSpans {
        resource: Some(Resource { attributes: vec![kv("service.name", name), kv("k8s.namespace.name", "shop")], ..Default::default() }),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    };
    let checkout_ms = 10 + pay_ms;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            service("frontend", vec![
                span(id(1), vec![], span::SpanKind::Server, checkout_ms + 15, false),
                span(id(2), id(1), span::SpanKind::Client, checkout_ms + 2, false),
            ]),
            service("checkout", vec![span(id(3), id(2), span::SpanKind::Server, checkout_ms, false), span(id(4), id(3), span::SpanKind::Client, pay_ms + 1, payments_error)]),
            service("payments", vec![span(id(6), id(4), span::SpanKind::Server, pay_ms, payments_error)]),
        ],
    };
    // An unrelated flow: admin -> catalog (no path from the incident's services).
    let mut admin = ExportTraceServiceRequest {
        resource_spans: vec![
            service("admin", vec![span(id(8), vec![], span::SpanKind::Server, 14, false), span(id(5), id(8), span::SpanKind::Client, 12, false)]),
            service("catalog", vec![span(id(7), id(5), span::SpanKind::Server, 10, false)]),
        ],
    };
    for rs in &mut admin.resource_spans {
        for span in &mut rs.scope_spans[0].spans {
            span.trace_id[0] ^= 0xff;
        }
    }
    let mut req = req;
    req.resource_spans.extend(admin.resource_spans);
    req.encode_to_vec()
}

fn meta(ts: EventTime) -> serde_json::Value {
    json!({"creationTimestamp": "2027-01-15T08:00:00Z", "managedFields": [{"manager": "kubectl", "operation": "Update", "time": chrono::DateTime::from_timestamp_millis(ts).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]})
}

fn deployment(name: &str, rv: u64, ts: EventTime, image: &str, replicas: i64) -> serde_json::Value {
    let mut m = meta(ts);
    m["name"] = json!(name);
    m["namespace"] = json!("shop");
    m["uid"] = json!(format!("uid-{name}"));
    m["resourceVersion"] = json!(rv.to_string());
    m["labels"] = json!({"app.kubernetes.io/name": name});
    json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": m, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {"containers": [{"name": name, "image": image,
            "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": format!("{name}-db"), "key": "password"}}}]}]}}},
        "status": {"replicas": replicas, "observedGeneration": rv}})
}

fn object(kind: &str, name: &str, rv: u64, ts: EventTime, extra: serde_json::Value) -> serde_json::Value {
    let mut m = meta(ts);
    m["name"] = json!(name);
    m["namespace"] = json!("shop");
    m["resourceVersion"] = json!(rv.to_string());
    let mut o = json!({"kind": kind, "apiVersion": "v1", "metadata": m});
    for (k, v) in extra.as_object().unwrap() {
        if k == "labels" || k == "ownerReferences" {
            o["metadata"][k] = v.clone();
        } else {
            o[k] = v.clone();
        }
    }
    o
}

fn watch(kind: &str, o: serde_json::Value) -> Vec<u8> {
    json!({"type": kind, "object": o}).to_string().into_bytes()
}

/// The incident's watch events, by time.
fn k8s_events() -> Vec<(EventTime, Vec<u8>)> {
    let mut rv = 100;
    let mut next = || {
        rv += 1;
        rv
    };
    let at = |m: i64| T0 + m * MIN;
    let mut out = Vec::new();
    for svc in ["frontend", "checkout", "payments", "catalog"] {
        out.push((at(0), watch("ADDED", deployment(svc, next(), at(0), &format!("r/{svc}:1.0.0"), 3))));
    }
    out.push((at(0), watch("ADDED", object("ConfigMap", "payments-config", next(), at(0), json!({"labels": {"app": "payments"}, "data": {"retries": "3"}})))));
    out.push((at(0), watch("ADDED", object("Secret", "payments-db", next(), at(0), json!({"labels": {"app": "payments"}, "data": {"password": "b2xk"}})))));
    // Decoy, earlier and downstream: a ConfigMap edit on payments.
    out.push((at(20), watch("MODIFIED", object("ConfigMap", "payments-config", next(), at(20), json!({"labels": {"app": "payments"}, "data": {"retries": "4"}})))));
    // A Secret rotation holding a canary value: only its hash may ever appear.
    let canary = base64_of(CANARY);
    out.push((at(30), watch("MODIFIED", object("Secret", "payments-db", next(), at(30), json!({"labels": {"app": "payments"}, "data": {"password": canary}})))));
    // Decoy on the regressed service itself, just before: a scale-up of checkout.
    out.push((at(58), watch("MODIFIED", deployment("checkout", next(), at(58), "r/checkout:1.0.0", 4))));
    // Decoy on an unrelated service: an image bump of catalog.
    out.push((at(59), watch("MODIFIED", deployment("catalog", next(), at(59), "r/catalog:1.1.0", 3))));
    // The bad deploy, then its status-only update (noise), a new ReplicaSet and pod (owned).
    out.push((at(60), watch("MODIFIED", deployment("payments", next(), at(60), "r/payments:2.0.0", 3))));
    let mut status_only = deployment("payments", next(), at(60) + 20_000, "r/payments:2.0.0", 3);
    status_only["status"] = json!({"replicas": 3, "updatedReplicas": 3});
    out.push((at(60) + 20_000, watch("MODIFIED", status_only)));
    out.push((at(60) + 5_000, watch("ADDED", object("ReplicaSet", "payments-7f9", next(), at(60) + 5_000, json!({"ownerReferences": [{"kind": "Deployment", "name": "payments", "controller": true}], "labels": {"app.kubernetes.io/name": "payments"}})))));
    out.push((at(60) + 6_000, watch("ADDED", object("Pod", "payments-7f9-abc", next(), at(60) + 6_000, json!({"ownerReferences": [{"kind": "ReplicaSet", "name": "payments-7f9", "controller": true}]})))));
    out.push((at(60) + 7_000, watch("ADDED", object("Event", "payments.scaling", next(), at(60) + 7_000, json!({"reason": "ScalingReplicaSet", "message": "Scaled up", "lastTimestamp": ts_text(at(60) + 7_000), "involvedObject": {"kind": "Deployment", "name": "payments", "namespace": "shop"}})))));
    out.push((at(61), watch("ADDED", object("Event", "payments-7f9-abc.unhealthy", next(), at(61), json!({"reason": "Unhealthy", "type": "Warning", "message": "Readiness probe failed", "lastTimestamp": ts_text(at(61)), "involvedObject": {"kind": "Pod", "name": "payments-7f9-abc", "namespace": "shop"}})))));
    // A repeat of the bad deploy's event (same resourceVersion): no second change.
    let repeat = out.iter().find(|(t, p)| *t == at(60) && String::from_utf8_lossy(p).contains("payments:2.0.0")).unwrap().clone();
    out.push((at(60) + 30_000, repeat.1));
    // The rollback.
    out.push((at(90), watch("MODIFIED", deployment("payments", next(), at(90), "r/payments:1.0.0", 3))));
    out.sort_by_key(|(t, _)| *t);
    out
}

fn ts_text(ms: EventTime) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Epochs of `minutes_per_epoch` minutes: requests (partition 0) and watch events (partition 1).
fn epochs(minutes_per_epoch: i64) -> Vec<EpochInput> {
    let k8s = k8s_events();
    let mut out: Vec<EpochInput> = vec![(Vec::new(), vec![MetaEvent::Register { partition: 0, max_ts: None }, MetaEvent::Register { partition: 1, max_ts: None }])];
    let mut offsets = [0u64; 2];
    let mut n = 0u64;
    let mut m = 0;
    while m < END / MIN {
        let (from, to) = (T0 + m * MIN, T0 + (m + minutes_per_epoch) * MIN);
        let mut raw = Vec::new();
        for minute in m..(m + minutes_per_epoch).min(END / MIN) {
            let bad = (BAD_AT..ROLLBACK_AT).contains(&(minute * MIN));
            for i in 0..40u64 {
                n += 1;
                let ts = T0 + minute * MIN + (i as i64) * 1_400;
                let error = bad && n % 5 == 0;
                offsets[0] += 1;
                raw.push(RawMessage { origin: Origin { partition: 0, offset: offsets[0] }, encoding: Encoding::new(Signal::Spans, WireFormat::OtlpProto), payload: request(n, ts, bad, error) });
            }
        }
        let mut any_k8s = false;
        for (_, payload) in k8s.iter().filter(|(t, _)| *t >= from && *t < to) {
            offsets[1] += 1;
            any_k8s = true;
            raw.push(RawMessage { origin: Origin { partition: 1, offset: offsets[1] }, encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload: payload.clone() });
        }
        out.push((raw, vec![MetaEvent::Idle { partition: 1, idle: !any_k8s }]));
        m += minutes_per_epoch;
    }
    out.push((Vec::new(), vec![MetaEvent::Ended { partition: 0 }, MetaEvent::Ended { partition: 1 }]));
    out
}

fn change_id_of(table: &Table, service: &str, change_type: &str) -> String {
    let (s, t, id) = (column("change_event", "service"), column("change_event", "change_type"), column("change_event", "change_id"));
    let found: Vec<&Vec<String>> = table.values().filter(|r| r[s] == format!("urn:k8s:svc:shop/{service}") && r[t] == change_type).collect();
    assert_eq!(found.len(), 1, "one {change_type} change on {service}: {table:#?}");
    found[0][id].clone()
}

/// The epoch whose reports first carry a watermark at or past `t`.
fn epoch_at(reports: &[EpochReport], t: EventTime) -> u64 {
    reports.iter().find(|r| r.watermark.is_some_and(|w| w >= t)).map(|r| r.epoch).expect("watermark reaches t")
}

#[test]
fn scripted_incident_ranks_the_bad_deploy_first_and_retracts_after_recovery() {
    let reports = run_epochs(&config(), 2, epochs(1)).expect("run");
    let all = tables(&reports, u64::MAX);
    let changes = &all["change_event"];

    // Changes: one per real edit; the rollout's status update, ReplicaSet, Pod, ScalingReplicaSet
    // Event and the repeated event make none.
    let types: Vec<(String, String)> = changes.values().map(|r| (r[column("change_event", "service")].clone(), r[column("change_event", "change_type")].clone())).collect();
    let mut types_sorted = types.clone();
    types_sorted.sort();
    assert_eq!(
        types_sorted,
        [
            ("urn:k8s:svc:shop/catalog", "image"),
            ("urn:k8s:svc:shop/checkout", "scale"),
            ("urn:k8s:svc:shop/payments", "configmap"),
            ("urn:k8s:svc:shop/payments", "event:Unhealthy"),
            ("urn:k8s:svc:shop/payments", "image"),
            ("urn:k8s:svc:shop/payments", "image"),
            ("urn:k8s:svc:shop/payments", "secret"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{changes:#?}"
    );
    let bad = changes
        .values()
        .find(|r| r[column("change_event", "summary")].contains("-> r/payments:2.0.0"))
        .map(|r| r[column("change_event", "change_id")].clone())
        .expect("the bad deploy");
    let scale = change_id_of(changes, "checkout", "scale");
    let configmap = change_id_of(changes, "payments", "configmap");
    let unrelated = change_id_of(changes, "catalog", "image");

    // Mid-incident (watermark at +75 min): every open regression names the bad deploy first.
    let mid = tables(&reports, epoch_at(&reports, T0 + 75 * MIN));
    let regressions = &mid["regression"];
    let (svc, sig, cleared) = (column("regression", "service"), column("regression", "signal"), column("regression", "cleared_at"));
    let open: Vec<(String, String)> = regressions.values().filter(|r| r[cleared].is_empty()).map(|r| (r[svc].clone(), r[sig].clone())).collect();
    assert!(open.contains(&("urn:k8s:svc:shop/payments".into(), "err_rate".into())), "{regressions:#?}");
    assert!(open.contains(&("urn:k8s:svc:shop/checkout".into(), "p95_ms".into())), "{regressions:#?}");
    let suspects = &mid["regression_suspect"];
    let (rid, cid, rank, hops, evidence) = (column("regression_suspect", "regression_id"), column("regression_suspect", "change_id"), column("regression_suspect", "rank"), column("regression_suspect", "hops"), column("regression_suspect", "evidence"));
    let mut by_regression: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for r in suspects.values() {
        by_regression.entry(r[rid].clone()).or_default().push((r[rank].parse().unwrap(), r[cid].clone()));
        assert_ne!(r[cid], unrelated, "an unrelated service's change is never a suspect");
    }
    assert_eq!(by_regression.len(), open.len(), "every open regression has suspects");
    for ranked in by_regression.values_mut() {
        ranked.sort();
        assert_eq!(ranked[0].1, bad, "the bad deploy ranks first: {ranked:?}");
    }
    let checkout_p95 = regressions.values().find(|r| r[svc] == "urn:k8s:svc:shop/checkout" && r[sig] == "p95_ms").unwrap()[column("regression", "regression_id")].clone();
    let ranked = &by_regression[&checkout_p95];
    let position = |id: &str| ranked.iter().position(|(_, c)| c == id);
    assert!(position(&scale).is_some_and(|p| p > 0), "the scale-up of checkout itself is a suspect, below: {ranked:?}");
    assert!(position(&configmap).is_some_and(|p| p > position(&scale).unwrap()), "the earlier ConfigMap edit ranks lower still: {ranked:?}");
    let top = suspects.values().find(|r| r[rid] == checkout_p95 && r[cid] == bad).unwrap();
    assert_eq!(top[hops], "1");
    let ev: serde_json::Value = serde_json::from_str(&top[evidence]).unwrap();
    assert!(ev["summary"].as_str().unwrap().contains("r/payments:1.0.0 -> r/payments:2.0.0"), "{ev}");
    assert!(ev["impact"]["after"].as_f64().unwrap() > ev["impact"]["before"].as_f64().unwrap(), "{ev}");
    assert_eq!(ev["rows"]["change_event"]["change_id"], json!(bad));

    // change_impact of the bad deploy: self, its caller checkout; error rate up on payments.
    let impact = &all["change_impact"];
    let (icid, ires, isig, irel, ibefore, iafter) = (column("change_impact", "change_id"), column("change_impact", "resource"), column("change_impact", "signal"), column("change_impact", "relation"), column("change_impact", "before"), column("change_impact", "after"));
    let row = impact.values().find(|r| r[icid] == bad && r[ires] == "urn:k8s:svc:shop/payments" && r[isig] == "err_rate").expect("self err_rate impact");
    assert_eq!(row[irel], "self");
    assert!(row[iafter].parse::<f64>().unwrap() > 0.1 && row[ibefore].parse::<f64>().unwrap() < 0.01, "{row:?}");
    assert!(impact.values().any(|r| r[icid] == bad && r[ires] == "urn:k8s:svc:shop/checkout" && r[irel] == "caller"), "the caller's impact is there");

    // After recovery: no suspect is left, the regressions are cleared.
    assert!(all.get("regression_suspect").is_none_or(|t| t.is_empty()), "{:#?}", all.get("regression_suspect"));
    let after = &all["regression"];
    assert!(!after.is_empty() && after.values().all(|r| !r[cleared].is_empty()), "{after:#?}");

    // The Secret's canary value appears in no row of any view.
    for (view, table) in &all {
        for row in table.values() {
            assert!(!row.iter().any(|c| c.contains(CANARY) || c.contains(&base64_of(CANARY))), "{view}: {row:?}");
        }
    }
    let secret = changes.values().find(|r| r[column("change_event", "change_type")] == "secret").unwrap();
    assert!(secret[column("change_event", "diff")].contains("\"field\":\"data.password\"") && secret[column("change_event", "diff")].contains("hmac:"), "{secret:?}");
}

#[test]
fn batching_and_workers_do_not_change_the_result() {
    let one = run_epochs(&config(), 1, epochs(1)).expect("run");
    let other = run_epochs(&config(), 3, epochs(5)).expect("run");
    let (a, b) = (tables(&one, u64::MAX), tables(&other, u64::MAX));
    for view in ["change_event", "change_impact", "regression", "regression_suspect", "service_call_5m"] {
        assert_eq!(a.get(view), b.get(view), "{view}");
    }
}

#[test]
fn detector_equals_a_from_scratch_run_and_regressions_equal_their_definition() {
    let reports = run_epochs(&config(), 2, epochs(3)).expect("run");
    let all = tables(&reports, u64::MAX);
    // Detector from scratch: every event decoded and applied at once, in any order.
    let hasher = KeyedHasher::new(&DecodeConfig::default().secret_hash_key.0);
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut k8s = k8s_events();
    k8s.reverse();
    for (i, (_, payload)) in k8s.iter().enumerate() {
        let msg = RawMessage { origin: Origin { partition: 1, offset: i as u64 }, encoding: Encoding::new(Signal::K8s, WireFormat::JsonLines), payload: payload.clone() };
        decode_k8s(&msg, &DecodeConfig::default(), &hasher, &mut events, &mut errors);
    }
    assert!(errors.is_empty());
    let mut detector = Detector::new(ChangeConfig::default());
    let mut rows = Vec::new();
    detector.apply(events, true, &mut rows);
    let mut expected: Vec<String> = rows.iter().map(|r| r.change_id.clone()).collect();
    expected.sort();
    let got: Vec<String> = all["change_event"].keys().map(|k| k[1].clone()).collect();
    assert_eq!(got, expected);

    // Regressions: the from-scratch definition over the final service_call_5m rows.
    let calls = &all["service_call_5m"];
    let schema = <observebridge_dataflows::views::service_call_5m::ServiceCall5mRow as observebridge_dataflows::views::ViewRow>::schema();
    let col = |n: &str| schema.index_of(n).unwrap();
    let mut per: BTreeMap<(String, i64), (f64, f64)> = BTreeMap::new();
    for r in calls.values() {
        if !r[col("dst")].starts_with("urn:k8s:svc:") {
            continue;
        }
        let e = per.entry((r[col("dst")].clone(), r[col("bucket")].parse().unwrap())).or_default();
        e.0 += r[col("errors")].parse::<f64>().unwrap();
        e.1 += r[col("calls")].parse::<f64>().unwrap();
    }
    let cfg = config().changes.unwrap().correlation.unwrap();
    let payments: Vec<(EventTime, f64, f64)> = per.iter().filter(|((s, _), _)| s == "urn:k8s:svc:shop/payments").map(|((_, b), (e, c))| (*b, e / c, *c)).collect();
    // The regression's row is final once it cleared: compare with the definition over the
    // windows up to the one that cleared it (later, its start leaves the horizon).
    let payments: Vec<_> = payments.into_iter().filter(|(b, _, _)| *b <= T0 + ROLLBACK_AT).collect();
    let runs = find_regressions("err_rate", &payments, &cfg);
    assert_eq!(runs.len(), 1, "{runs:?} {payments:?}");
    let regressions = &all["regression"];
    let row = regressions.values().find(|r| r[column("regression", "service")] == "urn:k8s:svc:shop/payments" && r[column("regression", "signal")] == "err_rate").expect("payments err_rate");
    assert_eq!(row[column("regression", "started_at")], runs[0].started_at.to_string());
    assert_eq!(row[column("regression", "cleared_at")], runs[0].cleared_at.unwrap().to_string());
}
