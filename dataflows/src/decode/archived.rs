//! Archived records as engine input: the [`WireFormat::Archived`](crate::record::WireFormat)
//! payload.
//!
//! A replay reads the raw archive's Parquet objects back ([`ArchiveRow::from_batch`]) and hands
//! the engine one message per row, whose payload is that record in the compact form below
//! ([`payloads`]). Each signal's decoder reads it back ([`decode_point`], [`decode_span`],
//! [`decode_log`], [`decode_event`]) into exactly the record the original decode produced (floats
//! bit for bit), with the message's origin: from there the engine treats it like any decoded
//! record (tenant, event time, origin), so a replay runs the same dataflows as the live run.
//!
//! Why not JSON: `serde_json` only promises the nearest float within an ulp when parsing (its
//! `float_roundtrip` feature is off), and a replay must compute what the live run computed; a
//! binary form is exact and several times faster to read. Watch events, which hold no floats,
//! keep the archive's own JSON form (the `event` column).
//!
//! # Format (version 1)
//! Byte 0 is the version (`1`), byte 1 the signal (`M` metrics, `S` spans, `L` logs, `K` k8s);
//! then the fields in declaration order, little-endian: strings as a `u32` length and UTF-8 bytes;
//! `i64`, `u64` and `f64` (its bits) in 8 bytes; `u8` and `bool` in one; an `Option` as `0`, or
//! `1` and the value.
//! - metric point: tenant, resource, metric, series, ts, then `0` and the sample, or `1`, count,
//!   sum, min?, max?, the number of buckets (`u32`) and each bucket's (value, count).
//! - span: tenant, service, trace id (16 bytes), span id (8), parent span id? (8), kind (`u8`,
//!   OTLP's numbering), ts, duration_ms, error, weight, peer? (seven optional strings, in the
//!   order of [`Peer`]'s fields).
//! - log record: tenant, resource, ts, severity, message, trace id? (16).
//! - watch event: the rest of the payload is the event as JSON without its origin.
//!
//! The origin is never part of a payload: it is the engine's, per run.
//!
//! # Example
//! ```
//! use observebridge_dataflows::decode::{archived, decode_logs, DecodeConfig};
//! use observebridge_dataflows::record::{Encoding, LogRecord, Origin, RawMessage, Signal, WireFormat};
//!
//! let record = LogRecord { tenant: "default".into(), resource: "urn:k8s:svc:shop/cart".into(), ts: 60_000,
//!     severity: 17, message: "connection refused".into(), trace_id: None, origin: Origin::default() };
//! let mut payload = Vec::new();
//! archived::encode_log(&record, &mut payload);
//! let msg = RawMessage { origin: Origin { partition: 2, offset: 9 }, encoding: Encoding::new(Signal::Logs, WireFormat::Archived), payload };
//! let (mut logs, mut errors) = (Vec::new(), Vec::new());
//! decode_logs(&msg, &DecodeConfig::default(), &mut logs, &mut errors);
//! assert!(errors.is_empty());
//! assert_eq!(logs, [LogRecord { origin: Origin { partition: 2, offset: 9 }, ..record }]);
//! ```

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::k8s::K8sEvent;
use crate::record::{EventTime, LogRecord, MetricPoint, Observation, Origin, Peer, Signal, Span, SpanKind};
use crate::views::raw_archive::{ArchiveRecord, ArchiveRow};

/// The format version this build writes and reads.
const VERSION: u8 = 1;

