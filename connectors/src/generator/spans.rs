//! The spans emitter: one OTLP `ExportTraceServiceRequest` per service and tick.
//!
//! Every tick, each service of the edge tier serves a number of sampled requests that follows its
//! request rate (one sampled trace stands for [`ADJUSTED_COUNT`] requests). A trace walks the
//! call graph from there, following each [`Edge`](super::Edge) `calls_per_request` times on
//! average:
//!
//! | call to | spans |
//! |---|---|
//! | the edge service itself | a root SERVER span with `client.address` (the callers are not instrumented) |
//! | another service | a CLIENT span in the caller and a child SERVER span in the callee, which calls on |
//! | a database | a CLIENT span with `db.system`, `db.name` and `db.operation` |
//! | a queue | a PRODUCER span with `messaging.system` and `messaging.destination.name`; where a service consumes the topic, a child CONSUMER span in it, which calls on |
//! | an external API | a CLIENT span with `server.address` |
//!
//! HTTP spans carry `http.request.method` and `http.response.status_code` (SERVER spans also
//! `http.route`); every span carries [`SAMPLING_ATTRIBUTE`]. Status and latency come from the
//! service's [`Conditions`] at the tick: a request fails (HTTP 500, 502 at the edge, status
//! ERROR) with the service's error rate and the CLIENT span of its caller reports the same
//! status; a route's bad requests get its 4xx and make no further calls; durations are
//! log-normal around the service's median latency and always cover the calls made inside them.
//! A faulty revision from the [`Timeline`](super::Timeline) thus shows as slower, failing
//! SERVER spans of its service and failing CLIENT spans of its callers.
//!
//! A message holds the spans one service exported at a tick `t`: those of the traces whose last
//! span ended in `(t - interval, t]` (a trace is exported whole, in one tick), one resource per
//! pod (the attributes the metrics emitter writes, for the revision running at `t`), so a
//! trace's spans arrive in the messages of several services. All randomness is keyed by (seed, tick, edge service, trace index), and
//! so are the trace and span ids.
//!
//! The estate does not say which service consumes a topic; [`QUEUE_CONSUMERS`] does, by name,
//! for the services present.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};
use prost::Message;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::conditions::Conditions;
use super::estate::{Route, Service, Target, Tier};
use super::{World, noise};

/// Requests one sampled trace stands for: the value of [`SAMPLING_ATTRIBUTE`] on every span.
/// With it the default estate sends about 1K spans per second of event time at the daily peak.
/// Not 2, so that a view counting a paired call twice cannot pass for one that weighs it.
pub const ADJUSTED_COUNT: i64 = 3;

/// The span attribute holding the sampling multiplier (the decoder's default).
pub const SAMPLING_ATTRIBUTE: &str = "sampling.adjusted_count";

/// Which service consumes a topic: (topic, consumer service), used when both are in the estate.
pub const QUEUE_CONSUMERS: &[(&str, &str)] = &[("order-events", "notifications")];

/// Coordinate tags of the spans emitter (apart from the ones in `noise::tag`).
mod tag {
    /// Trace counts and the walk of each trace.
    pub const TRACES: u64 = 0x5BA4_0001;
    /// Trace and span ids.
    pub const IDS: u64 = 0x5BA4_0002;
}

/// Tag of the arrival delays of the spans partition.
pub(crate) const DELAY_TAG: u64 = 0x5BA4_0003;

/// Most spans in one trace: the walk stops making calls beyond it (large estates fan out).
const MAX_TRACE_SPANS: usize = 400;
/// Ticks whose messages are kept until every one is handed out (more when disorder interleaves
/// ticks; a message of an evicted tick is generated again, identically).
const TICK_CACHE: usize = 8;

/// Status classes of a request, as in the metrics emitter: median latency relative to the
/// route's for OK, client errors and server errors.
const CLASS_MEDIAN: [f64; 3] = [1.0, 0.35, 1.8];
const OK: usize = 0;
const CLIENT_ERROR: usize = 1;
const SERVER_ERROR: usize = 2;
/// Spread of the logarithm of a server span's duration.
const SERVER_SIGMA: f64 = 0.35;
/// Spread of the logarithm of a call to a virtual node.
const VIRTUAL_SIGMA: f64 = 0.5;
/// Share of a call's duration before the caller's next call starts (calls partly overlap).
const SERIAL_SHARE: f64 = 0.7;
/// Median network time each way of a call between services, ns.
const NETWORK_NS: f64 = 150_000.0;
/// Median delay between a message being published and consumed, ns.
const CONSUMER_LAG_NS: f64 = 4_000_000.0;
/// Failure rates of calls to virtual nodes.
const DATABASE_ERROR_RATE: f64 = 0.000_5;
const QUEUE_ERROR_RATE: f64 = 0.000_2;
const EXTERNAL_ERROR_RATE: f64 = 0.003;

