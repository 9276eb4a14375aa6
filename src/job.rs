//! The job spec: sources, views, sinks, lateness and workers, as YAML.
//!
//! A spec is parsed strictly (unknown fields are refused with their path) and validated before
//! anything starts: [`JobSpec::load`] returns every problem found, each with the field's path and
//! the reason. See `schemas/jobs/` for samples.

use std::path::Path;
use std::time::Duration;

use observebridge_connectors::files::{FileDeadLetterConfig, FileSourceConfig};
use observebridge_connectors::generator::GeneratorConfig;
use observebridge_connectors::kafka::{KafkaDeadLetterConfig, KafkaSourceConfig, KafkaViewSinkConfig};
use observebridge_connectors::parquet::ObjectStoreConfig;
use observebridge_connectors::postgres::PostgresConfig;
use observebridge_dataflows::decode::DecodeConfig;
use observebridge_dataflows::record::{Signal, WireFormat};
use serde::Deserialize;

/// The embedded default job: the generator feeding every view, Parquet under `./data`.
pub const DEFAULT_JOB: &str = include_str!("../schemas/jobs/default.yaml");

/// A job: what to read, what to compute, where to write.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Name of the job: the key of its progress rows and the default Kafka consumer group.
    pub name: String,
    /// Timely worker threads in this process.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How far behind the largest event time a record may arrive and still count (e.g. `2m`).
    #[serde(default = "default_lateness", with = "humantime_serde")]
    pub lateness: Duration,
    /// A partition with no record for this long stops holding the watermark back.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How input is cut into epochs (the unit of progress, sink transactions and commits).
    #[serde(default)]
    pub epochs: EpochSpec,
    /// How records are decoded.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// The inputs.
    pub sources: Vec<SourceSpec>,
    /// The views to maintain.
    pub views: ViewsSpec,
    /// Where views go.
    #[serde(default)]
    pub sinks: SinksSpec,
    /// SQL over the live views and their Parquet history (Postgres wire protocol and HTTP).
    /// Default: on, pgwire at 127.0.0.1:6875 and HTTP at 127.0.0.1:6876, history from
    /// `sinks.parquet`; `sql: { enabled: false }` turns it off.
    #[serde(default)]
    pub sql: observebridge_sql::SqlConfig,
    /// Where records that cannot be used go (default: `./data/dead_letters.jsonl`).
    #[serde(default)]
    pub dead_letter: DeadLetterSpec,
}

/// Epoch cutting and flow control.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochSpec {
    /// An epoch closes after this much wall time ...
    #[serde(default = "default_epoch_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// ... or after this many records, whichever comes first.
    #[serde(default = "default_epoch_records")]
    pub max_records: usize,
    /// Epochs handed to the dataflow but not yet durable in every sink; reading pauses at this
    /// many (backpressure during a sink outage).
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
}

impl Default for EpochSpec {
    fn default() -> Self {
        Self { interval: default_epoch_interval(), max_records: default_epoch_records(), max_inflight: default_max_inflight() }
    }
}

/// One input. Exactly one of `kafka`, `file` and `generator` is set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Name of the source, unique in the job.
    pub name: String,
    /// What the source carries (not for `generator`, which says it itself).
    pub signal: Option<Signal>,
    /// How its messages are encoded (not for `generator`).
    pub format: Option<WireFormat>,
    /// A Kafka topic set.
    pub kafka: Option<KafkaSourceConfig>,
    /// JSON-lines files (bounded: the job ends after their last line).
    pub file: Option<FileSourceConfig>,
    /// The built-in demo estate.
    pub generator: Option<GeneratorConfig>,
    /// For `format: text` (plain log lines): the service the lines belong to and their header
    /// format (e.g. `<Date> <Time> <Level> <Component>: <Content>`).
    pub text: Option<observebridge_dataflows::decode::TextProfile>,
}

