//! What a replay reads: where ([`ArchiveConfig`]), which layout, and which time window
//! ([`Window`]).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::ArchiveError;
use crate::parquet::ObjectStoreConfig;

/// The kind of telemetry an object holds. Mirrors the engine's signals (connectors do not depend
/// on the dataflows crate); [`name`](Self::name) is the engine's serde name of the signal.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveSignal {
    Metrics,
    Spans,
    Logs,
    /// Kubernetes watch events (raw archive only).
    K8s,
}

impl ArchiveSignal {
    pub const ALL: [ArchiveSignal; 4] = [ArchiveSignal::Metrics, ArchiveSignal::Spans, ArchiveSignal::Logs, ArchiveSignal::K8s];

    /// `metrics`, `spans`, `logs`, `k8s`: the engine's name for the signal, and the raw archive's
    /// directory (`raw/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            ArchiveSignal::Metrics => "metrics",
            ArchiveSignal::Spans => "spans",
            ArchiveSignal::Logs => "logs",
            ArchiveSignal::K8s => "k8s",
        }
    }
}

/// How the payloads of a partition are encoded. [`name`](Self::name) is the engine's serde name
/// of the wire format (`WireFormat::Archived`, `OtlpProto`, `OtlpJson`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchiveFormat {
    /// One raw archive row per record, as the [`RowEncoder`](super::RowEncoder) made it.
    Archived,
    /// A whole `Export*ServiceRequest` in protobuf (the Collector's `otlp_proto` marshaler).
    OtlpProto,
    /// One `Export*ServiceRequest` in OTLP JSON (the Collector's `otlp_json` marshaler).
    OtlpJson,
}

impl ArchiveFormat {
    /// `archived`, `otlp_proto`, `otlp_json`.
    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::Archived => "archived",
            ArchiveFormat::OtlpProto => "otlp_proto",
            ArchiveFormat::OtlpJson => "otlp_json",
        }
    }
}

/// How the objects are laid out.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// ObserveBridge's raw archive:
    /// `raw/<signal>/date=YYYY-MM-DD/hour=HH/minute=MM/<signal>-YYYYMMDDTHHMMZ.parquet`, one
    /// object per signal and minute of event time.
    #[default]
    RawArchive,
    /// Files of the OpenTelemetry Collector's S3 exporter (`awss3`):
    /// `<partition_format>/<file_prefix><traces|metrics|logs>_<unique>.<json|binpb>[.gz]`,
    /// partitioned by the minute the exporter wrote them.
    Collector,
}

/// What a missing or unreadable object does to the replay.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// `poll` returns an error naming the object (the replay stops).
    #[default]
    Stop,
    /// The object is reported ([`ArchiveProgress::skipped`](super::ArchiveProgress::skipped))
    /// and reading goes on with the next one.
    Skip,
}

/// A replay's input: objects on object storage.
///
/// ```yaml
/// store: { url: s3://telemetry/otel, endpoint: http://127.0.0.1:5555 }
/// layout: collector
/// partition_format: year=%Y/month=%m/day=%d/hour=%H/minute=%M
/// on_error: skip
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Where the objects are: the Parquet sink's settings (`url` with the bucket and prefix the
    /// raw archive was written under, or the Collector's `s3_prefix`; endpoint, credentials).
    pub store: ObjectStoreConfig,
    /// `raw_archive` (default) or `collector`.
    #[serde(default)]
    pub layout: Layout,
    /// The signals to read. Default: all the layout holds (the raw archive's four; the
    /// Collector's spans, metrics and logs).
    #[serde(default)]
    pub signals: Option<BTreeSet<ArchiveSignal>>,
    /// For `collector`: the exporter's `s3_partition_format` (strftime with `%Y %m %d %H`, and
    /// `%M` for minute partitions; `%%` is a literal `%`). Default
    /// `year=%Y/month=%m/day=%d/hour=%H/minute=%M`, the exporter's own default.
    #[serde(default)]
    pub partition_format: Option<String>,
    /// `stop` (default) or `skip`: what a missing or unreadable object does.
    #[serde(default)]
    pub on_error: OnError,
    /// How many objects are fetched ahead of the one being handed out (default 8, 1 to 256).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
}

fn default_prefetch() -> usize {
    8
}