/// Builds spans messages for every service; see the module documentation.
pub(crate) struct SpansEmitter {
    /// Per service: the indices of its edges in `estate.edges`.
    calls: Vec<Vec<usize>>,
    /// Per edge: the service consuming its topic, for edges to a queue that has one.
    consumers: Vec<Option<usize>>,
    /// The edge tier: where traces start.
    roots: Vec<usize>,
    /// `ScopeSpans.scope`.
    scope: InstrumentationScope,
    /// Scratch conditions of the tick being generated.
    conditions: Conditions,
    /// Messages of the ticks generated last, not all handed out yet.
    cache: Vec<TickMessages>,
    /// Generation counter: the oldest entry of `cache` is evicted first.
    generated: u64,
}

/// The messages of one tick, one per service, taken as they are handed out.
struct TickMessages {
    tick: u64,
    born: u64,
    messages: Vec<Option<Vec<u8>>>,
}

/// Where a server-side span's request came from.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// A user request at the edge (no instrumented caller).
    Root,
    /// An HTTP call from another service.
    Call,
    /// A message consumed from a topic.
    Message { system: &'a str, topic: &'a str },
}

/// What a server-side span reports back to its caller.
struct Served<'a> {
    end: u64,
    status: u16,
    route: Option<&'a Route>,
}

/// One trace being built: its spans with times relative to its start.
struct Walk<'a> {
    world: &'a World,
    emitter: &'a SpansEmitter,
    rng: ChaCha8Rng,
    trace_id: Vec<u8>,
    /// (tick, edge service, trace index): the coordinates of the span ids.
    coords: [u64; 3],
    /// Pods of each service at the tick.
    pods: &'a [usize],
    /// (service, pod, span), start and end relative to the trace's start.
    spans: Vec<(usize, usize, Span)>,
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// A log-normal factor with median 1.
fn log_normal(rng: &mut ChaCha8Rng, sigma: f64) -> f64 {
    (sigma * noise::normal(rng)).exp()
}

/// Milliseconds to whole nanoseconds, at least 1.
fn ms_to_ns(ms: f64) -> u64 {
    // The cast saturates; durations here are far below u64::MAX ns.
    ((ms * 1e6).round() as u64).max(1)
}

impl SpansEmitter {
    pub(crate) fn new(world: &World) -> SpansEmitter {
        let estate = &world.estate;
        let mut calls = vec![Vec::new(); estate.services.len()];
        for (i, e) in estate.edges.iter().enumerate() {
            calls[e.src].push(i);
        }
        let consumers = estate
            .edges
            .iter()
            .map(|e| match &e.dst {
                Target::Queue { name, .. } => QUEUE_CONSUMERS
                    .iter()
                    .find(|(topic, _)| topic == name)
                    .and_then(|(_, consumer)| {
                        estate.services.iter().position(|s| s.name == *consumer)
                    })
                    .filter(|&c| c != e.src),
                _ => None,
            })
            .collect();
        let roots = estate
            .call_order
            .iter()
            .copied()
            .filter(|&s| estate.services[s].tier == Tier::Edge)
            .collect();
        SpansEmitter {
            calls,
            consumers,
            roots,
            scope: InstrumentationScope {
                name: "observebridge.generator".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            },
            conditions: Conditions::default(),
            cache: Vec::new(),
            generated: 0,
        }
    }

    /// Number of services, i.e. messages per tick.
    pub(crate) fn units(&self) -> usize {
        self.calls.len()
    }

    /// Encodes the message of service `unit` for tick `tick`.
    pub(crate) fn encode(&mut self, world: &World, tick: u64, unit: usize) -> Vec<u8> {
        let cached = self
            .cache
            .iter()
            .position(|t| t.tick == tick && t.messages.get(unit).is_some_and(Option::is_some));
        let i = match cached {
            Some(i) => i,
            None => self.generate(world, tick),
        };
        let entry = &mut self.cache[i];
        let message = entry
            .messages
            .get_mut(unit)
            .and_then(Option::take)
            .unwrap_or_default();
        if entry.messages.iter().all(Option::is_none) {
            self.cache.swap_remove(i);
        }
        message
    }

