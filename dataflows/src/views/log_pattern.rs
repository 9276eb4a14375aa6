//! `log_pattern` and `log_pattern_5m`: the template library and its counts.
//!
//! Log records are exchanged by tenant: each tenant has one [`Miner`] on one worker, which
//! masks every message and files it under a Drain-style template
//! ([`crate::logs::drain`]). Within an epoch the records are mined in `(event time, origin)`
//! order, so the library depends on which records arrive in which epoch, never on how they are
//! spread over workers or batched inside the epoch.
//!
//! - **`log_pattern`**, key `tenant, fingerprint_id`: the library: `pattern` (the template,
//!   `<*>` for variables), `sample_message`, `severity` (the worst seen), `first_seen`,
//!   `last_seen` (counts are in `log_pattern_5m`, where a restart cannot count a line twice).
//!   Updated as templates appear, generalise or are hit; retracted when the
//!   per-tenant cluster cap evicts a template. Fingerprint ids are stable: an id is a hash of the
//!   tenant and the masked tokens of the template's first line, kept as the template
//!   generalises, and the library is reloaded from this table at start
//!   ([`LogPatternConfig::library`]), so a restart or a replay gives the same ids.
//! - **`log_pattern_5m`**, key `bucket, tenant, resource, fingerprint_id`: `count_total`,
//!   `count_error` (severity ERROR or worse), `sample_ref`; the windowed operator's lateness,
//!   finality and bounded state. With the raw archive on, `sample_ref` names the row's line with
//!   the smallest `(event time, line_id)` as `<raw_locator id>#line_id=<hex>`
//!   ([`raw_archive::line_ref`]): the archive object of that line's minute, and the line in it
//!   (a minimum, so the same whatever the order and batching); else it is null.
//! - **`log_pattern_new`**, key `tenant, resource, fingerprint_id`: templates a service first
//!   logged within the last `new_within` (default 30 minutes) of event time, with `first_seen`;
//!   retracted once older. What the change correlation asks: "what is this service logging that
//!   it did not log before?"
//!
//! A line later than its 5-minute window allows is dead-lettered as `late` before mining, so
//! it changes neither the counts nor the library.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::raw_archive::{self, line_id};
use super::service_call_5m::timestamp_field;
use super::ViewRow;
use crate::logs::drain::{ClusterRecord, Miner, MinerConfig};
use crate::record::{DeadLetter, EventTime, LogRecord, Origin};
use crate::time::{window_is_final, window_start};
use crate::window::{epoch_by_epoch, fmt_ms, WindowedView};

/// A persisted template, as `log_pattern` holds it (for the library reload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryEntry {
    pub tenant: String,
    pub record: ClusterRecord,
    pub severity: u8,
}

/// Parameters of the log views.
#[derive(Clone, Debug)]
pub struct LogPatternConfig {
    pub window_ms: i64,
    pub miner: MinerConfig,
    /// A template counts as new for a service this long after the service first logged it.
    pub new_within_ms: i64,
    /// The library to start from (loaded from `log_pattern`), all tenants.
    pub library: Arc<Vec<LibraryEntry>>,
}

impl Default for LogPatternConfig {
    fn default() -> Self {
        Self { window_ms: 300_000, miner: MinerConfig::default(), new_within_ms: 1_800_000, library: Arc::default() }
    }
}

/// A line filed under a template: what `log_pattern_5m` counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PatternHit {
    pub tenant: String,
    pub resource: String,
    pub fingerprint: u64,
    pub ts: EventTime,
    pub error: bool,
    pub origin: Origin,
    /// The line's [`raw_archive::line_id`] (for `sample_ref`).
    pub line: u64,
}

/// One row of `log_pattern`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPatternRow {
    pub tenant: String,
    /// The fingerprint id (a u64, stored as its two's-complement i64 for Postgres' bigint).
    pub fingerprint_id: i64,
    pub pattern: String,
    pub sample_message: String,
    pub severity: String,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
}

/// One row of `log_pattern_new`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPatternNewRow {
    pub tenant: String,
    pub resource: String,
    pub fingerprint_id: i64,
    pub first_seen: EventTime,
}

