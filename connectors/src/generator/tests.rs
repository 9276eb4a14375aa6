//! Tests of the generator as a whole: determinism, the estate's shape, the messages (metrics,
//! spans, logs and Kubernetes watch events), pacing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use prost::Message;

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

/// A fast, bounded configuration starting at a fixed time.
fn fast(minutes: u64) -> GeneratorConfig {
    GeneratorConfig {
        start: Some(at("2026-03-02T09:00:00Z")),
        pace: Pace::Fast,
        duration: Some(Duration::from_secs(minutes * 60)),
        ..GeneratorConfig::default()
    }
}

/// `cfg` with the metrics signal only.
fn metrics_only(cfg: GeneratorConfig) -> GeneratorConfig {
    GeneratorConfig {
        signals: vec![GeneratedSignal::Metrics],
        ..cfg
    }
}

/// Polls until exhausted with `max` records per poll.
fn drain(cfg: &GeneratorConfig, max: usize) -> Vec<RawRecord> {
    let mut generator = Generator::new(cfg).unwrap();
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        if generator.poll(max, Duration::ZERO, &mut out).unwrap() == Poll::Exhausted {
            return out;
        }
    }
    panic!("generator never exhausted");
}

fn decode(record: &RawRecord) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest::decode(record.payload.as_slice()).unwrap()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// (pod, event time ns) of a message.
fn identity(req: &ExportMetricsServiceRequest) -> (String, u64) {
    let rm = &req.resource_metrics[0];
    let pod = str_attr(&rm.resource.as_ref().unwrap().attributes, "k8s.pod.name")
        .unwrap()
        .to_owned();
    let metric = &rm.scope_metrics[0].metrics[2];
    let Some(metric::Data::Gauge(g)) = &metric.data else {
        panic!("cpu is a gauge")
    };
    (pod, g.data_points[0].time_unix_nano)
}

/// Requests and 5xx of a message.
fn requests(req: &ExportMetricsServiceRequest) -> (u64, u64) {
    let metric = &req.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(metric::Data::Histogram(h)) = &metric.data else {
        panic!("duration is a histogram")
    };
    let total = h.data_points.iter().map(|p| p.count).sum();
    let errors = h
        .data_points
        .iter()
        .filter(|p| matches!(attr(&p.attributes, "http.response.status_code"), Some(any_value::Value::IntValue(s)) if *s >= 500))
        .map(|p| p.count)
        .sum();
    (total, errors)
}

#[test]
fn output_does_not_depend_on_poll_sizes_or_instances() {
    let cfg = GeneratorConfig {
        disorder: Disorder {
            max_delay: Duration::from_secs(25),
            late_fraction: 0.02,
            ..Disorder::default()
        },
        ..fast(10)
    };
    let one = drain(&cfg, 1);
    let seven = drain(&cfg, 7);
    let many = drain(&cfg, 100_000);
    assert!(!one.is_empty());
    assert_eq!(one, seven);
    assert_eq!(one, many);
    for signal in GeneratedSignal::ALL {
        let offsets: Vec<u64> = one
            .iter()
            .filter(|r| r.partition == signal.partition())
            .map(|r| r.offset)
            .collect();
        assert!(!offsets.is_empty(), "{signal:?}");
        assert!(offsets.iter().enumerate().all(|(i, &o)| o == i as u64));
    }
}

#[test]
fn different_seeds_differ() {
    let a = drain(&fast(1), 1000);
    let b = drain(
        &GeneratorConfig {
            seed: 43,
            ..fast(1)
        },
        1000,
    );
    assert_ne!(a, b);
    let (ea, eb) = (Estate::build(42, 12, 3), Estate::build(43, 12, 3));
    assert_eq!(ea.services.len(), eb.services.len());
    assert_ne!(ea, eb);
    assert_ne!(ea.services[0].pods, eb.services[0].pods);
}

#[test]
fn estate_is_a_connected_dag_with_virtual_dependencies() {
    for (seed, size) in [(42, 10), (42, 12), (7, 25), (1, 60)] {
        let estate = Estate::build(seed, size, 2);
        assert_eq!(estate.services.len(), size);
        let names: HashSet<&str> = estate.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), size, "names are unique");
        for tier in [Tier::Edge, Tier::Frontend, Tier::Backend, Tier::Data] {
            assert!(
                estate.services.iter().any(|s| s.tier == tier),
                "{tier:?} in an estate of {size}"
            );
        }
        assert!(
            estate
                .services
                .iter()
                .all(|s| s.pods.len() == 2 && !s.routes.is_empty() && s.base_rps > 0.0)
        );
        let has = |f: &dyn Fn(&Target) -> bool| estate.edges.iter().any(|e| f(&e.dst));
        assert!(has(
            &|t| matches!(t, Target::Database { system, .. } if system == "postgresql")
        ));
        assert!(has(
            &|t| matches!(t, Target::Queue { system, .. } if system == "kafka")
        ));
        assert!(has(&|t| matches!(t, Target::External { .. })));

        // Acyclic: every call goes forward in call order.
        let pos: HashMap<usize, usize> = estate
            .call_order
            .iter()
            .enumerate()
            .map(|(p, &s)| (s, p))
            .collect();
        for e in &estate.edges {
            if let Target::Service(d) = e.dst {
                assert!(
                    pos[&e.src] < pos[&d],
                    "{} -> {}",
                    estate.services[e.src].name,
                    estate.services[d].name
                );
            }
        }
        // Connected: everything is reachable from the edge tier.
        let mut seen: HashSet<usize> = (0..size)
            .filter(|&s| estate.services[s].tier == Tier::Edge)
            .collect();
        let mut queue: VecDeque<usize> = seen.iter().copied().collect();
        while let Some(s) = queue.pop_front() {
            for e in estate.calls_from(s) {
                if let Target::Service(d) = e.dst
                    && seen.insert(d)
                {
                    queue.push_back(d);
                }
            }
        }
        assert_eq!(
            seen.len(),
            size,
            "every service is reachable from the edge tier"
        );
    }
    let estate = Estate::build(42, 30, 1);
    assert!(
        estate.services.iter().any(|s| s.name == "cart-2"),
        "past the catalog, services are numbered"
    );
}

#[test]
fn messages_carry_the_pod_resource_and_every_point() {
    let cfg = metrics_only(GeneratorConfig {
        tenants: vec!["default".into(), "acme".into()],
        ..fast(1)
    });
    let generator = Generator::new(&cfg).unwrap();
    let estate = generator.estate().clone();
    let records = drain(&cfg, 1000);
    let scrapes = 6;
    assert_eq!(records.len(), scrapes * estate.pod_count());
    let points_per_scrape: usize = estate
        .services
        .iter()
        .map(|s| s.pods.len() * points_per_message(s.routes.len()))
        .sum();
    let mut points = 0;
    for (i, record) in records.iter().enumerate() {
        let req = decode(record);
        assert_eq!(req.resource_metrics.len(), 1);
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        // Pods in service order, every scrape.
        let slot = i % estate.pod_count();
        let (s, p) = estate
            .services
            .iter()
            .enumerate()
            .flat_map(|(s, svc)| (0..svc.pods.len()).map(move |p| (s, p)))
            .nth(slot)
            .unwrap();
        let svc = &estate.services[s];
        assert_eq!(str_attr(attrs, "service.name"), Some(svc.name.as_str()));
        assert_eq!(
            str_attr(attrs, "k8s.deployment.name"),
            Some(svc.name.as_str())
        );
        assert_eq!(
            str_attr(attrs, "service.namespace"),
            Some(svc.namespace.as_str())
        );
        assert_eq!(
            str_attr(attrs, "k8s.namespace.name"),
            Some(svc.namespace.as_str())
        );
        assert_eq!(str_attr(attrs, "k8s.pod.name"), Some(svc.pods[p].as_str()));
        assert_eq!(
            str_attr(attrs, "service.instance.id"),
            Some(svc.pods[p].as_str())
        );
        assert_eq!(
            str_attr(attrs, "service.version"),
            Some(svc.version.as_str())
        );
        assert_eq!(
            str_attr(attrs, "tenant.id"),
            if s % 2 == 1 { Some("acme") } else { None }
        );

        let metrics = &rm.scope_metrics[0].metrics;
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, METRIC_NAMES);
        let mut here = 0;
        for m in metrics {
            here += match m.data.as_ref().unwrap() {
                metric::Data::Histogram(h) => h.data_points.len(),
                metric::Data::Sum(sum) => sum.data_points.len(),
                metric::Data::Gauge(g) => g.data_points.len(),
                other => panic!("unexpected metric type {other:?}"),
            };
        }
        assert_eq!(here, points_per_message(svc.routes.len()));
        points += here;
    }
    assert_eq!(points, scrapes * points_per_scrape);
}