    /// Generates every message of `tick` into the cache and returns its index there.
    fn generate(&mut self, world: &World, tick: u64) -> usize {
        let time_ns = world.tick_time_ns(tick);
        let mut conditions = std::mem::take(&mut self.conditions);
        conditions.update(
            world.seed,
            &world.estate,
            &world.timeline,
            world.start_ns,
            time_ns,
        );
        let messages = self.messages(world, tick, time_ns, &conditions);
        self.conditions = conditions;

        self.generated += 1;
        let entry = TickMessages {
            tick,
            born: self.generated,
            messages,
        };
        if let Some(i) = self.cache.iter().position(|t| t.tick == tick) {
            self.cache[i] = entry;
            return i;
        }
        if self.cache.len() < TICK_CACHE {
            self.cache.push(entry);
            return self.cache.len() - 1;
        }
        let oldest = self
            .cache
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.born)
            .map_or(0, |(i, _)| i);
        self.cache[oldest] = entry;
        oldest
    }

    /// Walks every trace of a tick and encodes each service's spans.
    fn messages(
        &self,
        world: &World,
        tick: u64,
        time_ns: u64,
        conditions: &Conditions,
    ) -> Vec<Option<Vec<u8>>> {
        let estate = &world.estate;
        let offset = std::time::Duration::from_nanos(time_ns.saturating_sub(world.start_ns));
        let revisions: Vec<_> = (0..estate.services.len())
            .map(|s| world.timeline.revision_at(estate, s, offset))
            .collect();
        let pods: Vec<usize> = revisions.iter().map(|r| r.pods.len().max(1)).collect();
        // Per service, per pod: the spans exported.
        let mut buckets: Vec<Vec<Vec<Span>>> = pods.iter().map(|&n| vec![Vec::new(); n]).collect();
        let interval_s = world.interval_ns as f64 / 1e9;
        for &root in &self.roots {
            let mut rng = noise::rng(world.seed, &[tag::TRACES, tick, root as u64]);
            let mean = conditions.services[root].rps * interval_s / ADJUSTED_COUNT as f64;
            for k in 0..noise::count(&mut rng, mean) {
                let coords = [tick, root as u64, k];
                let id =
                    |part: u64| noise::hash(world.seed, &[tag::IDS, tick, root as u64, k, part]);
                let mut trace_id = Vec::with_capacity(16);
                trace_id.extend_from_slice(&id(0).max(1).to_be_bytes());
                trace_id.extend_from_slice(&id(1).to_be_bytes());
                let mut walk = Walk {
                    world,
                    emitter: self,
                    rng: noise::rng(world.seed, &[tag::TRACES, tick, root as u64, k, 1]),
                    trace_id,
                    coords,
                    pods: &pods,
                    spans: Vec::new(),
                };
                walk.serve(conditions, root, None, 0, Entry::Root);
                // Place the trace so that its last span ends within the interval before the tick.
                let length = walk
                    .spans
                    .iter()
                    .map(|(_, _, s)| s.end_time_unix_nano)
                    .max()
                    .unwrap_or(0);
                let back = (walk.rng.random::<f64>() * world.interval_ns as f64) as u64;
                let base = time_ns.saturating_sub(back).saturating_sub(length);
                for (s, pod, mut span) in walk.spans {
                    span.start_time_unix_nano += base;
                    span.end_time_unix_nano += base;
                    buckets[s][pod].push(span);
                }
            }
        }
        buckets
            .into_iter()
            .enumerate()
            .map(|(s, per_pod)| {
                let svc = &estate.services[s];
                let tenant = &world.tenants[s % world.tenants.len()];
                let revision = &revisions[s];
                let resource_spans = per_pod
                    .into_iter()
                    .enumerate()
                    .filter(|(_, spans)| !spans.is_empty())
                    .map(|(p, spans)| {
                        let pod = revision.pods.get(p).map_or("", String::as_str);
                        ResourceSpans {
                            resource: Some(super::pod_resource(svc, revision.version, pod, tenant)),
                            scope_spans: vec![ScopeSpans {
                                scope: Some(self.scope.clone()),
                                spans,
                                schema_url: SCHEMA_URL.to_owned(),
                            }],
                            schema_url: String::new(),
                        }
                    })
                    .collect();
                Some(ExportTraceServiceRequest { resource_spans }.encode_to_vec())
            })
            .collect()
    }
}

/// Schema of the semantic conventions the attribute names follow.
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

impl<'a> Walk<'a> {
    /// `calls_per_request` as a whole number of calls: its floor, plus one with the fraction's
    /// probability.
    fn call_count(&mut self, calls_per_request: f64) -> u64 {
        let whole = calls_per_request.floor();
        let extra = self.rng.random::<f64>() < calls_per_request - whole;
        whole as u64 + u64::from(extra)
    }

