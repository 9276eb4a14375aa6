//! Wiring: sources -> driver -> timely workers -> coordinator -> sinks, and back to the driver
//! for commits.
//!
//! - The **driver** (one thread) polls every source, cuts what it reads into epochs, hands each
//!   worker its share (by input partition) plus the partition bookkeeping, and at most
//!   `epochs.max_inflight` epochs ahead of durability: when sinks stall, reading stops.
//! - The **workers** (timely threads) run [`observebridge_dataflows::engine`].
//! - The **coordinator** (one thread) waits until every worker has passed an epoch, applies the
//!   epoch's view changes to Postgres (one transaction, with the frontier), writes the windows
//!   that became final to Parquet, writes dead letters, and only then tells the driver the epoch
//!   is durable; the driver commits source offsets after that, never before.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use observebridge_connectors::archive::{ArchiveFormat, ArchiveSignal, ArchiveSource};
use observebridge_connectors::dead_letter::{DeadLetterRecord, DeadLetterSink};
use observebridge_connectors::files::{FileDeadLetterSink, JsonLinesSource};
use observebridge_connectors::generator::{GeneratedSignal, Generator};
use observebridge_connectors::kafka::{KafkaDeadLetterSink, KafkaSource, KafkaViewSink};
use observebridge_connectors::parquet::ParquetSink;
use observebridge_connectors::postgres::PostgresSink;
use observebridge_connectors::sink::{FinalWindow, Frontier, TableChanges};
use observebridge_connectors::source::{PartitionCommit, Poll, RawRecord, Source};
use observebridge_dataflows::engine::{self, EngineConfig, EngineEvent, EpochReport, MetaEvent};
use observebridge_dataflows::record::{Encoding, EventTime, Origin, RawMessage, Signal, WireFormat};
use observebridge_dataflows::changes::ChangeConfig;
use observebridge_dataflows::engine::{ChangesConfig, ServiceCallConfig};
use observebridge_dataflows::views::correlation::CorrelationConfig;
use observebridge_dataflows::pairing::PairingConfig;
use observebridge_dataflows::views::call_graph_active::CallGraphConfig;
use observebridge_dataflows::views::log_pattern::{LibraryEntry, LogPatternConfig, LogPatternRow};
use observebridge_dataflows::views::metric_1m::Metric1m;
use observebridge_sql::{LiveViews, ServeError, SqlServer};

use crate::job::JobSpec;

/// Counters shared by the runtime's threads; read by the live summary and the load benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub records_in: AtomicU64,
    pub decoded: AtomicU64,
    pub dead_letters: AtomicU64,
    pub late: AtomicU64,
    pub rows_upserted: AtomicU64,
    pub rows_deleted: AtomicU64,
    pub windows_written: AtomicU64,
    pub epochs_sent: AtomicU64,
    pub epochs_durable: AtomicU64,
    pub sink_retries: AtomicU64,
    /// Watermark (ms since epoch; i64::MIN when none yet).
    pub watermark: AtomicI64,
    /// Per durable epoch: wall time from the epoch's first record being read to its changes
    /// being committed in every sink (ms). The load benchmark reports percentiles of it.
    pub freshness_ms: Mutex<Vec<f64>>,
    /// The views' named counters (pairing: paired, virtual edges, expired, late, ...), latest
    /// value per worker.
    pub counters: Mutex<BTreeMap<(&'static str, usize), u64>>,
    /// Set once sources and sinks are connected and the dataflow is running.
    pub running: AtomicBool,
    /// Every input partition: its position and lag, refreshed every epoch.
    pub partitions: Mutex<Vec<PartitionStatus>>,
    /// Per sink (`postgres`, `parquet`, `kafka`), the last frontier it made durable.
    pub sinks: Mutex<BTreeMap<&'static str, SinkProgress>>,
    /// Things a user should know that did not stop the job (SQL not served, ...).
    pub warnings: Mutex<Vec<String>>,
    /// Dead letters written, by reason (`decode`, `late`, ...).
    pub dead_letters_by_reason: Mutex<BTreeMap<String, u64>>,
    /// Records held in each view's state (arrangements, waiting spans, open windows), latest
    /// value per (view, worker).
    pub live_state: Mutex<BTreeMap<(&'static str, usize), u64>>,
    /// The views this job has written changes of.
    pub views: Mutex<std::collections::BTreeSet<String>>,
    /// Wall-clock time (ms since the Unix epoch) of the last frontier durable in every sink.
    pub last_durable_ms: AtomicI64,
}

/// Where an input partition stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionStatus {
    /// The job's name for the source (`sources[].name`).
    pub source: String,
    /// The partition's name (`kafka:<topic>/<partition>`, `file:<path>`, `generator:<stream>`).
    pub partition: String,
    /// The next offset to read.
    pub position: Option<u64>,
    /// Records known to exist past `position` (Kafka: high watermark - position), when known.
    pub lag: Option<u64>,
    /// What the partition carries (`metrics`, `spans`, `logs`, `k8s`).
    #[serde(default)]
    pub signal: String,
    /// Records read from it by this run.
    #[serde(default)]
    pub records: u64,
}

/// The last frontier a sink made durable.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkProgress {
    pub epoch: u64,
    pub watermark_ms: Option<i64>,
    /// Wall-clock time of the commit (ms since the Unix epoch).
    pub committed_at_ms: i64,
    /// Source positions at that frontier.
    pub positions: serde_json::Value,
    /// Frontiers made durable by this run, their total and last commit latency (ms), and the
    /// retries (failed attempts) so far.
    #[serde(default)]
    pub commits: u64,
    #[serde(default)]
    pub latency_ms_total: f64,
    #[serde(default)]
    pub last_latency_ms: f64,
    #[serde(default)]
    pub retries: u64,
}

impl Stats {
    /// Records a sink's durable frontier and how long making it durable took.
    fn sink_committed(&self, sink: &'static str, frontier: &Frontier, took: Duration) {
        if let Ok(mut sinks) = self.sinks.lock() {
            let progress = sinks.entry(sink).or_default();
            progress.epoch = frontier.epoch;
            progress.watermark_ms = frontier.watermark_ms;
            progress.committed_at_ms = chrono::Utc::now().timestamp_millis();
            progress.positions = frontier.positions.clone();
            progress.commits += 1;
            progress.last_latency_ms = took.as_secs_f64() * 1000.0;
            progress.latency_ms_total += progress.last_latency_ms;
        }
    }

    /// Counts a failed attempt of a sink (it retries).
    fn sink_retry(&self, sink: &'static str) {
        self.sink_retries.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.entry(sink).or_default().retries += 1;
        }
    }

    /// Adds a warning (once).
    pub fn warn(&self, warning: String) {
        if let Ok(mut warnings) = self.warnings.lock() {
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
    }

    /// The named counters summed over workers.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        if let Ok(counters) = self.counters.lock() {
            for ((name, _), v) in counters.iter() {
                *out.entry(*name).or_default() += v;
            }
        }
        out
    }
}