#[test]
fn histograms_are_consistent_with_counts() {
    let records = drain(&metrics_only(fast(3)), 1000);
    let mut requests_seen = 0;
    for record in &records {
        let req = decode(record);
        assert_eq!(
            req.encode_to_vec(),
            record.payload,
            "the hand-written bytes are what prost writes"
        );
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let (Some(metric::Data::Histogram(h)), Some(metric::Data::Sum(s))) =
            (&metrics[0].data, &metrics[1].data)
        else {
            panic!("histogram and sum first");
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert_eq!(
            s.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert!(s.is_monotonic);
        assert_eq!(metrics[0].unit, "s");
        for (hp, sp) in h.data_points.iter().zip(&s.data_points) {
            assert_eq!(hp.explicit_bounds, DURATION_BOUNDS);
            assert_eq!(hp.bucket_counts.len(), DURATION_BOUNDS.len() + 1);
            assert_eq!(hp.bucket_counts.iter().sum::<u64>(), hp.count);
            assert_eq!(
                sp.value,
                Some(number_data_point::Value::AsInt(hp.count as i64))
            );
            assert_eq!(hp.attributes, sp.attributes);
            assert_eq!(hp.time_unix_nano - hp.start_time_unix_nano, 10_000_000_000);
            if hp.count > 0 {
                let (min, max, sum) = (hp.min.unwrap(), hp.max.unwrap(), hp.sum.unwrap());
                assert!(0.0 < min && min <= max);
                assert!(
                    sum >= min * hp.count as f64 * 0.999_999
                        && sum <= max * hp.count as f64 * 1.000_001
                );
            }
            requests_seen += hp.count;
        }
        let cpu = match &metrics[2].data {
            Some(metric::Data::Gauge(g)) => g.data_points[0].value,
            _ => None,
        };
        assert!(
            matches!(cpu, Some(number_data_point::Value::AsDouble(v)) if (0.0..=1.0).contains(&v))
        );
        let memory = match &metrics[3].data {
            Some(metric::Data::Gauge(g)) => g.data_points[0].value,
            _ => None,
        };
        assert!(matches!(memory, Some(number_data_point::Value::AsInt(v)) if v > 50 << 20));
    }
    assert!(
        requests_seen > 10_000,
        "traffic is realistic: {requests_seen} requests in 3 minutes"
    );
}

#[test]
fn load_follows_the_time_of_day() {
    let total = |start: &str| -> u64 {
        let cfg = metrics_only(GeneratorConfig {
            start: Some(at(start)),
            ..fast(2)
        });
        drain(&cfg, 1000)
            .iter()
            .map(|r| requests(&decode(r)).0)
            .sum()
    };
    let peak = total("2026-03-02T14:00:00Z");
    let trough = total("2026-03-03T02:00:00Z");
    let morning = total("2026-03-03T09:00:00Z");
    assert!(peak > 2 * trough, "peak {peak} trough {trough}");
    assert!(
        trough < morning && morning < peak,
        "peak {peak} morning {morning} trough {trough}"
    );
}

#[test]
fn bad_deploy_shows_in_the_victims_metrics() {
    let cfg = metrics_only(fast(20));
    let generator = Generator::new(&cfg).unwrap();
    let (estate, timeline) = (generator.estate().clone(), generator.timeline().clone());
    let bad = timeline
        .incidents
        .iter()
        .find(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
        .unwrap();
    let Change::Deploy(deploy) = &bad.change else {
        unreachable!("the bad deploy is a deploy")
    };
    let victim = &estate.services[bad.service];
    let start_ns = generator.start().timestamp_nanos_opt().unwrap() as u64;
    let deploy_ns = start_ns + bad.at.as_nanos() as u64;
    let (mut before, mut after) = ((0, 0), (0, 0));
    for record in drain(&cfg, 1000) {
        let req = decode(&record);
        let attrs = &req.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        if str_attr(attrs, "service.name") != Some(victim.name.as_str()) {
            continue;
        }
        let (pod, time) = identity(&req);
        let (n, e) = requests(&req);
        if time < deploy_ns {
            assert!(victim.pods.contains(&pod));
            assert_eq!(
                str_attr(attrs, "service.version"),
                Some(victim.version.as_str())
            );
            before = (before.0 + n, before.1 + e);
        } else {
            assert!(deploy.pods.contains(&pod), "new pods after the deploy");
            assert_eq!(
                str_attr(attrs, "service.version"),
                Some(deploy.version.as_str())
            );
            after = (after.0 + n, after.1 + e);
        }
    }
    let rate = |(n, e): (u64, u64)| e as f64 / n.max(1) as f64;
    assert!(
        rate(after) > rate(before) + 0.04,
        "error rate before {} after {}",
        rate(before),
        rate(after)
    );
}

#[test]
fn duration_bounds_the_output_exactly() {
    let cfg = metrics_only(GeneratorConfig {
        duration: Some(Duration::from_secs(95)),
        ..fast(0)
    });
    let mut generator = Generator::new(&cfg).unwrap();
    let pods = generator.estate().pod_count();
    let mut out = Vec::new();
    let mut polls = 0;
    while generator.poll(50, Duration::ZERO, &mut out).unwrap() == Poll::Open {
        polls += 1;
        assert!(polls < 10_000);
    }
    assert_eq!(out.len(), 10 * pods, "scrapes at 0, 10, ..., 90 s");
    assert_eq!(
        generator.poll(50, Duration::ZERO, &mut out).unwrap(),
        Poll::Exhausted
    );
    assert_eq!(out.len(), 10 * pods);
    let times: HashSet<u64> = out.iter().map(|r| identity(&decode(r)).1).collect();
    assert_eq!(times.len(), 10);
}

#[test]
fn disorder_delivers_late_messages_once() {
    let late_by = Duration::from_secs(180);
    let cfg = metrics_only(GeneratorConfig {
        disorder: Disorder {
            max_delay: Duration::from_secs(15),
            late_fraction: 0.03,
            late_by,
        },
        ..fast(20)
    });
    let generator = Generator::new(&cfg).unwrap();
    let pods = generator.estate().pod_count();
    let records = drain(&cfg, 333);
    assert_eq!(records.len(), 120 * pods);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == i as u64)
    );
    let ids: Vec<(String, u64)> = records.iter().map(|r| identity(&decode(r))).collect();
    let unique: HashSet<&(String, u64)> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "every scrape of every pod exactly once"
    );

    let mut newest = 0u64;
    let (mut late, mut reordered) = (0, 0);
    for (_, time) in &ids {
        if *time < newest {
            reordered += 1;
        }
        if newest > time + late_by.as_nanos() as u64 {
            late += 1;
        }
        newest = newest.max(*time);
    }
    assert!(
        late > 0,
        "some messages arrive after messages more than late_by newer"
    );
    assert!(reordered > late, "ordinary delays reorder messages too");
}

#[test]
fn realtime_pacing_follows_the_sped_up_clock() {
    let cfg = metrics_only(GeneratorConfig {
        start: Some(at("2026-03-02T09:00:00Z")),
        pace: Pace::Realtime,
        speed: 600.0,
        duration: Some(Duration::from_secs(3600)),
        ..GeneratorConfig::default()
    });
    let mut generator = Generator::new(&cfg).unwrap();
    let pods = generator.estate().pod_count();
    let started = Instant::now();
    let mut out = Vec::new();
    // The first scrape is due at once.
    assert_eq!(
        generator.poll(10_000, Duration::ZERO, &mut out).unwrap(),
        Poll::Open
    );
    assert!(out.len() >= pods);
    while started.elapsed() < Duration::from_millis(300) {
        assert_eq!(
            generator
                .poll(10_000, Duration::from_millis(50), &mut out)
                .unwrap(),
            Poll::Open
        );
    }
    let elapsed = started.elapsed();
    // 600x: a 10 s scrape every 16.7 ms of wall time.
    let due = (elapsed.as_secs_f64() * 600.0 / 10.0).floor() as usize + 1;
    let scrapes = out.len() / pods;
    assert!(scrapes > 1, "{scrapes} scrapes in {elapsed:?}");
    assert!(
        scrapes <= due + 1,
        "{scrapes} scrapes in {elapsed:?}, about {due} due"
    );
    assert!(scrapes < 360);
    // Nothing is handed out before it is due: an immediate poll finds at most one more scrape.
    let before = out.len();
    generator.poll(10_000, Duration::ZERO, &mut out).unwrap();
    assert!(out.len() - before <= 2 * pods);
}

#[test]
fn realtime_default_start_is_the_floored_wall_clock() {
    let cfg = metrics_only(GeneratorConfig::default());
    let before = Utc::now();
    let mut generator = Generator::new(&cfg).unwrap();
    let start = generator.start();
    assert!(start <= before + chrono::Duration::seconds(1));
    assert!(before - start <= chrono::Duration::seconds(11));
    assert_eq!(start.timestamp_nanos_opt().unwrap() % 10_000_000_000, 0);
    let mut out = Vec::new();
    assert_eq!(
        generator
            .poll(10_000, Duration::from_millis(10), &mut out)
            .unwrap(),
        Poll::Open
    );
    // The first scrape is due at once; the second only when the wall clock reaches it.
    let pods = generator.estate().pod_count();
    assert!(
        out.len() == pods || out.len() == 2 * pods,
        "{} records",
        out.len()
    );
}

#[test]
fn partitions_and_signals() {
    let names = |cfg: &GeneratorConfig| -> Vec<String> {
        let generator = Generator::new(cfg).unwrap();
        generator.partitions().into_iter().map(|p| p.name).collect()
    };
    assert_eq!(
        names(&fast(1)),
        ["generator:metrics", "generator:spans", "generator:logs", "generator:k8s"]
    );
    assert_eq!(names(&metrics_only(fast(1))), ["generator:metrics"]);
    // An index always names the same signal: a spans-only generator lists an empty metrics
    // partition before its own.
    let spans_only = GeneratorConfig {
        signals: vec![GeneratedSignal::Spans],
        ..fast(1)
    };
    assert_eq!(names(&spans_only), ["generator:metrics", "generator:spans"]);
    let records = drain(&spans_only, 1000);
    assert!(!records.is_empty() && records.iter().all(|r| r.partition == 1));
    assert_eq!(
        Generator::partition_signal(0),
        Some(GeneratedSignal::Metrics)
    );
    assert_eq!(Generator::partition_signal(1), Some(GeneratedSignal::Spans));
    assert_eq!(Generator::partition_signal(2), Some(GeneratedSignal::Logs));
    assert_eq!(Generator::partition_signal(3), Some(GeneratedSignal::K8s));
    assert_eq!(Generator::partition_signal(4), None);
    assert_eq!(GeneratedSignal::K8s.name(), "k8s");
}

