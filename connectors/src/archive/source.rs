//! The replay source: the listed objects, read in event-time order, as raw records.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::config::{ArchiveConfig, ArchiveFormat, ArchiveSignal, OnError, Window};
use super::listing::{list, ListedObject, Listing};
use super::ArchiveError;
use crate::source::{PartitionCommit, PartitionInfo, Poll, RawRecord, Source, SourceError};

/// Turns the rows of one raw archive object of a signal into payloads, one per row in row order.
///
/// The runtime passes the engine's conversion (connectors do not know the record types):
/// `observebridge_dataflows::decode::archived::payloads`, with the signal mapped by name. It
/// runs on the source's reader thread. An `Err` makes the object unreadable (reported with its key,
/// as [`OnError`] says).
pub type RowEncoder = Arc<dyn Fn(ArchiveSignal, &RecordBatch) -> Result<Vec<Vec<u8>>, String> + Send + Sync>;

/// An object that could not be read and was skipped (`on_error: skip`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedObject {
    pub key: String,
    pub reason: String,
}

/// How far a replay got; shared with whoever draws the progress bar, readable while the source
/// runs (relaxed atomics: each counter is exact, a snapshot is not one instant).
#[derive(Debug, Default)]
pub struct ArchiveProgress {
    objects_total: AtomicU64,
    objects_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    records: AtomicU64,
    skipped: Mutex<Vec<SkippedObject>>,
}

/// The counters of [`ArchiveProgress`] at one moment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Objects listed for the window.
    pub objects_total: u64,
    /// Objects whose records were all handed out, or that were skipped.
    pub objects_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Records handed out.
    pub records: u64,
    /// Objects skipped (`on_error: skip`).
    pub skipped: u64,
}

impl ArchiveProgress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            objects_total: self.objects_total.load(Ordering::Relaxed),
            objects_done: self.objects_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            skipped: self.skipped.lock().unwrap_or_else(PoisonError::into_inner).len() as u64,
        }
    }

    /// The objects skipped so far, in read order, with the reason.
    pub fn skipped(&self) -> Vec<SkippedObject> {
        self.skipped.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn object_done(&self, object: &ListedObject) {
        self.objects_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(object.size, Ordering::Relaxed);
    }
}

/// What the reader thread hands the source for one object, in listing order.
struct Fetched {
    index: usize,
    result: Result<Vec<Vec<u8>>, String>,
}

/// The object being handed out.
struct Current {
    index: usize,
    records: std::vec::IntoIter<Vec<u8>>,
    row: u64,
}

/// Reads the objects of a [`Listing`] as raw records: bounded, in event-time order (by partition
/// start, then key), one partition per signal and format.
///
/// - **Partitions**: one per `(signal, format)` present in the listing, in that order, named
///   `archive:<signal>/<format>` (`archive:spans/archived`, `archive:metrics/otlp_proto`);
///   [`partition_encoding`](Self::partition_encoding) tells the runtime how to decode each.
/// - **Records**: a raw archive object gives one record per row, its payload made by the
///   [`RowEncoder`]; a Collector `.binpb` file one record (the whole request); a `.json` file
///   one record per JSON value in it (one request, or one per line when the exporter batched
///   them). A `.gz` file (`compression: gzip`) is inflated first and then read as the file it
///   holds; a gzip stream that is corrupt or cut short makes the object unreadable. Whether a
///   payload decodes is the decoder's to say.
/// - **Offsets**: `(index of the object in the listing << 32) | row`, strictly increasing per
///   partition; [`Listing::locate`] gives the object key and row back (evidence, dead letters).
/// - **Errors**: a missing or unreadable object is an error naming its key; with
///   [`OnError::Stop`] `poll` returns it (after the records of the objects before it), with
///   [`OnError::Skip`] it is recorded in [`ArchiveProgress::skipped`] and reading goes on. An
///   object is handed out whole or not at all.
/// - **Reading**: a thread of the source's own fetches up to `prefetch` objects ahead and
///   decodes them; `poll` never does I/O. Nothing is committed: a replay is re-run whole.
pub struct ArchiveSource {
    name: String,
    listing: Listing,
    on_error: OnError,
    partitions: Vec<(ArchiveSignal, ArchiveFormat)>,
    /// Partition of each listed object.
    object_partition: Vec<u32>,
    infos: Vec<PartitionInfo>,
    progress: Arc<ArchiveProgress>,
    fetched: Receiver<Fetched>,
    stop: Arc<AtomicBool>,
    current: Option<Current>,
    /// The next object to hand out.
    next: usize,
    /// An error to return from now on (`on_error: stop`).
    failed: Option<String>,
}

