//! The logs emitter: one OTLP `ExportLogsServiceRequest` per service and tick.
//!
//! A message holds the lines one service wrote during the tick before it (their times are in
//! `(t - interval, t]` for the tick at `t`, in time order), one resource per pod (the attributes
//! the metrics emitter writes, for the revision running at `t`). What a service writes follows
//! its [`Conditions`] at the tick:
//!
//! | line | severity | how many |
//! |---|---|---|
//! | access line: method, concrete path, status, duration, request id, user, client IP | INFO | one per request that succeeds |
//! | a rejected request with the route's 4xx and a reason | WARN | the route's client error rate of the requests |
//! | a slow request (over [`SLOW_FACTOR`] times its route's median latency) | WARN | after the access line of such a request |
//! | the request failed: upstream error, timeout, unhandled exception | ERROR | the service's error rate of the requests |
//! | a debug line from what the service calls: a query, a cache lookup, a published event, an outbound HTTP call, a call to another service | DEBUG | [`DEBUG_PER_REQUEST`] per successful request |
//! | a GC pause with the heap in use (it grows with a leaking revision) | DEBUG | one per pod |
//!
//! While a faulty revision runs ([`Revision::fault`](super::Revision)), most of its service's
//! failures are logged with a template no other revision writes, a connection pool exhaustion
//! starting with [`FAULT_LOG_PREFIX`], and its callers fail more often too (their conditions
//! carry its errors). So the error share of the logs rises with the fault, and a new pattern
//! appears at the bad deploy and disappears with the rollback.
//!
//! All randomness is keyed by (seed, tick, service), so a message does not depend on which
//! other signals run or in which order messages are encoded.

use std::fmt::Write as _;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use prost::Message;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::conditions::Conditions;
use super::estate::{Route, Service, Target, Tier};
use super::{World, noise};

/// Debug lines per successful request, on average.
const DEBUG_PER_REQUEST: f64 = 1.5;
/// A request this many times slower than its route's median also writes a slow-request WARN.
const SLOW_FACTOR: f64 = 3.0;
/// Share of a faulty revision's failures logged with its own template (the rest look like any
/// other failure).
const FAULT_SHARE: f64 = 0.7;
/// Spread of the logarithm of a request's duration.
const SIGMA: f64 = 0.45;
/// Median latency of a rejected request relative to the route's, as in the other emitters.
const CLIENT_ERROR_MEDIAN: f64 = 0.35;

/// How the lines of the fault template start: a connection pool exhaustion, written only while
/// a faulty revision runs.
pub const FAULT_LOG_PREFIX: &str = "HikariPool-1 - Connection is not available";

/// Coordinate tag of the lines of a message.
const LINES_TAG: u64 = 0x1065_0001;
/// Tag of the arrival delays of the logs partition.
pub(crate) const DELAY_TAG: u64 = 0x1065_0002;

/// What a debug line talks about: one per thing the service calls.
enum Debug {
    Query { system: String, name: String },
    Cache { name: String },
    Publish { topic: String },
    Outbound { host: String },
    Call { callee: String },
}

/// The per-service parts of its lines, fixed for the run.
struct ServiceLines {
    debug: Vec<Debug>,
    /// Names of what a failed request can blame: services, databases and external hosts.
    upstreams: Vec<String>,
    /// Cumulative shares of its routes, to pick one per request.
    route_cdf: Vec<f64>,
    /// Status of a failed request: 502 at the edge, else 500.
    server_error: u16,
}

/// Builds logs messages for every service; see the module documentation.
pub(crate) struct LogsEmitter {
    services: Vec<ServiceLines>,
    scope: InstrumentationScope,
    /// Conditions at `conditions.time_ns`, when `fresh`.
    conditions: Conditions,
    fresh: bool,
}

/// One line before encoding.
struct Line {
    time_ns: u64,
    pod: usize,
    severity: SeverityNumber,
    body: String,
}

