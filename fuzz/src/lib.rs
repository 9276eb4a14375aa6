//! What the fuzz targets run: the product's decoders on arbitrary bytes, followed by the pure
//! stages a decoded record reaches next in the engine, so that a malformed-but-accepted record
//! is exercised too.
//!
//! # Layout
//! - [`otlp`]: OTLP protobuf or JSON bytes through the span, log and metric decoders, then span
//!   pairing, the log template miner and `metric_1m`'s accumulator.
//! - [`k8s`]: Kubernetes watch events (one per line) through the K8s decoder, the dead-letter
//!   redaction and the change detector.
//! - [`log_line`]: JSON-lines logs and metrics, and plain-text log lines with a Loghub header
//!   format (or a header format taken from the input), then the miner.
//!
//! The contract under test is the decoders' own: bad input yields errors (dead letters), never a
//! panic. A few invariants that hold for any input are asserted as well; each assertion says
//! which contract it checks.

use observebridge_dataflows::changes::{ChangeConfig, Detector};
use observebridge_dataflows::decode::k8s::{KeyedHasher, decode_k8s, redact_payload};
use observebridge_dataflows::decode::logs::LogDecoder;
use observebridge_dataflows::decode::{DecodeConfig, TextProfile, decode_logs, decode_metrics, decode_spans};
use observebridge_dataflows::logs::loghub::SYSTEMS;
use observebridge_dataflows::logs::{Miner, MinerConfig};
use observebridge_dataflows::pairing::{CallerNaming, Pairer, PairingConfig, shift};
use observebridge_dataflows::record::{Encoding, EventTime, LogRecord, MetricPoint, Origin, RawMessage, Signal, Span, WireFormat};
use observebridge_dataflows::views::metric_1m::Accumulator;

/// A message as a source hands it over.
pub fn message(signal: Signal, format: WireFormat, profile: u16, payload: &[u8]) -> RawMessage {
    RawMessage { origin: Origin { partition: 0, offset: 0 }, encoding: Encoding { signal, format, profile }, payload: payload.to_vec() }
}

/// OTLP bytes (protobuf or JSON) through all three OTLP decoders and what follows each.
pub fn otlp(data: &[u8], format: WireFormat) {
    let cfg = DecodeConfig::default();

    let (mut spans, mut errors) = (Vec::new(), Vec::new());
    decode_spans(&message(Signal::Spans, format, 0, data), &cfg, &mut spans, &mut errors);
    render(&errors);
    pair(spans);

    let (mut logs, mut errors) = (Vec::new(), Vec::new());
    decode_logs(&message(Signal::Logs, format, 0, data), &cfg, &mut logs, &mut errors);
    render(&errors);
    mine(&logs);

    let (mut points, mut errors) = (Vec::new(), Vec::new());
    decode_metrics(&message(Signal::Metrics, format, 0, data), &cfg, &mut points, &mut errors);
    render(&errors);
    aggregate(&points);
}

/// Watch events, one per line, through the K8s decoder and the change detector; every message
/// the decoder refuses goes through the dead-letter redaction, as the runtime does.
pub fn k8s(data: &[u8]) {
    let cfg = DecodeConfig::default();
    let hasher = KeyedHasher::new(&cfg.secret_hash_key.0);
    let (mut events, mut errors) = (Vec::new(), Vec::new());
    for line in data.split(|b| *b == b'\n') {
        let refused = errors.len();
        decode_k8s(&message(Signal::K8s, WireFormat::JsonLines, 0, line), &cfg, &hasher, &mut events, &mut errors);
        if errors.len() > refused {
            let redacted = redact_payload(line, &hasher);
            // Dead letters of K8s messages are JSON (the redacted message, or a note about it).
            assert!(serde_json::from_slice::<serde_json::Value>(&redacted).is_ok(), "redact_payload returned something that is not JSON");
        }
    }
    render(&errors);
    // A small object budget, so that eviction runs too; two batches, so that the second one is
    // diffed against state the first one left.
    let mut detector = Detector::new(ChangeConfig { max_objects: 3, ..ChangeConfig::default() });
    let second = events.split_off(events.len() / 2);
    let mut out = Vec::new();
    detector.apply(events, true, &mut out);
    detector.apply(second, true, &mut out);
    for row in &out {
        let _ = format!("{row:?}");
    }
}