impl ArchiveSource {
    /// Lists `window` ([`list`]) and reads it. `name` names the source in errors and logs.
    pub fn open(name: &str, config: &ArchiveConfig, window: &Window, encoder: RowEncoder) -> Result<Self, ArchiveError> {
        let listing = list(config, window)?;
        Self::new(name, config, listing, encoder)
    }

    /// Reads the objects of `listing` (made by [`list`] with the same `config`); starts fetching
    /// at once.
    pub fn new(name: &str, config: &ArchiveConfig, listing: Listing, encoder: RowEncoder) -> Result<Self, ArchiveError> {
        config.validate()?;
        let (store, _root) = config.store.build()?;
        let mut partitions: Vec<(ArchiveSignal, ArchiveFormat)> = listing.objects.iter().map(|o| (o.signal, o.format)).collect();
        partitions.sort();
        partitions.dedup();
        let object_partition = listing
            .objects
            .iter()
            .map(|o| partitions.iter().position(|p| *p == (o.signal, o.format)).map_or(0, |i| i as u32))
            .collect();
        let infos = partitions
            .iter()
            .map(|(signal, format)| PartitionInfo { name: format!("archive:{}/{}", signal.name(), format.name()), replay_until: None, max_event_time: None })
            .collect();
        let progress = Arc::new(ArchiveProgress::default());
        progress.objects_total.store(listing.objects.len() as u64, Ordering::Relaxed);
        progress.bytes_total.store(listing.total_bytes(), Ordering::Relaxed);

        let (tx, rx) = std::sync::mpsc::sync_channel(config.prefetch);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader { store, objects: listing.objects.clone(), prefetch: config.prefetch, encoder, tx, stop: Arc::clone(&stop) };
        std::thread::Builder::new().name(format!("archive-{name}")).spawn(move || reader.run()).map_err(|e| ArchiveError::Runtime(e.to_string()))?;
        tracing::info!(source = name, objects = listing.objects.len(), bytes = listing.total_bytes(), partitions = partitions.len(), "archive replay source started");
        Ok(Self { name: name.to_owned(), listing, on_error: config.on_error, partitions, object_partition, infos, progress, fetched: rx, stop, current: None, next: 0, failed: None })
    }

    /// The signal and format of a partition's records (indexed like [`Source::partitions`]): the
    /// runtime's `Encoding` for it.
    pub fn partition_encoding(&self, partition: u32) -> Option<(ArchiveSignal, ArchiveFormat)> {
        self.partitions.get(partition as usize).copied()
    }

    /// Every partition's signal and format, indexed like [`Source::partitions`].
    pub fn partition_encodings(&self) -> &[(ArchiveSignal, ArchiveFormat)] {
        &self.partitions
    }

    /// The counters, to keep before the source is boxed.
    pub fn progress(&self) -> Arc<ArchiveProgress> {
        Arc::clone(&self.progress)
    }

    /// What is read.
    pub fn listing(&self) -> &Listing {
        &self.listing
    }

    fn error(&self, message: String) -> SourceError {
        SourceError::Other { name: self.name.clone(), message }
    }

    /// Applies what the reader made of the next object.
    fn take(&mut self, fetched: Fetched) -> Result<(), String> {
        debug_assert_eq!(fetched.index, self.next, "the reader hands objects out in order");
        let index = fetched.index;
        self.next += 1;
        let object = &self.listing.objects[index];
        match fetched.result {
            Ok(records) => {
                self.current = Some(Current { index, records: records.into_iter(), row: 0 });
                Ok(())
            }
            Err(reason) => match self.on_error {
                OnError::Stop => {
                    tracing::error!(source = self.name.as_str(), key = object.key.as_str(), reason = reason.as_str(), "archive object unreadable; the replay stops");
                    Err(format!("object {}: {reason}", object.key))
                }
                OnError::Skip => {
                    tracing::warn!(source = self.name.as_str(), key = object.key.as_str(), reason = reason.as_str(), "archive object unreadable; skipped");
                    self.progress.skipped.lock().unwrap_or_else(PoisonError::into_inner).push(SkippedObject { key: object.key.clone(), reason });
                    self.progress.object_done(object);
                    Ok(())
                }
            },
        }
    }
}