impl LogsEmitter {
    pub(crate) fn new(world: &World) -> LogsEmitter {
        let estate = &world.estate;
        let services = estate
            .services
            .iter()
            .enumerate()
            .map(|(s, svc)| {
                let mut debug = Vec::new();
                let mut upstreams = Vec::new();
                for e in estate.calls_from(s) {
                    match &e.dst {
                        Target::Service(d) => {
                            let callee = estate.services[*d].name.clone();
                            upstreams.push(callee.clone());
                            debug.push(Debug::Call { callee });
                        }
                        Target::Database { system, name } if system == "redis" => {
                            upstreams.push(format!("redis/{name}"));
                            debug.push(Debug::Cache { name: name.clone() });
                        }
                        Target::Database { system, name } => {
                            upstreams.push(format!("{system}/{name}"));
                            debug.push(Debug::Query {
                                system: system.clone(),
                                name: name.clone(),
                            });
                        }
                        Target::Queue { name, .. } => {
                            debug.push(Debug::Publish {
                                topic: name.clone(),
                            });
                        }
                        Target::External { host } => {
                            upstreams.push(host.clone());
                            debug.push(Debug::Outbound { host: host.clone() });
                        }
                    }
                }
                let mut total = 0.0;
                let route_cdf = svc
                    .routes
                    .iter()
                    .map(|r| {
                        total += r.share;
                        total
                    })
                    .collect();
                ServiceLines {
                    debug,
                    upstreams,
                    route_cdf,
                    server_error: if svc.tier == Tier::Edge { 502 } else { 500 },
                }
            })
            .collect();
        LogsEmitter {
            services,
            scope: InstrumentationScope {
                name: "observebridge.generator".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            },
            conditions: Conditions::default(),
            fresh: false,
        }
    }

    /// Number of services, i.e. messages per tick.
    pub(crate) fn units(&self) -> usize {
        self.services.len()
    }

    /// Encodes the message of service `unit` for tick `tick`.
    pub(crate) fn encode(&mut self, world: &World, tick: u64, unit: usize) -> Vec<u8> {
        let time_ns = world.tick_time_ns(tick);
        // The services of a tick come one after the other: the conditions are computed once.
        if !self.fresh || self.conditions.time_ns != time_ns {
            self.conditions.update(
                world.seed,
                &world.estate,
                &world.timeline,
                world.start_ns,
                time_ns,
            );
            self.fresh = true;
        }
        let (Some(svc), Some(lines_of), Some(cond)) = (
            world.estate.services.get(unit),
            self.services.get(unit),
            self.conditions.services.get(unit),
        ) else {
            return Vec::new();
        };
        let offset = Duration::from_nanos(time_ns.saturating_sub(world.start_ns));
        let revision = world.timeline.revision_at(&world.estate, unit, offset);
        let pods = revision.pods.len().max(1);
        let mut rng = noise::rng(world.seed, &[LINES_TAG, tick, unit as u64]);
        let mut writer = Writer {
            rng: &mut rng,
            svc,
            lines_of,
            time_ns,
            interval_ns: world.interval_ns,
            pods,
            lines: Vec::new(),
        };

        let interval_s = world.interval_ns as f64 / 1e9;
        let requests = noise::count(writer.rng, cond.rps * interval_s);
        let faulty = revision.fault.is_some();
        for _ in 0..requests {
            writer.request(cond.latency_ms, cond.error_rate, faulty);
        }
        for pod in 0..pods {
            writer.gc(pod, cond.memory_bytes);
        }

        let Writer { mut lines, .. } = writer;
        lines.sort_by_key(|l| l.time_ns);
        let tenant = &world.tenants[unit % world.tenants.len()];
        let mut per_pod: Vec<Vec<LogRecord>> = vec![Vec::new(); pods];
        for line in lines {
            per_pod[line.pod].push(LogRecord {
                time_unix_nano: line.time_ns,
                observed_time_unix_nano: time_ns,
                severity_number: line.severity as i32,
                severity_text: severity_text(line.severity).to_owned(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(line.body)),
                }),
                ..Default::default()
            });
        }
        let resource_logs = per_pod
            .into_iter()
            .enumerate()
            .filter(|(_, records)| !records.is_empty())
            .map(|(p, log_records)| {
                let pod = revision.pods.get(p).map_or("", String::as_str);
                ResourceLogs {
                    resource: Some(super::pod_resource(svc, revision.version, pod, tenant)),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(self.scope.clone()),
                        log_records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }
            })
            .collect();
        ExportLogsServiceRequest { resource_logs }.encode_to_vec()
    }
}