/// The views. A view that is absent is not computed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewsSpec {
    /// Per resource, metric and series: one-minute statistics.
    pub metric_1m: Option<Metric1mSpec>,
    /// Calls between services from spans, with the live call graph (`call_graph_active`), its
    /// history (`topo_edge_time`) and the graph questions on it (`blast_radius`).
    pub service_call_5m: Option<ServiceCallSpec>,
    /// Log templates (`log_pattern`), their counts per window (`log_pattern_5m`) and the
    /// templates new to a service (`log_pattern_new`).
    pub log_pattern_5m: Option<LogPatternSpec>,
    /// Kubernetes changes from watch events (`change_event`); needs a source with `signal: k8s`.
    pub change_event: Option<ChangeEventSpec>,
    /// Change correlation: `change_impact`, `regression` and `regression_suspect`; needs
    /// `change_event` and `service_call_5m` (and uses `log_pattern_5m` and `metric_1m` when
    /// present).
    pub change_correlation: Option<CorrelationSpec>,
    /// The raw archive: every decoded input record as Parquet under
    /// `raw/<signal>/date=/hour=/minute=` on `sinks.parquet` (one object per signal and minute,
    /// once the minute is final for the view that reads the signal), the `raw_locator` view, and
    /// the views' `sample_ref`s pointing at archived examples.
    pub raw_archive: Option<RawArchiveSpec>,
}

/// Parameters of the raw archive.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArchiveSpec {
    /// Signals archived: metrics, spans, logs, k8s (default: all).
    #[serde(default = "all_signals")]
    pub signals: Vec<Signal>,
}

fn all_signals() -> Vec<Signal> {
    vec![Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s]
}

/// Parameters of `change_event`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEventSpec {
    /// Object versions kept per worker (default 100000); beyond, the least recently updated
    /// object is forgotten.
    #[serde(default = "default_max_objects")]
    pub max_objects: usize,
    /// A label naming a workload's service, looked at before `app.kubernetes.io/name` and `app`.
    #[serde(default)]
    pub service_label: Option<String>,
    /// Ignore replica changes made by an autoscaler (default true).
    #[serde(default = "default_true")]
    pub ignore_autoscaler: bool,
}

fn default_max_objects() -> usize {
    100_000
}

fn default_true() -> bool {
    true
}

/// Parameters of change correlation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSpec {
    /// `change_impact`'s window before the change (default 15m).
    #[serde(default = "default_impact_window", with = "humantime_serde")]
    pub before: Duration,
    /// `change_impact`'s window after the change (default 15m).
    #[serde(default = "default_impact_window", with = "humantime_serde")]
    pub after: Duration,
    /// A regression's baseline: this much of the signal's own history (default 1h).
    #[serde(default = "default_hour", with = "humantime_serde")]
    pub baseline: Duration,
    /// Changes this long before a regression's start are its suspects (default 1h).
    #[serde(default = "default_hour", with = "humantime_serde")]
    pub lookback: Duration,
    /// Robust deviations (MADs) above the baseline median that make a window anomalous (default 4).
    #[serde(default = "default_sensitivity")]
    pub sensitivity: f64,
    /// Calls a window needs before its error rate or latency counts (default 20).
    #[serde(default = "default_min_calls")]
    pub min_calls: f64,
    /// Baseline windows needed before anything is called a regression (default 1).
    #[serde(default = "default_min_baseline")]
    pub min_baseline_windows: usize,
    /// Downstream hops whose changes are suspects (default 2).
    #[serde(default = "default_suspect_hops")]
    pub max_hops: u32,
    /// `metric_1m` metrics to use as signals too (`metric:<name>`); needs `metric_1m`.
    #[serde(default)]
    pub metrics: Vec<String>,
}

fn default_impact_window() -> Duration {
    Duration::from_secs(900)
}
fn default_hour() -> Duration {
    Duration::from_secs(3600)
}
fn default_sensitivity() -> f64 {
    4.0
}
fn default_min_calls() -> f64 {
    20.0
}
fn default_min_baseline() -> usize {
    1
}
fn default_suspect_hops() -> u32 {
    2
}