impl Drop for ArchiveSource {
    fn drop(&mut self) {
        // The reader notices at its next object (or when its channel closes) and ends.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Source for ArchiveSource {
    /// Appends up to `max` records; waits up to `timeout` only while it has none to hand out.
    fn poll(&mut self, max: usize, timeout: Duration, out: &mut Vec<RawRecord>) -> Result<Poll, SourceError> {
        if let Some(message) = &self.failed {
            return Err(self.error(message.clone()));
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut taken = 0;
        loop {
            if let Some(current) = &mut self.current {
                let partition = self.object_partition[current.index];
                let base = (current.index as u64) << 32;
                let before = taken;
                while taken < max {
                    let Some(payload) = current.records.next() else { break };
                    out.push(RawRecord { partition, offset: base | current.row, payload });
                    current.row += 1;
                    taken += 1;
                }
                self.progress.records.fetch_add((taken - before) as u64, Ordering::Relaxed);
                if current.records.len() > 0 {
                    return Ok(Poll::Open);
                }
                self.progress.object_done(&self.listing.objects[current.index]);
                self.current = None;
            }
            if self.next >= self.listing.objects.len() {
                return Ok(Poll::Exhausted);
            }
            if taken >= max {
                return Ok(Poll::Open);
            }
            let fetched = if taken > 0 {
                match self.fetched.try_recv() {
                    Ok(f) => f,
                    Err(TryRecvError::Empty) => return Ok(Poll::Open),
                    Err(TryRecvError::Disconnected) => return Err(self.error("the archive reader thread stopped unexpectedly".to_owned())),
                }
            } else {
                match self.fetched.recv_timeout(deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()))) {
                    Ok(f) => f,
                    Err(RecvTimeoutError::Timeout) => return Ok(Poll::Open),
                    Err(RecvTimeoutError::Disconnected) => return Err(self.error("the archive reader thread stopped unexpectedly".to_owned())),
                }
            };
            if let Err(message) = self.take(fetched) {
                self.failed = Some(message.clone());
                // Records already appended stay valid; the error comes with the next poll.
                return if taken > 0 { Ok(Poll::Open) } else { Err(self.error(message)) };
            }
        }
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        self.infos.clone()
    }

    /// A replay commits nothing: it is re-run whole.
    fn commit(&mut self, _commits: &[PartitionCommit]) -> Result<(), SourceError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The reader thread.

struct Reader {
    store: Arc<dyn ObjectStore>,
    objects: Vec<ListedObject>,
    prefetch: usize,
    encoder: RowEncoder,
    tx: SyncSender<Fetched>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    /// Fetches up to `prefetch` objects concurrently on a one-thread runtime while this thread
    /// decodes them in order and hands them to the source.
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("archive-io").enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                for index in 0..self.objects.len() {
                    if self.tx.send(Fetched { index, result: Err(format!("cannot start the i/o runtime: {e}")) }).is_err() {
                        return;
                    }
                }
                return;
            }
        };
        let mut pending = VecDeque::new();
        let mut next_fetch = 0;
        for index in 0..self.objects.len() {
            while pending.len() < self.prefetch && next_fetch < self.objects.len() {
                let store = Arc::clone(&self.store);
                let key = self.objects[next_fetch].key.clone();
                pending.push_back(runtime.spawn(async move { fetch(store.as_ref(), &key).await }));
                next_fetch += 1;
            }
            let Some(handle) = pending.pop_front() else { break };
            let bytes = runtime.block_on(handle).unwrap_or_else(|e| Err(format!("the fetch task failed: {e}")));
            let result = bytes.and_then(|bytes| records(&self.objects[index], bytes, &self.encoder));
            if self.stop.load(Ordering::Relaxed) || self.tx.send(Fetched { index, result }).is_err() {
                break;
            }
        }
        for handle in pending {
            handle.abort();
        }
    }
}

async fn fetch(store: &dyn ObjectStore, key: &str) -> Result<Bytes, String> {
    let path = Path::parse(key).map_err(|e| format!("the key is not a valid path: {e}"))?;
    let describe = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => "not found (it was listed, then deleted)".to_owned(),
        other => format!("cannot be read: {other}"),
    };
    store.get(&path).await.map_err(describe)?.bytes().await.map_err(describe)
}

/// The records of one object.
fn records(object: &ListedObject, bytes: Bytes, encoder: &RowEncoder) -> Result<Vec<Vec<u8>>, String> {
    let bytes = if object.gzip { gunzip(&bytes, MAX_GUNZIPPED)? } else { bytes };
    match object.format {
        ArchiveFormat::Archived => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()).map_err(|e| format!("is not a readable Parquet object: {e}"))?;
            let mut out = Vec::new();
            for (i, batch) in reader.enumerate() {
                let batch = batch.map_err(|e| format!("row batch {i} is unreadable: {e}"))?;
                let payloads = encoder(object.signal, &batch).map_err(|e| format!("its rows are not {} archive rows: {e}", object.signal.name()))?;
                if payloads.len() != batch.num_rows() {
                    return Err(format!("the row encoder made {} payloads of {} rows", payloads.len(), batch.num_rows()));
                }
                out.extend(payloads);
            }
            Ok(out)
        }
        ArchiveFormat::OtlpProto => Ok(vec![bytes.to_vec()]),
        ArchiveFormat::OtlpJson => Ok(json_values(&bytes)),
    }
}

