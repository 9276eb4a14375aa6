//! The metrics emitter: one OTLP `ExportMetricsServiceRequest` per pod and scrape.
//!
//! Every message carries one resource (the pod: `service.name`, `service.namespace`,
//! `service.version`, `service.instance.id`, `k8s.namespace.name`, `k8s.deployment.name`,
//! `k8s.pod.name`, and `tenant.id` unless the tenant is `default`) and four metrics:
//!
//! | metric | type | points |
//! |---|---|---|
//! | `http.server.request.duration` (s) | histogram, delta, OTel semantic-convention bounds 0.005..10 | one per route and status (2xx, the route's 4xx, 5xx) |
//! | `http.server.request.count` (`{request}`) | sum, delta, monotonic, int | the same series |
//! | `process.cpu.utilization` (1) | gauge, double 0..1 | one |
//! | `process.memory.usage` (By) | gauge, int | one |
//!
//! Request counts follow the service's rate with Poisson-like noise, split into 5xx, 4xx and
//! 2xx; each status has a log-normal latency around the service's median (errors slower,
//! client errors faster), and its histogram buckets are filled from the distribution's CDF by
//! systematic sampling, so the bucket counts add up to the count exactly and sum, min and max
//! agree with the buckets.
//!
//! Speed: the strings (resource, scope, metric names, point attributes, bucket bounds) are
//! encoded once with prost; a message is the numbers of one scrape written around them with
//! [`wire`](super::wire), byte for byte what prost would write for the same message. The
//! per-route latency distributions come from a table on a 1% grid of medians, computed once
//! per grid point.

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics,
};
use prost::Message;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::conditions::Conditions;
use super::estate::{Service, Tier};
use super::{World, noise, wire};

/// Bucket bounds of `http.server.request.duration` in seconds, as the OTel HTTP semantic
/// conventions advise.
pub const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const BUCKETS: usize = DURATION_BOUNDS.len() + 1;

/// Metrics in every message, in order.
pub const METRIC_NAMES: [&str; 4] = [
    "http.server.request.duration",
    "http.server.request.count",
    "process.cpu.utilization",
    "process.memory.usage",
];

/// Status classes of a route, in the order of its points.
const CLASSES: usize = 3;
const OK: usize = 0;
const CLIENT_ERROR: usize = 1;
const SERVER_ERROR: usize = 2;
/// Median latency of each class relative to the route's, and the spread of its logarithm.
const CLASS_MEDIAN: [f64; CLASSES] = [1.0, 0.35, 1.8];
const CLASS_SIGMA: [f64; CLASSES] = [0.45, 0.35, 0.8];

/// Scrapes in one memory sawtooth (allocation until a GC).
const GC_CYCLE: u64 = 30;

/// Data points in one message of a service with `routes` routes: a histogram and a count per
/// route and status class, and the two gauges.
pub fn points_per_message(routes: usize) -> usize {
    2 * CLASSES * routes + 2
}

/// Latency distribution of one route and class at one moment, ready for bucketing.
#[derive(Clone, Copy, Debug, Default)]
struct Distribution {
    /// Probability of a latency at or below each bound (non-decreasing).
    cdf: [f64; DURATION_BOUNDS.len()],
    /// Mean latency within each bucket, seconds (inside the bucket).
    mean: [f64; BUCKETS],
}

impl Distribution {
    /// A log-normal distribution with the given median (seconds) and spread of the logarithm.
    fn log_normal(median_s: f64, sigma: f64) -> Distribution {
        let mu = median_s.max(1e-6).ln();
        let full_mean = (mu + sigma * sigma / 2.0).exp();
        let mut d = Distribution::default();
        // Probability and partial expectation E[X; X <= b] below each bound.
        let (mut prev_p, mut prev_pe) = (0.0f64, 0.0f64);
        for i in 0..BUCKETS {
            let (p, pe) = match DURATION_BOUNDS.get(i) {
                Some(&b) => {
                    let z = (b.ln() - mu) / sigma;
                    (
                        noise::normal_cdf(z).max(prev_p),
                        full_mean * noise::normal_cdf(z - sigma),
                    )
                }
                None => (1.0, full_mean),
            };
            if let Some(c) = d.cdf.get_mut(i) {
                *c = p;
            }
            let lo = if i == 0 { 0.0 } else { DURATION_BOUNDS[i - 1] };
            let hi = DURATION_BOUNDS.get(i).copied();
            let mass = p - prev_p;
            let conditional = (pe - prev_pe) / mass;
            d.mean[i] = if mass > 1e-12 && conditional.is_finite() {
                conditional.clamp(lo, hi.unwrap_or(f64::MAX))
            } else {
                // Too little mass for the formula: the bucket's middle.
                match hi {
                    Some(hi) if i == 0 => hi / 2.0,
                    Some(hi) => (lo * hi).sqrt(),
                    None => lo * 1.5,
                }
            };
            prev_p = p;
            prev_pe = pe;
        }
        d
    }
}