/// Why an archived payload could not be read. Names the place, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArchivedError {
    /// The payload ends inside a field.
    #[error("payload ends at byte {at}, inside {field}")]
    Truncated { at: usize, field: &'static str },
    /// The first byte is not a version this build reads.
    #[error("format version {0} is unknown (this build reads version {VERSION})")]
    Version(u8),
    /// The payload holds another signal's record than the message's encoding says.
    #[error("the payload holds a {found} record, but the message's signal is {expected}")]
    Signal { expected: &'static str, found: String },
    /// A field's value is impossible (bad UTF-8, an unknown tag, bytes after the record ...).
    #[error("{0}")]
    Invalid(String),
}

fn tag(signal: Signal) -> u8 {
    match signal {
        Signal::Metrics => b'M',
        Signal::Spans => b'S',
        Signal::Logs => b'L',
        Signal::K8s => b'K',
    }
}

fn tag_name(tag: u8) -> String {
    match tag {
        b'M' => "metrics".to_owned(),
        b'S' => "spans".to_owned(),
        b'L' => "logs".to_owned(),
        b'K' => "k8s".to_owned(),
        other => format!("unknown (tag {other})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing.

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings come from decoded records, far below 4 GiB; a longer one would have failed the
    // archive's Arrow conversion (i32 offsets) long before.
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

fn header(out: &mut Vec<u8>, signal: Signal) {
    out.push(VERSION);
    out.push(tag(signal));
}

fn kind_code(kind: SpanKind) -> u8 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Appends the payload of a metric point to `out`.
pub fn encode_point(p: &MetricPoint, out: &mut Vec<u8>) {
    header(out, Signal::Metrics);
    for s in [&p.tenant, &p.resource, &p.metric, &p.series] {
        put_str(out, s);
    }
    put_i64(out, p.ts);
    match &p.value {
        Observation::Sample(v) => {
            out.push(0);
            put_f64(out, *v);
        }
        Observation::Distribution { count, sum, min, max, buckets } => {
            out.push(1);
            put_u64(out, *count);
            put_f64(out, *sum);
            put_opt(out, *min, put_f64);
            put_opt(out, *max, put_f64);
            out.extend_from_slice(&u32::try_from(buckets.len()).unwrap_or(u32::MAX).to_le_bytes());
            for (value, n) in buckets {
                put_f64(out, *value);
                put_u64(out, *n);
            }
        }
    }
}

/// Appends the payload of a span to `out`.
pub fn encode_span(s: &Span, out: &mut Vec<u8>) {
    header(out, Signal::Spans);
    put_str(out, &s.tenant);
    put_str(out, &s.service);
    out.extend_from_slice(&s.trace_id);
    out.extend_from_slice(&s.span_id);
    put_opt(out, s.parent_span_id.as_ref(), |out, id| out.extend_from_slice(id));
    out.push(kind_code(s.kind));
    put_i64(out, s.ts);
    put_f64(out, s.duration_ms);
    out.push(u8::from(s.error));
    put_f64(out, s.weight);
    put_opt(out, s.peer.as_deref(), |out, p| {
        for field in peer_fields(p) {
            put_opt(out, field.as_deref(), put_str);
        }
    });
}

fn peer_fields(p: &Peer) -> [&Option<String>; 7] {
    [&p.peer_service, &p.server_address, &p.db_system, &p.db_name, &p.messaging_system, &p.messaging_destination, &p.client_address]
}

/// Appends the payload of a log record to `out`.
pub fn encode_log(l: &LogRecord, out: &mut Vec<u8>) {
    header(out, Signal::Logs);
    put_str(out, &l.tenant);
    put_str(out, &l.resource);
    put_i64(out, l.ts);
    out.push(l.severity);
    put_str(out, &l.message);
    put_opt(out, l.trace_id.as_ref(), |out, id| out.extend_from_slice(id));
}

/// Appends the payload of a watch event to `out`: its JSON without the origin.
pub fn encode_event(e: &K8sEvent, out: &mut Vec<u8>) -> Result<(), ArchivedError> {
    let mut value = serde_json::to_value(e).map_err(|err| ArchivedError::Invalid(format!("the event cannot be written as JSON: {err}")))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("origin");
    }
    header(out, Signal::K8s);
    serde_json::to_writer(&mut *out, &value).map_err(|err| ArchivedError::Invalid(format!("the event cannot be written as JSON: {err}")))
}

/// The payload of one decoded record.
pub fn encode(record: &ArchiveRecord) -> Result<Vec<u8>, ArchivedError> {
    let mut out = Vec::new();
    match record {
        ArchiveRecord::Point(p) => encode_point(p, &mut out),
        ArchiveRecord::Span(s) => encode_span(s, &mut out),
        ArchiveRecord::Log(l) => encode_log(l, &mut out),
        ArchiveRecord::K8s(e) => encode_event(e, &mut out)?,
    }
    Ok(out)
}

/// The payloads of the rows of one raw archive object of `signal`, one per row in row order.
///
/// Called by a replay for every object it reads: the batch is what the Parquet object holds
/// (the schema of [`ArchiveRow::schema`]), read back with [`ArchiveRow::from_batch`], the
/// archive's own conversion. An object of another schema is refused whole.
pub fn payloads(signal: Signal, batch: &RecordBatch) -> Result<Vec<Vec<u8>>, ArrowError> {
    fn each<R: ArchiveRow>(batch: &RecordBatch, encode: impl Fn(&R, &mut Vec<u8>) -> Result<(), ArchivedError>) -> Result<Vec<Vec<u8>>, ArrowError> {
        R::from_batch(batch)?
            .iter()
            .map(|r| {
                let mut out = Vec::new();
                encode(r, &mut out).map(|()| out).map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))
            })
            .collect()
    }
    match signal {
        Signal::Metrics => each::<MetricPoint>(batch, |p, out| {
            encode_point(p, out);
            Ok(())
        }),
        Signal::Spans => each::<Span>(batch, |s, out| {
            encode_span(s, out);
            Ok(())
        }),
        Signal::Logs => each::<LogRecord>(batch, |l, out| {
            encode_log(l, out);
            Ok(())
        }),
        Signal::K8s => each::<K8sEvent>(batch, encode_event),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading.

/// A cursor over a payload; every read checks the length.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks the version and the signal tag.
    fn open(bytes: &'a [u8], signal: Signal) -> Result<Self, ArchivedError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8("the version")?;
        if version != VERSION {
            return Err(ArchivedError::Version(version));
        }
        let found = r.u8("the signal")?;
        if found != tag(signal) {
            return Err(ArchivedError::Signal { expected: signal.name(), found: tag_name(found) });
        }
        Ok(r)
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ArchivedError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or(ArchivedError::Truncated { at: self.bytes.len(), field })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ArchivedError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ArchivedError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, ArchivedError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(ArchivedError::Invalid(format!("{field} is {other}, not a boolean"))),
        }
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ArchivedError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ArchivedError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<EventTime, ArchivedError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    fn f64(&mut self, field: &'static str) -> Result<f64, ArchivedError> {
        Ok(f64::from_bits(self.u64(field)?))
    }

    fn string(&mut self, field: &'static str) -> Result<String, ArchivedError> {
        let len = self.u32(field)? as usize;
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ArchivedError::Invalid(format!("{field} is not UTF-8")))
    }

    fn option<T>(&mut self, field: &'static str, read: impl FnOnce(&mut Self) -> Result<T, ArchivedError>) -> Result<Option<T>, ArchivedError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => read(self).map(Some),
            other => Err(ArchivedError::Invalid(format!("{field} has presence tag {other}, expected 0 or 1"))),
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.at..];
        self.at = self.bytes.len();
        out
    }

    fn end(self) -> Result<(), ArchivedError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(ArchivedError::Invalid(format!("{} bytes follow the record", self.bytes.len() - self.at)))
        }
    }
}

