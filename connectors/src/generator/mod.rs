//! The built-in generator: a realistic microservice estate, deterministic for a seed.
//!
//! `observebridge run` with no arguments feeds this source into every view. The generator is
//! a model and a set of emitters over it:
//!
//! - the **estate** ([`Estate`]): services with tiers, namespaces, pods and routes, and the call
//!   graph between them, including databases, a queue and external APIs as virtual nodes;
//! - the **timeline** ([`Timeline`]): what happens to the estate, as data (routine deploys, a bad
//!   deploy a few minutes in and its rollback, a scale-up, a ConfigMap edit and a Secret
//!   rotation that do nothing);
//! - the **conditions** ([`Conditions`]): the state of every service at a moment of event time
//!   (load, latency, errors, CPU, memory, revision), folded from the estate, the timeline and
//!   the time of day;
//! - one **emitter** per signal, each writing its own partition: metrics, spans, logs and
//!   Kubernetes watch events.
//!
//! Every byte of output depends only on the configuration and the start time: randomness is
//! keyed by coordinates (seed, signal, scrape, pod), not drawn from a shared stream, and
//! messages are handed out in a fixed arrival order, so neither poll sizes nor pacing nor the
//! wall clock change what comes out.
//!
//! ```
//! use std::time::Duration;
//! use observebridge_connectors::generator::{Generator, GeneratorConfig, Pace};
//! use observebridge_connectors::source::{Poll, Source};
//!
//! let cfg = GeneratorConfig {
//!     pace: Pace::Fast,
//!     duration: Some(Duration::from_secs(60)),
//!     ..GeneratorConfig::default()
//! };
//! let mut generator = Generator::new(&cfg)?;
//! let pods = generator.estate().pod_count();
//! let services = generator.estate().services.len();
//! let mut records = Vec::new();
//! while generator.poll(1000, Duration::ZERO, &mut records)? == Poll::Open {}
//! // Six ticks: a scrape of every pod, and a batch of spans and one of logs from every service;
//! // and at the start, the cluster listed: five objects per service (Deployment, ReplicaSet,
//! // Service, ConfigMap, Secret) and its pods.
//! assert_eq!(records.len(), 6 * (pods + 2 * services) + 5 * services + pods);
//! let k8s = records.iter().filter(|r| r.partition == 3).count();
//! assert_eq!(k8s, 5 * services + pods);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `config`: [`GeneratorConfig`] and its validation.
//! - `estate`: services, routes, pods and the call graph ([`Estate::build`]).
//! - `timeline`: incidents at offsets from the start ([`Timeline::build`]).
//! - `conditions`: per-service state at a moment, shared by every signal.
//! - `metrics`: the metrics emitter (OTLP `ExportMetricsServiceRequest`, one per pod and scrape).
//! - `spans`: the spans emitter (OTLP `ExportTraceServiceRequest`, one per service and tick).
//! - `logs`: the logs emitter (OTLP `ExportLogsServiceRequest`, one per service and tick).
//! - `k8s`: the Kubernetes emitter (one watch event per message, JSON; see below).
//! - `schedule`: arrival order with deterministic disorder, per partition.
//! - `noise`: pseudo-random values keyed by coordinates.
//! - `wire`: protobuf field writing for the emitters' hot paths.
//!
//! # Kubernetes watch events
//! Partition 3, `generator:k8s`, carries one Kubernetes watch event per message, as JSON bytes in
//! the shape of the watch API and `kubectl get -w -o json`:
//! `{"type":"ADDED"|"MODIFIED"|"DELETED","object":{...}}`, the object whole (`apps/v1`
//! Deployment and ReplicaSet; `v1` Pod, Service, ConfigMap, Secret and Event). Any consumer of
//! watch events can read them without the engine:
//!
//! - a service's objects: Deployment `<service>` (labels and selector
//!   `app.kubernetes.io/name: <service>`, image `registry.example.com/<namespace>/<service>:<version>`),
//!   ReplicaSet `<service>-<pod-template-hash>`, Pods (the names the other signals write as
//!   `k8s.pod.name`), Service `<service>`, ConfigMap `<service>-config`, Secret
//!   `<service>-credentials` (Opaque, values in base64); label `tenant.id` when the service's
//!   tenant is not `default`;
//! - event time: for an `Event`, `lastTimestamp`; for any other object, the newest
//!   `metadata.managedFields[].time` (RFC 3339, to the second);
//! - order: `metadata.resourceVersion` is a cluster-wide counter that increases in event-time
//!   order, so per object too (with disorder, use it to drop stale events);
//! - what happens: the listing at the start, then the timeline's deploys (a rollout each, the
//!   bad one with `Unhealthy` and `BackOff` Events) and routine changes; the bad deploy's
//!   Deployment MODIFIED comes exactly at its offset. The `k8s` module has the table.
//!
//! # Adding a signal
//! A signal is a [`GeneratedSignal`] variant (its partition is its position in
//! [`GeneratedSignal::ALL`]), an emitter that turns `(tick, unit)` into one encoded message from
//! the estate, timeline and conditions, and an `Emitter` variant. Spans walk the call graph
//! from the edge tier with each service's conditions (client and server spans, virtual nodes
//! for databases, queues and external hosts); logs pick templates per service at rates from
//! its conditions, with an error template only faulty revisions write; Kubernetes watch events
//! turn the timeline's changes into the objects they touch. A signal whose messages do not come
//! every tick (watch events) lists its ticks in its schedule's plan instead.