    fn span(&self, id: Vec<u8>, parent: Option<&[u8]>, kind: SpanKind, name: String) -> Span {
        Span {
            trace_id: self.trace_id.clone(),
            span_id: id,
            parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
            name,
            kind: kind as i32,
            ..Default::default()
        }
    }

    /// A SERVER (or CONSUMER) span of service `s` starting at `start`, with the calls it makes;
    /// returns when it ends and how it went.
    fn serve(
        &mut self,
        conditions: &Conditions,
        s: usize,
        parent: Option<&[u8]>,
        start: u64,
        entry: Entry<'a>,
    ) -> Served<'a> {
        let world = self.world;
        let svc = &world.estate.services[s];
        let cond = &conditions.services[s];
        let pod = self.rng.random_range(0..self.pods[s]);
        let route = match entry {
            Entry::Message { .. } => None,
            Entry::Root | Entry::Call => pick_route(svc, &mut self.rng),
        };
        let class = if self.rng.random::<f64>() < cond.error_rate {
            SERVER_ERROR
        } else if route.is_some_and(|r| self.rng.random::<f64>() < r.client_error_rate) {
            CLIENT_ERROR
        } else {
            OK
        };
        let status = match class {
            SERVER_ERROR if svc.tier == Tier::Edge => 502,
            SERVER_ERROR => 500,
            CLIENT_ERROR => route.map_or(400, |r| r.client_error_status),
            _ => 200,
        };
        let factor = route.map_or(1.0, |r| r.latency_factor);
        let target = ms_to_ns(
            cond.latency_ms
                * factor
                * CLASS_MEDIAN[class]
                * log_normal(&mut self.rng, SERVER_SIGMA),
        );
        let margin = target / 20;
        // The span's slot comes before its calls' (its id is keyed by the slot); filled below.
        let id_slot = self.spans.len();
        self.spans.push((s, pod, Span::default()));

        let mut cursor = start + margin;
        let mut calls_end = cursor;
        if class != CLIENT_ERROR {
            let emitter = self.emitter;
            for &e in &emitter.calls[s] {
                let edge = &world.estate.edges[e];
                for _ in 0..self.call_count(edge.calls_per_request) {
                    if self.spans.len() >= MAX_TRACE_SPANS {
                        break;
                    }
                    let end = self.call(conditions, s, pod, id_slot, e, cursor);
                    calls_end = calls_end.max(end);
                    cursor += ((end - cursor) as f64 * SERIAL_SHARE) as u64;
                }
            }
        }
        let end = (start + target).max(calls_end + margin);