/// Scrape states kept: enough for the scrapes that default disorder (3 minutes late at 10 s)
/// interleaves.
const SCRAPE_CACHE: usize = 32;

/// Conditions and latency distributions at one scrape time, shared by the pods of the scrape.
#[derive(Default)]
struct ScrapeState {
    time_ns: Option<u64>,
    conditions: Conditions,
    /// Per service, per route, per class: the distribution's index in the table.
    distributions: Vec<Vec<[usize; CLASSES]>>,
}

/// Steps of the median grid of [`DistributionTable`], in the natural logarithm of seconds:
/// 1%, finer than any quantile a view reports.
const GRID_STEP: f64 = 0.01;
/// Logarithm of the smallest median on the grid (about 10 microseconds).
const GRID_MIN_LN: f64 = -11.5;
/// Grid points per class: medians up to about 90 s.
const GRID_POINTS: usize = 1600;

/// Log-normal latency distributions on a grid of medians, per class, computed when first
/// needed. Medians move every scrape (load, noise, incidents); rounding them to the grid makes
/// the CDFs a lookup instead of the bulk of the work.
struct DistributionTable {
    cells: Vec<Distribution>,
    filled: Vec<bool>,
}

impl DistributionTable {
    fn new() -> DistributionTable {
        DistributionTable {
            cells: vec![Distribution::default(); CLASSES * GRID_POINTS],
            filled: vec![false; CLASSES * GRID_POINTS],
        }
    }

    /// The index of the distribution of `class` nearest to `median_s`, computing it if needed.
    fn index(&mut self, class: usize, median_s: f64) -> usize {
        let step = ((median_s.max(1e-9).ln() - GRID_MIN_LN) / GRID_STEP).round();
        let step = step.clamp(0.0, (GRID_POINTS - 1) as f64) as usize;
        let index = class * GRID_POINTS + step;
        if !self.filled[index] {
            let median = (GRID_MIN_LN + step as f64 * GRID_STEP).exp();
            self.cells[index] = Distribution::log_normal(median, CLASS_SIGMA[class]);
            self.filled[index] = true;
        }
        index
    }
}

/// Per-point values of one series (route and status) in one message.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct SeriesValues {
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    buckets: [u64; BUCKETS],
}

/// Pre-encoded attribute fields of one series, for each point type.
struct SeriesLayout {
    /// `HistogramDataPoint.attributes` (field 9) entries.
    histogram_attributes: Vec<u8>,
    /// `NumberDataPoint.attributes` (field 7) entries.
    number_attributes: Vec<u8>,
}

/// One pod: where it sits and its pre-encoded resource.
struct PodSlot {
    service: usize,
    /// Index of the pod within its service.
    index: usize,
    /// Load skew of this pod against its siblings (about 0.85..1.15).
    skew: f64,
    /// Phase of its memory sawtooth.
    gc_phase: u64,
    /// Revision whose pod name and version `resource_field` holds.
    revision: usize,
    /// `ResourceMetrics.resource` (field 1), key and length included.
    resource_field: Vec<u8>,
}

