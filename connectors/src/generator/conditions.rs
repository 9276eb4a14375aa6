//! Conditions: the state of every service at one moment of event time, shared by all signals.
//!
//! [`Conditions::update`] folds the estate, the timeline and the time of day into numbers:
//! request rate, median latency, error rate, CPU and memory of each service. Load follows a 24h
//! sine (peak at 14:00 UTC, trough at 30% of the peak) with smooth per-minute noise; latency and
//! errors rise a little with load; a faulty revision multiplies its service's latency and adds to
//! its error rate, and both travel up the call graph to its callers.
//!
//! The conditions depend only on the seed and the event time, never on which signal asks or in
//! which order, so metrics, spans and logs of the same moment tell the same story.

use std::time::Duration;

use super::estate::{Estate, Target};
use super::noise;
use super::timeline::Timeline;

/// Hour of the daily peak, UTC.
const PEAK_HOUR: f64 = 14.0;
/// Load at the daily trough relative to the peak.
const TROUGH: f64 = 0.3;
/// Amplitude of the per-minute load noise.
const LOAD_NOISE: f64 = 0.05;
/// Amplitude of the per-minute, per-service latency jitter.
const LATENCY_JITTER: f64 = 0.08;
/// Share of a callee's latency its caller waits for (calls partly run in parallel).
const SERIAL_SHARE: f64 = 0.7;
/// Share of a callee's errors that surface as its caller's errors (the rest are retried or
/// handled).
const ERROR_PROPAGATION: f64 = 0.35;
/// Highest error rate a service can reach.
const MAX_ERROR_RATE: f64 = 0.95;
/// CPU utilization of an idle pod.
const IDLE_CPU: f64 = 0.03;

const NANOS_PER_MINUTE: u64 = 60_000_000_000;

/// The state of one service at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceConditions {
    /// Requests per second over all pods.
    pub rps: f64,
    /// Median server latency in milliseconds, downstream calls included.
    pub latency_ms: f64,
    /// Fraction of requests failing with a 5xx, errors of dependencies included.
    pub error_rate: f64,
    /// CPU utilization of a pod (0..1) before per-pod noise.
    pub cpu: f64,
    /// Resident memory of a pod in bytes before per-pod noise.
    pub memory_bytes: f64,
    /// Revision running ([`Revision::id`](super::timeline::Revision::id)).
    pub revision: usize,
}

/// The state of every service at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    /// The moment, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Load relative to the daily peak (about 0.3 to 1).
    pub load: f64,
    /// One entry per service of the estate, same indices.
    pub services: Vec<ServiceConditions>,
    /// Scratch: edge indices grouped by caller (`calls[calls_start[s]..calls_start[s + 1]]`).
    calls_start: Vec<usize>,
    calls: Vec<usize>,
}

/// A value of smooth noise in `[-1, 1]` per minute, linearly interpolated between minutes so
/// that neighbouring moments stay close.
fn smooth_noise(seed: u64, tag: u64, key: u64, time_ns: u64) -> f64 {
    let minute = time_ns / NANOS_PER_MINUTE;
    let frac = (time_ns % NANOS_PER_MINUTE) as f64 / NANOS_PER_MINUTE as f64;
    let a = noise::signed_unit(seed, &[tag, key, minute]);
    let b = noise::signed_unit(seed, &[tag, key, minute + 1]);
    a + (b - a) * frac
}

/// The diurnal load curve: 1 at 14:00 UTC, [`TROUGH`] at 02:00 UTC.
pub fn diurnal(time_ns: u64) -> f64 {
    let seconds_of_day = (time_ns / 1_000_000_000) % 86_400;
    let hour = seconds_of_day as f64 / 3600.0;
    let wave = (std::f64::consts::TAU * (hour - PEAK_HOUR) / 24.0).cos();
    (1.0 + TROUGH) / 2.0 + (1.0 - TROUGH) / 2.0 * wave
}