/// What happened to a run.
#[derive(Debug)]
pub struct RunSummary {
    pub epochs: u64,
    pub records_in: u64,
    pub dead_letters: u64,
}

/// Where a partition's records come from and how to read them.
struct PartitionState {
    source: usize,
    local: u32,
    name: String,
    encoding: Encoding,
    last_active: Instant,
    idle: bool,
    ended: bool,
    /// Offset after the last record read.
    next_offset: Option<u64>,
    /// Epochs with records of this partition that are not durable yet: (epoch, offset after
    /// the epoch's last record).
    epoch_ends: VecDeque<(u64, u64)>,
    /// Epochs whose records may still sit in open windows, for the restart offset:
    /// (epoch, first offset, largest event time once known).
    retained: VecDeque<(u64, u64, Option<EventTime>)>,
    /// Largest event time among durable records.
    durable_max: Option<EventTime>,
    /// Records below this offset were processed before a restart (0: none).
    replay_until: u64,
    /// Whether the re-read of records processed before a restart is over for this partition.
    rebuilt: bool,
    /// Records read by this run.
    records: u64,
}

/// After a restart, the last epoch that holds only re-read records (records every sink already
/// has), so that the Kafka sink does not publish their changes again: [`REBUILDING`] while the
/// re-read goes on, [`NO_REBUILD`] when there was none.
type RebuildThrough = Arc<AtomicI64>;
const REBUILDING: i64 = -2;
const NO_REBUILD: i64 = -1;

/// What the coordinator needs to know of an input partition to write its dead letters: its
/// name, and the offset below which records are re-read after a restart only to rebuild state
/// (their dead letters were written before).
#[derive(Debug)]
struct PartitionLabel {
    name: String,
    replay_until: u64,
}

/// The partition table the driver fills and the coordinator reads, by engine-wide partition id.
type PartitionLabels = Arc<Mutex<BTreeMap<u32, PartitionLabel>>>;

/// Message from the driver to a worker.
enum WorkerMsg {
    Epoch { epoch: u64, raw: Vec<RawMessage>, meta: Vec<MetaEvent> },
}

/// Message from the coordinator to the driver: every epoch up to `through` is durable.
struct Durable {
    through: u64,
    watermark: Option<EventTime>,
    partition_max: Vec<(u64, u32, EventTime)>,
}

/// Runs a job until its bounded sources are exhausted or `stop` is set.
pub fn run(spec: JobSpec, stop: Arc<AtomicBool>, stats: Arc<Stats>) -> Result<RunSummary> {
    run_mode(spec, stop, stats, None)
}

/// Where a replay's ([`replay`]) output goes.
#[derive(Clone)]
pub struct ReplayOutput {
    /// `[from, to)`: only windows starting in it are written to Parquet.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Whether the raw archive's minutes are written (not when the replay reads the raw archive
    /// itself: its objects are the input).
    pub write_raw: bool,
    /// Every view's rows as of the end of the replay, folded frontier by frontier (no
    /// retention); the caller rewrites the window in Postgres from them.
    pub views: Arc<LiveViews>,
    /// The Parquet objects written: (view, window start).
    pub written: Arc<Mutex<Vec<(String, i64)>>>,
    /// The views whose final windows the replay writes (it owns them); the raw archive's
    /// minutes go by `write_raw`.
    pub parquet_views: Vec<String>,
    /// At the end of the input the watermark goes to this minus the lateness, not past
    /// everything: the window's rows are final, and state that outlives the window (a change's
    /// impact, an open regression, the active graph) stands as it did at that point of event time,
    /// as the live job had it, instead of expiring.
    pub end_max_ms: i64,
    /// Where the raw archive's objects are, for `raw_locator` rows and `sample_ref`s, when the
    /// replay reads an archive other than the job's Parquet sink.
    pub raw_location: Option<String>,
}

/// The partition id of a replay's end-of-input clock (never a real partition).
const REPLAY_END_PARTITION: u32 = u32::MAX;

/// Runs a job's dataflows over a window read back from object storage. Nothing is committed
/// and nothing goes to Postgres, Kafka or SQL while it runs: the views' rows collect in
/// `output.views`, final windows in `[from, to)` go to the job's Parquet sink (same object
/// names as the live run's), dead letters to the job's destination. `source` holds the window's
/// objects, warm-up and tail included.
pub fn replay(spec: JobSpec, stop: Arc<AtomicBool>, stats: Arc<Stats>, source: ArchiveSource, output: ReplayOutput) -> Result<RunSummary> {
    run_mode(spec, stop, stats, Some((source, output)))
}

/// How a replay reads an archive partition's records.
pub fn archive_encoding(signal: ArchiveSignal, format: ArchiveFormat) -> Encoding {
    let signal = engine_signal(signal);
    let format = match format {
        ArchiveFormat::Archived => WireFormat::Archived,
        ArchiveFormat::OtlpProto => WireFormat::OtlpProto,
        ArchiveFormat::OtlpJson => WireFormat::OtlpJson,
    };
    Encoding::new(signal, format)
}

/// The engine's signal of an archive signal.
pub fn engine_signal(signal: ArchiveSignal) -> Signal {
    match signal {
        ArchiveSignal::Metrics => Signal::Metrics,
        ArchiveSignal::Spans => Signal::Spans,
        ArchiveSignal::Logs => Signal::Logs,
        ArchiveSignal::K8s => Signal::K8s,
    }
}

/// The archive's signal of an engine signal.
pub fn archive_signal(signal: Signal) -> ArchiveSignal {
    match signal {
        Signal::Metrics => ArchiveSignal::Metrics,
        Signal::Spans => ArchiveSignal::Spans,
        Signal::Logs => ArchiveSignal::Logs,
        Signal::K8s => ArchiveSignal::K8s,
    }
}

/// How far back state reaches: records whose window is not final must be re-read after a
/// restart, and a replay reads this much before its window (for the span views: the window
/// plus the pairing wait, and the active graph's span; for correlation: its baseline and
/// lookback, whose signals are rebuilt from the records).
pub fn state_horizon_ms(spec: &JobSpec) -> i64 {
    horizon_ms(&engine_config(spec, spec.decode.clone(), Vec::new()))
}