/// Parameters of the log views.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPatternSpec {
    /// Window size (default 5m).
    #[serde(default = "default_call_window", with = "humantime_serde")]
    pub window: Duration,
    /// A template stays in `log_pattern_new` this long after a service first logs it (default 30m).
    #[serde(default = "default_new_within", with = "humantime_serde")]
    pub new_within: Duration,
    /// The template miner (prefix-tree depth, similarity, cluster cap, masking).
    #[serde(default)]
    pub miner: observebridge_dataflows::logs::drain::MinerConfig,
}

fn default_new_within() -> Duration {
    Duration::from_secs(1800)
}

/// Parameters of the span views.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCallSpec {
    /// Window size (default 5m).
    #[serde(default = "default_call_window", with = "humantime_serde")]
    pub window: Duration,
    /// How long (event time) a span waits for its partner before an unpaired client span makes
    /// a virtual edge (default 10s).
    #[serde(default = "default_pairing_wait", with = "humantime_serde")]
    pub pairing_wait: Duration,
    /// Who calls a root server span: `peer` (its `peer.service`, else `user`) or `user` always.
    #[serde(default)]
    pub caller: observebridge_dataflows::pairing::CallerNaming,
    /// An edge is active while it had calls this recently (default 10m).
    #[serde(default = "default_active", with = "humantime_serde")]
    pub active: Duration,
    /// How far `blast_radius` follows paths (default 16 hops).
    #[serde(default = "default_max_hops")]
    pub max_hops: u32,
}

impl Default for ServiceCallSpec {
    fn default() -> Self {
        Self {
            window: default_call_window(),
            pairing_wait: default_pairing_wait(),
            caller: Default::default(),
            active: default_active(),
            max_hops: default_max_hops(),
        }
    }
}

fn default_call_window() -> Duration {
    Duration::from_secs(300)
}

fn default_pairing_wait() -> Duration {
    Duration::from_secs(10)
}

fn default_active() -> Duration {
    Duration::from_secs(600)
}

fn default_max_hops() -> u32 {
    16
}

/// Parameters of `metric_1m`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric1mSpec {
    /// Window size (default 1m).
    #[serde(default = "default_metric_window", with = "humantime_serde")]
    pub window: Duration,
}

/// Sinks; any subset.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksSpec {
    /// Upserts and deletes, one transaction per frontier.
    pub postgres: Option<PostgresConfig>,
    /// Final windows as Parquet on object storage.
    pub parquet: Option<ObjectStoreConfig>,
    /// View changelogs on Kafka topics (`<prefix><view>`; key = primary key, tombstone on delete).
    pub kafka: Option<KafkaViewSinkConfig>,
}

/// The dead-letter destination: a JSON-lines file or a Kafka topic.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSpec {
    pub file: Option<FileDeadLetterConfig>,
    pub kafka: Option<KafkaDeadLetterConfig>,
}