impl Conditions {
    /// Recomputes the conditions for event time `time_ns`; `start_ns` is the generator's start,
    /// from which the timeline's offsets count. Reuses the allocation.
    pub fn update(
        &mut self,
        seed: u64,
        estate: &Estate,
        timeline: &Timeline,
        start_ns: u64,
        time_ns: u64,
    ) {
        let n = estate.services.len();
        self.services.clear();
        self.services.resize(n, ServiceConditions::default());
        self.time_ns = time_ns;
        self.load = diurnal(time_ns)
            * (1.0 + LOAD_NOISE * smooth_noise(seed, noise::tag::LOAD, 0, time_ns));
        // How far above the trough the load is, 0..1: latency and errors grow with it.
        let busy = ((self.load - TROUGH) / (1.0 - TROUGH)).clamp(0.0, 1.2);
        let latency_load = 1.0 + 0.35 * busy;
        let error_load = 1.0 + 0.8 * busy;
        let offset = Duration::from_nanos(time_ns.saturating_sub(start_ns));
        self.index_calls(estate);

        // Callees before callers, so a caller can add up what its calls cost.
        for &s in estate.call_order.iter().rev() {
            let svc = &estate.services[s];
            let revision = timeline.revision_at(estate, s, offset);
            let jitter =
                1.0 + LATENCY_JITTER * smooth_noise(seed, noise::tag::LATENCY, s as u64, time_ns);
            let mut latency = svc.base_latency_ms * latency_load * jitter;
            let mut errors = svc.error_rate * error_load;
            for &i in &self.calls[self.calls_start[s]..self.calls_start[s + 1]] {
                let e = &estate.edges[i];
                let (callee_ms, callee_errors) = match &e.dst {
                    Target::Service(d) => {
                        (self.services[*d].latency_ms, self.services[*d].error_rate)
                    }
                    virtual_node => (
                        virtual_node.base_latency_ms().unwrap_or(0.0) * latency_load,
                        0.0,
                    ),
                };
                latency += SERIAL_SHARE * e.calls_per_request * callee_ms;
                errors += ERROR_PROPAGATION * e.calls_per_request.min(1.0) * callee_errors;
            }
            let mut cpu = IDLE_CPU + (svc.cpu_at_peak - IDLE_CPU) * self.load;
            let mut memory = svc.memory_bytes as f64 * (1.0 + 0.15 * self.load);
            if let Some((fault, since)) = revision.fault {
                latency *= fault.latency_factor;
                errors += fault.error_rate;
                cpu += fault.cpu;
                memory *= 1.0 + fault.memory_leak_per_minute * since.as_secs_f64() / 60.0;
            }
            self.services[s] = ServiceConditions {
                rps: svc.base_rps * self.load,
                latency_ms: latency,
                error_rate: errors.min(MAX_ERROR_RATE),
                cpu: cpu.min(1.0),
                memory_bytes: memory,
                revision: revision.id,
            };
        }
    }

    /// Groups the estate's edge indices by caller (a counting sort into the scratch vectors).
    fn index_calls(&mut self, estate: &Estate) {
        let n = estate.services.len();
        self.calls_start.clear();
        self.calls_start.resize(n + 1, 0);
        for e in &estate.edges {
            self.calls_start[e.src + 1] += 1;
        }
        for s in 0..n {
            self.calls_start[s + 1] += self.calls_start[s];
        }
        self.calls.clear();
        self.calls.resize(estate.edges.len(), 0);
        // Place each edge at its caller's cursor; the cursors end where the next caller starts.
        for (i, e) in estate.edges.iter().enumerate() {
            self.calls[self.calls_start[e.src]] = i;
            self.calls_start[e.src] += 1;
        }
        for s in (1..=n).rev() {
            self.calls_start[s] = self.calls_start[s - 1];
        }
        self.calls_start[0] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::timeline::Change;

    const HOUR_NS: u64 = 3_600_000_000_000;

    #[test]
    fn diurnal_peaks_at_two_pm_and_bottoms_at_thirty_percent() {
        let day = 20_000 * 24 * HOUR_NS;
        assert!((diurnal(day + 14 * HOUR_NS) - 1.0).abs() < 1e-9);
        assert!((diurnal(day + 2 * HOUR_NS) - 0.3).abs() < 1e-9);
        assert!(diurnal(day + 9 * HOUR_NS) < diurnal(day + 12 * HOUR_NS));
    }

    #[test]
    fn bad_deploy_raises_latency_and_errors_of_the_victim_and_its_callers() {
        let estate = Estate::build(42, 12, 3);
        let timeline = Timeline::build(42, &estate);
        let bad = timeline
            .incidents
            .iter()
            .find(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
            .unwrap();
        let start = 20_000 * 24 * HOUR_NS + 14 * HOUR_NS;
        let mut before = Conditions::default();
        let mut during = Conditions::default();
        before.update(
            42,
            &estate,
            &timeline,
            start,
            start + bad.at.as_nanos() as u64 - 1,
        );
        during.update(
            42,
            &estate,
            &timeline,
            start,
            start + bad.at.as_nanos() as u64 + 1,
        );
        let v = bad.service;
        assert!(during.services[v].latency_ms > 2.0 * before.services[v].latency_ms);
        assert!(during.services[v].error_rate > before.services[v].error_rate + 0.05);
        assert_ne!(during.services[v].revision, before.services[v].revision);
        for caller in estate
            .edges
            .iter()
            .filter(|e| e.dst == Target::Service(v))
            .map(|e| e.src)
        {
            assert!(during.services[caller].error_rate > before.services[caller].error_rate);
            assert!(during.services[caller].latency_ms > before.services[caller].latency_ms);
        }
    }
}