fn horizon_ms(config: &EngineConfig) -> i64 {
    [
        config.metric_1m.as_ref().map(|m| m.window_ms),
        config.service_call.as_ref().map(|c| (c.pairing.window_ms + c.pairing.wait_ms).max(c.graph.active_ms)),
        config.log_pattern.as_ref().map(|l| l.window_ms),
        config.changes.as_ref().and_then(|c| c.correlation.as_ref()).map(|c| c.retention_ms()),
        Some(config.archive_horizon_ms()).filter(|h| *h > 0),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(60_000)
}

fn run_mode(spec: JobSpec, stop: Arc<AtomicBool>, stats: Arc<Stats>, replay: Option<(ArchiveSource, ReplayOutput)>) -> Result<RunSummary> {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the i/o runtime")?;
    stats.watermark.store(i64::MIN, Ordering::Relaxed);

    // Sources first: a Kafka source learns its committed positions here.
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut encodings: Vec<Option<Encoding>> = Vec::new();
    let mut partition_encodings: Vec<Vec<Encoding>> = Vec::new();
    let mut decode = spec.decode.clone();
    let live_sources = if replay.is_some() { &[][..] } else { &spec.sources[..] };
    let replay_end_ms = replay.as_ref().map(|(_, output)| output.end_max_ms);
    let replay = match replay {
        Some((source, output)) => {
            partition_encodings.push(source.partition_encodings().iter().map(|(s, f)| archive_encoding(*s, *f)).collect());
            sources.push(Box::new(source));
            encodings.push(None);
            Some(output)
        }
        None => None,
    };
    for source in live_sources {
        let encoding = match (source.signal, source.format) {
            (Some(signal), Some(format)) => {
                let mut encoding = Encoding::new(signal, format);
                if let Some(text) = &source.text {
                    encoding.profile = u16::try_from(decode.text_profiles.len()).context("too many text sources")?;
                    decode.text_profiles.push(text.clone());
                }
                Some(encoding)
            }
            _ => None,
        };
        let built: Box<dyn Source> = if let Some(kafka) = &source.kafka {
            Box::new(KafkaSource::new(&source.name, kafka).with_context(|| format!("source {} (brokers {})", source.name, kafka.brokers))?)
        } else if let Some(file) = &source.file {
            Box::new(JsonLinesSource::new(&source.name, file).with_context(|| format!("source {}", source.name))?)
        } else if let Some(generator) = &source.generator {
            Box::new(Generator::new(generator).with_context(|| format!("source {}", source.name))?)
        } else {
            anyhow::bail!("source {} has no kind", source.name);
        };
        sources.push(built);
        encodings.push(encoding);
        partition_encodings.push(Vec::new());
    }

    let postgres = match &spec.sinks.postgres {
        Some(cfg) => {
            let sink = tokio.block_on(async {
                let sink = PostgresSink::connect(cfg).await?;
                sink.migrate().await?;
                Ok::<_, anyhow::Error>(sink)
            }).context("postgres sink")?;
            Some(sink)
        }
        None => None,
    };
    let parquet = match &spec.sinks.parquet {
        Some(cfg) => Some(ParquetSink::new(cfg).context("parquet sink")?),
        None => None,
    };
    let kafka = match (&spec.sinks.kafka, &replay) {
        (Some(cfg), None) => {
            let sink = KafkaViewSink::new(&spec.name, cfg).context("kafka sink")?;
            tracing::info!(delivery = sink.delivery(), last_published = ?sink.last_published(), "kafka view topics ready");
            Some(sink)
        }
        _ => None,
    };
    // SQL over the live views; served until the run ends (`_sql` drops last). Not for replays.
    let (live, _sql) = if replay.is_some() { (None, None) } else { start_sql(&spec, &tokio, &stats)? };
    let dead_letters: Box<dyn DeadLetterSink> = match (&spec.dead_letter.file, &spec.dead_letter.kafka) {
        (_, Some(kafka)) => Box::new(KafkaDeadLetterSink::new(kafka).context("dead-letter topic")?),
        (Some(file), None) => Box::new(FileDeadLetterSink::new(file).context("dead-letter file")?),
        (None, None) => anyhow::bail!("no dead-letter destination"),
    };

    let workers = spec.workers;
    // The template library the miners start from: fingerprint ids survive restarts and replays.
    let library = match (&spec.views.log_pattern_5m, &postgres) {
        (Some(_), Some(sink)) => {
            let library = tokio.block_on(sink.log_library()).context("loading the log template library")?;
            let library: Vec<LibraryEntry> = library
                .into_iter()
                .map(|(tenant, fingerprint_id, pattern, sample_message, severity, first_seen, last_seen)| {
                    LibraryEntry::from_row(&LogPatternRow { tenant, fingerprint_id, pattern, sample_message, severity, first_seen, last_seen })
                })
                .collect();
            tracing::info!(templates = library.len(), "log template library loaded");
            library
        }
        _ => Vec::new(),
    };
    let mut config = engine_config(&spec, decode, library);
    if let (Some(raw), Some(location)) = (config.raw_archive.as_mut(), replay.as_ref().and_then(|r| r.raw_location.clone())) {
        raw.location = location;
    }
    let horizon_ms = horizon_ms(&config);
    // A replay writes Postgres at the end, from the rows it collected.
    let postgres = if replay.is_some() { None } else { postgres };

    let (event_tx, event_rx) = crossbeam_channel::unbounded::<EngineEvent>();
    let mut worker_txs = Vec::new();
    let mut worker_rxs = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded::<WorkerMsg>(2);
        worker_txs.push(tx);
        worker_rxs.push(rx);
    }
    let worker_rxs = Arc::new(worker_rxs);
    let timely_config = timely::Config::process(workers);
    let engine_config = config.clone();
    let guards = timely::execute(timely_config, move |worker| {
        let rx = worker_rxs[worker.index()].clone();
        let (inputs, probe) = engine::build(worker, &engine_config, event_tx.clone());
        let mut inputs = Some(inputs);
        let feed = |inputs: &mut Option<engine::Inputs>, msg: WorkerMsg| {
            let WorkerMsg::Epoch { epoch, mut raw, mut meta } = msg;
            if let Some(inputs) = inputs.as_mut() {
                inputs.raw.send_batch(&mut raw);
                inputs.meta.send_batch(&mut meta);
                inputs.raw.advance_to(epoch + 1);
                inputs.meta.advance_to(epoch + 1);
            }
        };
        loop {
            // Feed every epoch that is waiting; a closed channel closes the inputs, which lets
            // every frontier run to the end.
            loop {
                match rx.try_recv() {
                    Ok(msg) => feed(&mut inputs, msg),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        inputs = None;
                        break;
                    }
                }
            }
            worker.step();
            match &inputs {
                None if probe.done() => break,
                Some(i) if !probe.less_than(i.raw.time()) => {
                    // Caught up: wait for the next epoch instead of spinning.
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(msg) => feed(&mut inputs, msg),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => inputs = None,
                    }
                }
                _ => {}
            }
        }
    })
    .map_err(|e| anyhow::anyhow!("starting timely workers: {e}"))?;

    let (ack_tx, ack_rx) = crossbeam_channel::unbounded::<Durable>();
    let sent_at: Arc<Mutex<BTreeMap<u64, (Instant, serde_json::Value)>>> = Arc::default();
    let labels: PartitionLabels = Arc::default();
    let rebuild_through: RebuildThrough = Arc::new(AtomicI64::new(REBUILDING));
    let coordinator = {
        let stats = Arc::clone(&stats);
        let sent_at = Arc::clone(&sent_at);
        let job = spec.name.clone();
        let handle = tokio.handle().clone();
        let coordinator = Coordinator { job, workers, postgres, parquet, kafka, replay, kafka_caught_up: false, rebuild_through: Arc::clone(&rebuild_through), live, dead_letters, stats, sent_at, partitions: Arc::clone(&labels), handle };
        std::thread::Builder::new().name("coordinator".into()).spawn(move || coordinator.run(event_rx, ack_tx))?
    };

    let mut driver = Driver {
        spec: &spec,
        sources,
        encodings,
        partition_encodings,
        partitions: Vec::new(),
        by_source: BTreeMap::new(),
        worker_txs,
        stats: Arc::clone(&stats),
        sent_at,
        labels,
        pending_meta: Vec::new(),
        horizon_ms,
        epoch: 0,
        durable_through: None,
        rebuild_through: Arc::clone(&rebuild_through),
        held: Vec::new(),
        replay_end: replay_end_ms,
    };
    stats.running.store(true, Ordering::Relaxed);
    let result = driver.run(&stop, &ack_rx);
    // Closing the workers' channels ends the dataflow once everything sent is processed.
    let driver_epochs = driver.epoch;
    drop(driver.worker_txs.drain(..).collect::<Vec<_>>());
    guards.join().into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| anyhow::anyhow!("timely worker failed: {e}"))?;
    let coordinator_result = coordinator.join().map_err(|_| anyhow::anyhow!("coordinator thread panicked"))?;
    // The last acknowledgements: commit them.
    while let Ok(ack) = ack_rx.try_recv() {
        driver.on_durable(ack)?;
    }
    result?;
    coordinator_result?;
    Ok(RunSummary {
        epochs: driver_epochs,
        records_in: stats.records_in.load(Ordering::Relaxed),
        dead_letters: stats.dead_letters.load(Ordering::Relaxed),
    })
}