mod conditions;
mod config;
mod estate;
mod k8s;
mod logs;
mod metrics;
mod noise;
mod schedule;
mod spans;
mod timeline;
mod wire;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::source::{PartitionCommit, PartitionInfo, Poll, RawRecord, Source, SourceError};

pub use conditions::{Conditions, ServiceConditions, diurnal};
pub use config::{Disorder, GeneratorConfig, MAX_SERVICES, MIN_SERVICES, Pace};
pub use estate::{Edge, Estate, Route, Service, Target, Tier};
pub use metrics::{DURATION_BOUNDS, METRIC_NAMES, points_per_message};
pub use logs::FAULT_LOG_PREFIX;
pub use spans::{ADJUSTED_COUNT, QUEUE_CONSUMERS, SAMPLING_ATTRIBUTE};
pub use timeline::{
    Change, ConfigEdit, Deploy, Fault, Incident, Revision, Scale, SecretRotation, Timeline,
};

use k8s::K8sEmitter;
use metrics::MetricsEmitter;
use schedule::{Plan, Schedule, ScheduleSpec};
use logs::LogsEmitter;
use spans::SpansEmitter;

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// A configuration field is out of range.
    #[error("generator config field `{field}` {reason}")]
    InvalidConfig {
        /// The field, dotted for nested ones (`disorder.late_by`).
        field: &'static str,
        /// What is wrong, and a hint where one helps.
        reason: String,
    },
    /// The wall clock cannot be written as an OTLP timestamp.
    #[error(
        "generator start: the wall clock {now} is outside the range of OTLP timestamps. Set `start` explicitly."
    )]
    Clock {
        /// The wall clock when the generator was built.
        now: DateTime<Utc>,
    },
}

/// The signals the generator writes, one partition each; in a config, by [`name`](Self::name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratedSignal {
    /// OTLP `ExportMetricsServiceRequest` as protobuf, one per pod and scrape.
    Metrics,
    /// OTLP `ExportTraceServiceRequest` as protobuf, one per service and tick.
    Spans,
    /// OTLP `ExportLogsServiceRequest` as protobuf, one per service and tick.
    Logs,
    /// Kubernetes watch events as JSON (`{"type": ..., "object": {...}}`), one per message: the
    /// cluster listed at the start, then the timeline's changes.
    K8s,
}