/// The level as loggers write it.
fn severity_text(severity: SeverityNumber) -> &'static str {
    match severity {
        SeverityNumber::Debug => "DEBUG",
        SeverityNumber::Info => "INFO",
        SeverityNumber::Warn => "WARN",
        SeverityNumber::Error => "ERROR",
        _ => "",
    }
}

/// Writes the lines of one message.
struct Writer<'a> {
    rng: &'a mut ChaCha8Rng,
    svc: &'a Service,
    lines_of: &'a ServiceLines,
    time_ns: u64,
    interval_ns: u64,
    pods: usize,
    lines: Vec<Line>,
}

impl Writer<'_> {
    /// A moment in the interval before the tick, and a pod.
    fn push(&mut self, severity: SeverityNumber, body: String) {
        let back = (self.rng.random::<f64>() * self.interval_ns as f64) as u64;
        let pod = self.rng.random_range(0..self.pods);
        self.lines.push(Line {
            time_ns: self.time_ns.saturating_sub(back.min(self.interval_ns - 1)),
            pod,
            severity,
            body,
        });
    }

    /// The lines of one request: its access line or failure, maybe a slow warning and a debug
    /// line.
    fn request(&mut self, latency_ms: f64, error_rate: f64, faulty: bool) {
        let (svc, cdf) = (self.svc, &self.lines_of.route_cdf);
        let u = self.rng.random::<f64>() * cdf.last().copied().unwrap_or(1.0);
        let pick = cdf.partition_point(|&c| c < u);
        let Some(route) = svc.routes.get(pick.min(svc.routes.len().saturating_sub(1))) else {
            return;
        };
        let median = latency_ms * route.latency_factor;
        let ms = median * (SIGMA * noise::normal(self.rng)).exp();
        let path = concrete_path(&route.path, self.rng);
        let request_id: u64 = self.rng.random();
        let outcome: f64 = self.rng.random();
        if outcome < error_rate {
            self.failure(route, &path, request_id, ms, faulty);
            return;
        }
        let user = self.rng.random_range(1000..100_000u32);
        if outcome < error_rate + route.client_error_rate {
            let ms = ms * CLIENT_ERROR_MEDIAN;
            let reason = match route.client_error_status {
                400 => "invalid request body",
                401 => "invalid or expired token",
                402 => "payment declined by issuer",
                409 => "conflict: resource was modified concurrently",
                _ => "not found",
            };
            let body = format!(
                "{} {path} {} {ms:.1}ms request_id={request_id:016x} user=u{user}: {reason}",
                route.method, route.client_error_status
            );
            self.push(SeverityNumber::Warn, body);
            return;
        }
        let ip = self.rng.random::<u32>();
        let body = format!(
            "{} {path} 200 {ms:.1}ms request_id={request_id:016x} user=u{user} client=10.{}.{}.{}",
            route.method,
            (ip >> 16) & 0xff,
            (ip >> 8) & 0xff,
            ip & 0xff
        );
        self.push(SeverityNumber::Info, body);
        if ms > SLOW_FACTOR * median {
            let body = format!(
                "slow request: {} {path} took {ms:.0}ms (threshold {:.0}ms) request_id={request_id:016x}",
                route.method,
                SLOW_FACTOR * median
            );
            self.push(SeverityNumber::Warn, body);
        }
        let extra = self.rng.random::<f64>() < DEBUG_PER_REQUEST.fract();
        for _ in 0..DEBUG_PER_REQUEST as u64 + u64::from(extra) {
            self.debug(request_id);
        }
    }

    /// The ERROR line of a failed request.
    fn failure(&mut self, route: &Route, path: &str, request_id: u64, ms: f64, faulty: bool) {
        let status = self.lines_of.server_error;
        let method = &route.method;
        let mut body = String::with_capacity(160);
        if faulty && self.rng.random::<f64>() < FAULT_SHARE {
            let waiting = self.rng.random_range(8..64u32);
            let _ = write!(
                body,
                "{FAULT_LOG_PREFIX}, request timed out after 30000ms (total=20, active=20, idle=0, waiting={waiting}) \
                 while serving {method} {path} request_id={request_id:016x}"
            );
        } else {
            let upstreams = &self.lines_of.upstreams;
            let upstream = (!upstreams.is_empty())
                .then(|| upstreams[self.rng.random_range(0..upstreams.len())].as_str());
            let _ = match (upstream, self.rng.random_range(0..3u8)) {
                (Some(upstream), 0) => write!(
                    body,
                    "request_id={request_id:016x} failed: {method} {path} -> {status}: upstream {upstream} returned 503 after {ms:.0}ms"
                ),
                (Some(upstream), 1) => write!(
                    body,
                    "timeout after {:.0}ms waiting for {upstream} while serving {method} {path} request_id={request_id:016x}",
                    ms.max(1000.0)
                ),
                _ => write!(
                    body,
                    "unhandled exception serving {method} {path} request_id={request_id:016x}: \
                     java.lang.IllegalStateException: unexpected state {}",
                    self.rng.random_range(1..40u32)
                ),
            };
        }
        self.push(SeverityNumber::Error, body);
    }

    /// A debug line about one of the service's calls (or the request itself, for a service
    /// that calls nothing).
    fn debug(&mut self, request_id: u64) {
        let debug = &self.lines_of.debug;
        let mut body = String::with_capacity(96);
        let _ = if debug.is_empty() {
            write!(body, "handled request_id={request_id:016x}")
        } else {
            match &debug[self.rng.random_range(0..debug.len())] {
                Debug::Query { system, name } => write!(
                    body,
                    "query on {system}/{name} returned {} rows in {:.1}ms",
                    self.rng.random_range(0..200u32),
                    0.5 + 6.0 * self.rng.random::<f64>()
                ),
                Debug::Cache { name } => write!(
                    body,
                    "cache {} for key {name}:{}",
                    if self.rng.random::<f64>() < 0.85 {
                        "hit"
                    } else {
                        "miss"
                    },
                    self.rng.random_range(1..1_000_000u32)
                ),
                Debug::Publish { topic } => write!(
                    body,
                    "published event to {topic} partition={} offset={}",
                    self.rng.random_range(0..12u32),
                    self.rng.random_range(1..10_000_000u64)
                ),
                Debug::Outbound { host } => write!(
                    body,
                    "POST https://{host}/v1/requests -> 200 in {:.0}ms",
                    80.0 + 200.0 * self.rng.random::<f64>()
                ),
                Debug::Call { callee } => {
                    write!(body, "calling {callee} for request_id={request_id:016x}")
                }
            }
        };
        self.push(SeverityNumber::Debug, body);
    }

    /// A pod's GC pause, with the heap in use.
    fn gc(&mut self, pod: usize, memory_bytes: f64) {
        let used_mib = memory_bytes / (1024.0 * 1024.0) * (0.9 + 0.1 * self.rng.random::<f64>());
        let pause = 2.0 + 20.0 * self.rng.random::<f64>();
        let body = format!("gc pause {pause:.1}ms, heap {used_mib:.0}MiB in use");
        let back = (self.rng.random::<f64>() * self.interval_ns as f64) as u64;
        self.lines.push(Line {
            time_ns: self.time_ns.saturating_sub(back.min(self.interval_ns - 1)),
            pod,
            severity: SeverityNumber::Debug,
            body,
        });
    }
}

/// A route template with its parameters filled in: `/cart/{user_id}` becomes `/cart/48213`.
fn concrete_path(template: &str, rng: &mut ChaCha8Rng) -> String {
    let mut path = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let _ = write!(path, "{}", rng.random_range(1..100_000u32));
        rest = &rest[open + close + 1..];
    }
    path.push_str(rest);
    path
}