/// The awss3 exporter's default `s3_partition_format`.
pub const COLLECTOR_PARTITION_FORMAT: &str = "year=%Y/month=%m/day=%d/hour=%H/minute=%M";

/// The raw archive's partitions under `raw/<signal>`.
pub(super) const RAW_PARTITION_FORMAT: &str = "date=%Y-%m-%d/hour=%H/minute=%M";

impl ArchiveConfig {
    /// The defaults for a store: the raw archive, every signal, `stop` on errors.
    pub fn new(store: ObjectStoreConfig) -> Self {
        Self { store, layout: Layout::default(), signals: None, partition_format: None, on_error: OnError::default(), prefetch: default_prefetch() }
    }

    /// Checks every rule without any I/O. Returns the first broken rule, naming the field.
    pub fn validate(&self) -> Result<(), ArchiveError> {
        self.store.validate()?;
        if !(1..=256).contains(&self.prefetch) {
            return Err(config_error("prefetch", format!("is {}; give 1 to 256 objects", self.prefetch)));
        }
        if let Some(signals) = &self.signals {
            if signals.is_empty() {
                return Err(config_error("signals", "is empty; leave it out to read every signal".to_owned()));
            }
            if self.layout == Layout::Collector && signals.contains(&ArchiveSignal::K8s) {
                return Err(config_error("signals", "k8s is not a Collector signal (the exporter writes traces, metrics and logs)".to_owned()));
            }
        }
        match (self.layout, &self.partition_format) {
            (Layout::RawArchive, Some(_)) => Err(config_error("partition_format", "only applies to layout `collector`; the raw archive's partitions are fixed".to_owned())),
            (Layout::Collector, Some(format)) => PartitionFormat::parse(format).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The signals read, in their fixed order.
    pub fn signals(&self) -> Vec<ArchiveSignal> {
        let of_layout: &[ArchiveSignal] = match self.layout {
            Layout::RawArchive => &ArchiveSignal::ALL,
            Layout::Collector => &ArchiveSignal::ALL[..3],
        };
        of_layout.iter().copied().filter(|s| self.signals.as_ref().is_none_or(|set| set.contains(s))).collect()
    }

    pub(super) fn partition_format(&self) -> Result<PartitionFormat, ArchiveError> {
        match self.layout {
            Layout::RawArchive => PartitionFormat::parse(RAW_PARTITION_FORMAT),
            Layout::Collector => PartitionFormat::parse(self.partition_format.as_deref().unwrap_or(COLLECTOR_PARTITION_FORMAT)),
        }
    }
}

fn config_error(field: &str, message: String) -> ArchiveError {
    ArchiveError::Config { field: field.to_owned(), message }
}

/// The event-time window a replay reads, `[from_ms, to_ms)`, and its margins.
///
/// Objects are selected by their partition (minute, or hour for hourly formats): those that can
/// hold a record of `[from_ms - warmup_ms, to_ms + tail_ms)` are read. Filtering records by event
/// time and suppressing the warm-up's output is the engine's job.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// First event time of the window (ms since the Unix epoch, UTC).
    pub from_ms: i64,
    /// End of the window, exclusive.
    pub to_ms: i64,
    /// Read this much before `from_ms` too: state that spans the boundary (pairing waits, the
    /// active graph, correlation lookbacks) is rebuilt from it.
    pub warmup_ms: i64,
    /// Read this much after `to_ms` too: the Collector partitions files by the time it wrote them,
    /// which trails the event time of the records inside (0 for the raw archive, whose minutes
    /// are event time).
    pub tail_ms: i64,
}

impl Window {
    /// `[from_ms, to_ms)` without margins.
    pub fn new(from_ms: i64, to_ms: i64) -> Self {
        Self { from_ms, to_ms, warmup_ms: 0, tail_ms: 0 }
    }

    /// Checks the bounds; the range read must be within chrono's dates.
    pub fn validate(&self) -> Result<(), ArchiveError> {
        let bad = |message: String| Err(ArchiveError::Window(message));
        if self.from_ms >= self.to_ms {
            return bad(format!("from ({} ms) must be before to ({} ms)", self.from_ms, self.to_ms));
        }
        if self.warmup_ms < 0 || self.tail_ms < 0 {
            return bad(format!("the warm-up ({} ms) and the tail ({} ms) must not be negative", self.warmup_ms, self.tail_ms));
        }
        let (lo, hi) = self.read_range();
        // A year 10000 partition would not fit the 4-digit `%Y` layouts.
        const MAX_MS: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
        if lo < 0 || hi > MAX_MS {
            return bad(format!("the range read [{lo}, {hi}) ms must lie between 1970 and 9999"));
        }
        Ok(())
    }