impl GeneratedSignal {
    /// Every signal, in partition order.
    pub const ALL: [GeneratedSignal; 4] = [
        GeneratedSignal::Metrics,
        GeneratedSignal::Spans,
        GeneratedSignal::Logs,
        GeneratedSignal::K8s,
    ];

    /// The stream name, as in the partition name `generator:<name>`.
    pub fn name(self) -> &'static str {
        match self {
            GeneratedSignal::Metrics => "metrics",
            GeneratedSignal::Spans => "spans",
            GeneratedSignal::Logs => "logs",
            GeneratedSignal::K8s => "k8s",
        }
    }

    /// The partition index of this signal.
    pub fn partition(self) -> u32 {
        match self {
            GeneratedSignal::Metrics => 0,
            GeneratedSignal::Spans => 1,
            GeneratedSignal::Logs => 2,
            GeneratedSignal::K8s => 3,
        }
    }
}

/// The OTLP resource of a pod of `svc` running `version`, as every emitter writes it (service
/// and Kubernetes identity, and the tenant when it is not the default one).
pub(crate) fn pod_resource(svc: &Service, version: &str, pod: &str, tenant: &str) -> opentelemetry_proto::tonic::resource::v1::Resource {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    let string = |key: &str, value: &str| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    };
    let mut attributes = vec![
        string("service.name", &svc.name),
        string("service.namespace", &svc.namespace),
        string("service.version", version),
        string("service.instance.id", pod),
        string("k8s.namespace.name", &svc.namespace),
        string("k8s.deployment.name", &svc.name),
        string("k8s.pod.name", pod),
    ];
    if tenant != "default" {
        attributes.push(string("tenant.id", tenant));
    }
    opentelemetry_proto::tonic::resource::v1::Resource { attributes, ..Default::default() }
}

/// What every emitter reads: the estate, its timeline and the clock of the run.
pub(crate) struct World {
    seed: u64,
    estate: Estate,
    timeline: Timeline,
    tenants: Vec<String>,
    /// Event time of tick 0, ns since the epoch.
    start_ns: u64,
    /// Event time between ticks (scrapes), ns.
    interval_ns: u64,
}

impl World {
    /// Event time of tick `tick`, ns since the epoch.
    fn tick_time_ns(&self, tick: u64) -> u64 {
        self.start_ns
            .saturating_add(tick.saturating_mul(self.interval_ns))
    }
}

/// The emitter behind a partition.
enum Emitter {
    Metrics(MetricsEmitter),
    Spans(SpansEmitter),
    Logs(LogsEmitter),
    K8s(K8sEmitter),
}

impl Emitter {
    fn new(signal: GeneratedSignal, world: &World) -> Emitter {
        match signal {
            GeneratedSignal::Metrics => Emitter::Metrics(MetricsEmitter::new(world)),
            GeneratedSignal::Spans => Emitter::Spans(SpansEmitter::new(world)),
            GeneratedSignal::Logs => Emitter::Logs(LogsEmitter::new(world)),
            GeneratedSignal::K8s => Emitter::K8s(K8sEmitter::new(world)),
        }
    }

    /// Messages per tick: as many every tick, or at the ticks listed.
    fn plan(&self) -> Plan {
        match self {
            Emitter::Metrics(m) => Plan::Every(m.units() as u64),
            Emitter::Spans(s) => Plan::Every(s.units() as u64),
            Emitter::Logs(l) => Plan::Every(l.units() as u64),
            Emitter::K8s(k) => k.plan(),
        }
    }

    /// Keeps the arrival delays of the partitions apart.
    fn delay_tag(&self) -> u64 {
        match self {
            Emitter::Metrics(_) => noise::tag::METRICS_DELAY,
            Emitter::Spans(_) => spans::DELAY_TAG,
            Emitter::Logs(_) => logs::DELAY_TAG,
            Emitter::K8s(_) => k8s::DELAY_TAG,
        }
    }