/// The engine's settings for a job (`decode` with the text sources' profiles filled in).
fn engine_config(spec: &JobSpec, decode: observebridge_dataflows::decode::DecodeConfig, library: Vec<LibraryEntry>) -> EngineConfig {
    EngineConfig {
        lateness_ms: spec.lateness.as_millis() as i64,
        raw_archive: spec.views.raw_archive.as_ref().map(|r| observebridge_dataflows::views::raw_archive::RawArchiveConfig {
            signals: r.signals.iter().copied().collect(),
            location: spec.sinks.parquet.as_ref().map_or_else(String::new, |p| p.url.clone()),
        }),
        decode,
        metric_1m: spec.views.metric_1m.as_ref().map(|m| Metric1m { window_ms: m.window.as_millis() as i64 }),
        service_call: spec.views.service_call_5m.as_ref().map(|c| ServiceCallConfig {
            pairing: PairingConfig { wait_ms: c.pairing_wait.as_millis() as i64, window_ms: c.window.as_millis() as i64, caller: c.caller },
            graph: CallGraphConfig { active_ms: c.active.as_millis() as i64 },
            max_hops: c.max_hops,
        }),
        log_pattern: spec.views.log_pattern_5m.as_ref().map(|l| LogPatternConfig {
            window_ms: l.window.as_millis() as i64,
            miner: l.miner.clone(),
            new_within_ms: l.new_within.as_millis() as i64,
            library: Arc::new(library),
        }),
        changes: spec.views.change_event.as_ref().map(|c| ChangesConfig {
            detect: ChangeConfig { max_objects: c.max_objects, service_label: c.service_label.clone(), ignore_autoscaler: c.ignore_autoscaler },
            correlation: spec.views.change_correlation.as_ref().map(|k| CorrelationConfig {
                bucket_ms: spec.views.service_call_5m.as_ref().map_or(300_000, |s| s.window.as_millis() as i64),
                before_ms: k.before.as_millis() as i64,
                after_ms: k.after.as_millis() as i64,
                baseline_ms: k.baseline.as_millis() as i64,
                lookback_ms: k.lookback.as_millis() as i64,
                sensitivity: k.sensitivity,
                min_calls: k.min_calls,
                min_baseline_buckets: k.min_baseline_windows,
                max_hops: k.max_hops,
                wait_ms: spec.views.service_call_5m.as_ref().map_or(0, |s| s.pairing_wait.as_millis() as i64),
                metrics: k.metrics.clone(),
            }),
        }),
    }
}

struct Driver<'a> {
    spec: &'a JobSpec,
    sources: Vec<Box<dyn Source>>,
    encodings: Vec<Option<Encoding>>,
    /// Per source, each partition's encoding, for sources whose partitions differ (a replay's
    /// archive: one partition per signal and format); empty for the others.
    partition_encodings: Vec<Vec<Encoding>>,
    partitions: Vec<PartitionState>,
    by_source: BTreeMap<(usize, u32), u32>,
    worker_txs: Vec<Sender<WorkerMsg>>,
    stats: Arc<Stats>,
    sent_at: Arc<Mutex<BTreeMap<u64, (Instant, serde_json::Value)>>>,
    /// Partition names and replay bounds, shared with the coordinator (dead letters name them).
    labels: PartitionLabels,
    /// Registrations of partitions discovered since the last epoch, sent with the next one.
    pending_meta: Vec<MetaEvent>,
    horizon_ms: i64,
    epoch: u64,
    durable_through: Option<u64>,
    /// See [`RebuildThrough`]; shared with the coordinator.
    rebuild_through: RebuildThrough,
    /// Records past a partition's re-read, held back until every partition finished its re-read,
    /// so that no epoch mixes re-read and new records: (partition id, record).
    held: Vec<(u32, RawRecord)>,
    /// A replay's end-of-input clock ([`ReplayOutput::end_max_ms`]), sent once its input is read.
    replay_end: Option<i64>,
}