/// Reads the payload of a metric point; the point gets `origin`.
pub fn decode_point(payload: &[u8], origin: Origin) -> Result<MetricPoint, ArchivedError> {
    let mut r = Reader::open(payload, Signal::Metrics)?;
    let tenant = r.string("tenant")?;
    let resource = r.string("resource")?;
    let metric = r.string("metric")?;
    let series = r.string("series")?;
    let ts = r.i64("ts")?;
    let value = match r.u8("the value's kind")? {
        0 => Observation::Sample(r.f64("value")?),
        1 => {
            let count = r.u64("count")?;
            let sum = r.f64("sum")?;
            let min = r.option("min", |r| r.f64("min"))?;
            let max = r.option("max", |r| r.f64("max"))?;
            let n = r.u32("the bucket count")? as usize;
            // Each bucket takes 16 bytes: a count beyond the payload is refused before allocating.
            if n > payload.len() / 16 {
                return Err(ArchivedError::Truncated { at: payload.len(), field: "buckets" });
            }
            let buckets = (0..n).map(|_| Ok((r.f64("bucket value")?, r.u64("bucket count")?))).collect::<Result<Vec<_>, ArchivedError>>()?;
            Observation::Distribution { count, sum, min, max, buckets }
        }
        other => return Err(ArchivedError::Invalid(format!("the value's kind is {other}, expected 0 (sample) or 1 (distribution)"))),
    };
    r.end()?;
    Ok(MetricPoint { tenant, resource, metric, series, ts, value, origin })
}