/// What the mining operator emits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MineEvent {
    Hit(PatternHit),
    Pattern(LogPatternRow, isize),
    New(LogPatternNewRow, isize),
    Late(DeadLetter),
    /// Miner counters of this worker (cumulative): lines, clusters, generalisations, evictions, truncations.
    Counters([u64; 5]),
}

/// The OTLP severity name of a severity number.
pub fn severity_name(n: u8) -> &'static str {
    match n {
        0 => "UNSPECIFIED",
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        _ => "FATAL",
    }
}

fn severity_number(name: &str) -> u8 {
    match name {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => 0,
    }
}

impl LibraryEntry {
    /// The library entry of a `log_pattern` row.
    pub fn from_row(row: &LogPatternRow) -> Self {
        LibraryEntry {
            tenant: row.tenant.clone(),
            record: ClusterRecord {
                id: row.fingerprint_id as u64,
                template: row.pattern.split(' ').map(str::to_owned).collect(),
                // Counts live in log_pattern_5m (exact across restarts); the library keeps none.
                size: 0,
                first_seen: row.first_seen,
                last_seen: row.last_seen,
                sample: row.sample_message.clone(),
            },
            severity: severity_number(&row.severity),
        }
    }
}

/// One tenant's miner and what the views remember of its templates.
struct TenantLogs {
    miner: Miner,
    /// Worst severity seen per template.
    severity: HashMap<u64, u8>,
    /// The `log_pattern` row last emitted per template.
    emitted: HashMap<u64, LogPatternRow>,
    /// Per template, the services that logged it and when they first did (`log_pattern_new`).
    seen: HashMap<u64, HashMap<String, EventTime>>,
}

impl TenantLogs {
    /// A tenant's state, its miner restored from the tenant's part of the library.
    fn restore(tenant: &str, cfg: &LogPatternConfig) -> Self {
        let mut severity = HashMap::new();
        let mut records = Vec::new();
        for entry in cfg.library.iter().filter(|e| e.tenant == tenant) {
            severity.insert(entry.record.id, entry.severity);
            records.push(entry.record.clone());
        }
        let miner = Miner::restore(tenant, cfg.miner.clone(), records);
        let emitted = miner.clusters().map(|c| (c.id(), pattern_row(tenant, c.record(), severity.get(&c.id()).copied().unwrap_or(0)))).collect();
        Self { miner, severity, emitted, seen: HashMap::new() }
    }
}

/// The log state of one worker: a miner per tenant (usable without timely, for tests).
pub struct LogMining {
    cfg: LogPatternConfig,
    watermark: Option<EventTime>,
    tenants: BTreeMap<String, TenantLogs>,
    /// The rows of `log_pattern_new` currently emitted, by when they stop being new.
    new_until: BTreeSet<(EventTime, String, String, u64)>,
}

impl LogMining {
    pub fn new(cfg: LogPatternConfig) -> Self {
        Self { cfg, watermark: None, tenants: BTreeMap::new(), new_until: BTreeSet::new() }
    }