impl Driver<'_> {
    fn run(&mut self, stop: &AtomicBool, acks: &Receiver<Durable>) -> Result<()> {
        let mut exhausted = vec![false; self.sources.len()];
        // Epoch 0 carries only the partitions known at start (with restored clocks), so that the
        // restored watermark is in place before any replayed record is judged late.
        self.discover_partitions();
        let meta = std::mem::take(&mut self.pending_meta);
        let rebuilding = self.partitions.iter().any(|p| !p.rebuilt);
        self.rebuild_through.store(if rebuilding { REBUILDING } else { NO_REBUILD }, Ordering::Relaxed);
        self.send_epoch(Vec::new(), meta)?;
        let mut buffer: Vec<RawRecord> = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Backpressure: never more than max_inflight epochs ahead of durability.
            loop {
                let inflight = self.epoch - self.durable_through.map_or(0, |d| d + 1);
                if (inflight as usize) < self.spec.epochs.max_inflight {
                    break;
                }
                match acks.recv_timeout(Duration::from_millis(100)) {
                    Ok(ack) => self.on_durable(ack)?,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => anyhow::bail!("the coordinator stopped"),
                }
            }
            while let Ok(ack) = acks.try_recv() {
                self.on_durable(ack)?;
            }

            let started = Instant::now();
            let deadline = started + self.spec.epochs.interval;
            let mut raw: Vec<RawMessage> = Vec::new();
            let mut touched: BTreeMap<u32, u64> = BTreeMap::new();
            let rebuilding = self.rebuild_through.load(Ordering::Relaxed) == REBUILDING;
            if !rebuilding {
                for (gid, record) in std::mem::take(&mut self.held) {
                    self.take_record(gid, record, &mut raw, &mut touched);
                }
            }
            while raw.len() < self.spec.epochs.max_records && Instant::now() < deadline && !exhausted.iter().all(|e| *e) {
                for s in 0..self.sources.len() {
                    if exhausted[s] {
                        continue;
                    }
                    let room = self.spec.epochs.max_records.saturating_sub(raw.len()).max(1);
                    let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)) / self.sources.len() as u32;
                    let poll = self.sources[s].poll(room.min(50_000), wait, &mut buffer).with_context(|| format!("source {}", self.spec.sources[s].name))?;
                    for record in buffer.drain(..) {
                        let gid = self.partition_id(s, record.partition)?;
                        let state = &mut self.partitions[gid as usize];
                        if rebuilding && record.offset >= state.replay_until {
                            state.rebuilt = true;
                            // Held, not idle: it must not stop holding the watermark back.
                            state.last_active = Instant::now();
                            self.held.push((gid, record));
                            continue;
                        }
                        if record.offset + 1 >= state.replay_until {
                            state.rebuilt = true;
                        }
                        self.take_record(gid, record, &mut raw, &mut touched);
                    }
                    if poll == Poll::Exhausted {
                        exhausted[s] = true;
                    }
                }
            }
            let now = Instant::now();
            self.discover_partitions();
            let mut meta = std::mem::take(&mut self.pending_meta);
            if exhausted.iter().all(|e| *e) {
                if let Some(end) = self.replay_end.take() {
                    // Registered before the real partitions end, so the watermark stops there.
                    meta.push(MetaEvent::Register { partition: REPLAY_END_PARTITION, max_ts: Some(end) });
                }
            }
            for (gid, state) in self.partitions.iter_mut().enumerate() {
                let gid = gid as u32;
                if let Some(first) = touched.get(&gid) {
                    state.last_active = now;
                    state.retained.push_back((self.epoch, *first, None));
                    if let Some(next) = state.next_offset {
                        state.epoch_ends.push_back((self.epoch, next));
                    }
                    if state.idle {
                        state.idle = false;
                        meta.push(MetaEvent::Idle { partition: gid, idle: false });
                    }
                } else if !state.idle && !state.ended && now.duration_since(state.last_active) >= self.spec.idle_timeout {
                    state.idle = true;
                    meta.push(MetaEvent::Idle { partition: gid, idle: true });
                }
                if exhausted[state.source] && !state.ended {
                    state.ended = true;
                    meta.push(MetaEvent::Ended { partition: gid });
                }
            }
            if rebuilding && self.partitions.iter().all(|p| p.rebuilt || p.idle || p.ended) {
                // This epoch is the last one of re-read records; held records go in the next.
                tracing::info!(epoch = self.epoch, held = self.held.len(), "re-read of records processed before the restart is complete");
                self.rebuild_through.store(self.epoch as i64, Ordering::Relaxed);
            }
            self.stats.records_in.fetch_add(raw.len() as u64, Ordering::Relaxed);
            self.sent_at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(self.epoch, (started, self.positions()));
            self.send_epoch(raw, meta)?;
            self.publish_status();
            if exhausted.iter().all(|e| *e) {
                return Ok(());
            }
        }
    }

    /// Registers partitions the sources have started reporting; their Register events wait in
    /// `pending_meta` for the next epoch.
    fn discover_partitions(&mut self) {
        for s in 0..self.sources.len() {
            for (local, info) in self.sources[s].partitions().into_iter().enumerate() {
                if self.by_source.contains_key(&(s, local as u32)) {
                    continue;
                }
                let gid = self.partitions.len() as u32;
                // Kafka and file sources carry what their spec says; the generator says it per partition.
                let encoding = match (self.encodings[s], self.partition_encodings[s].get(local)) {
                    (Some(encoding), _) | (None, Some(&encoding)) => encoding,
                    (None, None) => match Generator::partition_signal(local as u32).map(GeneratedSignal::name) {
                        Some("spans") => Encoding::new(Signal::Spans, WireFormat::OtlpProto),
                        Some("logs") => Encoding::new(Signal::Logs, WireFormat::OtlpProto),
                        Some("k8s") => Encoding::new(Signal::K8s, WireFormat::JsonLines),
                        _ => Encoding::new(Signal::Metrics, WireFormat::OtlpProto),
                    },
                };
                self.by_source.insert((s, local as u32), gid);
                if let Ok(mut labels) = self.labels.lock() {
                    labels.insert(gid, PartitionLabel { name: info.name.clone(), replay_until: info.replay_until.unwrap_or(0) });
                }
                self.partitions.push(PartitionState {
                    source: s,
                    local: local as u32,
                    name: info.name,
                    encoding,
                    last_active: Instant::now(),
                    idle: false,
                    ended: false,
                    next_offset: None,
                    epoch_ends: VecDeque::new(),
                    retained: VecDeque::new(),
                    durable_max: info.max_event_time,
                    replay_until: info.replay_until.unwrap_or(0),
                    rebuilt: info.replay_until.unwrap_or(0) == 0,
                    records: 0,
                });
                self.pending_meta.push(MetaEvent::Register { partition: gid, max_ts: info.max_event_time });
            }
        }
    }

    fn partition_id(&mut self, source: usize, local: u32) -> Result<u32> {
        if let Some(gid) = self.by_source.get(&(source, local)) {
            return Ok(*gid);
        }
        // A partition the source did not list yet: pick up the new listing.
        self.discover_partitions();
        self.by_source.get(&(source, local)).copied().ok_or_else(|| anyhow::anyhow!("source {} handed out a record of unknown partition {local}", self.spec.sources[source].name))
    }

    /// Adds a polled record to the epoch being cut.
    fn take_record(&mut self, gid: u32, record: RawRecord, raw: &mut Vec<RawMessage>, touched: &mut BTreeMap<u32, u64>) {
        let state = &mut self.partitions[gid as usize];
        state.next_offset = Some(record.offset + 1);
        state.records += 1;
        touched.entry(gid).or_insert(record.offset);
        raw.push(RawMessage { origin: Origin { partition: gid, offset: record.offset }, encoding: state.encoding, payload: record.payload });
    }

    /// Refreshes every partition's position and lag in the stats (for status and metrics).
    fn publish_status(&self) {
        let ends: Vec<Vec<Option<u64>>> = self.sources.iter().map(|s| s.end_offsets()).collect();
        let status = self
            .partitions
            .iter()
            .map(|p| {
                let end = ends[p.source].get(p.local as usize).copied().flatten();
                PartitionStatus {
                    source: self.spec.sources[p.source].name.clone(),
                    partition: p.name.clone(),
                    position: p.next_offset,
                    lag: end.map(|e| e.saturating_sub(p.next_offset.unwrap_or(0))),
                    signal: p.encoding.signal.name().to_string(),
                    records: p.records,
                }
            })
            .collect();
        if let Ok(mut partitions) = self.stats.partitions.lock() {
            *partitions = status;
        }
    }

    fn positions(&self) -> serde_json::Value {
        let map = self.partitions.iter().filter_map(|p| p.next_offset.map(|o| (p.name.clone(), serde_json::Value::from(o)))).collect();
        serde_json::Value::Object(map)
    }

    fn send_epoch(&mut self, raw: Vec<RawMessage>, meta: Vec<MetaEvent>) -> Result<()> {
        let workers = self.worker_txs.len();
        let mut shares: Vec<Vec<RawMessage>> = (0..workers).map(|_| Vec::new()).collect();
        for msg in raw {
            shares[msg.origin.partition as usize % workers].push(msg);
        }
        for (tx, share) in self.worker_txs.iter().zip(shares) {
            tx.send(WorkerMsg::Epoch { epoch: self.epoch, raw: share, meta: meta.clone() }).map_err(|_| anyhow::anyhow!("a timely worker stopped"))?;
        }
        self.epoch += 1;
        self.stats.epochs_sent.store(self.epoch, Ordering::Relaxed);
        Ok(())
    }

    /// Every epoch up to `ack.through` is durable in every sink: commit source positions, with
    /// the offset to re-read from after a restart (the first record that may still sit in a
    /// window that is not final).
    fn on_durable(&mut self, ack: Durable) -> Result<()> {
        for (epoch, partition, max) in &ack.partition_max {
            if let Some(state) = self.partitions.get_mut(*partition as usize) {
                if let Some(entry) = state.retained.iter_mut().find(|(e, _, _)| e == epoch) {
                    entry.2 = Some(entry.2.map_or(*max, |m| m.max(*max)));
                }
            }
        }
        let horizon = self.horizon_ms;
        let mut commits: BTreeMap<usize, Vec<PartitionCommit>> = BTreeMap::new();
        for state in &mut self.partitions {
            let mut next_offset = None;
            while let Some((epoch, next)) = state.epoch_ends.front().copied() {
                if epoch > ack.through {
                    break;
                }
                next_offset = Some(next);
                state.epoch_ends.pop_front();
            }
            for (epoch, _, max) in &state.retained {
                if *epoch <= ack.through {
                    state.durable_max = state.durable_max.max(*max);
                }
            }
            while let Some((epoch, _, max)) = state.retained.front() {
                // Every view's state about a record is gone once the watermark is one horizon
                // past it (its window, plus any wait, has ended).
                let in_final_windows = max.is_none_or(|m| ack.watermark.is_some_and(|wm| m.saturating_add(horizon) <= wm));
                if *epoch > ack.through || !in_final_windows {
                    break;
                }
                state.retained.pop_front();
            }
            let Some(next_offset) = next_offset else { continue };
            if next_offset < state.replay_until {
                // Still re-reading what the last run processed: its commit (at `replay_until`,
                // re-reading from where this run started) stays the right one. Committing this
                // lower position would move the partition back, and the records after it would
                // count as new yet sit behind the restored watermark.
                continue;
            }
            let restart_offset = state.retained.front().filter(|(e, _, _)| *e <= ack.through).map_or(next_offset, |(_, first, _)| *first);
            commits.entry(state.source).or_default().push(PartitionCommit { partition: state.local, next_offset, restart_offset, max_event_time: state.durable_max });
        }
        for (source, commits) in commits {
            tracing::debug!(source = %self.spec.sources[source].name, through = ack.through, ?commits, "committing source positions");
            self.sources[source].commit(&commits).with_context(|| format!("committing source {}", self.spec.sources[source].name))?;
        }
        self.durable_through = Some(ack.through);
        Ok(())
    }
}