#[test]
fn new_refuses_invalid_configs() {
    for cfg in [
        GeneratorConfig {
            services: 9,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            speed: 0.0,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            tenants: Vec::new(),
            ..GeneratorConfig::default()
        },
    ] {
        let err = Generator::new(&cfg).err().unwrap();
        assert!(matches!(err, GeneratorError::InvalidConfig { .. }));
        assert!(
            err.to_string().starts_with("generator config field `"),
            "{err}"
        );
    }
}

#[test]
fn large_estates_build_and_scrape_quickly() {
    let started = Instant::now();
    let estate = Estate::build(3, MAX_SERVICES, 1);
    assert_eq!(estate.services.len(), MAX_SERVICES);
    let cfg = metrics_only(GeneratorConfig {
        services: 2_000,
        pods_per_service: 2,
        ..fast(0)
    });
    let cfg = GeneratorConfig {
        duration: Some(Duration::from_secs(20)),
        ..cfg
    };
    let records = drain(&cfg, 10_000);
    assert_eq!(records.len(), 2 * 4_000);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// `cfg` with the spans signal only.
fn spans_only(cfg: GeneratorConfig) -> GeneratorConfig {
    GeneratorConfig {
        signals: vec![GeneratedSignal::Spans],
        ..cfg
    }
}

/// One span as a test sees it: where it came from and what it says.
#[derive(Clone, Debug)]
struct SeenSpan {
    /// Offset of its message in the spans partition.
    message: u64,
    service: String,
    pod: String,
    kind: SpanKind,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Option<Vec<u8>>,
    start: u64,
    end: u64,
    error: bool,
    attributes: Vec<KeyValue>,
}

/// Decodes every spans record (with prost) into the spans of its messages.
fn seen_spans(records: &[RawRecord]) -> Vec<SeenSpan> {
    let mut out = Vec::new();
    for record in records.iter().filter(|r| r.partition == GeneratedSignal::Spans.partition()) {
        let req = ExportTraceServiceRequest::decode(record.payload.as_slice()).unwrap();
        for rs in req.resource_spans {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            let service = str_attr(attrs, "service.name").unwrap();
            let pod = str_attr(attrs, "k8s.pod.name").unwrap();
            for span in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                out.push(SeenSpan {
                    message: record.offset,
                    service: service.to_owned(),
                    pod: pod.to_owned(),
                    kind: SpanKind::try_from(span.kind).unwrap(),
                    parent: (!span.parent_span_id.is_empty()).then_some(span.parent_span_id),
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    start: span.start_time_unix_nano,
                    end: span.end_time_unix_nano,
                    error: span
                        .status
                        .is_some_and(|s| s.code == StatusCode::Error as i32),
                    attributes: span.attributes,
                });
            }
        }
    }
    out
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

#[test]
fn spans_decode_as_otlp_with_one_message_per_service_and_tick() {
    let cfg = spans_only(GeneratorConfig {
        tenants: vec!["default".into(), "acme".into()],
        ..fast(2)
    });
    let generator = Generator::new(&cfg).unwrap();
    let estate = generator.estate().clone();
    let start_ns = generator.start().timestamp_nanos_opt().unwrap() as u64;
    let records = drain(&cfg, 1000);
    let ticks = 12;
    assert_eq!(records.len(), ticks * estate.services.len());
    let mut last_end: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut trace_tick: HashMap<Vec<u8>, u64> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        assert_eq!((record.partition, record.offset), (1, i as u64));
        let req = ExportTraceServiceRequest::decode(record.payload.as_slice()).unwrap();
        assert_eq!(req.encode_to_vec(), record.payload);
        // Services in estate order, every tick; one resource per pod that exported spans.
        let s = i % estate.services.len();
        let tick_ns = start_ns + (i / estate.services.len()) as u64 * 10_000_000_000;
        let svc = &estate.services[s];
        assert!(req.resource_spans.len() <= svc.pods.len());
        for rs in &req.resource_spans {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            assert_eq!(str_attr(attrs, "service.name"), Some(svc.name.as_str()));
            assert_eq!(str_attr(attrs, "service.namespace"), Some(svc.namespace.as_str()));
            assert_eq!(str_attr(attrs, "k8s.namespace.name"), Some(svc.namespace.as_str()));
            assert_eq!(str_attr(attrs, "k8s.deployment.name"), Some(svc.name.as_str()));
            assert_eq!(str_attr(attrs, "service.version"), Some(svc.version.as_str()));
            let pod = str_attr(attrs, "k8s.pod.name").unwrap();
            assert!(svc.pods.iter().any(|p| p == pod), "{pod}");
            assert_eq!(str_attr(attrs, "service.instance.id"), Some(pod));
            assert_eq!(
                str_attr(attrs, "tenant.id"),
                if s % 2 == 1 { Some("acme") } else { None }
            );
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                assert_eq!(span.trace_id.len(), 16);
                assert_eq!(span.span_id.len(), 8);
                assert!(span.trace_id.iter().any(|&b| b != 0) && span.span_id.iter().any(|&b| b != 0));
                assert!(matches!(span.parent_span_id.len(), 0 | 8));
                assert!(!span.name.is_empty());
                // Exported at the tick: the traces that ended in the interval before it.
                assert!(span.start_time_unix_nano <= span.end_time_unix_nano);
                assert!(
                    span.end_time_unix_nano <= tick_ns && span.end_time_unix_nano > tick_ns - 20_000_000_000,
                    "span of tick {tick_ns} ends at {}",
                    span.end_time_unix_nano
                );
                let end = last_end.entry(span.trace_id.clone()).or_insert(0);
                *end = (*end).max(span.end_time_unix_nano);
                trace_tick.insert(span.trace_id.clone(), tick_ns);
                assert_eq!(int_attr(&span.attributes, SAMPLING_ATTRIBUTE), Some(ADJUSTED_COUNT));
            }
        }
    }
    for (trace, end) in &last_end {
        let tick_ns = trace_tick[trace];
        assert!(*end > tick_ns - 10_000_000_000, "a trace's last span ends within its tick's interval");
    }
    // Volume: about a thousand spans per second of event time at this hour, a few hundred
    // sampled traces a minute.
    let spans = seen_spans(&records);
    let per_second = spans.len() as f64 / 120.0;
    assert!((300.0..5_000.0).contains(&per_second), "{per_second} spans/s");
    let traces: HashSet<&Vec<u8>> = spans.iter().map(|s| &s.trace_id).collect();
    assert!(traces.len() > 100, "{} traces", traces.len());
    let ids: HashSet<(&Vec<u8>, &Vec<u8>)> = spans.iter().map(|s| (&s.trace_id, &s.span_id)).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
}

/// Checks the parent-child structure of the spans of one run (no disorder): see the test below.
fn check_call_structure(cfg: &GeneratorConfig) -> HashMap<SpanKind, usize> {
    let generator = Generator::new(cfg).unwrap();
    let estate = generator.estate().clone();
    let services = estate.services.len() as u64;
    let index: HashMap<&str, usize> = estate
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let spans = seen_spans(&drain(cfg, 1000));
    let by_id: HashMap<(&[u8], &[u8]), &SeenSpan> = spans
        .iter()
        .map(|s| ((s.trace_id.as_slice(), s.span_id.as_slice()), s))
        .collect();
    let calls = |src: &str, dst: &Target| estate.calls_from(index[src]).any(|e| e.dst == *dst);
    let parents: HashSet<(&[u8], &[u8])> = spans
        .iter()
        .filter_map(|s| Some((s.trace_id.as_slice(), s.parent.as_deref()?)))
        .collect();
    let mut kinds: HashMap<SpanKind, usize> = HashMap::new();
    for span in &spans {
        *kinds.entry(span.kind).or_default() += 1;
        let Some(parent_id) = &span.parent else {
            // Roots: user requests at the edge, from uninstrumented callers.
            assert_eq!(span.kind, SpanKind::Server);
            assert_eq!(estate.services[index[span.service.as_str()]].tier, Tier::Edge);
            assert!(str_attr(&span.attributes, "client.address").is_some());
            continue;
        };
        let parent = by_id[&(span.trace_id.as_slice(), parent_id.as_slice())];
        let tick = |s: &SeenSpan| s.message / services;
        assert_eq!(tick(parent), tick(span), "a trace's spans are exported in the same tick");
        match span.kind {
            SpanKind::Server | SpanKind::Consumer => {
                // A call from another service: its CLIENT (PRODUCER) span, in the caller's message.
                let expected = if span.kind == SpanKind::Server {
                    SpanKind::Client
                } else {
                    SpanKind::Producer
                };
                assert_eq!(parent.kind, expected);
                assert_ne!(parent.message, span.message);
                assert_ne!(parent.service, span.service);
                if span.kind == SpanKind::Server {
                    assert!(calls(&parent.service, &Target::Service(index[span.service.as_str()])));
                    assert!(parent.start <= span.start && span.end <= parent.end, "the call covers its server span");
                    assert_eq!(
                        int_attr(&parent.attributes, "http.response.status_code"),
                        int_attr(&span.attributes, "http.response.status_code")
                    );
                    assert_eq!(parent.error, span.error);
                } else {
                    assert!(span.start >= parent.end, "consumed after it was published");
                }
            }
            SpanKind::Client | SpanKind::Producer => {
                // Made while serving: a child of a SERVER (CONSUMER) span of the same pod.
                assert!(matches!(parent.kind, SpanKind::Server | SpanKind::Consumer));
                assert_eq!((&parent.service, &parent.pod, parent.message), (&span.service, &span.pod, span.message));
                assert!(parent.start <= span.start && span.end <= parent.end);
                let text = |k| str_attr(&span.attributes, k).map(str::to_owned).unwrap_or_default();
                if span.kind == SpanKind::Producer {
                    let dst = Target::Queue { system: text("messaging.system"), name: text("messaging.destination.name") };
                    assert!(calls(&span.service, &dst), "{dst:?}");
                } else if let Some(system) = str_attr(&span.attributes, "db.system") {
                    let dst = Target::Database { system: system.to_owned(), name: text("db.name") };
                    assert!(calls(&span.service, &dst), "{dst:?}");
                } else if let Some(host) = str_attr(&span.attributes, "server.address") {
                    assert!(calls(&span.service, &Target::External { host: host.to_owned() }), "{host}");
                } else {
                    // A call to a service: its SERVER span is a child (checked above).
                    assert!(
                        parents.contains(&(span.trace_id.as_slice(), span.span_id.as_slice())),
                        "a client span without its server span"
                    );
                }
            }
            other => panic!("unexpected span kind {other:?}"),
        }
    }
    kinds
}