    /// Mines one epoch's records, then applies the epoch's new watermark, if any.
    pub fn step(&mut self, mut records: Vec<LogRecord>, watermark: Option<EventTime>, out: &mut Vec<MineEvent>) {
        records.sort_by(|a, b| (a.ts, a.origin).cmp(&(b.ts, b.origin)));
        let size = self.cfg.window_ms;
        // Templates whose pattern row may have changed, per tenant.
        let mut touched: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for record in records {
            let start = window_start(record.ts, size);
            if window_is_final(start, size, self.watermark) {
                out.push(MineEvent::Late(DeadLetter {
                    kind: "late".to_string(),
                    reason: format!(
                        "late log record: event time {} falls in window [{}, {}), which the watermark {} has already made final",
                        fmt_ms(record.ts),
                        fmt_ms(start),
                        fmt_ms(start + size),
                        self.watermark.map_or_else(String::new, fmt_ms)
                    ),
                    origin: record.origin,
                    payload: serde_json::to_vec(&record).unwrap_or_default(),
                }));
                continue;
            }
            if !self.tenants.contains_key(&record.tenant) {
                self.tenants.insert(record.tenant.clone(), TenantLogs::restore(&record.tenant, &self.cfg));
            }
            let tenant = self.tenants.get_mut(&record.tenant).expect("inserted");
            let m = tenant.miner.add(&record.message, record.ts);
            let severity = tenant.severity.entry(m.id).or_insert(0);
            *severity = (*severity).max(record.severity);
            let services = tenant.seen.entry(m.id).or_default();
            if !services.contains_key(&record.resource) {
                services.insert(record.resource.clone(), record.ts);
                self.new_until.insert((record.ts + self.cfg.new_within_ms, record.tenant.clone(), record.resource.clone(), m.id));
                let row = LogPatternNewRow { tenant: record.tenant.clone(), resource: record.resource.clone(), fingerprint_id: m.id as i64, first_seen: record.ts };
                out.push(MineEvent::New(row, 1));
            }
            let ids = match touched.get_mut(&record.tenant) {
                Some(ids) => ids,
                None => touched.entry(record.tenant.clone()).or_default(),
            };
            ids.insert(m.id);
            ids.extend(m.evicted);
            let error = record.is_error();
            let line = line_id(&record);
            out.push(MineEvent::Hit(PatternHit { tenant: record.tenant, resource: record.resource, fingerprint: m.id, ts: record.ts, error, origin: record.origin, line }));
        }
        for (name, ids) in touched {
            let Some(tenant) = self.tenants.get_mut(&name) else { continue };
            for id in ids {
                let row = tenant.miner.cluster(id).map(|c| pattern_row(&name, c.record(), tenant.severity.get(&id).copied().unwrap_or(0)));
                if tenant.emitted.get(&id) == row.as_ref() {
                    continue;
                }
                if let Some(old) = tenant.emitted.remove(&id) {
                    out.push(MineEvent::Pattern(old, -1));
                }
                match row {
                    Some(row) => {
                        out.push(MineEvent::Pattern(row.clone(), 1));
                        tenant.emitted.insert(id, row);
                    }
                    None => {
                        // Evicted: forget it everywhere.
                        tenant.severity.remove(&id);
                        tenant.seen.remove(&id);
                    }
                }
            }
        }
        if let Some(wm) = watermark {
            let wm = self.watermark.map_or(wm, |w| w.max(wm));
            self.watermark = Some(wm);
            while let Some(first) = self.new_until.first() {
                if first.0 > wm {
                    break;
                }
                let (until, tenant, resource, id) = self.new_until.pop_first().expect("first");
                let row = LogPatternNewRow { tenant, resource, fingerprint_id: id as i64, first_seen: until - self.cfg.new_within_ms };
                out.push(MineEvent::New(row, -1));
            }
        }
        let mut totals = [0u64; 5];
        for tenant in self.tenants.values() {
            let s = tenant.miner.stats();
            for (t, v) in totals.iter_mut().zip([s.lines, s.clusters_created, s.generalisations, s.evictions, s.truncations]) {
                *t += v;
            }
        }
        out.push(MineEvent::Counters(totals));
    }
}

fn pattern_row(tenant: &str, record: ClusterRecord, severity: u8) -> LogPatternRow {
    LogPatternRow {
        tenant: tenant.to_owned(),
        fingerprint_id: record.id as i64,
        pattern: record.template.join(" "),
        sample_message: record.sample,
        severity: severity_name(severity).to_owned(),
        first_seen: record.first_seen,
        last_seen: record.last_seen,
    }
}

/// Runs the miners over log records (exchanged by tenant) with the engine's watermark stream.
pub fn mine<'scope>(cfg: LogPatternConfig, records: StreamVec<'scope, u64, LogRecord>, watermarks: StreamVec<'scope, u64, EventTime>) -> StreamVec<'scope, u64, MineEvent> {
    let route = |r: &LogRecord| xxh3_64(r.tenant.as_bytes());
    let mut mining = LogMining::new(cfg);
    epoch_by_epoch("log_pattern", records, watermarks, route, move |records, watermark, out| mining.step(records, watermark, out))
}