struct Coordinator {
    job: String,
    workers: usize,
    postgres: Option<PostgresSink>,
    parquet: Option<ParquetSink>,
    /// View changelog topics.
    kafka: Option<KafkaViewSink>,
    /// A replay's output, instead of Postgres, Kafka and SQL.
    replay: Option<ReplayOutput>,
    /// Set once a frontier past what the Kafka topics held at startup was published: from then
    /// on every frontier is published.
    kafka_caught_up: bool,
    /// See [`RebuildThrough`].
    rebuild_through: RebuildThrough,
    /// The live views SQL reads; each frontier goes there once the sinks made it durable.
    live: Option<Arc<LiveViews>>,
    dead_letters: Box<dyn DeadLetterSink>,
    stats: Arc<Stats>,
    sent_at: Arc<Mutex<BTreeMap<u64, (Instant, serde_json::Value)>>>,
    partitions: PartitionLabels,
    handle: tokio::runtime::Handle,
}

impl Coordinator {
    /// Publishes a frontier's changes to the view topics, unless the topics already hold it. After
    /// a restart, the epochs of re-read records (processed before: the driver never mixes them
    /// with new ones) rebuild state whose changes were published, and so were frontiers up to
    /// the last run's progress marker when it published but did not commit its offsets;
    /// publishing them again would show consumers changes twice. For the marker, only partitions
    /// that resumed from a commit count; a source that cannot resume (the generator) is always
    /// published.
    fn publish_kafka(&mut self, frontier: &Frontier, changes: &[TableChanges]) -> Result<()> {
        let Some(kafka) = self.kafka.as_mut() else { return Ok(()) };
        let rebuild_through = self.rebuild_through.load(Ordering::Relaxed);
        if rebuild_through == REBUILDING || frontier.epoch as i64 <= rebuild_through {
            tracing::debug!(epoch = frontier.epoch, "frontier of re-read records only; not published again");
            return Ok(());
        }
        if !self.kafka_caught_up {
            let published_before = match (kafka.last_published().and_then(|p| p.as_object()), frontier.positions.as_object()) {
                (Some(marker), Some(positions)) => {
                    let labels = self.partitions.lock().map_err(|_| anyhow::anyhow!("partition table poisoned"))?;
                    let resumed = |name: &str| labels.values().any(|l| l.name == name && l.replay_until > 0);
                    positions.iter().all(|(name, at)| {
                        let marked = marker.get(name).and_then(serde_json::Value::as_u64);
                        resumed(name) && at.as_u64().zip(marked).is_some_and(|(at, marked)| at <= marked)
                    })
                }
                _ => false,
            };
            if published_before {
                tracing::debug!(epoch = frontier.epoch, "frontier already on the view topics; not published again");
                return Ok(());
            }
            self.kafka_caught_up = true;
        }
        let stats = Arc::clone(&self.stats);
        let started = Instant::now();
        kafka
            .publish_with_retry(frontier, changes, |attempt, error| {
                stats.sink_retry("kafka");
                tracing::warn!(sink = "kafka", attempt, %error, "kafka unavailable; ingestion paused, retrying");
            })
            .context("kafka sink")?;
        self.stats.sink_committed("kafka", frontier, started.elapsed());
        Ok(())
    }

