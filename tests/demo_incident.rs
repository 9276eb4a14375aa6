//! The embedded default's story, through the whole dataflow: the generator (metrics, spans, logs
//! and Kubernetes watch events of its estate) -> every view with change correlation, as the
//! default job configures them. Within ten minutes of event time the generator's bad deploy is
//! the top suspect of every open regression, and the routine changes (scale-up, ConfigMap edit,
//! routine deploys) are never ranked above it.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::AsArray;
use observebridge_connectors::generator::{Change, GeneratedSignal, Generator, GeneratorConfig, Pace};
use observebridge_connectors::source::{Poll, Source};
use observebridge_dataflows::changes::ChangeConfig;
use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::engine::{run_epochs, ChangesConfig, EngineConfig, EpochInput, MetaEvent, ServiceCallConfig};
use observebridge_dataflows::pairing::PairingConfig;
use observebridge_dataflows::record::{Encoding, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::correlation::CorrelationConfig;
use observebridge_dataflows::views::log_pattern::LogPatternConfig;

/// The demo starts at the wall clock, so the bad deploy can fall anywhere in its 5-minute window:
/// at the start and at the end of one.
#[test]
fn the_bad_deploy_is_the_top_suspect_within_ten_minutes() {
    for offset_s in [10, 290] {
        top_suspect_within_ten_minutes(offset_s);
    }
}

fn top_suspect_within_ten_minutes(offset_s: i64) {
    let start = chrono::DateTime::from_timestamp(1_795_600_800 + offset_s, 0).expect("start");
    let cfg = GeneratorConfig { pace: Pace::Fast, start: Some(start), duration: Some(Duration::from_secs(13 * 60)), ..GeneratorConfig::default() };
    let mut generator = Generator::new(&cfg).expect("generator");
    let start = generator.start().timestamp_millis();
    let (victim, bad_at) = generator
        .timeline()
        .incidents
        .iter()
        .find_map(|i| match &i.change {
            Change::Deploy(d) if d.fault.is_some() => Some((generator.estate().services[i.service].clone(), i.at)),
            _ => None,
        })
        .expect("a bad deploy");
    let victim_urn = format!("urn:k8s:svc:{}/{}", victim.namespace, victim.name);
    let mut records = Vec::new();
    while generator.poll(100_000, Duration::ZERO, &mut records).expect("poll") == Poll::Open {}
    let signals: Vec<GeneratedSignal> = (0..4).filter_map(Generator::partition_signal).collect();
    assert!(signals.contains(&GeneratedSignal::K8s), "the default generator writes Kubernetes watch events");

    // Epochs of 400 messages, as the runtime would cut them; the k8s partition is idle when it
    // has nothing in an epoch (its events are sparse).
    let encoding = |p: u32| match Generator::partition_signal(p) {
        Some(GeneratedSignal::Spans) => Encoding::new(Signal::Spans, WireFormat::OtlpProto),
        Some(GeneratedSignal::Logs) => Encoding::new(Signal::Logs, WireFormat::OtlpProto),
        Some(GeneratedSignal::K8s) => Encoding::new(Signal::K8s, WireFormat::JsonLines),
        _ => Encoding::new(Signal::Metrics, WireFormat::OtlpProto),
    };
    let k8s_partition = GeneratedSignal::K8s.partition();
    let mut epochs: Vec<EpochInput> = vec![(Vec::new(), (0..4).map(|p| MetaEvent::Register { partition: p, max_ts: None }).collect())];
    for chunk in records.chunks(400) {
        let raw: Vec<RawMessage> = chunk.iter().map(|r| RawMessage { origin: Origin { partition: r.partition, offset: r.offset }, encoding: encoding(r.partition), payload: r.payload.clone() }).collect();
        let any_k8s = raw.iter().any(|m| m.origin.partition == k8s_partition);
        epochs.push((raw, vec![MetaEvent::Idle { partition: k8s_partition, idle: !any_k8s }]));
    }

    // The default job's views and parameters.
    let config = EngineConfig {
        lateness_ms: 120_000,
        raw_archive: None,
        decode: DecodeConfig::default(),
        metric_1m: None,
        service_call: Some(ServiceCallConfig { pairing: PairingConfig { wait_ms: 10_000, window_ms: 300_000, ..Default::default() }, graph: CallGraphConfig::default(), max_hops: 16 }),
        log_pattern: Some(LogPatternConfig::default()),
        changes: Some(ChangesConfig { detect: ChangeConfig::default(), correlation: Some(CorrelationConfig { wait_ms: 10_000, ..CorrelationConfig::default() }) }),
    };
    let reports = run_epochs(&config, 2, epochs).expect("run");

    // Replay the suspect table epoch by epoch until the watermark is ten minutes in.
    let ten_minutes = start + 10 * 60_000;
    let mut suspects: BTreeMap<(String, String), (i64, String, String)> = BTreeMap::new();
    let mut reached = false;
    let mut seen_top = false;
    let mut changes: Vec<(String, String)> = Vec::new();
    for r in &reports {
        for v in &r.views {
            if v.view == "change_event" {
                let b = &v.upserts;
                for i in 0..b.num_rows() {
                    let col = |n: &str| b.column_by_name(n).expect(n).as_string::<i32>().value(i).to_owned();
                    changes.push((col("service"), col("change_type")));
                }
            }
            if v.view != "regression_suspect" {
                continue;
            }
            let d = &v.deletes;
            for i in 0..d.num_rows() {
                let col = |n: &str| d.column_by_name(n).expect(n).as_string::<i32>().value(i).to_owned();
                suspects.remove(&(col("regression_id"), col("change_id")));
            }
            let b = &v.upserts;
            for i in 0..b.num_rows() {
                let col = |n: &str| b.column_by_name(n).expect(n).as_string::<i32>().value(i).to_owned();
                let rank = b.column_by_name("rank").expect("rank").as_primitive::<arrow::datatypes::Int64Type>().value(i);
                suspects.insert((col("regression_id"), col("change_id")), (rank, col("changed_service"), col("change_type")));
            }
        }
        if r.watermark.is_some_and(|w| w >= ten_minutes) && !reached {
            reached = true;
            let top: Vec<&(i64, String, String)> = suspects.values().filter(|s| s.0 == 1).collect();
            assert!(!top.is_empty(), "start +{offset_s}s: a regression with suspects ten minutes in; changes seen: {changes:?}");
            for t in &top {
                assert_eq!((t.1.as_str(), t.2.as_str()), (victim_urn.as_str(), "image"), "start +{offset_s}s: the bad deploy ranks first: {suspects:#?}");
            }
            seen_top = true;
        }
    }
    assert!(seen_top, "the watermark reached ten minutes");
    // The routine changes are there too, as changes.
    assert!(changes.iter().any(|c| c.1 == "scale"), "{changes:?}");
    assert!(changes.iter().any(|c| c.1 == "configmap"), "{changes:?}");
    assert!(changes.iter().filter(|c| c.0 == victim_urn && c.1 == "image").count() >= 1, "{changes:?}");
    assert!(bad_at < Duration::from_secs(10 * 60));
}