/// JSON-lines logs and metrics, and plain-text log lines, from one input. Returns what the text
/// decoder made of the line (records, errors) for examples/seed_report.rs.
///
/// The first byte picks the text profile: no header, one of the Loghub formats, or (the last
/// choice) a header format read from the input's first line, the rest being the log line.
pub fn log_line(data: &[u8]) -> (usize, Vec<String>) {
    let Some((&selector, rest)) = data.split_first() else { return (0, Vec::new()) };
    let choices = SYSTEMS.len() + 2;
    let (header, line) = match usize::from(selector) % choices {
        0 => (None, rest),
        i if i <= SYSTEMS.len() => (Some(SYSTEMS[i - 1].format.to_owned()), rest),
        _ => {
            let at = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            (Some(String::from_utf8_lossy(&rest[..at]).into_owned()), rest.get(at + 1..).unwrap_or_default())
        }
    };
    let cfg = DecodeConfig {
        text_profiles: vec![TextProfile { service: "fuzz".into(), namespace: None, tenant: None, header }],
        ..DecodeConfig::default()
    };

    let (mut logs, mut errors) = (Vec::new(), Vec::new());
    LogDecoder::new(&cfg).decode(&message(Signal::Logs, WireFormat::Text, 0, line), &mut logs, &mut errors);
    let text = (logs.len(), errors.iter().map(ToString::to_string).collect());
    decode_logs(&message(Signal::Logs, WireFormat::JsonLines, 0, line), &cfg, &mut logs, &mut errors);
    render(&errors);
    mine(&logs);

    let (mut points, mut errors) = (Vec::new(), Vec::new());
    decode_metrics(&message(Signal::Metrics, WireFormat::JsonLines, 0, line), &cfg, &mut points, &mut errors);
    render(&errors);
    aggregate(&points);
    text
}

/// Every error becomes a dead letter with its message as the reason.
fn render<E: std::fmt::Display>(errors: &[E]) {
    for e in errors {
        let _ = e.to_string();
    }
}

/// Spans into the pairer, then the watermark past all of them (every unpaired span expires).
fn pair(spans: Vec<Span>) {
    if spans.is_empty() {
        return;
    }
    let cfg = PairingConfig { caller: CallerNaming::User, ..PairingConfig::default() };
    let wait = cfg.wait_ms;
    let newest: EventTime = spans.iter().map(|s| s.ts).max().unwrap_or_default();
    let mut pairer = Pairer::new(cfg);
    let mut out = Vec::new();
    pairer.arrive(spans, &mut out);
    pairer.advance(shift(newest, wait), &mut out);
    pairer.advance(EventTime::MAX, &mut out);
    let _ = pairer.counters();
}

/// Log bodies into one miner (one tenant), then the persisted library reloaded.
fn mine(logs: &[LogRecord]) {
    if logs.is_empty() {
        return;
    }
    let mut miner = Miner::new("default", MinerConfig::default());
    for log in logs {
        let m = miner.add(&log.message, log.ts);
        let _ = miner.parameters(m.id, &log.message);
        let _ = miner.match_only(&log.message);
    }
    let restored = Miner::restore("default", MinerConfig::default(), miner.snapshot());
    for log in logs {
        let _ = restored.match_only(&log.message);
    }
}

/// Points into `metric_1m`'s per-window accumulator, as one window of one series would get them.
fn aggregate(points: &[MetricPoint]) {
    let mut acc = Accumulator::default();
    for p in points {
        acc.add(&p.value);
    }
    for q in [0.5, 0.95, 0.99] {
        let _ = acc.histogram.quantile(q);
    }
}