    /// `[from - warmup, to + tail)`, saturating.
    pub fn read_range(&self) -> (i64, i64) {
        (self.from_ms.saturating_sub(self.warmup_ms), self.to_ms.saturating_add(self.tail_ms))
    }
}

// ---------------------------------------------------------------------------------------------
// Partition formats.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Text(String),
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

/// A parsed strftime partition format (`%Y %m %d %H %M` and `%%` only), split into path
/// segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PartitionFormat {
    segments: Vec<Vec<Token>>,
    /// How many leading segments name an hour (or a minute): what one list request covers.
    list_depth: usize,
}

impl PartitionFormat {
    pub(super) fn parse(format: &str) -> Result<Self, ArchiveError> {
        let bad = |message: String| Err(config_error("partition_format", format!("{format:?} {message}")));
        let mut segments = Vec::new();
        for segment in format.split('/') {
            if segment.is_empty() {
                return bad("has an empty path segment (a leading, trailing or double `/`)".to_owned());
            }
            let mut tokens = Vec::new();
            let mut text = String::new();
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    text.push(c);
                    continue;
                }
                let token = match chars.next() {
                    Some('%') => {
                        text.push('%');
                        continue;
                    }
                    Some('Y') => Token::Year,
                    Some('m') => Token::Month,
                    Some('d') => Token::Day,
                    Some('H') => Token::Hour,
                    Some('M') => Token::Minute,
                    Some(other) => return bad(format!("uses %{other}; only %Y %m %d %H %M and %% are supported")),
                    None => return bad("ends with a lone %".to_owned()),
                };
                if !text.is_empty() {
                    tokens.push(Token::Text(std::mem::take(&mut text)));
                }
                tokens.push(token);
            }
            if !text.is_empty() {
                tokens.push(Token::Text(text));
            }
            segments.push(tokens);
        }
        let has = |upto: usize, t: &Token| segments[..upto].iter().flatten().any(|x| x == t);
        let all = segments.len();
        if let Some(missing) = [(Token::Year, "%Y"), (Token::Month, "%m"), (Token::Day, "%d"), (Token::Hour, "%H")].iter().find(|(t, _)| !has(all, t)) {
            return bad(format!("lacks {}: a replay lists one hour at a time", missing.1));
        }
        let list_depth = (1..=all).find(|&k| [Token::Year, Token::Month, Token::Day, Token::Hour].iter().all(|t| has(k, t))).unwrap_or(all);
        Ok(Self { segments, list_depth })
    }

    /// Whether partitions are minutes (else hours).
    pub(super) fn has_minute(&self) -> bool {
        self.segments.iter().flatten().any(|t| *t == Token::Minute)
    }

    /// Whether one list request covers a minute (`%M` is among the listed segments), else an hour.
    pub(super) fn lists_minutes(&self) -> bool {
        self.segments[..self.list_depth].iter().flatten().any(|t| *t == Token::Minute)
    }

    /// The first `depth` segments for the partition starting at `ms`, joined by `/`.
    fn render(&self, ms: i64, depth: usize) -> String {
        let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) else { return String::new() };
        let mut out = String::new();
        for (i, segment) in self.segments[..depth].iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            for token in segment {
                match token {
                    Token::Text(s) => out.push_str(s),
                    Token::Year => out.push_str(&t.format("%Y").to_string()),
                    Token::Month => out.push_str(&t.format("%m").to_string()),
                    Token::Day => out.push_str(&t.format("%d").to_string()),
                    Token::Hour => out.push_str(&t.format("%H").to_string()),
                    Token::Minute => out.push_str(&t.format("%M").to_string()),
                }
            }
        }
        out
    }

    /// The directory one list request covers, for the unit starting at `ms`.
    pub(super) fn list_prefix(&self, ms: i64) -> String {
        self.render(ms, self.list_depth)
    }

    /// The whole partition directory of the partition starting at `ms`.
    pub(super) fn partition_dir(&self, ms: i64) -> String {
        self.render(ms, self.segments.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_266_300_000; // 2026-11-21T13:05:00Z

    #[test]
    fn partition_formats() {
        let raw = PartitionFormat::parse(RAW_PARTITION_FORMAT).expect("raw");
        assert!(raw.has_minute() && !raw.lists_minutes());
        assert_eq!(raw.list_prefix(T), "date=2026-11-21/hour=13");
        assert_eq!(raw.partition_dir(T), "date=2026-11-21/hour=13/minute=05");
        let otel = PartitionFormat::parse(COLLECTOR_PARTITION_FORMAT).expect("collector");
        assert_eq!(otel.list_prefix(T), "year=2026/month=11/day=21/hour=13");
        assert_eq!(otel.partition_dir(T), "year=2026/month=11/day=21/hour=13/minute=05");
        let flat = PartitionFormat::parse("%Y%m%d%H%M").expect("flat");
        assert!(flat.lists_minutes());
        assert_eq!(flat.list_prefix(T), "202611211305");
        let hourly = PartitionFormat::parse("%Y/%m/%d/%H/100%%").expect("hourly");
        assert!(!hourly.has_minute());
        assert_eq!(hourly.partition_dir(T), "2026/11/21/13/100%");
        for (format, message) in [
            ("%Y/%m/%d", "lacks %H"),
            ("%Y/%m/%d/%H/%S", "uses %S"),
            ("%Y//%m/%d/%H", "empty path segment"),
            ("/%Y/%m/%d/%H", "empty path segment"),
            ("%Y/%m/%d/%H%", "lone %"),
        ] {
            let err = PartitionFormat::parse(format).expect_err(format).to_string();
            assert!(err.contains(message) && err.contains("partition_format"), "{format}: {err}");
        }
    }

    #[test]
    fn config_rules_and_yaml() {
        let cfg: ArchiveConfig = serde_yaml_ng::from_str("store: { url: s3://telemetry/otel, endpoint: 'http://127.0.0.1:5555' }\nlayout: collector\non_error: skip\n").expect("yaml");
        assert_eq!((cfg.layout, cfg.on_error, cfg.prefetch), (Layout::Collector, OnError::Skip, 8));
        cfg.validate().expect("valid");
        assert_eq!(cfg.signals(), [ArchiveSignal::Metrics, ArchiveSignal::Spans, ArchiveSignal::Logs]);
        let err = serde_yaml_ng::from_str::<ArchiveConfig>("store: { url: ./data }\nlayuot: collector\n").expect_err("typo");
        assert!(err.to_string().contains("layuot"), "{err}");

        let mut raw = ArchiveConfig::new(ObjectStoreConfig::default());
        raw.validate().expect("valid");
        assert_eq!(raw.signals().len(), 4);
        raw.partition_format = Some(COLLECTOR_PARTITION_FORMAT.to_owned());
        assert!(raw.validate().expect_err("fixed").to_string().contains("partition_format"));
        let mut collector = ArchiveConfig { layout: Layout::Collector, ..ArchiveConfig::new(ObjectStoreConfig::default()) };
        collector.signals = Some([ArchiveSignal::K8s].into());
        assert!(collector.validate().expect_err("k8s").to_string().contains("signals"));
        collector.signals = None;
        collector.prefetch = 0;
        assert!(collector.validate().expect_err("prefetch").to_string().contains("prefetch"));
        let bad_store = ArchiveConfig::new(ObjectStoreConfig { url: "ftp://x/y".into(), ..ObjectStoreConfig::default() });
        assert!(bad_store.validate().expect_err("scheme").to_string().contains("url"));
    }

    #[test]
    fn window_rules() {
        Window::new(T, T + 60_000).validate().expect("valid");
        assert!(Window::new(T, T).validate().is_err());
        assert!(Window { warmup_ms: -1, ..Window::new(T, T + 1) }.validate().is_err());
        assert!(Window { warmup_ms: T + 1, ..Window::new(T, T + 1) }.validate().is_err());
        assert_eq!(Window { warmup_ms: 5, tail_ms: 7, ..Window::new(T, T + 1) }.read_range(), (T - 5, T + 8));
    }
}
