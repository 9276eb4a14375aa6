//! Batch replay: a job's dataflows over a window `[from, to)` read back from object storage
//! (the raw archive, or the OpenTelemetry Collector's S3 exporter files), its rows rewritten in
//! the job's sinks.
//!
//! - **Reading.** [`plan`] checks the window (its bounds on every windowed view's boundary) and
//!   adds a warm-up before it (the job's state horizon: pairing waits, the active graph,
//!   correlation baselines and lookbacks) and a tail after it (records after `to` that still
//!   complete something inside: a server span, a change's after-window). Only the hour prefixes
//!   of that range are listed, only the signals the job's views read.
//! - **Running.** [`runtime::replay`] runs the same engine as the live job, as fast as the
//!   machine goes; at the end of the input every window is final.
//! - **Writing.** Parquet: windows starting in `[from, to)` are written under their usual names
//!   (replacing the live run's objects), and objects of the window the replay did not produce are
//!   deleted. Postgres, in one transaction ([`PostgresSink::rewrite`]): for each view, rows
//!   anchored in `[from, to)` (bucket, detected_at, started_at, first_seen, t_from) that the
//!   replay did not produce are deleted, the others inserted or updated where they differ; the
//!   template library (`log_pattern`) is merged. The views that describe "now" rather than a
//!   window (`call_graph_active`, `blast_radius`, `topo_edge_time`, `log_pattern_new`: their rows
//!   come and go as the live watermark moves) belong to the live job and are left alone, and so
//!   are the correlation views (see [`rewritable`]).
//! - **Progress.** A bar with objects, bytes, records and ETA on a terminal, a log line every few
//!   seconds otherwise; a [`ReplaySummary`] at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use observebridge_connectors::archive::{ArchiveConfig, ArchiveProgress, ArchiveSignal, ArchiveSource, Layout, OnError, ProgressSnapshot, Window, list};
use observebridge_connectors::parquet::{ObjectStoreConfig, ParquetSink};
use observebridge_connectors::postgres::{PostgresSink, RewriteCounts, RewriteMode, ViewRewrite};
use observebridge_sql::LiveViews;

use crate::job::JobSpec;
use crate::runtime::{self, ReplayOutput, Stats};

/// What to replay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// First event time of the window (ms since the Unix epoch).
    pub from_ms: i64,
    /// End of the window (exclusive).
    pub to_ms: i64,
    /// Where the input is (`s3://bucket/prefix`, `file:///dir` or a path); default: the job's
    /// Parquet sink, whose `raw/` holds the raw archive. Endpoint and credentials come from the
    /// job's Parquet sink.
    #[serde(default)]
    pub source: Option<String>,
    /// `raw_archive` (default) or `collector`.
    #[serde(default)]
    pub layout: Layout,
    /// For `collector`: the exporter's `s3_partition_format`.
    #[serde(default)]
    pub partition_format: Option<String>,
    /// `stop` (default) or `skip` a missing or unreadable object.
    #[serde(default)]
    pub on_error: OnError,
}