/// The `log_pattern_5m` view: counts per window, service and template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPattern5m {
    pub window_ms: i64,
    /// Whether rows carry a `sample_ref` (the raw archive keeps logs).
    pub samples: bool,
}

/// The running counts of one `log_pattern_5m` row, and its sample: `(event time, line_id)` of the
/// smallest line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatternCounts {
    pub total: i64,
    pub errors: i64,
    pub sample: Option<(EventTime, u64)>,
}

/// One row of `log_pattern_5m`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPattern5mRow {
    pub bucket: EventTime,
    pub tenant: String,
    pub resource: String,
    pub fingerprint_id: i64,
    pub count_total: i64,
    pub count_error: i64,
    pub sample_ref: Option<String>,
}

fn hit_hash(hit: &PatternHit) -> u64 {
    let mut h = Xxh3::new();
    h.update(hit.tenant.as_bytes());
    h.update(&[0xff]);
    h.update(hit.resource.as_bytes());
    h.update(&hit.fingerprint.to_le_bytes());
    h.digest()
}

impl WindowedView for LogPattern5m {
    type Input = PatternHit;
    type Key = (String, String, u64);
    type Part = (bool, (EventTime, u64));
    type State = PatternCounts;
    type Row = LogPattern5mRow;

    fn window_ms(&self) -> i64 {
        self.window_ms
    }
    fn event_time(&self, input: &PatternHit) -> EventTime {
        input.ts
    }
    fn origin(&self, input: &PatternHit) -> Origin {
        input.origin
    }
    fn route(&self, input: &PatternHit) -> u64 {
        hit_hash(input)
    }
    fn split(&self, input: PatternHit) -> (Self::Key, Self::Part) {
        ((input.tenant, input.resource, input.fingerprint), (input.error, (input.ts, input.line)))
    }
    fn new_state(&self) -> PatternCounts {
        PatternCounts::default()
    }
    fn fold(&self, state: &mut PatternCounts, (error, line): Self::Part) {
        state.total += 1;
        if error {
            state.errors += 1;
        }
        state.sample = Some(state.sample.map_or(line, |s| s.min(line)));
    }
    fn row(&self, window_start: EventTime, key: &Self::Key, state: &PatternCounts) -> Option<LogPattern5mRow> {
        (state.total > 0).then(|| LogPattern5mRow {
            bucket: window_start,
            tenant: key.0.clone(),
            resource: key.1.clone(),
            fingerprint_id: key.2 as i64,
            count_total: state.total,
            count_error: state.errors,
            sample_ref: if self.samples { state.sample.map(|(ts, line)| raw_archive::line_ref(ts, line)) } else { None },
        })
    }
}

fn micros(values: impl Iterator<Item = EventTime>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values.map(|ms| ms * 1000)).with_timezone("UTC"))
}

impl ViewRow for LogPattern5mRow {
    const VIEW: &'static str = "log_pattern_5m";
    const KEY_COLUMNS: &'static [&'static str] = &["bucket", "tenant", "resource", "fingerprint_id"];
    type Key = (EventTime, String, String, i64);

    fn key(&self) -> Self::Key {
        (self.bucket, self.tenant.clone(), self.resource.clone(), self.fingerprint_id)
    }
    fn window_start(&self) -> Option<EventTime> {
        Some(self.bucket)
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            timestamp_field("bucket", false),
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("fingerprint_id", DataType::Int64, false),
            Field::new("count_total", DataType::Int64, false),
            Field::new("count_error", DataType::Int64, false),
            Field::new("sample_ref", DataType::Utf8, true),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            micros(rows.iter().map(|r| r.bucket)),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.tenant.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.resource.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.fingerprint_id))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.count_total))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.count_error))),
            Arc::new(rows.iter().map(|r| r.sample_ref.as_deref()).collect::<StringArray>()),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

