//! `/metrics`: the engine's health in the Prometheus text format, for `observebridge run` and
//! `observebridge serve` (one label set per job). Built at scrape time from each job's
//! [`Stats`] with prometheus-client's [`Collector`].
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `observebridge_job_info` | gauge (1) | job, state |
//! | `observebridge_records_received_total` | counter | job, source, partition, signal |
//! | `observebridge_records_decoded_total` | counter | job |
//! | `observebridge_dead_letters_total` | counter | job, reason |
//! | `observebridge_decode_errors_total` | counter | job (dead letters other than `late`) |
//! | `observebridge_late_records_total` | counter | job |
//! | `observebridge_consumer_lag_records` | gauge | job, source, partition |
//! | `observebridge_watermark_delay_seconds` | gauge | job (wall clock minus the watermark) |
//! | `observebridge_view_freshness_seconds` | gauge | job, view (now minus the last frontier durable in every sink) |
//! | `observebridge_sink_commits_total`, `observebridge_sink_commit_seconds_total` | counter | job, sink |
//! | `observebridge_sink_last_commit_seconds` | gauge | job, sink |
//! | `observebridge_sink_retries_total` | counter | job, sink |
//! | `observebridge_view_state_records` | gauge | job, view (records in the view's state, all workers) |
//! | `observebridge_pairing_waiting_spans` | gauge | job (spans waiting for their pair) |
//! | `observebridge_epochs_durable_total` | counter | job |

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::runtime::Stats;

/// One job as `/metrics` shows it.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    pub job: String,
    pub state: &'static str,
    pub stats: Arc<Stats>,
}

#[derive(Debug)]
struct Jobs(Vec<JobMetrics>);

type Labels = Vec<(&'static str, String)>;

/// Writes one metric family: every (labels, value) of it.
fn family<M: EncodeMetric>(encoder: &mut DescriptorEncoder, name: &str, help: &str, series: Vec<(Labels, M)>) -> Result<(), std::fmt::Error> {
    let Some(first) = series.first() else { return Ok(()) };
    let mut metric = encoder.encode_descriptor(name, help, None, first.1.metric_type())?;
    for (labels, value) in &series {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Jobs {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let job = |j: &JobMetrics| vec![("job", j.job.clone())];
        let with = |j: &JobMetrics, more: &[(&'static str, String)]| {
            let mut labels = job(j);
            labels.extend(more.iter().cloned());
            labels
        };
        let counter = |v: u64| ConstCounter::new(v);
        let (mut info, mut received, mut decoded, mut dead, mut decode_errors, mut late) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut lag, mut wm_delay, mut freshness, mut commits, mut commit_seconds, mut last_commit, mut retries) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut state, mut waiting, mut epochs) = (vec![], vec![], vec![]);
        for j in &self.0 {
            let s = &j.stats;
            info.push((with(j, &[("state", j.state.to_string())]), ConstGauge::new(1i64)));
            for p in s.partitions.lock().map(|p| p.clone()).unwrap_or_default() {
                let labels = with(j, &[("source", p.source.clone()), ("partition", p.partition.clone())]);
                let mut with_signal = labels.clone();
                with_signal.push(("signal", p.signal.clone()));
                received.push((with_signal, counter(p.records)));
                if let Some(l) = p.lag {
                    lag.push((labels, ConstGauge::new(l as i64)));
                }
            }
            decoded.push((job(j), counter(s.decoded.load(Ordering::Relaxed))));
            let by_reason: BTreeMap<String, u64> = s.dead_letters_by_reason.lock().map(|m| m.clone()).unwrap_or_default();
            decode_errors.push((job(j), counter(by_reason.iter().filter(|(r, _)| r.as_str() != "late").map(|(_, n)| n).sum())));
            for (reason, n) in by_reason {
                dead.push((with(j, &[("reason", reason)]), counter(n)));
            }
            late.push((job(j), counter(s.late.load(Ordering::Relaxed))));
            let wm = s.watermark.load(Ordering::Relaxed);
            if wm != i64::MIN && wm != 0 && wm != i64::MAX {
                wm_delay.push((job(j), ConstGauge::new((now_ms - wm) as f64 / 1000.0)));
            }
            let durable = s.last_durable_ms.load(Ordering::Relaxed);
            if durable > 0 {
                for view in s.views.lock().map(|v| v.clone()).unwrap_or_default() {
                    freshness.push((with(j, &[("view", view)]), ConstGauge::new((now_ms - durable) as f64 / 1000.0)));
                }
            }
            for (sink, p) in s.sinks.lock().map(|m| m.clone()).unwrap_or_default() {
                let labels = with(j, &[("sink", sink.to_string())]);
                commits.push((labels.clone(), counter(p.commits)));
                commit_seconds.push((labels.clone(), ConstCounter::new(p.latency_ms_total / 1000.0)));
                last_commit.push((labels.clone(), ConstGauge::new(p.last_latency_ms / 1000.0)));
                retries.push((labels, counter(p.retries)));
            }
            let mut per_view: BTreeMap<&'static str, u64> = BTreeMap::new();
            for ((view, _), n) in s.live_state.lock().map(|m| m.clone()).unwrap_or_default() {
                *per_view.entry(view).or_default() += n;
            }
            for (view, n) in per_view {
                state.push((with(j, &[("view", view.to_string())]), ConstGauge::new(n as i64)));
            }
            if let Some(n) = s.counters().get("pairing.waiting") {
                waiting.push((job(j), ConstGauge::new(*n as i64)));
            }
            epochs.push((job(j), counter(s.epochs_durable.load(Ordering::Relaxed))));
        }
        let e = &mut encoder;
        family(e, "observebridge_job_info", "A job and its state (starting, running, stopping, stopped, failed).", info)?;
        family(e, "observebridge_records_received", "Records read from each input partition.", received)?;
        family(e, "observebridge_records_decoded", "Records decoded into observations.", decoded)?;
        family(e, "observebridge_dead_letters", "Records sent to the dead-letter output, by reason.", dead)?;
        family(e, "observebridge_decode_errors", "Dead letters other than late records.", decode_errors)?;
        family(e, "observebridge_late_records", "Records later than the allowed lateness.", late)?;
        family(e, "observebridge_consumer_lag_records", "Records in the partition past the job's position.", lag)?;
        family(e, "observebridge_watermark_delay_seconds", "Wall clock minus the event-time watermark.", wm_delay)?;
        family(e, "observebridge_view_freshness_seconds", "Now minus the last frontier durable in every sink.", freshness)?;
        family(e, "observebridge_sink_commits", "Frontiers made durable by the sink.", commits)?;
        family(e, "observebridge_sink_commit_seconds", "Time spent making frontiers durable in the sink.", commit_seconds)?;
        family(e, "observebridge_sink_last_commit_seconds", "How long the sink took for the last frontier.", last_commit)?;
        family(e, "observebridge_sink_retries", "Failed sink attempts that were retried.", retries)?;
        family(e, "observebridge_view_state_records", "Records held in the view's state, all workers.", state)?;
        family(e, "observebridge_pairing_waiting_spans", "Spans waiting for their pair.", waiting)?;
        family(e, "observebridge_epochs_durable", "Epochs durable in every sink.", epochs)?;
        Ok(())
    }
}

/// The Prometheus text exposition of `jobs`.
pub fn render(jobs: Vec<JobMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Jobs(jobs)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding /metrics");
    }
    out
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