#[test]
fn server_spans_are_children_of_their_callers_client_spans() {
    let kinds = check_call_structure(&spans_only(fast(1)));
    assert!(kinds[&SpanKind::Server] > 0 && kinds[&SpanKind::Client] > kinds[&SpanKind::Server]);
    assert!(kinds[&SpanKind::Producer] > 0);
    assert!(!kinds.contains_key(&SpanKind::Consumer), "nobody consumes the topics of 12 services");
    // With `notifications` in the estate, order events are consumed there.
    let kinds = check_call_structure(&spans_only(GeneratorConfig { services: 14, ..fast(1) }));
    assert!(kinds[&SpanKind::Consumer] > 0);
    assert!(QUEUE_CONSUMERS.iter().any(|(topic, consumer)| *topic == "order-events" && *consumer == "notifications"));
}

#[test]
fn spans_are_deterministic_for_a_seed() {
    let cfg = spans_only(fast(1));
    let a = drain(&cfg, 1000);
    assert_eq!(a, drain(&cfg, 7));
    let b = drain(&GeneratorConfig { seed: 43, ..cfg.clone() }, 1000);
    assert_ne!(a, b);
    // The spans do not depend on which other signals run, nor on disorder (only the order does).
    let both = drain(&fast(1), 1000);
    let spans: Vec<&RawRecord> = both.iter().filter(|r| r.partition == 1).collect();
    assert_eq!(spans, a.iter().collect::<Vec<_>>());
    let disordered = GeneratorConfig {
        disorder: Disorder {
            max_delay: Duration::from_secs(25),
            late_fraction: 0.05,
            ..Disorder::default()
        },
        ..cfg.clone()
    };
    let mut shuffled: Vec<Vec<u8>> = drain(&disordered, 1000).into_iter().map(|r| r.payload).collect();
    let mut ordered: Vec<Vec<u8>> = a.into_iter().map(|r| r.payload).collect();
    assert_ne!(shuffled, ordered);
    shuffled.sort();
    ordered.sort();
    assert_eq!(shuffled, ordered);
}

#[test]
fn bad_deploy_raises_the_error_share_of_the_victims_spans() {
    // At night: a third of the daytime traffic is plenty, and the test runs faster.
    let cfg = spans_only(GeneratorConfig {
        start: Some(at("2026-03-03T02:00:00Z")),
        ..fast(8)
    });
    let generator = Generator::new(&cfg).unwrap();
    let (estate, timeline) = (generator.estate().clone(), generator.timeline().clone());
    let bad = timeline
        .incidents
        .iter()
        .find(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
        .unwrap();
    let Change::Deploy(deploy) = &bad.change else {
        unreachable!("the bad deploy is a deploy")
    };
    let victim = &estate.services[bad.service];
    let services = estate.services.len() as u64;
    let deploy_tick = bad.at.as_secs() / 10;
    // (spans, errors, durations) of the victim's SERVER spans and of its callers' calls to it.
    let mut server = [(0u64, 0u64, Vec::new()), (0, 0, Vec::new())];
    let mut client = [(0u64, 0u64), (0, 0)];
    let spans = seen_spans(&drain(&cfg, 1000));
    let by_id: HashMap<&[u8], &SeenSpan> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    for span in &spans {
        let after = usize::from(span.message / services >= deploy_tick);
        if span.service == victim.name && span.kind == SpanKind::Server {
            assert_eq!(victim.pods.contains(&span.pod), after == 0);
            assert_eq!(deploy.pods.contains(&span.pod), after == 1);
            let s = &mut server[after];
            s.0 += 1;
            s.1 += u64::from(span.error);
            s.2.push(span.end - span.start);
            if let Some(parent) = &span.parent {
                let call = by_id[parent.as_slice()];
                client[after].0 += 1;
                client[after].1 += u64::from(call.error);
            }
        }
    }
    let rate = |(n, e): (u64, u64)| e as f64 / n.max(1) as f64;
    let [before, after] = &server;
    assert!(before.0 > 100 && after.0 > 100, "{} and {} spans", before.0, after.0);
    assert!(
        rate((after.0, after.1)) > rate((before.0, before.1)) + 0.04,
        "error share before {} after {}",
        rate((before.0, before.1)),
        rate((after.0, after.1))
    );
    assert!(rate(client[1]) > rate(client[0]) + 0.04, "callers see the failures");
    let median = |d: &Vec<u64>| {
        let mut d = d.clone();
        d.sort_unstable();
        d[d.len() / 2]
    };
    assert!(
        median(&after.2) > 2 * median(&before.2),
        "median duration before {} after {}",
        median(&before.2),
        median(&after.2)
    );
}

// Logs.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::logs::LogsEmitter;

/// `cfg` with the logs signal only.
fn logs_only(cfg: GeneratorConfig) -> GeneratorConfig {
    GeneratorConfig {
        signals: vec![GeneratedSignal::Logs],
        ..cfg
    }
}

/// One log line as a test sees it.
#[derive(Clone, Debug)]
struct SeenLine {
    service: String,
    pod: String,
    /// The message's tick time (`observed_time_unix_nano`).
    tick_time: u64,
    severity: i32,
    body: String,
}

/// Decodes one logs message (with prost) into its lines, checking what every line must hold.
fn seen_lines(payload: &[u8]) -> Vec<SeenLine> {
    let req = ExportLogsServiceRequest::decode(payload).unwrap();
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let attrs = &rl.resource.as_ref().unwrap().attributes;
        for key in ["service.namespace", "k8s.namespace.name", "service.version"] {
            assert!(str_attr(attrs, key).is_some_and(|v| !v.is_empty()), "{key}");
        }
        assert_eq!(
            str_attr(attrs, "tenant.id"),
            None,
            "the default tenant is not written"
        );
        let records = &rl.scope_logs[0].log_records;
        assert!(!records.is_empty(), "no empty resources");
        assert!(
            records
                .windows(2)
                .all(|w| w[0].time_unix_nano <= w[1].time_unix_nano)
        );
        for r in records {
            let text = match r.severity_number {
                5 => "DEBUG",
                9 => "INFO",
                13 => "WARN",
                17 => "ERROR",
                other => panic!("severity {other}"),
            };
            assert_eq!(r.severity_text, text);
            let Some(any_value::Value::StringValue(body)) =
                r.body.as_ref().and_then(|b| b.value.as_ref())
            else {
                panic!("a string body")
            };
            assert!(!body.is_empty());
            assert!(r.time_unix_nano <= r.observed_time_unix_nano);
            assert!(r.time_unix_nano > r.observed_time_unix_nano - 10_000_000_000);
            out.push(SeenLine {
                service: str_attr(attrs, "service.name").unwrap().to_owned(),
                pod: str_attr(attrs, "k8s.pod.name").unwrap().to_owned(),
                tick_time: r.observed_time_unix_nano,
                severity: r.severity_number,
                body: body.clone(),
            });
        }
    }
    out
}