impl Default for DeadLetterSpec {
    fn default() -> Self {
        Self { file: Some(FileDeadLetterConfig { path: "./data/dead_letters.jsonl".into() }), kafka: None }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
fn default_lateness() -> Duration {
    Duration::from_secs(120)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_epoch_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_epoch_records() -> usize {
    200_000
}
fn default_max_inflight() -> usize {
    8
}
fn default_metric_window() -> Duration {
    Duration::from_secs(60)
}

/// One problem with a spec: the field's path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SpecProblem {
    pub path: String,
    pub reason: String,
}

/// A spec that was refused, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("job spec {origin}: cannot read it: {source}")]
    Read { origin: String, #[source] source: std::io::Error },
    #[error("job spec {origin} is invalid:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { origin: String, problems: Vec<SpecProblem> },
}

impl JobSpec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { origin: origin.clone(), source })?;
        Self::parse(&text, &origin)
    }

    /// Parses and validates spec text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SpecError> {
        let invalid = |problems| SpecError::Invalid { origin: origin.to_string(), problems };
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let spec: JobSpec = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let reason = e.into_inner().to_string();
            // serde_yaml_ng appends " at line N column M": keep it, it helps.
            invalid(vec![SpecProblem { path: if path == "." { "(root)".to_string() } else { path }, reason }])
        })?;
        let problems = spec.validate();
        if problems.is_empty() { Ok(spec) } else { Err(invalid(problems)) }
    }

    /// Every problem with an already parsed spec (empty when it is valid). Runs no I/O.
    pub fn validate(&self) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        let mut problem = |path: String, reason: String| problems.push(SpecProblem { path, reason });
        if self.name.trim().is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            problem("name".into(), format!("`{}` is not a job name: use letters, digits, `-`, `_` and `.`", self.name));
        }
        if self.workers == 0 || self.workers > 256 {
            problem("workers".into(), format!("{} workers: must be between 1 and 256", self.workers));
        }
        if self.lateness > Duration::from_secs(24 * 3600) {
            problem("lateness".into(), "must be at most 24h: state is kept for window + lateness".into());
        }
        if self.idle_timeout.is_zero() {
            problem("idle_timeout".into(), "must be greater than 0".into());
        }
        if self.epochs.interval.is_zero() || self.epochs.interval > Duration::from_secs(60) {
            problem("epochs.interval".into(), "must be between 1ms and 60s".into());
        }
        if self.epochs.max_records == 0 {
            problem("epochs.max_records".into(), "must be at least 1".into());
        }
        if self.epochs.max_inflight == 0 {
            problem("epochs.max_inflight".into(), "must be at least 1".into());
        }
        if self.sources.is_empty() {
            problem("sources".into(), "a job needs at least one source".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let at = |field: &str| format!("sources[{i}]{field}");
            if !names.insert(source.name.as_str()) {
                problem(at(".name"), format!("`{}` is used by another source", source.name));
            }
            let is_text = source.format == Some(WireFormat::Text);
            match (&source.text, is_text) {
                (Some(_), false) => problem(at(".text"), "only for `format: text`".into()),
                (None, true) => problem(at(".text"), "missing: plain-text lines need `text: { service: <name> }` (and optionally `header`)".into()),
                (Some(t), true) => {
                    if source.signal != Some(Signal::Logs) {
                        problem(at(".format"), "`text` is a logs format: set `signal: logs`".into());
                    }
                    if t.service.trim().is_empty() {
                        problem(at(".text.service"), "must not be empty".into());
                    }
                    if let Some(header) = &t.header {
                        if let Err(e) = observebridge_dataflows::logs::header::HeaderFormat::parse(header) {
                            problem(at(".text.header"), e);
                        }
                    }
                }
                (None, false) => {}
            }
            let kinds = [source.kafka.is_some(), source.file.is_some(), source.generator.is_some()];
            match kinds.iter().filter(|k| **k).count() {
                1 => {}
                0 => problem(at(""), "set one of `kafka`, `file` or `generator`".into()),
                _ => problem(at(""), "set only one of `kafka`, `file` or `generator`".into()),
            }
            if source.generator.is_some() {
                if source.signal.is_some() || source.format.is_some() {
                    problem(at(""), "`signal` and `format` do not apply to a generator".into());
                }
            } else {
                if source.signal.is_none() {
                    problem(at(".signal"), "missing: say what the source carries (`metrics`)".into());
                }
                if source.format.is_none() {
                    problem(at(".format"), "missing: `otlp_proto`, `otlp_json` or `json_lines`".into());
                }
            }
            let nested = match (&source.kafka, &source.file, &source.generator) {
                (Some(k), _, _) => k.validate().err().map(|e| (".kafka", e.to_string())),
                (_, Some(f), _) => f.validate().err().map(|e| (".file", e.to_string())),
                (_, _, Some(g)) => g.validate().err().map(|e| (".generator", e.to_string())),
                _ => None,
            };
            if let Some((field, reason)) = nested {
                problem(at(field), reason);
            }
        }
        if self.views.metric_1m.is_none() && self.views.service_call_5m.is_none() && self.views.log_pattern_5m.is_none() && self.views.change_event.is_none() {
            problem("views".into(), "no view selected: add `metric_1m: {}`, `service_call_5m: {}`, `log_pattern_5m: {}` or `change_event: {}`".into());
        }
        let k8s_source = self.sources.iter().any(|s| s.signal == Some(Signal::K8s) || s.generator.as_ref().is_some_and(|g| g.signals.iter().any(|s| s.name() == "k8s")));
        if let Some(c) = &self.views.change_event {
            if c.max_objects == 0 {
                problem("views.change_event.max_objects".into(), "must be at least 1".into());
            }
            if !k8s_source {
                problem("views.change_event".into(), "no source carries Kubernetes watch events: add a source with `signal: k8s` (format `json_lines`)".into());
            }
        } else if self.sources.iter().any(|s| s.signal == Some(Signal::K8s)) {
            problem("views".into(), "a source carries Kubernetes watch events but no view reads them: add `change_event: {}`".into());
        }
        for (i, source) in self.sources.iter().enumerate() {
            if source.signal == Some(Signal::K8s) && source.format.is_some_and(|f| f != WireFormat::JsonLines) {
                problem(format!("sources[{i}].format"), "Kubernetes watch events are JSON: use `json_lines` (one event per message or line)".into());
            }
        }
        if let Some(c) = &self.views.change_correlation {
            let at = |f: &str| format!("views.change_correlation.{f}");
            if self.views.change_event.is_none() {
                problem("views.change_correlation".into(), "needs `change_event` (the changes it correlates)".into());
            }
            if self.views.service_call_5m.is_none() {
                problem("views.change_correlation".into(), "needs `service_call_5m` (the call signals and the live graph)".into());
            }
            if !c.metrics.is_empty() && self.views.metric_1m.is_none() {
                problem(at("metrics"), "names metric_1m signals, but `metric_1m` is not selected".into());
            }
            let bucket = self.views.service_call_5m.as_ref().map_or(300_000, |s| s.window.as_millis());
            for (name, d) in [("before", c.before), ("after", c.after), ("baseline", c.baseline)] {
                // A zero window is reported under views.service_call_5m.window; no multiple of it.
                if bucket > 0 && (d.as_millis() == 0 || d.as_millis() % bucket != 0) {
                    problem(at(name), format!("must be a positive multiple of the service_call_5m window ({}s)", bucket / 1000));
                }
            }
            if c.lookback.is_zero() {
                problem(at("lookback"), "must be greater than 0".into());
            }
            if !(c.sensitivity.is_finite() && c.sensitivity > 0.0) {
                problem(at("sensitivity"), "must be a positive number".into());
            }
            if !(c.min_calls.is_finite() && c.min_calls >= 0.0) {
                problem(at("min_calls"), "must be 0 or more".into());
            }
            if c.min_baseline_windows == 0 {
                problem(at("min_baseline_windows"), "must be at least 1".into());
            }
            if c.max_hops > 64 {
                problem(at("max_hops"), "must be at most 64".into());
            }
        }
        if let Some(l) = &self.views.log_pattern_5m {
            let ms = l.window.as_millis();
            if ms == 0 || 86_400_000 % ms != 0 {
                problem("views.log_pattern_5m.window".into(), "must divide a day evenly (e.g. 1m, 5m, 1h)".into());
            }
            if let Err(e) = l.miner.validate() {
                problem("views.log_pattern_5m".into(), e);
            }
        }
        if let Some(m) = &self.views.metric_1m {
            let ms = m.window.as_millis();
            if ms == 0 || 86_400_000 % ms != 0 {
                problem("views.metric_1m.window".into(), "must divide a day evenly (e.g. 1m, 5m, 1h)".into());
            }
        }
        if let Some(c) = &self.views.service_call_5m {
            let ms = c.window.as_millis();
            if ms == 0 || 86_400_000 % ms != 0 {
                problem("views.service_call_5m.window".into(), "must divide a day evenly (e.g. 1m, 5m, 1h)".into());
            }
            if c.active.as_millis() < 60_000 || c.active.as_millis() % 60_000 != 0 {
                problem("views.service_call_5m.active".into(), "must be a whole number of minutes, at least 1m".into());
            }
            if c.pairing_wait > c.window {
                problem("views.service_call_5m.pairing_wait".into(), "must not exceed the window".into());
            }
            if c.max_hops == 0 || c.max_hops > 64 {
                problem("views.service_call_5m.max_hops".into(), "must be between 1 and 64".into());
            }
        }
        if let Some(pg) = &self.sinks.postgres {
            if let Err(e) = pg.validate() {
                problem("sinks.postgres".into(), e.to_string());
            }
        }
        if let Some(os) = &self.sinks.parquet {
            if let Err(e) = os.validate() {
                problem("sinks.parquet".into(), e.to_string());
            }
        }
        if let Some(k) = &self.sinks.kafka {
            if let Err(e) = k.validate() {
                problem(format!("sinks.kafka.{}", e.field), e.message);
            }
        }
        if self.views.raw_archive.is_some() && self.sinks.parquet.is_none() {
            problem("views.raw_archive".into(), "needs sinks.parquet: the archive is written there".into());
        }
        if self.views.raw_archive.as_ref().is_some_and(|r| r.signals.is_empty()) {
            problem("views.raw_archive.signals".into(), "must name at least one signal (metrics, spans, logs, k8s)".into());
        }
        if let Err(e) = self.sql.validate() {
            problem("sql".into(), e.to_string());
        }
        match (&self.dead_letter.file, &self.dead_letter.kafka) {
            (Some(_), Some(_)) => problem("dead_letter".into(), "set only one of `file` or `kafka`".into()),
            (None, None) => problem("dead_letter".into(), "set one of `file` or `kafka`".into()),
            (_, Some(k)) if k.topic.trim().is_empty() => problem("dead_letter.kafka.topic".into(), "must not be empty".into()),
            _ => {}
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<SpecProblem> {
        match JobSpec::parse(yaml, "test") {
            Ok(_) => Vec::new(),
            Err(SpecError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{e}"),
        }
    }

    /// Found by the job_spec fuzz target (fuzz/artifacts/job_spec/crash-service-call-window-zero.yaml):
    /// a zero service_call_5m window with change_correlation divided by zero in validate().
    #[test]
    fn zero_call_window_with_correlation_is_refused_not_a_panic() {
        let yaml = include_str!("../fuzz/artifacts/job_spec/crash-service-call-window-zero.yaml");
        let found = problems(yaml);
        assert!(found.iter().any(|p| p.path == "views.service_call_5m.window"), "{found:?}");
    }

    fn assert_refused(yaml: &str, path: &str, reason_part: &str) {
        let found = problems(yaml);
        assert!(
            found.iter().any(|p| p.path == path && p.reason.contains(reason_part)),
            "expected a problem at `{path}` containing `{reason_part}`, got {found:?}"
        );
    }

    #[test]
    fn log_views_and_text_sources_are_parsed_and_checked() {
        let yaml = MINIMAL.replace("metric_1m: {}", "log_pattern_5m: { new_within: 10m, miner: { sim_threshold: 0.6 } }");
        let spec = JobSpec::parse(&yaml, "test").expect("valid");
        let logs = spec.views.log_pattern_5m.expect("present");
        assert_eq!(logs.new_within, Duration::from_secs(600));
        assert_eq!(logs.miner.sim_threshold, 0.6);
        assert_refused(&MINIMAL.replace("metric_1m: {}", "log_pattern_5m: { miner: { sim_threshold: 2 } }"), "views.log_pattern_5m", "sim_threshold");
        let text = "name: t\nsources:\n  - name: s\n    signal: logs\n    format: text\n    file: { paths: [a.log] }\nviews:\n  log_pattern_5m: {}\n";
        assert_refused(text, "sources[0].text", "plain-text lines need");
        let with = text.replace("format: text\n", "format: text\n    text: { service: hdfs, header: '<Date> <Time> <Level>: <Content>' }\n");
        JobSpec::parse(&with, "test").expect("valid text source");
        let metrics_text = with.replace("signal: logs", "signal: metrics");
        assert_refused(&metrics_text, "sources[0].format", "logs format");
    }

    #[test]
    fn span_views_are_parsed_and_checked() {
        let yaml = MINIMAL.replace("metric_1m: {}", "service_call_5m: { pairing_wait: 30s, caller: user, active: 15m }");
        let spec = JobSpec::parse(&yaml, "test").expect("valid");
        let calls = spec.views.service_call_5m.expect("present");
        assert_eq!(calls.pairing_wait, Duration::from_secs(30));
        assert_eq!(calls.window, Duration::from_secs(300));
        assert_eq!(calls.caller, observebridge_dataflows::pairing::CallerNaming::User);
        assert_refused(&MINIMAL.replace("metric_1m: {}", "service_call_5m: { active: 90s }"), "views.service_call_5m.active", "whole number of minutes");
        assert_refused(&MINIMAL.replace("metric_1m: {}", "service_call_5m: { pairing_wait: 10m }"), "views.service_call_5m.pairing_wait", "must not exceed");
        assert_refused(&MINIMAL.replace("metric_1m: {}", "service_call_5m: { caller: bob }"), "views.service_call_5m.caller", "unknown variant");
    }

    #[test]
    fn change_views_are_parsed_and_checked() {
        let k8s = "name: t\nsources:\n  - name: s\n    signal: k8s\n    format: json_lines\n    file: { paths: [w.jsonl] }\n  - name: g\n    generator: {}\nviews:\n  service_call_5m: {}\n  change_event: { ignore_autoscaler: false }\n  change_correlation: { lookback: 30m, sensitivity: 3 }\n";
        let spec = JobSpec::parse(k8s, "test").expect("valid");
        assert!(!spec.views.change_event.as_ref().expect("present").ignore_autoscaler);
        let c = spec.views.change_correlation.expect("present");
        assert_eq!((c.lookback, c.before, c.sensitivity, c.max_hops), (Duration::from_secs(1800), Duration::from_secs(900), 3.0, 2));
        assert_refused(&k8s.replace("  change_event: { ignore_autoscaler: false }\n", ""), "views.change_correlation", "needs `change_event`");
        assert_refused(&k8s.replace("  service_call_5m: {}\n", ""), "views.change_correlation", "needs `service_call_5m`");
        assert_refused(&k8s.replace("sensitivity: 3", "sensitivity: -1"), "views.change_correlation.sensitivity", "positive");
        assert_refused(&k8s.replace("lookback: 30m", "before: 7m"), "views.change_correlation.before", "multiple of the service_call_5m window");
        assert_refused(&k8s.replace("lookback: 30m", "metrics: [cpu]"), "views.change_correlation.metrics", "`metric_1m` is not selected");
        assert_refused(&k8s.replace("format: json_lines", "format: otlp_json"), "sources[0].format", "Kubernetes watch events are JSON");
        let no_view = k8s.replace("  change_event: { ignore_autoscaler: false }\n  change_correlation: { lookback: 30m, sensitivity: 3 }\n", "");
        assert_refused(&no_view, "views", "no view reads them");
        assert_refused(&MINIMAL.replace("metric_1m: {}", "change_event: {}").replace("generator: {}", "generator: { signals: [metrics] }"), "views.change_event", "no source carries Kubernetes watch events");
    }

    const MINIMAL: &str = "name: t\nsources:\n  - name: s\n    generator: {}\nviews:\n  metric_1m: {}\n";

    #[test]
    fn sample_specs_are_valid() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/jobs")).expect("schemas/jobs") {
            let path = entry.expect("entry").path();
            if let Err(e) = JobSpec::load(&path) {
                panic!("{e}");
            }
        }
        let spec = JobSpec::parse(DEFAULT_JOB, "default").expect("default job");
        assert_eq!(spec.lateness, Duration::from_secs(120));
        assert!(spec.sources[0].generator.is_some());
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = JobSpec::parse(MINIMAL, "t").expect("valid");
        assert_eq!(spec.lateness, Duration::from_secs(120));
        assert_eq!(spec.idle_timeout, Duration::from_secs(30));
        assert_eq!(spec.views.metric_1m.as_ref().map(|m| m.window), Some(Duration::from_secs(60)));
        assert!(spec.dead_letter.file.is_some());
    }

    #[test]
    fn sql_is_served_by_default_and_can_be_turned_off() {
        let spec = JobSpec::parse(MINIMAL, "t").expect("valid");
        assert!(spec.sql.enabled);
        assert_eq!(spec.sql.pg_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:6875"));
        assert_eq!(spec.sql.http_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:6876"));
        let off = JobSpec::parse(&format!("{MINIMAL}sql: {{ enabled: false }}\n"), "t").expect("valid");
        assert!(!off.sql.enabled);
        assert_refused(&format!("{MINIMAL}sql: {{ pg_port: 1 }}\n"), "sql.pg_port", "unknown field `pg_port`");
        assert_refused(&format!("{MINIMAL}sql: {{ auth: {{ tokens: {{}} }} }}\n"), "sql", "auth.tokens: is empty");
    }

    #[test]
    fn unknown_field_is_refused_with_its_path() {
        assert_refused(&MINIMAL.replace("name: t\n", "name: t\nwrokers: 2\n"), "wrokers", "unknown field `wrokers`, expected one of");
        assert_refused(&MINIMAL.replace("metric_1m: {}", "metric_1m: { windw: 1m }"), "views.metric_1m.windw", "unknown field `windw`");
        assert_refused(&MINIMAL.replace("generator: {}", "generator: { sed: 1 }"), "sources[0].generator.sed", "unknown field `sed`");
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        assert_refused(&MINIMAL.replace("name: t\n", "name: t\nlateness: soon\n"), "lateness", "");
        assert_refused(&MINIMAL.replace("name: t\n", "name: t\nworkers: 0\n"), "workers", "between 1 and 256");
        assert_refused(&MINIMAL.replace("name: t\n", "name: 'a b'\n"), "name", "not a job name");
        assert_refused(&MINIMAL.replace("metric_1m: {}", "metric_1m: { window: 7m }"), "views.metric_1m.window", "divide a day");
        assert_refused("name: t\nsources: []\nviews:\n  metric_1m: {}\n", "sources", "at least one source");
        assert_refused("name: t\nsources:\n  - name: s\n    generator: {}\nviews: {}\n", "views", "no view selected");
    }

    #[test]
    fn source_kinds_and_formats_are_checked() {
        let both = "name: t\nsources:\n  - name: s\n    generator: {}\n    file: { paths: [a.jsonl] }\n    signal: metrics\n    format: json_lines\nviews:\n  metric_1m: {}\n";
        assert_refused(both, "sources[0]", "only one of");
        let none = "name: t\nsources:\n  - name: s\nviews:\n  metric_1m: {}\n";
        assert_refused(none, "sources[0]", "set one of");
        let no_format = "name: t\nsources:\n  - name: s\n    signal: metrics\n    file: { paths: [a.jsonl] }\nviews:\n  metric_1m: {}\n";
        assert_refused(no_format, "sources[0].format", "missing");
        let bad_format = no_format.replace("signal: metrics\n", "signal: metrics\n    format: csv\n");
        assert_refused(&bad_format, "sources[0].format", "unknown variant `csv`");
        let dup = "name: t\nsources:\n  - name: s\n    generator: {}\n  - name: s\n    generator: {}\nviews:\n  metric_1m: {}\n";
        assert_refused(dup, "sources[1].name", "used by another source");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let yaml = "name: t\nworkers: 0\nidle_timeout: 0s\nsources: []\nviews: {}\n";
        let found = problems(yaml);
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["workers", "idle_timeout", "sources", "views"]);
    }

    #[test]
    fn nested_connector_validation_is_reported() {
        let yaml = "name: t\nsources:\n  - name: k\n    signal: metrics\n    format: otlp_proto\n    kafka: { brokers: '', topics: [t], group_id: g }\nviews:\n  metric_1m: {}\n";
        assert_refused(yaml, "sources[0].kafka", "brokers");
        let pg = format!("{MINIMAL}sinks:\n  postgres: {{ url: 'mysql://x' }}\n");
        assert_refused(&pg, "sinks.postgres", "postgres");
        let s3 = format!("{MINIMAL}sinks:\n  parquet: {{ url: 'ftp://x' }}\n");
        assert_refused(&s3, "sinks.parquet", "ftp");
    }
}