/// How a replay reads: the window with its margins, and what it reads.
#[derive(Clone, Debug)]
pub struct ReplayPlan {
    pub window: Window,
    pub archive: ArchiveConfig,
    /// The views rewritten in Postgres and how.
    pub rewrites: Vec<(&'static str, &'static [&'static str], RewriteMode)>,
    /// Views whose Parquet objects the replay rewrites.
    pub parquet_views: Vec<&'static str>,
}

/// What a replay did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub from_ms: i64,
    pub to_ms: i64,
    pub warmup_ms: i64,
    pub tail_ms: i64,
    /// Objects listed for the window, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// List requests made (one per signal and hour prefix).
    pub list_requests: usize,
    /// Records read.
    pub records: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    /// Objects that could not be read and were skipped (`on_error: skip`): key and reason.
    pub skipped: Vec<(String, String)>,
    /// Records that could not be used (in the job's dead-letter output).
    pub dead_letters: u64,
    /// Per view: rows removed, changed and unchanged in Postgres.
    pub postgres: BTreeMap<String, RewriteCounts>,
    /// Parquet objects written and deleted.
    pub parquet_written: Vec<String>,
    pub parquet_deleted: Vec<String>,
    /// Things the user should know (a sink the replay does not write, ...).
    pub notes: Vec<String>,
}

/// The views a replay rewrites in Postgres: name, key columns (as the view declares them) and
/// the column that places a row in a window.
fn rewritable(spec: &JobSpec) -> Vec<(&'static str, &'static [&'static str], Option<&'static str>)> {
    use observebridge_dataflows::views::ViewRow;
    use observebridge_dataflows::views::{change_event, log_pattern, metric_1m, raw_archive, service_call_5m};
    let views = &spec.views;
    let mut out: Vec<(&'static str, &'static [&'static str], Option<&'static str>)> = Vec::new();
    if views.metric_1m.is_some() {
        out.push((metric_1m::Metric1mRow::VIEW, metric_1m::Metric1mRow::KEY_COLUMNS, Some("bucket")));
    }
    if views.service_call_5m.is_some() {
        out.push((service_call_5m::ServiceCall5mRow::VIEW, service_call_5m::ServiceCall5mRow::KEY_COLUMNS, Some("bucket")));
    }
    if views.log_pattern_5m.is_some() {
        out.push((log_pattern::LogPattern5mRow::VIEW, log_pattern::LogPattern5mRow::KEY_COLUMNS, Some("bucket")));
        // The template library: merged, never deleted.
        out.push((log_pattern::LogPatternRow::VIEW, log_pattern::LogPatternRow::KEY_COLUMNS, None));
    }
    if views.change_event.is_some() {
        out.push((change_event::ChangeEventRow::VIEW, change_event::ChangeEventRow::KEY_COLUMNS, Some("detected_at")));
    }
    // Not the correlation views (change_impact, regression, regression_suspect): which neighbours
    // a change's impact covers depends on the active graph at the moment it is computed, and that
    // still depends on how the input is cut into epochs, so a replay would not reproduce the live
    // rows (tests/replay.rs shows it). They stay as the live job wrote them.
    if views.raw_archive.is_some() {
        out.push((raw_archive::RawLocatorRow::VIEW, raw_archive::RawLocatorRow::KEY_COLUMNS, Some("t_from")));
    }
    out
}

/// Checks a request against the job and works out what to read. Every problem is an error
/// naming the flag and the reason; nothing is read yet.
pub fn plan(spec: &JobSpec, request: &ReplayRequest) -> Result<ReplayPlan> {
    let (from, to) = (request.from_ms, request.to_ms);
    anyhow::ensure!(from < to, "--from ({}) must be before --to ({})", format_ms(from), format_ms(to));
    // A window that cuts a view's window in two would rewrite half-computed rows.
    let views = &spec.views;
    let windows = [
        views.metric_1m.as_ref().map(|m| ("metric_1m", m.window)),
        views.service_call_5m.as_ref().map(|s| ("service_call_5m", s.window)),
        views.log_pattern_5m.as_ref().map(|l| ("log_pattern_5m", l.window)),
    ];
    for (view, size) in windows.into_iter().flatten() {
        let size = size.as_millis() as i64;
        for (flag, at) in [("--from", from), ("--to", to)] {
            anyhow::ensure!(
                size > 0 && at.rem_euclid(size) == 0,
                "{flag} {} is not on a {} boundary ({view}'s window); use {} or {}",
                format_ms(at),
                format!("{}s", size / 1000),
                format_ms(at - at.rem_euclid(size)),
                format_ms(at - at.rem_euclid(size) + size)
            );
        }
    }
    let store = match (&request.source, &spec.sinks.parquet) {
        (Some(url), Some(sink)) => ObjectStoreConfig { url: url.clone(), ..sink.clone() },
        (Some(url), None) => ObjectStoreConfig { url: url.clone(), ..ObjectStoreConfig::default() },
        (None, Some(sink)) => sink.clone(),
        (None, None) => anyhow::bail!("the job has no sinks.parquet (where its raw archive would be); give --source"),
    };
    let mut signals = BTreeSet::new();
    if views.metric_1m.is_some() {
        signals.insert(ArchiveSignal::Metrics);
    }
    if views.service_call_5m.is_some() {
        signals.insert(ArchiveSignal::Spans);
    }
    if views.log_pattern_5m.is_some() {
        signals.insert(ArchiveSignal::Logs);
    }
    if views.change_event.is_some() {
        signals.insert(ArchiveSignal::K8s);
    }
    // The raw archive's signals too: its `raw_locator` rows are the window's as well.
    if let Some(raw) = &views.raw_archive {
        signals.extend(raw.signals.iter().map(|s| runtime::archive_signal(*s)));
    }
    if request.layout == Layout::Collector {
        // The Collector exports traces, metrics and logs; Kubernetes changes are not among them.
        signals.remove(&ArchiveSignal::K8s);
    }
    anyhow::ensure!(!signals.is_empty(), "the job has no view a replay can feed from the {:?} layout", request.layout);
    let archive = ArchiveConfig {
        store,
        layout: request.layout,
        signals: Some(signals),
        partition_format: request.partition_format.clone(),
        on_error: request.on_error,
        ..ArchiveConfig::new(ObjectStoreConfig::default())
    };
    archive.validate().context("replay source")?;

    // Records after `to` that still complete something inside the window: a server span within
    // the pairing wait, a change's after-window. The Collector partitions files by the time it
    // wrote them, which trails event time by up to the allowed lateness.
    let lag = if request.layout == Layout::Collector { spec.lateness.as_millis() as i64 } else { 0 };
    let window = Window { from_ms: from, to_ms: to, warmup_ms: runtime::state_horizon_ms(spec), tail_ms: settle_ms(spec) + lag };
    window.validate().context("replay window")?;

    let rewrites = rewritable(spec)
        .into_iter()
        .map(|(view, keys, anchor)| {
            let mode = match anchor {
                Some(column) => RewriteMode::Window { column: column.to_owned(), from_ms: from, to_ms: to },
                None => RewriteMode::Merge { least: vec!["first_seen".into()], greatest: vec!["last_seen".into()] },
            };
            (view, keys, mode)
        })
        .collect();
    let parquet_views = ["metric_1m", "service_call_5m", "log_pattern_5m", "change_event"]
        .into_iter()
        .filter(|v| match *v {
            "metric_1m" => views.metric_1m.is_some(),
            "service_call_5m" => views.service_call_5m.is_some(),
            "log_pattern_5m" => views.log_pattern_5m.is_some(),
            _ => views.change_event.is_some(),
        })
        .collect();
    Ok(ReplayPlan { window, archive, rewrites, parquet_views })
}

/// How far past the window's end event time must go for everything inside it to be settled: a
/// server span within the pairing wait, a change's after-window.
fn settle_ms(spec: &JobSpec) -> i64 {
    let views = &spec.views;
    let wait = views.service_call_5m.as_ref().map_or(0, |s| s.pairing_wait.as_millis() as i64);
    let after = views.change_correlation.as_ref().map_or(0, |c| (c.after.as_millis() as i64) + views.service_call_5m.as_ref().map_or(300_000, |s| s.window.as_millis() as i64));
    wait.max(after)
}

/// Runs a replay to the end and rewrites the window in the job's sinks. `progress` is called
/// about twice a second with the reading counters and once at the end.
pub fn replay(spec: JobSpec, request: &ReplayRequest, stop: Arc<AtomicBool>, mut progress: impl FnMut(&ProgressSnapshot) + Send) -> Result<ReplaySummary> {
    let plan = plan(&spec, request)?;
    let started = Instant::now();
    let listing = list(&plan.archive, &plan.window).context("listing the replay window")?;
    let mut summary = ReplaySummary {
        from_ms: plan.window.from_ms,
        to_ms: plan.window.to_ms,
        warmup_ms: plan.window.warmup_ms,
        tail_ms: plan.window.tail_ms,
        objects: listing.objects.len() as u64,
        bytes: listing.total_bytes(),
        list_requests: listing.prefixes.len(),
        ..ReplaySummary::default()
    };
    tracing::info!(objects = summary.objects, bytes = summary.bytes, list_requests = summary.list_requests, warmup_ms = summary.warmup_ms, tail_ms = summary.tail_ms, "replay window listed");
    for (key, reason) in &listing.ignored {
        tracing::warn!(key = key.as_str(), reason = reason.as_str(), "object in the window ignored");
    }
    let source = ArchiveSource::new("replay", &plan.archive, listing, archived_rows()).context("opening the replay source")?;
    let counters: Arc<ArchiveProgress> = source.progress();

    let views = LiveViews::new();
    views.set_retention(None);
    let written: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let output = ReplayOutput {
        from_ms: plan.window.from_ms,
        to_ms: plan.window.to_ms,
        write_raw: request.layout == Layout::Collector,
        views: Arc::clone(&views),
        written: Arc::clone(&written),
        parquet_views: plan.parquet_views.iter().map(|v| v.to_string()).collect(),
        // The watermark ends one settle past the window (and a millisecond, so that a window
        // ending there is passed).
        end_max_ms: plan.window.to_ms + settle_ms(&spec) + spec.lateness.as_millis() as i64 + 1,
        // Evidence points at the archive the records were read from.
        raw_location: (request.layout == Layout::RawArchive).then(|| plan.archive.store.url.clone()),
    };
    let mut spec = spec;
    // A replay serves no SQL and publishes nothing to Kafka (see the notes).
    spec.sql.enabled = false;
    if spec.sinks.kafka.is_some() {
        summary.notes.push("sinks.kafka is not rewritten by a replay: the view topics keep what the live job published".to_owned());
    }
    let stats = Arc::new(Stats::default());
    let run = std::thread::scope(|scope| {
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (done, counters) = (Arc::clone(&done), Arc::clone(&counters));
            let progress = &mut progress;
            scope.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    progress(&counters.snapshot());
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        };
        let result = runtime::replay(spec.clone(), Arc::clone(&stop), Arc::clone(&stats), source, output);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = watcher.join();
        result
    });
    let run = run.context("replaying the window")?;
    let snapshot = counters.snapshot();
    progress(&snapshot);
    summary.records = snapshot.records;
    summary.dead_letters = run.dead_letters;
    summary.skipped = counters.skipped().into_iter().map(|s| (s.key, s.reason)).collect();
    if stop.load(std::sync::atomic::Ordering::Relaxed) {
        anyhow::bail!("the replay was stopped before the end of its input; nothing was rewritten in Postgres (Parquet windows written so far are complete)");
    }

    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the i/o runtime")?;
    // Parquet: objects of the window the replay did not produce are stale.
    if let Some(cfg) = &spec.sinks.parquet {
        let sink = ParquetSink::new(cfg).context("parquet sink")?;
        let written = written.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        let produced: BTreeSet<String> = written.iter().map(|(view, start)| ParquetSink::object_key(view, *start)).collect();
        summary.parquet_written = produced.iter().cloned().collect();
        summary.parquet_deleted = tokio.block_on(delete_stale(&sink, &plan, &produced))?;
    }
    // Postgres: the window's rows, in one transaction.
    if let Some(cfg) = &spec.sinks.postgres {
        let snapshot = views.snapshot();
        let mut rewrites = Vec::new();
        for (view, keys, mode) in &plan.rewrites {
            let rows = match snapshot.table(view) {
                Some(table) => table.batches().with_context(|| format!("reading the replay's {view} rows"))?,
                None => Vec::new(),
            };
            let rows = match mode {
                RewriteMode::Window { column, from_ms, to_ms } => rows.iter().map(|b| in_window(b, column, *from_ms, *to_ms)).collect::<Result<Vec<_>>>()?,
                RewriteMode::Merge { .. } => rows,
            };
            rewrites.push(ViewRewrite { table: view.to_string(), key_columns: keys.iter().map(|k| k.to_string()).collect(), rows, mode: mode.clone() });
        }
        let counts = tokio
            .block_on(async {
                let sink = PostgresSink::connect(cfg).await?;
                sink.migrate().await?;
                sink.rewrite(&rewrites).await
            })
            .context("rewriting the window in postgres")?;
        summary.postgres = rewrites.iter().map(|r| r.table.clone()).zip(counts).collect();
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.records_per_s = summary.records as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// The rows of `batch` whose timestamp `column` lies in `[from_ms, to_ms)`.
fn in_window(batch: &RecordBatch, column: &str, from_ms: i64, to_ms: i64) -> Result<RecordBatch> {
    let array = batch.column_by_name(column).with_context(|| format!("view rows have no column {column}"))?;
    let millis = arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let millis = arrow::compute::cast(&millis, &DataType::Int64)?;
    let from = arrow::array::Int64Array::new_scalar(from_ms);
    let to = arrow::array::Int64Array::new_scalar(to_ms);
    let keep = arrow::compute::and(&cmp::gt_eq(&millis, &from)?, &cmp::lt(&millis, &to)?)?;
    Ok(arrow::compute::filter_record_batch(batch, &keep)?)
}

/// Deletes the objects of the plan's views whose window starts in `[from, to)` and that the
/// replay did not write. Returns their keys.
async fn delete_stale(sink: &ParquetSink, plan: &ReplayPlan, produced: &BTreeSet<String>) -> Result<Vec<String>> {
    let (from, to) = (plan.window.from_ms, plan.window.to_ms);
    let store = sink.store();
    let mut deleted = Vec::new();
    let first_hour = from.div_euclid(3_600_000) * 3_600_000;
    for view in &plan.parquet_views {
        let mut hour = first_hour;
        while hour < to {
            // The hour's prefix, as the sink names it.
            let key = ParquetSink::object_key(view, hour);
            let dir = key.rsplit_once('/').map_or(key.as_str(), |(d, _)| d);
            let prefix = dir.split('/').fold(sink.prefix().clone(), |p, part| p.join(part));
            let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.with_context(|| format!("listing {prefix}"))?;
            for object in objects {
                let full = object.location.to_string();
                let Some(start) = ParquetSink::window_start(view, &full) else { continue };
                let relative = ParquetSink::object_key(view, start);
                if start < from || start >= to || produced.contains(&relative) {
                    continue;
                }
                store.delete(&object.location).await.with_context(|| format!("deleting stale object {full}"))?;
                tracing::info!(key = full.as_str(), "parquet object of the window not produced by the replay deleted");
                deleted.push(full);
            }
            hour += 3_600_000;
        }
    }
    Ok(deleted)
}

/// The raw archive's rows as the engine's `archived` payloads.
fn archived_rows() -> observebridge_connectors::archive::RowEncoder {
    Arc::new(|signal: ArchiveSignal, batch: &RecordBatch| observebridge_dataflows::decode::archived::payloads(runtime::engine_signal(signal), batch).map_err(|e| e.to_string()))
}

/// `2026-11-22T10:00:00Z`.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// Reads `2026-11-22T10:00:00Z` (RFC 3339) or milliseconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|e| format!("{text:?} is not an RFC 3339 time (2026-11-22T10:00:00Z) or milliseconds since the epoch: {e}"))
}