#[test]
fn logs_decode_as_otlp_with_one_message_per_service_and_tick() {
    let cfg = logs_only(fast(1));
    let generator = Generator::new(&cfg).unwrap();
    let estate = generator.estate().clone();
    let start = generator.start().timestamp_nanos_opt().unwrap() as u64;
    let records = drain(&cfg, 1000);
    let services = estate.services.len();
    assert_eq!(records.len(), 6 * services);
    assert!(
        records
            .iter()
            .all(|r| r.partition == GeneratedSignal::Logs.partition())
    );
    let mut lines = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let seen = seen_lines(&record.payload);
        // In order: tick by tick, service by service.
        let svc = &estate.services[i % services];
        let tick_time = start + (i / services) as u64 * 10_000_000_000;
        assert!(!seen.is_empty(), "{} at tick {}", svc.name, i / services);
        for line in &seen {
            assert_eq!(line.service, svc.name);
            assert!(svc.pods.contains(&line.pod), "{}", line.pod);
            assert_eq!(line.tick_time, tick_time);
        }
        lines.extend(seen);
    }
    // Volume: thousands of lines per second of event time, of every level; templates vary.
    let per_second = lines.len() as f64 / 60.0;
    assert!(
        (1000.0..=5000.0).contains(&per_second),
        "{per_second} lines/s"
    );
    let count = |severity| lines.iter().filter(|l| l.severity == severity).count();
    let (debug, info, warn, error) = (count(5), count(9), count(13), count(17));
    assert!(
        debug > info && info > warn && warn > error && error > 0,
        "{debug} {info} {warn} {error}"
    );
    for needle in [
        "query on postgresql/",
        "cache hit for key",
        "published event to order-events",
        "POST https://api.stripe.com",
        "calling ",
        "slow request: ",
        "gc pause ",
        " 200 ",
        "request_id=",
    ] {
        assert!(lines.iter().any(|l| l.body.contains(needle)), "{needle}");
    }
    assert!(
        lines.iter().all(|l| !l.body.contains('{')),
        "route parameters are filled in"
    );
    assert!(
        lines.iter().all(|l| !l.body.starts_with(FAULT_LOG_PREFIX)),
        "no fault in the first minute"
    );
}

#[test]
fn logs_are_deterministic_for_a_seed() {
    let cfg = logs_only(fast(1));
    let a = drain(&cfg, 1000);
    assert_eq!(a, drain(&cfg, 7));
    assert_ne!(
        a,
        drain(
            &GeneratorConfig {
                seed: 43,
                ..cfg.clone()
            },
            1000
        )
    );
    // The logs do not depend on which other signals run.
    let all = drain(&fast(1), 1000);
    let logs: Vec<&RawRecord> = all.iter().filter(|r| r.partition == 2).collect();
    assert_eq!(logs, a.iter().collect::<Vec<_>>());
}

#[test]
fn fault_template_follows_the_bad_deploy_and_errors_rise_with_it() {
    let generator = Generator::new(&logs_only(fast(40))).unwrap();
    let world = &generator.world;
    let mut emitter = LogsEmitter::new(world);
    let incidents = &world.timeline.incidents;
    let bad = incidents
        .iter()
        .find(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
        .unwrap();
    let rollback = incidents
        .iter()
        .find(|i| i.service == bad.service && matches!(&i.change, Change::Deploy(d) if d.rollback))
        .unwrap();
    let victim = bad.service;
    let callers: Vec<usize> = world
        .estate
        .edges
        .iter()
        .filter(|e| e.dst == Target::Service(victim))
        .map(|e| e.src)
        .collect();
    assert!(!callers.is_empty());
    let (bad_tick, rollback_tick) = (bad.at.as_secs() / 10, rollback.at.as_secs() / 10);
    // (lines, errors) per service, before the bad deploy and while it runs.
    let mut shares = vec![[(0u64, 0u64); 2]; world.estate.services.len()];
    for tick in 0..240 {
        let during = (bad_tick..rollback_tick).contains(&tick);
        for (s, share) in shares.iter_mut().enumerate() {
            // Every tick of the victim, every third of its callers, every sixth of the others.
            let every = if s == victim {
                1
            } else if callers.contains(&s) {
                3
            } else {
                6
            };
            if tick % every != 0 {
                continue;
            }
            let lines = seen_lines(&emitter.encode(world, tick, s));
            let faults = lines
                .iter()
                .filter(|l| l.body.starts_with(FAULT_LOG_PREFIX))
                .count();
            if s == victim && during {
                assert!(
                    faults > 0,
                    "tick {tick}: the faulty revision writes its template"
                );
                assert!(
                    lines
                        .iter()
                        .filter(|l| l.body.starts_with(FAULT_LOG_PREFIX))
                        .all(|l| l.severity == 17)
                );
            } else {
                assert_eq!(
                    faults, 0,
                    "{} at tick {tick}",
                    world.estate.services[s].name
                );
            }
            if tick < bad_tick || during {
                let share = &mut share[usize::from(during)];
                share.0 += lines.len() as u64;
                share.1 += lines.iter().filter(|l| l.severity == 17).count() as u64;
            }
        }
    }
    let rate = |(n, e): (u64, u64)| e as f64 / n.max(1) as f64;
    let [before, during] = shares[victim];
    assert!(
        rate(during) > rate(before) + 0.03,
        "victim's error share before {} during {}",
        rate(before),
        rate(during)
    );
    for &c in &callers {
        let [before, during] = shares[c];
        assert!(
            rate(during) > rate(before),
            "caller {} sees the failures",
            world.estate.services[c].name
        );
    }
}

// Kubernetes watch events.

use base64::Engine as _;
use serde_json::Value;

use super::k8s::K8sEmitter;
use super::schedule::Plan;

/// `cfg` with the k8s signal only.
fn k8s_only(cfg: GeneratorConfig) -> GeneratorConfig {
    GeneratorConfig {
        signals: vec![GeneratedSignal::K8s],
        ..cfg
    }
}

/// A Kubernetes time: RFC 3339 with `Z`, to the second.
fn k8s_time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a time, got {value}"));
    assert!(text.len() == 20 && text.ends_with('Z'), "{text}");
    at(text)
}

/// One watch event as a test sees it.
#[derive(Clone, Debug)]
struct Watch {
    /// ADDED, MODIFIED or DELETED.
    kind: String,
    object: Value,
    /// Event time by the rule consumers use: `lastTimestamp` of an Event, else the newest
    /// `managedFields[].time`.
    time: DateTime<Utc>,
    resource_version: u64,
}

impl Watch {
    fn object_kind(&self) -> &str {
        self.object["kind"].as_str().unwrap()
    }

    fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap()
    }

    fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"].as_str().unwrap()
    }

    /// (kind, namespace, name): the object.
    fn key(&self) -> (String, String, String) {
        (
            self.object_kind().to_owned(),
            self.namespace().to_owned(),
            self.name().to_owned(),
        )
    }

    fn image(&self) -> &str {
        self.object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
    }

    fn is(&self, kind: &str, object_kind: &str) -> bool {
        self.kind == kind && self.object_kind() == object_kind
    }

    /// Whether the event is about an object of service `svc`: labelled with its name, or an
    /// Event about its Deployment or one of its pods.
    fn of(&self, svc: &Service) -> bool {
        if self.namespace() != svc.namespace {
            return false;
        }
        if self.object_kind() != "Event" {
            return self.object["metadata"]["labels"]["app.kubernetes.io/name"]
                == svc.name.as_str();
        }
        let involved = self.object["involvedObject"]["name"].as_str().unwrap();
        involved == svc.name
            || involved
                .strip_prefix(svc.name.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| rest.split('-').count() == 2)
    }
}

