//! Tests of the generator as a whole: determinism, the estate's shape, the messages, pacing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric, number_data_point};
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
    assert!(
        one.iter()
            .enumerate()
            .all(|(i, r)| r.offset == i as u64 && r.partition == 0)
    );
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
    let cfg = GeneratorConfig {
        tenants: vec!["default".into(), "acme".into()],
        ..fast(1)
    };
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
    let records = drain(&fast(3), 1000);
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
        let cfg = GeneratorConfig {
            start: Some(at(start)),
            ..fast(2)
        };
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
    let cfg = fast(20);
    let generator = Generator::new(&cfg).unwrap();
    let (estate, timeline) = (generator.estate().clone(), generator.timeline().clone());
    let bad = timeline
        .incidents
        .iter()
        .find(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
        .unwrap();
    let Change::Deploy(deploy) = &bad.change;
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
    let cfg = GeneratorConfig {
        duration: Some(Duration::from_secs(95)),
        ..fast(0)
    };
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
    let cfg = GeneratorConfig {
        disorder: Disorder {
            max_delay: Duration::from_secs(15),
            late_fraction: 0.03,
            late_by,
        },
        ..fast(20)
    };
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
    let cfg = GeneratorConfig {
        start: Some(at("2026-03-02T09:00:00Z")),
        pace: Pace::Realtime,
        speed: 600.0,
        duration: Some(Duration::from_secs(3600)),
        ..GeneratorConfig::default()
    };
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
    let cfg = GeneratorConfig::default();
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
    let generator = Generator::new(&fast(1)).unwrap();
    let partitions = generator.partitions();
    assert_eq!(partitions.len(), 1);
    assert_eq!(partitions[0].name, "generator:metrics");
    assert_eq!(
        Generator::partition_signal(0),
        Some(GeneratedSignal::Metrics)
    );
    assert_eq!(Generator::partition_signal(1), None);
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
    let cfg = GeneratorConfig {
        services: 2_000,
        pods_per_service: 2,
        ..fast(0)
    };
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