        let (kind, name, mut attributes) = match (entry, route) {
            (Entry::Message { system, topic }, _) => (
                SpanKind::Consumer,
                format!("{topic} process"),
                vec![
                    string("messaging.system", system),
                    string("messaging.destination.name", topic),
                    string("messaging.operation", "process"),
                ],
            ),
            (_, route) => {
                let (method, path) =
                    route.map_or(("GET", "/"), |r| (r.method.as_str(), r.path.as_str()));
                let mut attributes = vec![
                    string("http.request.method", method),
                    string("http.route", path),
                    int("http.response.status_code", i64::from(status)),
                ];
                if matches!(entry, Entry::Root) {
                    // A user's address, from the documentation range (RFC 5737).
                    let host = self.rng.random_range(1..=254u8);
                    attributes.push(string("client.address", &format!("198.51.100.{host}")));
                }
                (SpanKind::Server, format!("{method} {path}"), attributes)
            }
        };
        if class == SERVER_ERROR {
            attributes.push(string("error.type", &status.to_string()));
        }
        attributes.push(int(SAMPLING_ATTRIBUTE, ADJUSTED_COUNT));
        let id = self.span_id_at(id_slot);
        let mut span = self.span(id, parent, kind, name);
        span.start_time_unix_nano = start;
        span.end_time_unix_nano = end;
        span.attributes = attributes;
        span.status = (class == SERVER_ERROR).then(error_status);
        self.spans[id_slot] = (s, pod, span);
        Served { end, status, route }
    }

    /// The id of the span in slot `slot` (ids are keyed by slot, so a reserved slot's id is
    /// known before its calls are made).
    fn span_id_at(&self, slot: usize) -> Vec<u8> {
        let [tick, root, k] = self.coords;
        let id = noise::hash(self.world.seed, &[tag::IDS, tick, root, k, slot as u64 + 2]).max(1);
        id.to_be_bytes().to_vec()
    }

    /// One call of edge `e` made by service `s` (pod `pod`) from the span in slot `parent`,
    /// starting at `start`; returns when the caller's span of it ends.
    fn call(
        &mut self,
        conditions: &Conditions,
        s: usize,
        pod: usize,
        parent: usize,
        e: usize,
        start: u64,
    ) -> u64 {
        let world = self.world;
        let edge = &world.estate.edges[e];
        let parent_id = self.span_id_at(parent);
        let slot = self.spans.len();
        self.spans.push((s, pod, Span::default()));
        let id = self.span_id_at(slot);
        let load = 0.9 + 0.25 * conditions.load;
        let (kind, name, attributes, end, failed) = match &edge.dst {
            Target::Service(d) => {
                let out = self.network();
                let served = self.serve(conditions, *d, Some(&id), start + out, Entry::Call);
                let end = served.end + self.network();
                let method = served.route.map_or("GET", |r| r.method.as_str());
                let attributes = vec![
                    string("http.request.method", method),
                    int("http.response.status_code", i64::from(served.status)),
                ];
                (
                    SpanKind::Client,
                    method.to_owned(),
                    attributes,
                    end,
                    served.status >= 500,
                )
            }
            Target::Database { system, name } => {
                let op = match system.as_str() {
                    "redis" => "GET",
                    "elasticsearch" => "search",
                    _ => "SELECT",
                };
                let end = start + self.virtual_latency(&edge.dst, load);
                let failed = self.rng.random::<f64>() < DATABASE_ERROR_RATE;
                let attributes = vec![
                    string("db.system", system),
                    string("db.name", name),
                    string("db.operation", op),
                ];
                (
                    SpanKind::Client,
                    format!("{op} {name}"),
                    attributes,
                    end,
                    failed,
                )
            }
            Target::Queue { system, name } => {
                let end = start + self.virtual_latency(&edge.dst, load);
                let failed = self.rng.random::<f64>() < QUEUE_ERROR_RATE;
                if !failed && let Some(consumer) = self.emitter.consumers[e] {
                    let lag = ms_to_ns(CONSUMER_LAG_NS / 1e6 * log_normal(&mut self.rng, 0.6));
                    let entry = Entry::Message {
                        system,
                        topic: name,
                    };
                    self.serve(conditions, consumer, Some(&id), end + lag, entry);
                }
                let attributes = vec![
                    string("messaging.system", system),
                    string("messaging.destination.name", name),
                    string("messaging.operation", "publish"),
                ];
                (
                    SpanKind::Producer,
                    format!("{name} publish"),
                    attributes,
                    end,
                    failed,
                )
            }
            Target::External { host } => {
                let end = start + self.virtual_latency(&edge.dst, load);
                let failed = self.rng.random::<f64>() < EXTERNAL_ERROR_RATE;
                let status: i64 = if failed { 503 } else { 200 };
                let attributes = vec![
                    string("server.address", host),
                    string("http.request.method", "POST"),
                    int("http.response.status_code", status),
                ];
                (SpanKind::Client, "POST".to_owned(), attributes, end, failed)
            }
        };
        let mut span = self.span(id, Some(&parent_id), kind, name);
        span.start_time_unix_nano = start;
        span.end_time_unix_nano = end;
        span.attributes = attributes;
        span.attributes
            .push(int(SAMPLING_ATTRIBUTE, ADJUSTED_COUNT));
        span.status = failed.then(error_status);
        self.spans[slot] = (s, pod, span);
        end
    }

    /// Network time of one direction of a call, ns.
    fn network(&mut self) -> u64 {
        (NETWORK_NS * log_normal(&mut self.rng, 0.3)) as u64
    }

    /// Duration of a call to a virtual node, ns: its median a little above its base under load.
    fn virtual_latency(&mut self, target: &Target, load: f64) -> u64 {
        let base = target.base_latency_ms().unwrap_or(1.0);
        ms_to_ns(base * load * log_normal(&mut self.rng, VIRTUAL_SIGMA))
    }
}

fn error_status() -> Status {
    Status {
        code: StatusCode::Error as i32,
        ..Default::default()
    }
}

/// A route of `svc` picked by the routes' shares.
fn pick_route<'s>(svc: &'s Service, rng: &mut ChaCha8Rng) -> Option<&'s Route> {
    let mut u = rng.random::<f64>();
    for route in &svc.routes {
        if u < route.share {
            return Some(route);
        }
        u -= route.share;
    }
    svc.routes.last()
}