/// Parses one message, checking what every watch event must hold.
fn watch(payload: &[u8]) -> Watch {
    let event: Value = serde_json::from_slice(payload).expect("a message is JSON");
    let map = event.as_object().unwrap();
    assert_eq!(map.len(), 2, "type and object only: {event}");
    let kind = event["type"].as_str().unwrap().to_owned();
    assert!(
        matches!(kind.as_str(), "ADDED" | "MODIFIED" | "DELETED"),
        "{kind}"
    );
    let object = event["object"].clone();
    let object_kind = object["kind"].as_str().expect("object.kind");
    let api_version = object["apiVersion"].as_str().expect("object.apiVersion");
    let expected_api = match object_kind {
        "Deployment" | "ReplicaSet" => "apps/v1",
        "Pod" | "Service" | "ConfigMap" | "Secret" | "Event" => "v1",
        other => panic!("unexpected kind {other}"),
    };
    assert_eq!(api_version, expected_api);
    let meta = &object["metadata"];
    for key in ["name", "namespace", "uid", "resourceVersion"] {
        assert!(
            meta[key].as_str().is_some_and(|v| !v.is_empty()),
            "metadata.{key} of {object}"
        );
    }
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    let rv = meta["resourceVersion"].as_str().unwrap();
    assert!(rv.bytes().all(|b| b.is_ascii_digit()), "{rv}");
    let created = k8s_time(&meta["creationTimestamp"]);
    let fields = meta["managedFields"].as_array().expect("managedFields");
    assert!(!fields.is_empty());
    let mut newest = None;
    for entry in fields {
        let manager = entry["manager"].as_str().unwrap();
        assert!(
            [
                "kubectl",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet"
            ]
            .contains(&manager),
            "{manager}"
        );
        assert_eq!(entry["operation"], "Update");
        assert_eq!(entry["fieldsType"], "FieldsV1");
        assert_eq!(entry["apiVersion"], api_version);
        assert!(entry["fieldsV1"].is_object());
        let status = entry["fieldsV1"].get("f:status").is_some();
        assert_eq!(
            entry.get("subresource").and_then(Value::as_str),
            status.then_some("status"),
            "status updates go through the status subresource"
        );
        let time = k8s_time(&entry["time"]);
        assert!(time >= created);
        newest = newest.max(Some(time));
    }
    let time = if object_kind == "Event" {
        for key in ["reason", "message"] {
            assert!(object[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
        }
        assert!(matches!(
            object["type"].as_str(),
            Some("Normal" | "Warning")
        ));
        let involved = &object["involvedObject"];
        for key in ["kind", "namespace", "name", "uid"] {
            assert!(
                involved[key].as_str().is_some_and(|v| !v.is_empty()),
                "involvedObject.{key}"
            );
        }
        assert_eq!(involved["namespace"], meta["namespace"]);
        assert!(object["count"].as_u64().is_some_and(|c| c >= 1));
        let (first, last) = (
            k8s_time(&object["firstTimestamp"]),
            k8s_time(&object["lastTimestamp"]),
        );
        assert!(first <= last);
        assert_eq!(newest, Some(last), "the Event's managedFields agree");
        last
    } else {
        newest.unwrap()
    };
    if kind == "DELETED" {
        k8s_time(&meta["deletionTimestamp"]);
    }
    Watch {
        kind,
        time,
        resource_version: rv.parse().unwrap(),
        object,
    }
}

fn watches(records: &[RawRecord]) -> Vec<Watch> {
    records
        .iter()
        .filter(|r| r.partition == GeneratedSignal::K8s.partition())
        .map(|r| watch(&r.payload))
        .collect()
}

/// The bad deploy and its rollback.
fn bad_deploy(timeline: &Timeline) -> (&Incident, &Deploy, &Incident) {
    let bad = timeline
        .incidents
        .iter()
        .find(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
        .unwrap();
    let Change::Deploy(deploy) = &bad.change else {
        unreachable!("the bad deploy is a deploy")
    };
    let rollback = timeline
        .incidents
        .iter()
        .find(|i| i.service == bad.service && matches!(&i.change, Change::Deploy(d) if d.rollback))
        .unwrap();
    (bad, deploy, rollback)
}

fn secs(d: Duration) -> chrono::Duration {
    chrono::Duration::seconds(d.as_secs() as i64)
}

#[test]
fn k8s_messages_are_watch_events_listing_the_estate_then_its_changes() {
    let cfg = k8s_only(GeneratorConfig {
        tenants: vec!["default".into(), "acme".into()],
        ..fast(35)
    });
    let generator = Generator::new(&cfg).unwrap();
    let (estate, start) = (generator.estate().clone(), generator.start());
    let records = drain(&cfg, 1000);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r.partition == 3 && r.offset == i as u64)
    );
    let events = watches(&records);

    // The listing at the start: every service's objects, ADDED at the start.
    let listed = 5 * estate.services.len() + estate.pod_count();
    assert!(
        events[..listed]
            .iter()
            .all(|w| w.kind == "ADDED" && w.time == start)
    );
    assert!(events[listed..].iter().all(|w| w.time > start));
    for (s, svc) in estate.services.iter().enumerate() {
        let of = |kind: &str, name: &str| {
            let found: Vec<&Watch> = events[..listed]
                .iter()
                .filter(|w| w.object_kind() == kind && w.name() == name)
                .collect();
            assert_eq!(found.len(), 1, "{kind} {name}");
            assert_eq!(found[0].namespace(), svc.namespace);
            let labels = &found[0].object["metadata"]["labels"];
            if kind != "Event" {
                assert_eq!(
                    labels["app.kubernetes.io/name"],
                    svc.name.as_str(),
                    "{kind} {name}"
                );
            }
            assert_eq!(
                labels.get("tenant.id").and_then(Value::as_str),
                (s % 2 == 1).then_some("acme"),
                "{kind} {name}"
            );
            found[0].object.clone()
        };
        let deployment = of("Deployment", &svc.name);
        let app = serde_json::json!({ "app.kubernetes.io/name": svc.name });
        assert_eq!(deployment["spec"]["selector"]["matchLabels"], app);
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["labels"],
            deployment["metadata"]["labels"]
        );
        assert_eq!(deployment["spec"]["replicas"], svc.pods.len());
        assert_eq!(deployment["metadata"]["generation"], 1);
        assert_eq!(
            deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], svc.name.as_str());
        assert_eq!(
            container["image"],
            format!(
                "registry.example.com/{}/{}:{}",
                svc.namespace, svc.name, svc.version
            )
        );
        let env = container["env"].as_array().unwrap();
        assert!(env.iter().filter(|e| e["value"].is_string()).count() >= 2);
        let secret_refs: Vec<&Value> = env
            .iter()
            .filter(|e| e.get("valueFrom").is_some())
            .collect();
        assert_eq!(secret_refs.len(), 1);
        assert_eq!(
            secret_refs[0]["valueFrom"]["secretKeyRef"]["name"],
            format!("{}-credentials", svc.name)
        );
        for key in ["requests", "limits"] {
            assert!(container["resources"][key]["cpu"].is_string());
            assert!(container["resources"][key]["memory"].is_string());
        }
        assert!(container["ports"][0]["containerPort"].is_u64());

        let hash = svc.pods[0].split('-').rev().nth(1).unwrap();
        let rs = of("ReplicaSet", &format!("{}-{hash}", svc.name));
        assert_eq!(rs["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(
            rs["metadata"]["ownerReferences"][0]["uid"],
            deployment["metadata"]["uid"]
        );
        for pod in &svc.pods {
            let pod = of("Pod", pod);
            assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
            assert_eq!(
                pod["metadata"]["ownerReferences"][0]["uid"],
                rs["metadata"]["uid"]
            );
            assert_eq!(pod["status"]["phase"], "Running");
        }
        let service = of("Service", &svc.name);
        assert_eq!(service["spec"]["selector"], app);
        assert!(service["spec"]["ports"][0]["port"].is_u64());
        let config = of("ConfigMap", &format!("{}-config", svc.name));
        assert!(config["data"].as_object().unwrap().len() >= 3);
        let secret = of("Secret", &format!("{}-credentials", svc.name));
        assert_eq!(secret["type"], "Opaque");
        assert!(secret["data"]["DB_PASSWORD"].is_string());
    }

    // Then the changes, in event-time order: every kind and type of event.
    assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
    let kinds: HashSet<(String, String)> = events
        .iter()
        .map(|w| (w.kind.clone(), w.object_kind().to_owned()))
        .collect();
    for (kind, object) in [
        ("MODIFIED", "Deployment"),
        ("ADDED", "ReplicaSet"),
        ("MODIFIED", "ReplicaSet"),
        ("MODIFIED", "Pod"),
        ("DELETED", "Pod"),
        ("ADDED", "Event"),
        ("MODIFIED", "ConfigMap"),
        ("MODIFIED", "Secret"),
    ] {
        assert!(
            kinds.contains(&(kind.to_owned(), object.to_owned())),
            "{kind} {object}"
        );
    }
    let reasons: HashSet<&str> = events
        .iter()
        .filter_map(|w| w.object["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        HashSet::from(["ScalingReplicaSet", "Killing", "Unhealthy", "BackOff"])
    );
}

#[test]
fn k8s_resource_versions_increase_cluster_wide_and_per_object() {
    let events = watches(&drain(&k8s_only(fast(35)), 1000));
    assert!(
        events
            .windows(2)
            .all(|w| w[0].resource_version < w[1].resource_version),
        "a cluster-wide counter in emission order"
    );
    let mut last: HashMap<(String, String, String), (u64, String)> = HashMap::new();
    let mut uids: HashMap<String, (String, String, String)> = HashMap::new();
    for w in &events {
        let uid = w.object["metadata"]["uid"].as_str().unwrap().to_owned();
        if let Some((rv, seen_uid)) = last.get(&w.key()) {
            assert!(*rv < w.resource_version, "{:?}", w.key());
            assert_eq!(*seen_uid, uid, "an object keeps its uid");
        }
        assert_eq!(
            uids.entry(uid.clone()).or_insert_with(|| w.key()),
            &w.key(),
            "uids are unique"
        );
        last.insert(w.key(), (w.resource_version, uid));
    }
    // Deleted pods are gone: nothing follows their DELETED.
    let deleted: HashSet<(String, String, String)> = events
        .iter()
        .filter(|w| w.kind == "DELETED")
        .map(Watch::key)
        .collect();
    assert!(!deleted.is_empty());
    for key in &deleted {
        let last_event = events.iter().rfind(|w| &w.key() == key).unwrap();
        assert_eq!(last_event.kind, "DELETED");
    }
}

#[test]
fn k8s_bad_deploy_is_one_image_change_of_the_victim_at_its_offset() {
    let cfg = k8s_only(fast(35));
    let generator = Generator::new(&cfg).unwrap();
    let (estate, timeline, start) = (
        generator.estate().clone(),
        generator.timeline().clone(),
        generator.start(),
    );
    let (bad, deploy, rollback) = bad_deploy(&timeline);
    let victim = &estate.services[bad.service];
    let at = start + secs(bad.at);
    let events = watches(&drain(&cfg, 1000));

    // Image changes of Deployments, in order: (service, time, old image, new image).
    let mut images: HashMap<String, String> = HashMap::new();
    let mut changes = Vec::new();
    for w in events.iter().filter(|w| w.object_kind() == "Deployment") {
        let image = w.image().to_owned();
        if let Some(old) = images.insert(w.name().to_owned(), image.clone())
            && old != image
        {
            assert_eq!(w.kind, "MODIFIED");
            changes.push((w.name().to_owned(), w.time, old, image, w.object.clone()));
        }
    }
    let victims: Vec<_> = changes.iter().filter(|c| c.0 == victim.name).collect();
    assert_eq!(victims.len(), 2, "the bad deploy and its rollback");
    let (_, time, old, new, object) = victims[0];
    assert_eq!(*time, at, "exactly at the bad deploy's offset");
    let image = |v: &str| {
        format!(
            "registry.example.com/{}/{}:{v}",
            victim.namespace, victim.name
        )
    };
    assert_eq!(*old, image(&victim.version));
    assert_eq!(*new, image(&deploy.version));
    assert_eq!(object["metadata"]["generation"], 2);
    assert_eq!(
        object["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(victims[1].1, start + secs(rollback.at));
    assert_eq!(victims[1].3, image(&victim.version));
    let during: Vec<_> = changes
        .iter()
        .filter(|c| c.1 >= at && c.1 < start + secs(rollback.at) && c.0 == victim.name)
        .collect();
    assert_eq!(
        during.len(),
        1,
        "one Deployment MODIFIED with a new image while it runs"
    );

    // The rollout: within 30 s, on the victim's objects.
    let rollout: Vec<&Watch> = events
        .iter()
        .filter(|w| w.time >= at && w.time <= at + chrono::Duration::seconds(90))
        .filter(|w| w.of(victim))
        .collect();
    let within = |w: &&Watch| w.time <= at + chrono::Duration::seconds(30);
    let count = |f: &dyn Fn(&Watch) -> bool| rollout.iter().filter(|w| f(w)).count();
    assert_eq!(
        count(&|w| w.is("MODIFIED", "Deployment")),
        2,
        "spec, then status"
    );
    let status = rollout
        .iter()
        .filter(|w| w.is("MODIFIED", "Deployment"))
        .nth(1)
        .unwrap();
    assert_eq!(status.image(), image(&deploy.version));
    assert_eq!(status.object["status"]["observedGeneration"], 2);
    assert_eq!(
        status.object["status"]["updatedReplicas"],
        deploy.pods.len()
    );
    let newest_status = status.object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|m| k8s_time(&m["time"]))
        .unwrap()
        .clone();
    assert_eq!(newest_status["subresource"], "status");
    let new_hash = deploy.pods[0].split('-').rev().nth(1).unwrap();
    let old_hash = victim.pods[0].split('-').rev().nth(1).unwrap();
    let added_rs: Vec<&&Watch> = rollout
        .iter()
        .filter(|w| w.is("ADDED", "ReplicaSet"))
        .collect();
    assert_eq!(added_rs.len(), 1);
    assert_eq!(added_rs[0].name(), format!("{}-{new_hash}", victim.name));
    let scaled_down: Vec<&&Watch> = rollout
        .iter()
        .filter(|w| w.is("MODIFIED", "ReplicaSet"))
        .collect();
    assert_eq!(scaled_down.len(), 1);
    assert_eq!(scaled_down[0].name(), format!("{}-{old_hash}", victim.name));
    assert_eq!(scaled_down[0].object["spec"]["replicas"], 0);
    let names = |kind: &str| -> Vec<String> {
        rollout
            .iter()
            .filter(|w| w.is(kind, "Pod"))
            .map(|w| w.name().to_owned())
            .collect()
    };
    assert_eq!(names("ADDED"), deploy.pods);
    assert_eq!(names("DELETED"), victim.pods);
    let terminating: Vec<String> = rollout
        .iter()
        .filter(|w| {
            w.is("MODIFIED", "Pod") && w.object["metadata"].get("deletionTimestamp").is_some()
        })
        .map(|w| w.name().to_owned())
        .collect();
    assert_eq!(
        terminating, victim.pods,
        "old pods are marked for deletion, then deleted"
    );
    let reasons = |reason: &str| -> Vec<&&Watch> {
        rollout
            .iter()
            .filter(|w| w.object["reason"] == reason)
            .collect()
    };
    let scaling = reasons("ScalingReplicaSet");
    assert_eq!(scaling.len(), 2);
    assert!(
        scaling
            .iter()
            .all(|w| w.object["involvedObject"]["kind"] == "Deployment"
                && w.object["involvedObject"]["name"] == victim.name.as_str()
                && w.object["involvedObject"]["uid"] == object["metadata"]["uid"])
    );
    let killing = reasons("Killing");
    assert_eq!(killing.len(), victim.pods.len());
    assert!(killing.iter().all(|w| {
        victim
            .pods
            .iter()
            .any(|p| w.object["involvedObject"]["name"] == p.as_str())
    }));
    assert!(
        rollout
            .iter()
            .filter(|w| !matches!(w.object["reason"].as_str(), Some("Unhealthy" | "BackOff")))
            .all(within)
    );

    // A minute in, the new pods fail their readiness probes; one container backs off.
    let unhealthy = reasons("Unhealthy");
    assert_eq!(unhealthy.len(), deploy.pods.len());
    for w in &unhealthy {
        assert_eq!(w.object["type"], "Warning");
        assert!(
            w.object["message"]
                .as_str()
                .unwrap()
                .starts_with("Readiness probe failed")
        );
        assert!(
            deploy
                .pods
                .iter()
                .any(|p| w.object["involvedObject"]["name"] == p.as_str())
        );
        assert!(
            w.time >= at + chrono::Duration::seconds(60)
                && w.time < at + chrono::Duration::seconds(65)
        );
    }
    let back_off = reasons("BackOff");
    assert_eq!(back_off.len(), 1);
    assert_eq!(back_off[0].object["type"], "Warning");
    assert_eq!(
        back_off[0].object["involvedObject"]["name"],
        deploy.pods[0].as_str()
    );
    // Nothing like it anywhere else.
    assert_eq!(
        events
            .iter()
            .filter(|w| w.object["reason"] == "Unhealthy")
            .count(),
        unhealthy.len()
    );
    assert_eq!(
        events
            .iter()
            .filter(|w| w.object["reason"] == "BackOff")
            .count(),
        1
    );
}

#[test]
fn k8s_bad_deploy_arrives_with_the_first_ticks_of_its_regression() {
    // The Deployment MODIFIED comes in the tick of the first faulty scrape: after every scrape
    // of the tick before, before any of the tick after.
    let cfg = GeneratorConfig {
        signals: vec![GeneratedSignal::Metrics, GeneratedSignal::K8s],
        ..fast(6)
    };
    let generator = Generator::new(&cfg).unwrap();
    let (bad, deploy, _) = bad_deploy(generator.timeline());
    let victim = generator.estate().services[bad.service].name.clone();
    let at = generator.start() + secs(bad.at);
    let at_ns = at.timestamp_nanos_opt().unwrap() as u64;
    let records = drain(&cfg, 1000);
    let position = records
        .iter()
        .position(|r| {
            r.partition == 3 && {
                let w = watch(&r.payload);
                w.is("MODIFIED", "Deployment") && w.name() == victim
            }
        })
        .unwrap();
    assert_eq!(watch(&records[position].payload).time, at);
    let scrapes: Vec<(usize, String, u64)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.partition == 0)
        .map(|(i, r)| {
            let (pod, time) = identity(&decode(r));
            (i, pod, time)
        })
        .collect();
    let before = scrapes.iter().filter(|s| s.2 < at_ns).map(|s| s.0).max().unwrap();
    let after = scrapes.iter().filter(|s| s.2 > at_ns).map(|s| s.0).min().unwrap();
    assert!(before < position && position < after);
    // That tick's scrapes of the victim are the first of its new, faulty pods.
    assert!(scrapes.iter().any(|s| s.2 == at_ns && deploy.pods.contains(&s.1)));
    assert!(scrapes.iter().all(|s| s.2 >= at_ns || !deploy.pods.contains(&s.1)));
}

#[test]
fn k8s_routine_changes_touch_other_services_and_do_nothing() {
    let cfg = k8s_only(fast(25));
    let generator = Generator::new(&cfg).unwrap();
    let (estate, timeline, start) = (
        generator.estate().clone(),
        generator.timeline().clone(),
        generator.start(),
    );
    let (bad, _, _) = bad_deploy(&timeline);
    let events = watches(&drain(&cfg, 1000));
    let first = |key: &(String, String, String)| {
        events
            .iter()
            .find(|w| &w.key() == key)
            .unwrap()
            .object
            .clone()
    };
    let mut seen = Vec::new();
    for inc in &timeline.incidents {
        let svc = &estate.services[inc.service];
        let at = start + secs(inc.at);
        let at_change: Vec<&Watch> = events
            .iter()
            .filter(|w| w.time == at && w.of(svc))
            .collect();
        match &inc.change {
            Change::Deploy(_) => continue,
            Change::Scale(scale) => {
                assert_eq!(inc.at, Duration::from_secs(180));
                let d = at_change
                    .iter()
                    .find(|w| w.is("MODIFIED", "Deployment"))
                    .unwrap();
                assert_eq!(d.name(), svc.name);
                let before = first(&d.key());
                assert_eq!(d.object["spec"]["replicas"], svc.pods.len() + 1);
                assert_eq!(scale.replicas, svc.pods.len() + 1);
                assert_eq!(
                    d.image(),
                    Watch {
                        object: before.clone(),
                        ..(*d).clone()
                    }
                    .image()
                );
                assert_eq!(d.object["metadata"]["generation"], 2);
                assert_eq!(
                    d.object["metadata"]["annotations"], before["metadata"]["annotations"],
                    "no new revision"
                );
                let added: Vec<&Watch> = events
                    .iter()
                    .filter(|w| {
                        w.is("ADDED", "Pod")
                            && w.time > at
                            && w.time < at + chrono::Duration::seconds(30)
                    })
                    .collect();
                assert_eq!(added.len(), 1);
                assert_eq!(added[0].name(), scale.added[0]);
                assert_eq!(
                    added[0].object["metadata"]["labels"]["pod-template-hash"],
                    before["spec"]["template"]["metadata"]["labels"]
                        .get("pod-template-hash")
                        .cloned()
                        .unwrap_or_else(|| Value::String(
                            svc.pods[0].split('-').rev().nth(1).unwrap().to_owned()
                        ))
                );
            }
            Change::ConfigEdit(edit) => {
                assert_eq!(inc.at, Duration::from_secs(480));
                assert_eq!(at_change.len(), 1);
                let c = at_change[0];
                assert!(c.is("MODIFIED", "ConfigMap"));
                assert_eq!(c.name(), format!("{}-config", svc.name));
                let before = first(&c.key());
                let (old, new) = (
                    before["data"].as_object().unwrap(),
                    c.object["data"].as_object().unwrap(),
                );
                let changed: Vec<&String> = old.keys().filter(|k| old[*k] != new[*k]).collect();
                let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
                assert_eq!(changed.len(), 1, "one value changed");
                assert_eq!(added.len(), 1, "one key added");
                assert_eq!(edit.changed[0].0, *changed[0]);
                assert_eq!(edit.added[0].0, *added[0]);
                assert_eq!(new.len(), old.len() + 1);
            }
            Change::SecretRotation(rotation) => {
                assert_eq!(inc.at, Duration::from_secs(1200));
                assert_eq!(at_change.len(), 1);
                let s = at_change[0];
                assert!(s.is("MODIFIED", "Secret"));
                assert_eq!(s.name(), format!("{}-credentials", svc.name));
                let before = first(&s.key());
                let (old, new) = (
                    before["data"].as_object().unwrap(),
                    s.object["data"].as_object().unwrap(),
                );
                let changed: Vec<&String> = old.keys().filter(|k| old[*k] != new[*k]).collect();
                assert_eq!(changed, [&rotation.rotated[0].0]);
                assert_eq!(new.len(), old.len());
            }
        }
        assert_ne!(inc.service, bad.service, "never on the bad deploy's victim");
        seen.push(inc.service);
    }
    assert_eq!(seen.len(), 3);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3);
}