/// The most a `.gz` object may inflate to (a Collector file is a few MB at most; this keeps a
/// corrupt or hostile object from exhausting memory, `prefetch` of them being held at once).
const MAX_GUNZIPPED: u64 = 1 << 30;

/// The content of a gzip-compressed Collector file (`compression: gzip`), every member of it as
/// `gunzip` reads them. A stream that is not gzip, is cut short, fails its CRC or inflates past
/// `limit` bytes is an error (the object is unreadable, reported with its key).
pub(super) fn gunzip(compressed: &[u8], limit: u64) -> Result<Bytes, String> {
    use std::io::Read as _;
    if compressed.is_empty() {
        return Err("is not a readable gzip stream (.gz): the object is empty".to_owned());
    }
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(64 << 20));
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed).take(limit.saturating_add(1));
    decoder.read_to_end(&mut out).map_err(|e| format!("is not a readable gzip stream (.gz): {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("inflates to more than {limit} bytes (.gz); refused"));
    }
    Ok(Bytes::from(out))
}

/// The JSON values of an `otlp_json` file: one request, or several (JSON lines). From a point
/// that does not parse on, each non-blank line is handed out on its own, for the decoder to
/// dead-letter (with its own offset) or accept.
pub(super) fn json_values(bytes: &[u8]) -> Vec<Vec<u8>> {
    let trim = |b: &[u8]| -> Vec<u8> { b.trim_ascii().to_vec() };
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    loop {
        match stream.next() {
            None => return out,
            Some(Ok(_)) => {
                let end = stream.byte_offset();
                out.push(trim(&bytes[start..end]));
                start = end;
            }
            Some(Err(_)) => {
                out.extend(bytes[start..].split(|b| *b == b'\n').map(trim).filter(|line| !line.is_empty()));
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_files_split_into_values() {
        let one = br#"{"resourceSpans":[{"a":1}]}"#;
        assert_eq!(json_values(one), vec![one.to_vec()]);
        let lines = b"{\"a\":1}\n{\"b\":[2,\n3]}\n\n";
        assert_eq!(json_values(lines), vec![b"{\"a\":1}".to_vec(), b"{\"b\":[2,\n3]}".to_vec()]);
        let damaged = b"{\"a\":1}\n{\"b\":\n{\"c\":3}\n";
        assert_eq!(json_values(damaged), vec![b"{\"a\":1}".to_vec(), b"{\"b\":".to_vec(), b"{\"c\":3}".to_vec()]);
        assert!(json_values(b"  \n").is_empty());
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("compress");
        encoder.finish().expect("compress")
    }

    #[test]
    fn gzip_streams_inflate_or_are_refused() {
        let text = b"{\"resourceLogs\":[]}\n".repeat(100);
        let packed = gzip(&text);
        assert_eq!(gunzip(&packed, MAX_GUNZIPPED).expect("inflate").as_ref(), text.as_slice());
        // Several members (`cat a.gz b.gz`) read as `gunzip` reads them.
        let two = [gzip(b"{\"a\":1}\n"), gzip(b"{\"b\":2}\n")].concat();
        assert_eq!(gunzip(&two, MAX_GUNZIPPED).expect("inflate").as_ref(), b"{\"a\":1}\n{\"b\":2}\n");
        // An empty stream inflates to nothing but is a valid gzip file.
        assert!(gunzip(&gzip(b""), MAX_GUNZIPPED).expect("inflate").is_empty());

        let refused = |bytes: &[u8]| gunzip(bytes, MAX_GUNZIPPED).expect_err("refused");
        for cut in [1, 9, packed.len() / 2, packed.len() - 4, packed.len() - 1] {
            let reason = refused(&packed[..cut]);
            assert!(reason.contains("gzip"), "cut at {cut}: {reason}");
        }
        assert!(refused(b"").contains("empty"));
        assert!(refused(&text).contains("gzip"), "plain text named .gz");
        let mut bad_crc = packed.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        assert!(refused(&bad_crc).contains("gzip"));
        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"garbage after the stream");
        assert!(refused(&trailing).contains("gzip"));
        // A bomb stops at the limit.
        let zeros = gzip(&vec![0u8; 1 << 20]);
        assert!(gunzip(&zeros, 1 << 20).is_ok());
        assert!(gunzip(&zeros, (1 << 20) - 1).expect_err("over the limit").contains("more than"));
    }
}