    fn run(mut self, events: Receiver<EngineEvent>, acks: Sender<Durable>) -> Result<()> {
        let mut frontiers: Vec<Option<Option<u64>>> = vec![None; self.workers];
        let mut pending: BTreeMap<u64, Vec<EpochReport>> = BTreeMap::new();
        let mut applied_through: Option<u64> = None;
        let mut watermark: Option<EventTime> = None;
        for event in events.iter() {
            match event {
                EngineEvent::Epoch(report) => pending.entry(report.epoch).or_default().push(report),
                EngineEvent::Frontier { worker, frontier } => frontiers[worker] = Some(frontier),
            }
            if frontiers.iter().any(|f| f.is_none()) {
                continue;
            }
            // Epochs before every worker's frontier are complete; once all workers are done,
            // every epoch the driver sent is.
            let all_done = frontiers.iter().all(|f| matches!(f, Some(None)));
            let complete = if all_done {
                self.stats.epochs_sent.load(Ordering::Relaxed)
            } else {
                frontiers.iter().filter_map(|f| f.flatten()).min().unwrap_or(0)
            };
            match complete.checked_sub(1) {
                Some(through) if applied_through.is_none_or(|a| a < through) => {
                    let later = pending.split_off(&(through + 1));
                    let reports: Vec<EpochReport> = std::mem::replace(&mut pending, later).into_values().flatten().collect();
                    for w in reports.iter().filter_map(|r| r.watermark) {
                        watermark = Some(watermark.map_or(w, |x| x.max(w)));
                    }
                    let partition_max = reports.iter().flat_map(|r| r.partition_max.iter().map(|(p, t)| (r.epoch, *p, *t))).collect();
                    if let Ok(mut counters) = self.stats.counters.lock() {
                        for r in &reports {
                            for (name, v) in &r.counters {
                                counters.insert((name, r.worker), *v);
                            }
                        }
                    }
                    if let Ok(mut live) = self.stats.live_state.lock() {
                        for r in &reports {
                            for (view, n) in &r.live_state {
                                live.insert((view, r.worker), *n);
                            }
                        }
                    }
                    self.apply(through, watermark, reports)?;
                    applied_through = Some(through);
                    if let Some(w) = watermark {
                        self.stats.watermark.store(w, Ordering::Relaxed);
                    }
                    let _ = acks.send(Durable { through, watermark, partition_max });
                }
                _ => {}
            }
            if all_done {
                break;
            }
        }
        Ok(())
    }

    /// Makes epochs up to `through` durable in every sink.
    fn apply(&mut self, through: u64, watermark: Option<EventTime>, reports: Vec<EpochReport>) -> Result<()> {
        let mut changes: Vec<TableChanges> = Vec::new();
        let mut finals: Vec<FinalWindow> = Vec::new();
        let mut dead: Vec<DeadLetterRecord> = Vec::new();
        let mut reports = reports;
        reports.sort_by_key(|r| (r.epoch, r.worker));
        for report in reports {
            self.stats.decoded.fetch_add(report.decoded, Ordering::Relaxed);
            for v in report.views {
                self.stats.rows_upserted.fetch_add(v.upserts.num_rows() as u64, Ordering::Relaxed);
                self.stats.rows_deleted.fetch_add(v.deletes.num_rows() as u64, Ordering::Relaxed);
                changes.push(TableChanges { table: v.view.to_string(), key_columns: v.key_columns.iter().map(|k| k.to_string()).collect(), upserts: v.upserts, deletes: v.deletes });
            }
            for f in report.finals {
                finals.push(FinalWindow { view: f.view.to_string(), window_start_ms: f.window_start, rows: f.rows });
            }
            if report.dead_letters.is_empty() {
                continue;
            }
            let labels = self.partitions.lock().map_err(|_| anyhow::anyhow!("partition table poisoned"))?;
            for d in report.dead_letters {
                let label = labels.get(&d.origin.partition);
                if d.origin.offset < label.map_or(0, |l| l.replay_until) {
                    // Re-read after a restart only to rebuild state: already dead-lettered before.
                    continue;
                }
                if d.kind == "late" {
                    self.stats.late.fetch_add(1, Ordering::Relaxed);
                }
                let name = label.map_or("", |l| l.name.as_str());
                if let Ok(mut by_reason) = self.stats.dead_letters_by_reason.lock() {
                    *by_reason.entry(d.kind.to_string()).or_default() += 1;
                }
                dead.push(DeadLetterRecord::new(&d.kind, &d.reason, name, d.origin.offset, &d.payload));
            }
        }
        let stats = Arc::clone(&self.stats);
        let positions = self.sent_at.lock().ok().and_then(|s| s.range(..=through).next_back().map(|(_, (_, p))| p.clone())).unwrap_or_default();
        let frontier = Frontier { job: self.job.clone(), epoch: through, watermark_ms: watermark, positions };
        if !dead.is_empty() {
            self.dead_letters.write(&dead).context("writing dead letters")?;
            self.stats.dead_letters.fetch_add(dead.len() as u64, Ordering::Relaxed);
        }
        self.handle.block_on(async {
            if let Some(pg) = &self.postgres {
                let started = Instant::now();
                pg.apply_with_retry(&frontier, &changes, |attempt, error| {
                    stats.sink_retry("postgres");
                    tracing::warn!(sink = "postgres", attempt, %error, "postgres unavailable; ingestion paused, retrying");
                })
                .await
                .context("postgres sink")?;
                stats.sink_committed("postgres", &frontier, started.elapsed());
            }
            if let Some(pq) = &self.parquet {
                let started = Instant::now();
                for window in &finals {
                    if let Some(replay) = &self.replay {
                        let raw = window.view.starts_with("raw/");
                        let outside = window.window_start_ms < replay.from_ms || window.window_start_ms >= replay.to_ms;
                        let owned = if raw { replay.write_raw } else { replay.parquet_views.contains(&window.view) };
                        if outside || !owned {
                            continue;
                        }
                        if let Ok(mut written) = replay.written.lock() {
                            written.push((window.view.clone(), window.window_start_ms));
                        }
                    }
                    let key = pq
                        .write(window, |attempt, error| {
                            stats.sink_retry("parquet");
                            tracing::warn!(sink = "parquet", attempt, %error, "object store unavailable; retrying");
                        })
                        .await
                        .context("parquet sink")?;
                    tracing::debug!(view = %window.view, key, "final window written");
                    stats.windows_written.fetch_add(1, Ordering::Relaxed);
                }
                stats.sink_committed("parquet", &frontier, started.elapsed());
            }
            Ok::<_, anyhow::Error>(())
        })?;
        if self.kafka.is_some() {
            self.publish_kafka(&frontier, &changes)?;
        }
        if let Some(live) = &self.live {
            apply_live(live, &frontier, &changes);
        }
        if let Some(replay) = &self.replay {
            apply_live(&replay.views, &frontier, &changes);
        }
        if let Ok(mut views) = self.stats.views.lock() {
            for c in &changes {
                if !views.contains(&c.table) {
                    views.insert(c.table.clone());
                }
            }
        }
        self.stats.last_durable_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.stats.epochs_durable.store(through + 1, Ordering::Relaxed);
        if let Ok(mut sent) = self.sent_at.lock() {
            let now = Instant::now();
            let mut fresh = self.stats.freshness_ms.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let keep = sent.split_off(&(through + 1));
            for (_, (at, _)) in std::mem::replace(&mut *sent, keep) {
                fresh.push(now.duration_since(at).as_secs_f64() * 1000.0);
            }
        }
        Ok(())
    }
}