#[test]
fn routine_changes_leave_metrics_spans_and_logs_alone() {
    // Conditions over the whole story, with and without the routine changes.
    let estate = Estate::build(42, 12, 3);
    let timeline = Timeline::build(42, &estate);
    let deploys = Timeline {
        incidents: timeline
            .incidents
            .iter()
            .filter(|i| matches!(i.change, Change::Deploy(_)))
            .cloned()
            .collect(),
    };
    assert!(deploys.incidents.len() < timeline.incidents.len());
    let start = at("2026-03-02T09:00:00Z").timestamp_nanos_opt().unwrap() as u64;
    let (mut with, mut without) = (Conditions::default(), Conditions::default());
    for second in (0..40 * 60).step_by(30) {
        let t = start + second * 1_000_000_000;
        with.update(42, &estate, &timeline, start, t);
        without.update(42, &estate, &deploys, start, t);
        for (a, b) in with.services.iter().zip(&without.services) {
            let strip = |c: &ServiceConditions| ServiceConditions {
                revision: 0,
                ..c.clone()
            };
            assert_eq!(strip(a), strip(b), "at {second}s");
            assert_eq!(a.revision == 0, b.revision == 0);
        }
    }
    // The messages themselves, around the scale-up.
    let cfg = GeneratorConfig {
        start: Some(at("2026-03-03T02:00:00Z")),
        signals: vec![
            GeneratedSignal::Metrics,
            GeneratedSignal::Spans,
            GeneratedSignal::Logs,
        ],
        ..fast(4)
    };
    let expected = drain(&cfg, 1000);
    let mut generator = Generator::new(&cfg).unwrap();
    generator
        .world
        .timeline
        .incidents
        .retain(|i| matches!(i.change, Change::Deploy(_)));
    let mut out = Vec::new();
    while generator.poll(1000, Duration::ZERO, &mut out).unwrap() == Poll::Open {}
    assert_eq!(out, expected);
}