    fn encode(&mut self, world: &World, tick: u64, unit: u64) -> Vec<u8> {
        let unit = usize::try_from(unit).unwrap_or(usize::MAX);
        match self {
            Emitter::Metrics(m) => m.encode(world, tick, unit),
            Emitter::Spans(s) => s.encode(world, tick, unit),
            Emitter::Logs(l) => l.encode(world, tick, unit),
            Emitter::K8s(k) => k.encode(world, tick, unit),
        }
    }
}

/// One partition: its emitter, its arrival queue and its next offset.
struct Stream {
    signal: GeneratedSignal,
    emitter: Emitter,
    schedule: Schedule,
    next_offset: u64,
}

/// The built-in generator as a [`Source`].
///
/// Partitions: index `p` is `generator:<name>` of the signal whose [`partition`] is `p` (0
/// metrics, 1 spans, 2 logs, 3 k8s), listed up to the highest selected one so that an index always
/// names the same signal; a partition of a signal that is not selected stays empty. Offsets are
/// sequence numbers per partition from 0, in the order records are handed out.
///
/// [`partition`]: GeneratedSignal::partition [`Source::commit`] is a no-op: the generator keeps
/// no state worth restoring, and a new one with the same configuration and start replays the
/// same records.
pub struct Generator {
    world: World,
    streams: Vec<Stream>,
    pace: Pace,
    speed: f64,
    /// Event time that corresponds to `clock`'s creation for realtime pacing: the start when it
    /// is configured, else the (unfloored) wall clock at construction.
    origin_ns: u64,
    clock: Instant,
}

impl Generator {
    /// Validates the configuration and builds the estate, its timeline and the emitters.
    pub fn new(cfg: &GeneratorConfig) -> Result<Self, GeneratorError> {
        cfg.validate()?;
        let clock = Instant::now();
        let interval_ns = u64::try_from(cfg.scrape_interval.as_nanos()).unwrap_or(u64::MAX);
        let (start_ns, origin_ns) = match cfg.start {
            Some(start) => {
                let ns = non_negative_nanos(start).ok_or(GeneratorError::Clock { now: start })?;
                (ns, ns)
            }
            None => {
                let now = Utc::now();
                let ns = non_negative_nanos(now).ok_or(GeneratorError::Clock { now })?;
                (ns - ns % interval_ns, ns)
            }
        };
        let ticks = cfg.duration.map(|d| {
            let ticks = d.as_nanos().div_ceil(u128::from(interval_ns));
            u64::try_from(ticks).unwrap_or(u64::MAX)
        });
        let estate = Estate::build(cfg.seed, cfg.services, cfg.pods_per_service);
        let timeline = Timeline::build(cfg.seed, &estate);
        let world = World {
            seed: cfg.seed,
            estate,
            timeline,
            tenants: cfg.tenants.clone(),
            start_ns,
            interval_ns,
        };
        // In partition order, so that ties in arrival go to the lower partition.
        let streams = GeneratedSignal::ALL
            .into_iter()
            .filter(|s| cfg.signals.contains(s))
            .map(|signal| {
                let emitter = Emitter::new(signal, &world);
                let schedule = Schedule::new(ScheduleSpec {
                    seed: cfg.seed,
                    delay_tag: emitter.delay_tag(),
                    start_ns,
                    interval_ns,
                    ticks,
                    plan: emitter.plan(),
                    disorder: &cfg.disorder,
                });
                Stream {
                    signal,
                    emitter,
                    schedule,
                    next_offset: 0,
                }
            })
            .collect();
        tracing::debug!(
            services = cfg.services,
            pods = world.estate.pod_count(),
            start_ns,
            ticks = ?ticks,
            "generator built"
        );
        Ok(Generator {
            world,
            streams,
            pace: cfg.pace,
            speed: cfg.speed,
            origin_ns,
            clock,
        })
    }