/// Builds metrics messages for every pod; see the module documentation.
pub(crate) struct MetricsEmitter {
    pods: Vec<PodSlot>,
    /// Per service: its series in point order (route by route, classes in order).
    series: Vec<Vec<SeriesLayout>>,
    /// `ScopeMetrics.scope` (field 1).
    scope_field: Vec<u8>,
    /// `ScopeMetrics.schema_url` (field 3).
    schema_field: Vec<u8>,
    /// Name, description and unit fields of each metric of [`METRIC_NAMES`].
    headers: [Vec<u8>; 4],
    /// `HistogramDataPoint.explicit_bounds` (field 7).
    bounds_field: Vec<u8>,
    /// Latency distributions on a grid of medians.
    table: DistributionTable,
    /// The states of the scrape times seen last (several when disorder interleaves them).
    scrapes: Vec<ScrapeState>,
    /// The entry of `scrapes` to replace next once it is full.
    next_evicted: usize,
    /// Values of the message being built, one per series.
    values: Vec<SeriesValues>,
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// The resource field of a pod running `version` under the name `pod`.
fn resource_field(svc: &Service, version: &str, pod: &str, tenant: &str) -> Vec<u8> {
    ResourceMetrics {
        resource: Some(super::pod_resource(svc, version, pod, tenant)),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The series of a service in point order, with their attributes encoded.
fn series_layout(svc: &Service) -> Vec<SeriesLayout> {
    let server_error: u16 = if svc.tier == Tier::Edge { 502 } else { 500 };
    let mut out = Vec::with_capacity(svc.routes.len() * CLASSES);
    for route in &svc.routes {
        let mut statuses = [0u16; CLASSES];
        statuses[OK] = 200;
        statuses[CLIENT_ERROR] = route.client_error_status;
        statuses[SERVER_ERROR] = server_error;
        for (class, status) in statuses.into_iter().enumerate() {
            let mut attributes = vec![
                kv("http.request.method", string(&route.method)),
                kv("http.route", string(&route.path)),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(i64::from(status)),
                ),
            ];
            if class == SERVER_ERROR {
                attributes.push(kv("error.type", string(&status.to_string())));
            }
            out.push(SeriesLayout {
                histogram_attributes: HistogramDataPoint {
                    attributes: attributes.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
                number_attributes: NumberDataPoint {
                    attributes,
                    ..Default::default()
                }
                .encode_to_vec(),
            });
        }
    }
    out
}

// Field tags of the OTLP metrics protos.
const REQUEST_RESOURCE_METRICS: u32 = 1;
const RESOURCE_METRICS_SCOPE_METRICS: u32 = 2;
const SCOPE_METRICS_METRICS: u32 = 2;
const METRIC_GAUGE: u32 = 5;
const METRIC_SUM: u32 = 7;
const METRIC_HISTOGRAM: u32 = 9;
const DATA_POINTS: u32 = 1;
const TEMPORALITY: u32 = 2;
const SUM_IS_MONOTONIC: u32 = 3;
const POINT_START_TIME: u32 = 2;
const POINT_TIME: u32 = 3;
const HISTOGRAM_COUNT: u32 = 4;
const HISTOGRAM_SUM: u32 = 5;
const HISTOGRAM_BUCKET_COUNTS: u32 = 6;
const HISTOGRAM_MIN: u32 = 11;
const HISTOGRAM_MAX: u32 = 12;
const NUMBER_AS_DOUBLE: u32 = 4;
const NUMBER_AS_INT: u32 = 6;

impl MetricsEmitter {
    /// Pre-encodes the constant parts of every pod's messages (pods in service order).
    pub(crate) fn new(world: &World) -> MetricsEmitter {
        let mut pods = Vec::with_capacity(world.estate.pod_count());
        for (s, svc) in world.estate.services.iter().enumerate() {
            let tenant = &world.tenants[s % world.tenants.len()];
            for (index, pod) in svc.pods.iter().enumerate() {
                let slot = pods.len() as u64;
                pods.push(PodSlot {
                    service: s,
                    index,
                    skew: 1.0
                        + 0.15 * noise::signed_unit(world.seed, &[noise::tag::POD_SKEW, slot]),
                    gc_phase: noise::hash(world.seed, &[noise::tag::POD_SKEW, slot, 1]) % GC_CYCLE,
                    revision: 0,
                    resource_field: resource_field(svc, &svc.version, pod, tenant),
                });
            }
        }
        let scope = InstrumentationScope {
            name: "observebridge.generator".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        };
        let header = |name: &str, description: &str, unit: &str| {
            Metric {
                name: name.to_owned(),
                description: description.to_owned(),
                unit: unit.to_owned(),
                ..Default::default()
            }
            .encode_to_vec()
        };
        MetricsEmitter {
            pods,
            series: world.estate.services.iter().map(series_layout).collect(),
            scope_field: ScopeMetrics {
                scope: Some(scope),
                ..Default::default()
            }
            .encode_to_vec(),
            schema_field: ScopeMetrics {
                schema_url: SCHEMA_URL.to_owned(),
                ..Default::default()
            }
            .encode_to_vec(),
            headers: [
                header(METRIC_NAMES[0], "Duration of HTTP server requests.", "s"),
                header(
                    METRIC_NAMES[1],
                    "Number of HTTP server requests.",
                    "{request}",
                ),
                header(
                    METRIC_NAMES[2],
                    "CPU time of the process over the interval, divided by the interval and the CPUs available.",
                    "1",
                ),
                header(
                    METRIC_NAMES[3],
                    "The amount of physical memory in use.",
                    "By",
                ),
            ],
            bounds_field: HistogramDataPoint {
                explicit_bounds: DURATION_BOUNDS.to_vec(),
                ..Default::default()
            }
            .encode_to_vec(),
            table: DistributionTable::new(),
            scrapes: Vec::new(),
            next_evicted: 0,
            values: Vec::new(),
        }
    }

    /// Number of pods, i.e. messages per scrape.
    pub(crate) fn units(&self) -> usize {
        self.pods.len()
    }

    /// Encodes the message of pod slot `unit` for scrape `tick`.
    pub(crate) fn encode(&mut self, world: &World, tick: u64, unit: usize) -> Vec<u8> {
        let time_ns = world.tick_time_ns(tick);
        let scrape = self.scrape_state(world, time_ns);
        let Some(slot) = self.pods.get_mut(unit) else {
            return Vec::new();
        };
        let service = &world.estate.services[slot.service];
        let scrape = &self.scrapes[scrape];
        let cond = &scrape.conditions.services[slot.service];
        if slot.revision != cond.revision {
            let offset = std::time::Duration::from_nanos(time_ns.saturating_sub(world.start_ns));
            let revision = world
                .timeline
                .revision_at(&world.estate, slot.service, offset);
            let pod = revision.pods.get(slot.index).map_or("", String::as_str);
            let tenant = &world.tenants[slot.service % world.tenants.len()];
            slot.resource_field = resource_field(service, revision.version, pod, tenant);
            slot.revision = revision.id;
        }

        // The numbers.
        let mut rng = noise::rng(world.seed, &[noise::tag::METRICS, tick, unit as u64]);
        let interval_s = world.interval_ns as f64 / 1e9;
        let pod_rps = cond.rps / service.pods.len() as f64
            * slot.skew
            * (1.0 + 0.03 * noise::normal(&mut rng));
        let distributions = &scrape.distributions[slot.service];
        self.values.clear();
        for (r, route) in service.routes.iter().enumerate() {
            let n = noise::count(&mut rng, pod_rps.max(0.0) * route.share * interval_s);
            let server = noise::binomial(&mut rng, n, cond.error_rate);
            let client = noise::binomial(&mut rng, n - server, route.client_error_rate);
            let mut counts = [0; CLASSES];
            counts[OK] = n - server - client;
            counts[CLIENT_ERROR] = client;
            counts[SERVER_ERROR] = server;
            for (class, &count) in counts.iter().enumerate() {
                let dist = &self.table.cells[distributions[r][class]];
                self.values.push(sample_histogram(dist, count, &mut rng));
            }
        }
        let cpu = (cond.cpu * (0.7 + 0.3 * slot.skew) + 0.015 * noise::normal(&mut rng))
            .clamp(0.001, 1.0);
        let saw = ((tick + slot.gc_phase) % GC_CYCLE) as f64 / GC_CYCLE as f64;
        let memory =
            cond.memory_bytes * (0.96 + 0.08 * saw) * (1.0 + 0.004 * noise::normal(&mut rng));
        self.write_request(
            unit,
            time_ns,
            time_ns.saturating_sub(world.interval_ns),
            cpu,
            memory as i64,
        )
    }

    /// Writes the request of pod slot `unit` from the values in `self.values` and the gauges.
    fn write_request(
        &self,
        unit: usize,
        time_ns: u64,
        start_ns: u64,
        cpu: f64,
        memory: i64,
    ) -> Vec<u8> {
        let Some(slot) = self.pods.get(unit) else {
            return Vec::new();
        };
        // Lengths, innermost first.
        let series = &self.series[slot.service];
        let histogram_point_len = |layout: &SeriesLayout, v: &SeriesValues| {
            let mut len = wire::fixed64_field_len(POINT_START_TIME)
                + wire::fixed64_field_len(POINT_TIME)
                + wire::fixed64_field_len(HISTOGRAM_SUM)
                + wire::len_field_len(HISTOGRAM_BUCKET_COUNTS, 8 * BUCKETS)
                + self.bounds_field.len()
                + layout.histogram_attributes.len();
            if v.count > 0 {
                len += wire::fixed64_field_len(HISTOGRAM_COUNT)
                    + wire::fixed64_field_len(HISTOGRAM_MIN)
                    + wire::fixed64_field_len(HISTOGRAM_MAX);
            }
            len
        };
        let number_point_len = |attributes: usize| {
            wire::fixed64_field_len(POINT_START_TIME)
                + wire::fixed64_field_len(POINT_TIME)
                + wire::fixed64_field_len(NUMBER_AS_INT)
                + attributes
        };
        let delta = AggregationTemporality::Delta as u64;
        let histogram_len = series
            .iter()
            .zip(&self.values)
            .map(|(layout, v)| wire::len_field_len(DATA_POINTS, histogram_point_len(layout, v)))
            .sum::<usize>()
            + wire::varint_field_len(TEMPORALITY, delta);
        let sum_len = series
            .iter()
            .map(|layout| {
                wire::len_field_len(
                    DATA_POINTS,
                    number_point_len(layout.number_attributes.len()),
                )
            })
            .sum::<usize>()
            + wire::varint_field_len(TEMPORALITY, delta)
            + wire::varint_field_len(SUM_IS_MONOTONIC, 1);
        // Gauge points: time and value (no start time, no attributes).
        let gauge_point_len =
            wire::fixed64_field_len(POINT_TIME) + wire::fixed64_field_len(NUMBER_AS_DOUBLE);
        let gauge_len = wire::len_field_len(DATA_POINTS, gauge_point_len);
        let metric_lens = [
            self.headers[0].len() + wire::len_field_len(METRIC_HISTOGRAM, histogram_len),
            self.headers[1].len() + wire::len_field_len(METRIC_SUM, sum_len),
            self.headers[2].len() + wire::len_field_len(METRIC_GAUGE, gauge_len),
            self.headers[3].len() + wire::len_field_len(METRIC_GAUGE, gauge_len),
        ];
        let scope_metrics_len = self.scope_field.len()
            + metric_lens
                .iter()
                .map(|&l| wire::len_field_len(SCOPE_METRICS_METRICS, l))
                .sum::<usize>()
            + self.schema_field.len();
        let resource_metrics_len = slot.resource_field.len()
            + wire::len_field_len(RESOURCE_METRICS_SCOPE_METRICS, scope_metrics_len);
        let total = wire::len_field_len(REQUEST_RESOURCE_METRICS, resource_metrics_len);

        // The bytes, in tag order.
        let mut out = Vec::with_capacity(total);
        wire::put_len_prefix(&mut out, REQUEST_RESOURCE_METRICS, resource_metrics_len);
        out.extend_from_slice(&slot.resource_field);
        wire::put_len_prefix(&mut out, RESOURCE_METRICS_SCOPE_METRICS, scope_metrics_len);
        out.extend_from_slice(&self.scope_field);

        wire::put_len_prefix(&mut out, SCOPE_METRICS_METRICS, metric_lens[0]);
        out.extend_from_slice(&self.headers[0]);
        wire::put_len_prefix(&mut out, METRIC_HISTOGRAM, histogram_len);
        for (layout, v) in series.iter().zip(&self.values) {
            wire::put_len_prefix(&mut out, DATA_POINTS, histogram_point_len(layout, v));
            wire::put_fixed64(&mut out, POINT_START_TIME, start_ns);
            wire::put_fixed64(&mut out, POINT_TIME, time_ns);
            if v.count > 0 {
                wire::put_fixed64(&mut out, HISTOGRAM_COUNT, v.count);
            }
            wire::put_double(&mut out, HISTOGRAM_SUM, v.sum);
            wire::put_len_prefix(&mut out, HISTOGRAM_BUCKET_COUNTS, 8 * BUCKETS);
            for b in v.buckets {
                out.extend_from_slice(&b.to_le_bytes());
            }
            out.extend_from_slice(&self.bounds_field);
            out.extend_from_slice(&layout.histogram_attributes);
            if let (Some(min), Some(max)) = (v.min, v.max) {
                wire::put_double(&mut out, HISTOGRAM_MIN, min);
                wire::put_double(&mut out, HISTOGRAM_MAX, max);
            }
        }
        wire::put_varint_field(&mut out, TEMPORALITY, delta);

        wire::put_len_prefix(&mut out, SCOPE_METRICS_METRICS, metric_lens[1]);
        out.extend_from_slice(&self.headers[1]);
        wire::put_len_prefix(&mut out, METRIC_SUM, sum_len);
        for (layout, v) in series.iter().zip(&self.values) {
            wire::put_len_prefix(
                &mut out,
                DATA_POINTS,
                number_point_len(layout.number_attributes.len()),
            );
            wire::put_fixed64(&mut out, POINT_START_TIME, start_ns);
            wire::put_fixed64(&mut out, POINT_TIME, time_ns);
            wire::put_sfixed64(
                &mut out,
                NUMBER_AS_INT,
                i64::try_from(v.count).unwrap_or(i64::MAX),
            );
            out.extend_from_slice(&layout.number_attributes);
        }
        wire::put_varint_field(&mut out, TEMPORALITY, delta);
        wire::put_varint_field(&mut out, SUM_IS_MONOTONIC, 1);

        for (m, value) in [(2, Gauge::Double(cpu)), (3, Gauge::Int(memory))] {
            wire::put_len_prefix(&mut out, SCOPE_METRICS_METRICS, metric_lens[m]);
            out.extend_from_slice(&self.headers[m]);
            wire::put_len_prefix(&mut out, METRIC_GAUGE, gauge_len);
            wire::put_len_prefix(&mut out, DATA_POINTS, gauge_point_len);
            wire::put_fixed64(&mut out, POINT_TIME, time_ns);
            match value {
                Gauge::Double(v) => wire::put_double(&mut out, NUMBER_AS_DOUBLE, v),
                Gauge::Int(v) => wire::put_sfixed64(&mut out, NUMBER_AS_INT, v),
            }
        }
        out.extend_from_slice(&self.schema_field);
        debug_assert_eq!(out.len(), total);
        out
    }

    /// The index in `scrapes` of the state at `time_ns`, computed unless it is cached.
    fn scrape_state(&mut self, world: &World, time_ns: u64) -> usize {
        if let Some(i) = self.scrapes.iter().position(|s| s.time_ns == Some(time_ns)) {
            return i;
        }
        let i = if self.scrapes.len() < SCRAPE_CACHE {
            self.scrapes.push(ScrapeState::default());
            self.scrapes.len() - 1
        } else {
            let i = self.next_evicted;
            self.next_evicted = (i + 1) % SCRAPE_CACHE;
            i
        };
        let state = &mut self.scrapes[i];
        state.conditions.update(
            world.seed,
            &world.estate,
            &world.timeline,
            world.start_ns,
            time_ns,
        );
        state
            .distributions
            .resize_with(world.estate.services.len(), Vec::new);
        for (s, svc) in world.estate.services.iter().enumerate() {
            let median_ms = state.conditions.services[s].latency_ms;
            let per_route = &mut state.distributions[s];
            per_route.clear();
            for route in &svc.routes {
                let mut indices = [0; CLASSES];
                for (class, index) in indices.iter_mut().enumerate() {
                    let median_s = median_ms * route.latency_factor * CLASS_MEDIAN[class] / 1000.0;
                    *index = self.table.index(class, median_s);
                }
                per_route.push(indices);
            }
        }
        state.time_ns = Some(time_ns);
        i
    }
}

/// A gauge value; both gauges have a single point.
enum Gauge {
    Double(f64),
    Int(i64),
}

/// Schema of the semantic conventions the metric names follow.
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

/// Draws `n` requests from `dist`: systematic sampling over the CDF (one uniform offset), so
/// the bucket counts add up to `n`; the sum from the bucket means; min and max inside the first
/// and last non-empty buckets.
fn sample_histogram(dist: &Distribution, n: u64, rng: &mut ChaCha8Rng) -> SeriesValues {
    let offset: f64 = rng.random();
    let mut v = SeriesValues {
        count: n,
        ..Default::default()
    };
    let mut below = 0u64;
    let (mut first, mut last) = (None, None);
    for i in 0..BUCKETS {
        let upto = match dist.cdf.get(i) {
            // Non-negative, so the truncating cast is the floor.
            Some(&p) => ((n as f64 * p + offset) as u64).clamp(below, n),
            None => n,
        };
        let c = upto - below;
        below = upto;
        v.buckets[i] = c;
        if c > 0 {
            v.sum += c as f64 * dist.mean[i];
            first.get_or_insert(i);
            last = Some(i);
        }
    }
    let (Some(f), Some(l)) = (first, last) else {
        return v;
    };
    let lo = if f == 0 { 0.0 } else { DURATION_BOUNDS[f - 1] };
    v.min = Some(if v.buckets[f] == 1 {
        dist.mean[f]
    } else {
        lo + (dist.mean[f] - lo) * rng.random_range(0.1..0.9)
    });
    let hi = DURATION_BOUNDS
        .get(l)
        .copied()
        .unwrap_or(2.0 * dist.mean[l]);
    v.max = Some(if v.buckets[l] == 1 {
        dist.mean[l]
    } else {
        dist.mean[l] + (hi - dist.mean[l]) * rng.random_range(0.1..0.9)
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_normal_buckets_are_consistent() {
        for (median, sigma) in [
            (0.002, 0.45),
            (0.04, 0.45),
            (0.3, 0.8),
            (9.0, 0.8),
            (50.0, 0.3),
        ] {
            let d = Distribution::log_normal(median, sigma);
            assert!(d.cdf.windows(2).all(|w| w[0] <= w[1]), "{median}");
            for i in 0..BUCKETS {
                let lo = if i == 0 { 0.0 } else { DURATION_BOUNDS[i - 1] };
                let hi = DURATION_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
                assert!(
                    d.mean[i] >= lo && d.mean[i] <= hi,
                    "bucket {i} mean {} for median {median}",
                    d.mean[i]
                );
            }
        }
        // The median sits where the CDF crosses one half.
        let d = Distribution::log_normal(0.1, 0.45);
        assert!((d.cdf[5] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn histogram_points_add_up() {
        let mut rng = noise::rng(1, &[]);
        for (n, median) in [
            (0u64, 0.05),
            (1, 0.05),
            (2, 0.001),
            (7, 20.0),
            (1000, 0.2),
            (100_000, 0.08),
        ] {
            let d = Distribution::log_normal(median, 0.6);
            let p = sample_histogram(&d, n, &mut rng);
            assert_eq!(p.buckets.iter().sum::<u64>(), n);
            assert_eq!(p.count, n);
            let sum = p.sum;
            if n == 0 {
                assert_eq!((sum, p.min, p.max), (0.0, None, None));
                continue;
            }
            let (min, max) = (p.min.unwrap(), p.max.unwrap());
            assert!(min <= max && min > 0.0, "n {n}: min {min} max {max}");
            assert!(
                sum >= min * n as f64 * (1.0 - 1e-9) && sum <= max * n as f64 * (1.0 + 1e-9),
                "n {n}"
            );
            let first = p.buckets.iter().position(|&c| c > 0).unwrap();
            let last = p.buckets.iter().rposition(|&c| c > 0).unwrap();
            assert!(first == 0 || min > DURATION_BOUNDS[first - 1]);
            assert!(min <= DURATION_BOUNDS[first]);
            assert!(last == BUCKETS - 1 || max <= DURATION_BOUNDS[last]);
            assert!(last == 0 || max > DURATION_BOUNDS[last - 1]);
        }
    }
}