#[test]
fn k8s_secret_values_are_base64() {
    let cfg = k8s_only(fast(25));
    let generator = Generator::new(&cfg).unwrap();
    let timeline = generator.timeline().clone();
    let records = drain(&cfg, 1000);
    let events = watches(&records);
    let secrets: Vec<&Watch> = events
        .iter()
        .filter(|w| w.object_kind() == "Secret")
        .collect();
    assert_eq!(
        secrets.len(),
        generator.estate().services.len() + 1,
        "listed, and one rotation"
    );
    let mut plain = Vec::new();
    for w in &secrets {
        for (key, value) in w.object["data"].as_object().unwrap() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap())
                .unwrap_or_else(|e| panic!("{key} of {} is not base64: {e}", w.name()));
            let text = String::from_utf8(decoded).unwrap();
            assert!(!text.is_empty());
            if key == "DB_PASSWORD" || key == "API_KEY" {
                plain.push(text);
            }
        }
        assert!(w.object.get("stringData").is_none());
    }
    let rotated = timeline
        .incidents
        .iter()
        .find_map(|i| match &i.change {
            Change::SecretRotation(r) => Some(r.rotated[0].1.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        plain.contains(&rotated),
        "the rotation writes the timeline's value"
    );
    // Plain values appear only encoded.
    for value in &plain {
        assert!(value.len() >= 16);
        for r in &records {
            assert!(
                !r.payload
                    .windows(value.len())
                    .any(|w| w == value.as_bytes()),
                "a secret value in clear"
            );
        }
    }
}

#[test]
fn k8s_output_is_deterministic_for_a_seed() {
    let cfg = k8s_only(fast(35));
    let a = drain(&cfg, 1000);
    assert_eq!(a, drain(&cfg, 1));
    assert_eq!(a, drain(&cfg, 7));
    assert_eq!(a, drain(&cfg, 100_000));
    assert_ne!(
        a,
        drain(
            &GeneratorConfig {
                seed: 43,
                ..cfg.clone()
            },
            1000
        )
    );
    // Independent of the other signals (at night, for fewer of them).
    let night = GeneratorConfig {
        start: Some(at("2026-03-03T02:00:00Z")),
        ..fast(3)
    };
    let all = drain(&night, 1000);
    let k8s: Vec<&RawRecord> = all.iter().filter(|r| r.partition == 3).collect();
    let short = drain(&k8s_only(night), 1000);
    assert!(short.len() > 5 * 12 + 36, "the listing and the first deploy");
    assert_eq!(k8s, short.iter().collect::<Vec<_>>());
    // Disorder reorders the events, never changes them; resourceVersion puts them back.
    let disordered = GeneratorConfig {
        disorder: Disorder {
            max_delay: Duration::from_secs(25),
            late_fraction: 0.05,
            ..Disorder::default()
        },
        ..cfg.clone()
    };
    let shuffled = drain(&disordered, 333);
    assert_eq!(shuffled, drain(&disordered, 1));
    let mut shuffled: Vec<Vec<u8>> = shuffled.into_iter().map(|r| r.payload).collect();
    let ordered: Vec<Vec<u8>> = a.into_iter().map(|r| r.payload).collect();
    assert_ne!(shuffled, ordered);
    shuffled.sort_by_key(|p| watch(p).resource_version);
    assert_eq!(shuffled, ordered);
}

#[test]
fn k8s_event_times_follow_the_rule_and_the_ticks() {
    for (interval, start) in [
        (10, "2026-03-02T09:00:00Z"),
        (7, "2026-03-02T09:00:03Z"),
        (60, "2026-03-02T23:59:30Z"),
    ] {
        let cfg = GeneratorConfig {
            scrape_interval: Duration::from_secs(interval),
            start: Some(at(start)),
            ..k8s_only(fast(35))
        };
        let generator = Generator::new(&cfg).unwrap();
        let world = &generator.world;
        let start = generator.start();
        let mut emitter = K8sEmitter::new(world);
        let Plan::Listed(ticks) = emitter.plan() else {
            panic!("k8s events come at listed ticks")
        };
        assert_eq!(ticks[0].0, 0);
        let mut events = Vec::new();
        for &(tick, units) in &ticks {
            let tick_time = start + chrono::Duration::seconds((tick * interval) as i64);
            for unit in 0..units {
                let w = watch(&emitter.encode(world, tick, unit as usize));
                // Tick-aligned: in the interval before its tick.
                assert!(w.time <= tick_time, "{} after tick {tick}", w.time);
                assert!(
                    tick == 0 || w.time > tick_time - chrono::Duration::seconds(interval as i64)
                );
                events.push(w);
            }
        }
        // Every change starts at its offset, on the object it changes.
        for inc in &world.timeline.incidents {
            let svc = &world.estate.services[inc.service];
            let at = start + secs(inc.at);
            let (kind, name) = match &inc.change {
                Change::Deploy(_) | Change::Scale(_) => ("Deployment", svc.name.clone()),
                Change::ConfigEdit(_) => ("ConfigMap", format!("{}-config", svc.name)),
                Change::SecretRotation(_) => ("Secret", format!("{}-credentials", svc.name)),
            };
            let first = events
                .iter()
                .find(|w| {
                    w.kind == "MODIFIED"
                        && w.object_kind() == kind
                        && w.name() == name
                        && w.time >= at
                })
                .unwrap();
            assert_eq!(first.time, at, "{kind} {name}");
            let later: Vec<&Watch> = events
                .iter()
                .filter(|w| w.time >= at && w.time < at + chrono::Duration::seconds(120))
                .filter(|w| w.of(svc))
                .collect();
            let last = later
                .iter()
                .filter(|w| !matches!(w.object["reason"].as_str(), Some("Unhealthy" | "BackOff")))
                .map(|w| w.time)
                .max()
                .unwrap();
            assert!(last <= at + chrono::Duration::seconds(30));
        }
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(
            events
                .windows(2)
                .all(|w| w[0].resource_version < w[1].resource_version)
        );
    }
}