    /// The estate the generator describes.
    pub fn estate(&self) -> &Estate {
        &self.world.estate
    }

    /// The incidents of the run, at offsets from [`start`](Self::start).
    pub fn timeline(&self) -> &Timeline {
        &self.world.timeline
    }

    /// Event time of the first scrape.
    pub fn start(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(i64::try_from(self.world.start_ns).unwrap_or(i64::MAX))
    }

    /// The signal a partition carries, `None` for an index the generator does not have.
    pub fn partition_signal(partition: u32) -> Option<GeneratedSignal> {
        GeneratedSignal::ALL
            .into_iter()
            .find(|s| s.partition() == partition)
    }

    /// The stream whose next message arrives first (ties to the lower partition), and that
    /// arrival time; `None` when every stream is exhausted.
    fn next_stream(&mut self) -> Option<(usize, u64)> {
        let mut best: Option<(usize, u64)> = None;
        for (i, stream) in self.streams.iter_mut().enumerate() {
            if let Some(next) = stream.schedule.peek()
                && best.is_none_or(|(_, arrival)| next.arrival_ns < arrival)
            {
                best = Some((i, next.arrival_ns));
            }
        }
        best
    }

    /// With realtime pacing, how long until a message arriving at `arrival_ns` is due; `None`
    /// when it is due now.
    fn due_in(&self, arrival_ns: u64) -> Option<Duration> {
        if self.pace == Pace::Fast {
            return None;
        }
        let event_s = (i128::from(arrival_ns) - i128::from(self.origin_ns)) as f64 / 1e9;
        let wait_s = event_s / self.speed - self.clock.elapsed().as_secs_f64();
        (wait_s > 0.0).then(|| Duration::from_secs_f64(wait_s))
    }
}

fn non_negative_nanos(t: DateTime<Utc>) -> Option<u64> {
    t.timestamp_nanos_opt()
        .and_then(|ns| u64::try_from(ns).ok())
}

impl Source for Generator {
    /// Hands out up to `max` records in arrival order. With `fast` pacing it never waits; with
    /// `realtime` it hands out what is due and, when nothing is, waits for the next record up to
    /// `timeout`.
    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<RawRecord>,
    ) -> Result<Poll, SourceError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let mut handed = 0;
            let mut wait = None;
            while handed < max {
                let Some((i, arrival_ns)) = self.next_stream() else {
                    break;
                };
                if let Some(d) = self.due_in(arrival_ns) {
                    wait = Some(d);
                    break;
                }
                let stream = &mut self.streams[i];
                let Some(next) = stream.schedule.pop() else {
                    break;
                };
                let payload = stream.emitter.encode(&self.world, next.tick, next.unit);
                out.push(RawRecord {
                    partition: stream.signal.partition(),
                    offset: stream.next_offset,
                    payload,
                });
                stream.next_offset += 1;
                handed += 1;
            }
            if self.next_stream().is_none() {
                return Ok(Poll::Exhausted);
            }
            let Some(wait) = wait else {
                return Ok(Poll::Open);
            };
            if handed > 0 {
                return Ok(Poll::Open);
            }
            let now = Instant::now();
            let left = match deadline {
                Some(deadline) if deadline <= now => return Ok(Poll::Open),
                Some(deadline) => deadline - now,
                None => wait,
            };
            std::thread::sleep(wait.min(left));
        }
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        let listed = self
            .streams
            .iter()
            .map(|s| s.signal.partition() + 1)
            .max()
            .unwrap_or(0);
        GeneratedSignal::ALL
            .into_iter()
            .filter(|s| s.partition() < listed)
            .map(|s| PartitionInfo {
                name: format!("generator:{}", s.name()),
                replay_until: None,
                max_event_time: None,
            })
            .collect()
    }

    fn commit(&mut self, _commits: &[PartitionCommit]) -> Result<(), SourceError> {
        Ok(())
    }
}