/// Starts SQL when the spec asks for it (the default): registers every view the job computes,
/// then serves pgwire and HTTP on the i/o runtime and prints how to connect. A listener that
/// cannot bind (its port is taken) is reported and the job runs without SQL: queries are a
/// window on the outputs, not worth stopping the pipeline for.
fn start_sql(spec: &JobSpec, tokio: &tokio::runtime::Runtime, stats: &Stats) -> Result<(Option<Arc<LiveViews>>, Option<SqlServer>)> {
    use observebridge_dataflows::views::ViewRow;
    use observebridge_dataflows::views::{blast_radius, call_graph_active, change_event, correlation, log_pattern, metric_1m, service_call_5m};
    fn register<R: ViewRow>(live: &LiveViews) -> Result<()> {
        live.register(R::VIEW, R::schema(), R::KEY_COLUMNS).with_context(|| format!("registering view {} for sql", R::VIEW))
    }
    if !spec.sql.enabled {
        return Ok((None, None));
    }
    let live = LiveViews::new();
    live.set_retention(Some(spec.sql.live_retention));
    let views = &spec.views;
    if views.metric_1m.is_some() {
        register::<metric_1m::Metric1mRow>(&live)?;
    }
    if views.service_call_5m.is_some() {
        register::<service_call_5m::ServiceCall5mRow>(&live)?;
        register::<call_graph_active::CallGraphActiveRow>(&live)?;
        register::<call_graph_active::TopoEdgeTimeRow>(&live)?;
        register::<blast_radius::BlastRadiusRow>(&live)?;
    }
    if views.log_pattern_5m.is_some() {
        register::<log_pattern::LogPatternRow>(&live)?;
        register::<log_pattern::LogPattern5mRow>(&live)?;
        register::<log_pattern::LogPatternNewRow>(&live)?;
    }
    if views.change_event.is_some() {
        register::<change_event::ChangeEventRow>(&live)?;
    }
    if views.raw_archive.is_some() {
        register::<observebridge_dataflows::views::raw_archive::RawLocatorRow>(&live)?;
    }
    if views.change_correlation.is_some() {
        register::<correlation::ChangeImpactRow>(&live)?;
        register::<correlation::RegressionRow>(&live)?;
        register::<correlation::RegressionSuspectRow>(&live)?;
    }
    let mut config = spec.sql.clone();
    if config.history.is_none() {
        config.history = spec.sinks.parquet.clone();
    }
    match tokio.block_on(observebridge_sql::serve(config, Arc::clone(&live))) {
        Ok(server) => {
            eprintln!("{}", server.connect_hint());
            Ok((Some(live), Some(server)))
        }
        Err(error @ ServeError::Bind { .. }) => {
            tracing::error!(%error, "sql is not served");
            stats.warn(format!("sql is not served: {error}"));
            eprintln!("warning: {error}; the job runs without SQL (set sql.pg_listen and sql.http_listen, or sql: {{ enabled: false }})");
            Ok((None, None))
        }
        Err(error) => Err(anyhow::Error::new(error)),
    }
}

/// Hands a durable frontier to the live views. A table nobody registered (a view added to the
/// engine but not to `start_sql`) is registered from its rows' schema first, so that it never
/// holds the other views back; failures are logged, never fatal: the sinks have the frontier.
fn apply_live(live: &LiveViews, frontier: &Frontier, changes: &[TableChanges]) {
    let snapshot = live.snapshot();
    let mut known: Vec<&TableChanges> = Vec::with_capacity(changes.len());
    for change in changes {
        if snapshot.table(&change.table).is_none() {
            let keys: Vec<&str> = change.key_columns.iter().map(String::as_str).collect();
            if change.upserts.num_rows() == 0 {
                continue;
            }
            if let Err(error) = live.register(&change.table, change.upserts.schema(), &keys) {
                tracing::error!(view = %change.table, %error, "view not registered for sql; its changes are skipped");
                continue;
            }
            tracing::warn!(view = %change.table, "view registered for sql from its first rows");
        }
        known.push(change);
    }
    let known: Vec<TableChanges> = known.into_iter().cloned().collect();
    if let Err(error) = live.apply(frontier, &known) {
        tracing::error!(epoch = frontier.epoch, %error, "live views for sql not updated");
    }
}