/// Reads the payload of a span; the span gets `origin`.
pub fn decode_span(payload: &[u8], origin: Origin) -> Result<Span, ArchivedError> {
    let mut r = Reader::open(payload, Signal::Spans)?;
    let tenant = r.string("tenant")?;
    let service = r.string("service")?;
    let trace_id = r.array("trace_id")?;
    let span_id = r.array("span_id")?;
    let parent_span_id = r.option("parent_span_id", |r| r.array("parent_span_id"))?;
    let kind = match r.u8("kind")? {
        0 => SpanKind::Unspecified,
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        other => return Err(ArchivedError::Invalid(format!("span kind {other} is unknown"))),
    };
    let ts = r.i64("ts")?;
    let duration_ms = r.f64("duration_ms")?;
    let error = r.bool("error")?;
    let weight = r.f64("weight")?;
    let peer = r.option("peer", |r| {
        let mut next = |field| r.option(field, |r| r.string(field));
        Ok(Box::new(Peer {
            peer_service: next("peer_service")?,
            server_address: next("server_address")?,
            db_system: next("db_system")?,
            db_name: next("db_name")?,
            messaging_system: next("messaging_system")?,
            messaging_destination: next("messaging_destination")?,
            client_address: next("client_address")?,
        }))
    })?;
    r.end()?;
    Ok(Span { tenant, service, trace_id, span_id, parent_span_id, kind, ts, duration_ms, error, weight, peer, origin })
}

/// Reads the payload of a log record; the record gets `origin`.
pub fn decode_log(payload: &[u8], origin: Origin) -> Result<LogRecord, ArchivedError> {
    let mut r = Reader::open(payload, Signal::Logs)?;
    let tenant = r.string("tenant")?;
    let resource = r.string("resource")?;
    let ts = r.i64("ts")?;
    let severity = r.u8("severity")?;
    let message = r.string("message")?;
    let trace_id = r.option("trace_id", |r| r.array("trace_id"))?;
    r.end()?;
    Ok(LogRecord { tenant, resource, ts, severity, message, trace_id, origin })
}