impl ViewRow for LogPatternRow {
    const VIEW: &'static str = "log_pattern";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "fingerprint_id"];
    type Key = (String, i64);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.fingerprint_id)
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("fingerprint_id", DataType::Int64, false),
            Field::new("pattern", DataType::Utf8, false),
            Field::new("sample_message", DataType::Utf8, false),
            Field::new("severity", DataType::Utf8, false),
            timestamp_field("first_seen", false),
            timestamp_field("last_seen", false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.tenant.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.fingerprint_id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.pattern.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.sample_message.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.severity.as_str()))),
            micros(rows.iter().map(|r| r.first_seen)),
            micros(rows.iter().map(|r| r.last_seen)),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

impl ViewRow for LogPatternNewRow {
    const VIEW: &'static str = "log_pattern_new";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "resource", "fingerprint_id"];
    type Key = (String, String, i64);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.resource.clone(), self.fingerprint_id)
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("fingerprint_id", DataType::Int64, false),
            timestamp_field("first_seen", false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.tenant.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.resource.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.fingerprint_id))),
            micros(rows.iter().map(|r| r.first_seen)),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: EventTime = 1_800_000_000_000;

    fn line(resource: &str, ts: EventTime, severity: u8, message: &str, offset: u64) -> LogRecord {
        LogRecord {
            tenant: "default".into(),
            resource: format!("urn:k8s:svc:shop/{resource}"),
            ts,
            severity,
            message: message.into(),
            trace_id: None,
            origin: Origin { partition: 0, offset },
        }
    }

    fn hits(out: &[MineEvent]) -> Vec<&PatternHit> {
        out.iter().filter_map(|e| if let MineEvent::Hit(h) = e { Some(h) } else { None }).collect()
    }

    fn patterns(out: &[MineEvent]) -> Vec<(LogPatternRow, isize)> {
        out.iter().filter_map(|e| if let MineEvent::Pattern(r, d) = e { Some((r.clone(), *d)) } else { None }).collect()
    }

    fn sample_lines() -> Vec<LogRecord> {
        vec![
            line("cart", T0, 9, "user 1842 added item 77 to cart in 12ms", 1),
            line("cart", T0 + 1, 9, "user 99 added item 3 to cart in 7ms", 2),
            line("cart", T0 + 2, 17, "connection to 10.0.0.12:5432 refused after 3 retries", 3),
            line("cart", T0 + 3, 17, "connection to 10.0.0.7:5432 refused after 5 retries", 4),
        ]
    }

    #[test]
    fn lines_differing_only_in_variables_share_a_fingerprint_and_errors_are_flagged() {
        let mut mining = LogMining::new(LogPatternConfig::default());
        let mut out = Vec::new();
        mining.step(sample_lines(), None, &mut out);
        let h = hits(&out);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].fingerprint, h[1].fingerprint);
        assert_eq!(h[2].fingerprint, h[3].fingerprint);
        assert_ne!(h[0].fingerprint, h[2].fingerprint);
        assert_eq!(h.iter().map(|h| h.error).collect::<Vec<_>>(), [false, false, true, true]);
        let rows: BTreeMap<i64, LogPatternRow> = patterns(&out).into_iter().filter(|(_, d)| *d > 0).map(|(r, _)| (r.fingerprint_id, r)).collect();
        let err = &rows[&(h[2].fingerprint as i64)];
        assert_eq!((err.severity.as_str(), err.first_seen, err.last_seen), ("ERROR", T0 + 2, T0 + 3));
        assert!(err.pattern.contains("<*>"), "{}", err.pattern);
        assert_eq!(err.sample_message, "connection to 10.0.0.12:5432 refused after 3 retries");
    }

    #[test]
    fn a_reloaded_library_keeps_the_ids() {
        let mut first = LogMining::new(LogPatternConfig::default());
        let mut out = Vec::new();
        first.step(sample_lines(), None, &mut out);
        let ids: BTreeSet<u64> = hits(&out).iter().map(|h| h.fingerprint).collect();
        // What Postgres holds after the run: the last row of every template.
        let mut table: BTreeMap<(String, i64), LogPatternRow> = BTreeMap::new();
        for (row, diff) in patterns(&out) {
            if diff > 0 {
                table.insert((row.tenant.clone(), row.fingerprint_id), row);
            }
        }
        let library: Vec<LibraryEntry> = table.values().map(LibraryEntry::from_row).collect();
        let mut restarted = LogMining::new(LogPatternConfig { library: Arc::new(library), ..LogPatternConfig::default() });
        let mut out = Vec::new();
        restarted.step(
            vec![line("cart", T0 + 10, 9, "user 5 added item 6 to cart in 70ms", 9), line("cart", T0 + 11, 17, "connection to 10.0.0.99:5432 refused after 1 retries", 10)],
            None,
            &mut out,
        );
        let again: BTreeSet<u64> = hits(&out).iter().map(|h| h.fingerprint).collect();
        assert_eq!(again, ids);
        // The reloaded rows are updated (last_seen moves on), not duplicated.
        let updated = patterns(&out);
        assert!(updated.iter().any(|(r, d)| *d == -1 && r.last_seen == T0 + 3), "{updated:?}");
        assert!(updated.iter().any(|(r, d)| *d == 1 && r.last_seen == T0 + 11), "{updated:?}");
    }

    #[test]
    fn the_cluster_cap_evicts_the_least_recently_used_template() {
        let miner = MinerConfig { max_clusters: 2, ..MinerConfig::default() };
        let mut mining = LogMining::new(LogPatternConfig { miner, ..LogPatternConfig::default() });
        let mut out = Vec::new();
        mining.step(vec![line("a", T0, 9, "alpha started worker", 1), line("a", T0 + 1, 9, "beta stopped listener now", 2)], None, &mut out);
        mining.step(vec![line("a", T0 + 2, 9, "alpha started worker", 3)], None, &mut out);
        let alpha = hits(&out)[0].fingerprint as i64;
        let beta = hits(&out)[1].fingerprint as i64;
        out.clear();
        mining.step(vec![line("a", T0 + 3, 9, "gamma flushed the cache to disk", 4)], None, &mut out);
        let changes = patterns(&out);
        assert!(changes.iter().any(|(r, d)| *d == -1 && r.fingerprint_id == beta), "beta was least recently used: {changes:?}");
        assert!(!changes.iter().any(|(r, d)| *d == -1 && r.fingerprint_id == alpha));
        assert!(matches!(out.last(), Some(MineEvent::Counters(c)) if c[3] == 1), "one eviction counted");
    }

    #[test]
    fn late_lines_are_dead_letters_and_do_not_train_the_miner() {
        let mut mining = LogMining::new(LogPatternConfig::default());
        let mut out = Vec::new();
        mining.step(Vec::new(), Some(T0 + 300_000), &mut out);
        out.clear();
        mining.step(vec![line("a", T0 + 299_999, 9, "something happened", 1)], None, &mut out);
        assert!(matches!(&out[0], MineEvent::Late(d) if d.kind == "late"), "{out:?}");
        assert!(hits(&out).is_empty() && patterns(&out).is_empty());
    }

    #[test]
    fn templates_are_new_to_a_service_for_a_while() {
        let mut mining = LogMining::new(LogPatternConfig { new_within_ms: 60_000, ..LogPatternConfig::default() });
        let mut out = Vec::new();
        mining.step(vec![line("a", T0, 9, "cache warmed in 5ms", 1), line("b", T0 + 30_000, 9, "cache warmed in 9ms", 2)], None, &mut out);
        let new: Vec<(String, isize)> = out.iter().filter_map(|e| if let MineEvent::New(r, d) = e { Some((r.resource.clone(), *d)) } else { None }).collect();
        assert_eq!(new, vec![("urn:k8s:svc:shop/a".into(), 1), ("urn:k8s:svc:shop/b".into(), 1)]);
        out.clear();
        mining.step(vec![line("a", T0 + 40_000, 9, "cache warmed in 7ms", 3)], Some(T0 + 60_000), &mut out);
        let new: Vec<(String, isize)> = out.iter().filter_map(|e| if let MineEvent::New(r, d) = e { Some((r.resource.clone(), *d)) } else { None }).collect();
        assert_eq!(new, vec![("urn:k8s:svc:shop/a".into(), -1)], "seen again is not new; a's first sighting is a minute old");
    }
}