/// Reads the payload of a watch event; the event gets `origin`.
pub fn decode_event(payload: &[u8], origin: Origin) -> Result<K8sEvent, ArchivedError> {
    let mut r = Reader::open(payload, Signal::K8s)?;
    let mut value: serde_json::Value = serde_json::from_slice(r.rest()).map_err(|e| ArchivedError::Invalid(format!("the event is not JSON: {e}")))?;
    let map = value.as_object_mut().ok_or_else(|| ArchivedError::Invalid("the event is not a JSON object".to_owned()))?;
    map.insert("origin".to_owned(), serde_json::json!(origin));
    // Archived events hold keyed hashes where the object held secret values, so no message can
    // quote one.
    serde_json::from_value(value).map_err(|e| ArchivedError::Invalid(format!("the event is not a k8s event: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::decode::k8s::{Body, K8sKind, WatchAction};

    fn point(value: Observation) -> MetricPoint {
        MetricPoint { tenant: "acme".into(), resource: "urn:host:h1".into(), metric: "latency".into(), series: "pod=p\\,1".into(), ts: -1_500, value, origin: Origin::default() }
    }

    fn span(peer: Option<Box<Peer>>) -> Span {
        Span {
            tenant: "default".into(),
            service: "urn:k8s:svc:shop/checkout".into(),
            trace_id: [7; 16],
            span_id: [9; 8],
            parent_span_id: Some([1; 8]),
            kind: SpanKind::Consumer,
            ts: 1_800_000_000_123,
            duration_ms: 0.1 + 0.2,
            error: true,
            weight: 3.5,
            peer,
            origin: Origin::default(),
        }
    }

    fn event() -> K8sEvent {
        K8sEvent {
            tenant: "default".into(),
            ts: 1_800_000_000_000,
            action: WatchAction::Modified,
            kind: K8sKind::Secret,
            namespace: "shop".into(),
            name: "db".into(),
            uid: "u-1".into(),
            resource_version: u64::MAX,
            created: None,
            labels: BTreeMap::from([("app".into(), "payments".into())]),
            annotations: BTreeMap::new(),
            owner: None,
            by_autoscaler: false,
            body: Body::Data { entries: BTreeMap::from([("password".into(), "hmac:0123".into())]) },
            origin: Origin::default(),
        }
    }

    fn round_trip<T: PartialEq + std::fmt::Debug + Clone>(record: &T, encode: impl Fn(&T, &mut Vec<u8>), decode: impl Fn(&[u8], Origin) -> Result<T, ArchivedError>, with_origin: impl Fn(T, Origin) -> T) {
        let mut payload = Vec::new();
        encode(record, &mut payload);
        let origin = Origin { partition: 4, offset: (3 << 32) | 17 };
        assert_eq!(decode(&payload, origin).expect("decodes"), with_origin(record.clone(), origin));
        // Every strict prefix is refused, never a panic.
        for n in 0..payload.len() {
            assert!(decode(&payload[..n], origin).is_err(), "prefix of {n} bytes accepted");
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode(&longer, origin).is_err());
    }

    #[test]
    fn records_round_trip_exactly_and_damage_is_refused() {
        let tricky = [f64::MIN_POSITIVE, -0.0, 1e-310, 0.1 + 0.2, f64::MAX, f64::NAN];
        for v in tricky {
            let p = point(Observation::Sample(v));
            let mut payload = Vec::new();
            encode_point(&p, &mut payload);
            let back = decode_point(&payload, Origin::default()).expect("decodes");
            let Observation::Sample(w) = back.value else { panic!("a sample") };
            assert_eq!(w.to_bits(), v.to_bits());
        }
        let with = |mut p: MetricPoint, o| {
            p.origin = o;
            p
        };
        round_trip(&point(Observation::Sample(42.25)), encode_point, decode_point, with);
        let dist = Observation::Distribution { count: 9, sum: 33.3, min: None, max: Some(30.0), buckets: vec![(2.5, 3), (7.5, 6)] };
        round_trip(&point(dist), encode_point, decode_point, with);

        let with = |mut s: Span, o| {
            s.origin = o;
            s
        };
        round_trip(&span(None), encode_span, decode_span, with);
        let peer = Peer { db_system: Some("postgresql".into()), db_name: Some("".into()), client_address: Some("10.0.0.1".into()), ..Peer::default() };
        round_trip(&span(Some(Box::new(peer))), encode_span, decode_span, with);

        let log = LogRecord { tenant: "t".into(), resource: "urn:host:h".into(), ts: 5, severity: 24, message: "héllo\nworld".into(), trace_id: Some([3; 16]), origin: Origin::default() };
        round_trip(
            &log,
            encode_log,
            decode_log,
            |mut l, o| {
                l.origin = o;
                l
            },
        );

        let e = event();
        let mut payload = Vec::new();
        encode_event(&e, &mut payload).expect("encodes");
        assert!(!String::from_utf8_lossy(&payload).contains("origin"));
        let origin = Origin { partition: 1, offset: 2 };
        assert_eq!(decode_event(&payload, origin).expect("decodes"), K8sEvent { origin, ..e });
        assert!(decode_event(&payload[..payload.len() - 1], origin).is_err());
    }

    #[test]
    fn the_signal_and_version_are_checked() {
        let mut payload = Vec::new();
        encode_span(&span(None), &mut payload);
        assert_eq!(
            decode_log(&payload, Origin::default()).expect_err("a span is not a log").to_string(),
            "the payload holds a spans record, but the message's signal is logs"
        );
        payload[0] = 9;
        assert_eq!(decode_span(&payload, Origin::default()), Err(ArchivedError::Version(9)));
        assert!(matches!(decode_point(&[], Origin::default()), Err(ArchivedError::Truncated { at: 0, .. })));
        // A bucket count far beyond the payload is refused without allocating.
        let mut payload = Vec::new();
        encode_point(&point(Observation::Distribution { count: 1, sum: 1.0, min: None, max: None, buckets: vec![] }), &mut payload);
        let n = payload.len();
        payload[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_point(&payload, Origin::default()), Err(ArchivedError::Truncated { field: "buckets", .. })));
    }
}
