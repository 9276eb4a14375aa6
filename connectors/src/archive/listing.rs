//! Listing a window: only the prefixes of the hours (or minutes) the window needs, never the
//! whole bucket.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;

use super::config::{ArchiveConfig, ArchiveFormat, ArchiveSignal, Layout, Window};
use super::ArchiveError;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// List requests in flight at once.
const LIST_CONCURRENCY: usize = 8;

/// One object a replay reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    /// The object's full key in the store (the store's prefix included).
    pub key: String,
    pub size: u64,
    /// Start of the object's partition (ms): its minute, or its hour for hourly formats.
    pub minute: i64,
    pub signal: ArchiveSignal,
    pub format: ArchiveFormat,
    /// A Collector file written with `compression: gzip` (`.gz`).
    pub gzip: bool,
}

/// What listing a window found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every prefix listed, in the order listed: one per signal root and hour of the range read
    /// (per minute when the partition format puts `%M` before the hour is complete).
    pub prefixes: Vec<String>,
    /// The objects the window needs, in read order: by partition start, then key.
    pub objects: Vec<ListedObject>,
    /// Objects inside the window's partitions that are not the dataset's (another name or
    /// extension), with the reason: reported, never read.
    pub ignored: Vec<(String, String)>,
    /// Objects under the listed prefixes in partitions outside the range read.
    pub outside: u64,
}

impl Listing {
    /// The sum of the objects' sizes.
    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    /// The object and row (or JSON value) behind a record offset handed out by
    /// [`ArchiveSource`](super::ArchiveSource): `offset = (object index << 32) | row`.
    pub fn locate(&self, offset: u64) -> Option<(&ListedObject, u64)> {
        let index = usize::try_from(offset >> 32).ok()?;
        self.objects.get(index).map(|o| (o, offset & 0xffff_ffff))
    }
}

/// Lists the objects `config` names for `window`, on a runtime of its own (safe to call from
/// any thread, inside an async runtime or not). Validates both first.
pub fn list(config: &ArchiveConfig, window: &Window) -> Result<Listing, ArchiveError> {
    config.validate()?;
    window.validate()?;
    let (store, root) = config.store.build()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| ArchiveError::Runtime(e.to_string()))?;
                runtime.block_on(list_window(store.as_ref(), &root, config, window))
            })
            .join()
            .unwrap_or_else(|_| Err(ArchiveError::Runtime("the listing thread panicked".to_owned())))
    })
}

/// Lists the objects of `window` under `root` of `store` (the prefix [`ObjectStoreConfig::build`]
/// returns), as `config`'s layout and signals say.
///
/// Per signal root (`raw/<signal>` for the raw archive, `root` itself for the Collector), one list
/// request per hour of `[from - warmup, to + tail)`; objects whose partition does not meet that
/// range are dropped (counted in [`Listing::outside`]). A partition `[p, p + 1 minute)` meets the
/// range when `p + 1 minute > from - warmup` and `p < to + tail`: with whole minutes, the object
/// of minute `to - 1m` is read and that of minute `to` is not.
///
/// [`ObjectStoreConfig::build`]: crate::parquet::ObjectStoreConfig::build
pub async fn list_window(store: &dyn ObjectStore, root: &Path, config: &ArchiveConfig, window: &Window) -> Result<Listing, ArchiveError> {
    config.validate()?;
    window.validate()?;
    let format = config.partition_format()?;
    let (lo, hi) = window.read_range();
    let unit = if format.has_minute() { MINUTE_MS } else { HOUR_MS };
    let list_unit = if format.lists_minutes() { MINUTE_MS } else { HOUR_MS };

    // (signal root, the signal when the root holds one signal only)
    let roots: Vec<(Path, Option<ArchiveSignal>)> = match config.layout {
        Layout::RawArchive => config.signals().into_iter().map(|s| Ok((join(root, &format!("raw/{}", s.name()))?, Some(s)))).collect::<Result<_, ArchiveError>>()?,
        Layout::Collector => vec![(root.clone(), None)],
    };
    let signals = config.signals();

    struct Request {
        root: Path,
        signal: Option<ArchiveSignal>,
        prefix: Path,
        /// Partition directory (relative to the root) -> partition start.
        partitions: HashMap<String, i64>,
    }
    let mut requests = Vec::new();
    for (signal_root, signal) in &roots {
        let mut start = lo.div_euclid(list_unit) * list_unit;
        while start < hi {
            let end = start + list_unit;
            let mut partitions = HashMap::new();
            let mut p = lo.max(start).div_euclid(unit) * unit;
            while p < end.min(hi) {
                partitions.insert(format.partition_dir(p), p);
                p += unit;
            }
            requests.push(Request { root: signal_root.clone(), signal: *signal, prefix: join(signal_root, &format.list_prefix(start))?, partitions });
            start = end;
        }
    }

    let mut listing = Listing { prefixes: requests.iter().map(|r| r.prefix.to_string()).collect(), ..Listing::default() };
    let pending = &requests;
    let results: Vec<(usize, Vec<object_store::ObjectMeta>)> = futures::stream::iter(0..requests.len())
        .map(|i| {
            async move {
                let request = &pending[i];
                let listed: Result<Vec<_>, _> = store.list(Some(&request.prefix)).try_collect().await;
                match listed {
                    Ok(metas) => Ok((i, metas)),
                    Err(object_store::Error::NotFound { .. }) => Ok((i, Vec::new())),
                    Err(source) => Err(ArchiveError::List { prefix: request.prefix.to_string(), source }),
                }
            }
        })
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await?;

    for (i, metas) in results {
        let request = &requests[i];
        let root_text = request.root.as_ref();
        for meta in metas {
            let key = meta.location.to_string();
            let relative = if root_text.is_empty() { key.as_str() } else { key.strip_prefix(root_text).and_then(|k| k.strip_prefix('/')).unwrap_or(key.as_str()) };
            let (dir, file) = relative.rsplit_once('/').unwrap_or(("", relative));
            let Some(&minute) = request.partitions.get(dir) else {
                listing.outside += 1;
                continue;
            };
            let named = match request.signal {
                Some(signal) => raw_file(file).map(|()| (signal, ArchiveFormat::Archived, false)),
                None => collector_file(file),
            };
            match named {
                Ok((signal, format, gzip)) if signals.contains(&signal) => listing.objects.push(ListedObject { key, size: meta.size, minute, signal, format, gzip }),
                Ok(_) => listing.outside += 1,
                Err(reason) => listing.ignored.push((key, reason)),
            }
        }
    }
    listing.objects.sort_by(|a, b| (a.minute, &a.key).cmp(&(b.minute, &b.key)));
    listing.ignored.sort();
    tracing::info!(
        prefixes = listing.prefixes.len(),
        objects = listing.objects.len(),
        bytes = listing.total_bytes(),
        ignored = listing.ignored.len(),
        outside = listing.outside,
        from_ms = window.from_ms,
        to_ms = window.to_ms,
        "archive window listed"
    );
    Ok(listing)
}

/// `root/relative`, for a relative path of plain segments.
fn join(root: &Path, relative: &str) -> Result<Path, ArchiveError> {
    let text = if root.as_ref().is_empty() { relative.to_owned() } else { format!("{}/{relative}", root.as_ref()) };
    Path::parse(&text).map_err(|e| ArchiveError::Config { field: "partition_format".to_owned(), message: format!("makes the prefix {text:?}, which is not a valid object path: {e}") })
}

/// A raw archive object's file name: `<signal>-YYYYMMDDTHHMMZ.parquet` (any `.parquet` is read).
fn raw_file(name: &str) -> Result<(), String> {
    if name.ends_with(".parquet") { Ok(()) } else { Err("not a .parquet object".to_owned()) }
}

/// A Collector file name: `<file_prefix><traces|metrics|logs>_<unique>.<json|binpb>[.gz]`.
pub(super) fn collector_file(name: &str) -> Result<(ArchiveSignal, ArchiveFormat, bool), String> {
    let (base, gzip) = match name.strip_suffix(".gz") {
        Some(base) => (base, true),
        None => (name, false),
    };
    let Some((stem, extension)) = base.rsplit_once('.') else {
        return Err("no .json or .binpb extension".to_owned());
    };
    let format = match extension {
        "json" => ArchiveFormat::OtlpJson,
        "binpb" => ArchiveFormat::OtlpProto,
        other => return Err(format!("extension .{other} is not an OTLP marshaler's (.json for otlp_json, .binpb for otlp_proto)")),
    };
    let Some((head, _unique)) = stem.rsplit_once('_') else {
        return Err("the name is not <prefix><traces|metrics|logs>_<unique>".to_owned());
    };
    let signal = if head.ends_with("traces") {
        ArchiveSignal::Spans
    } else if head.ends_with("metrics") {
        ArchiveSignal::Metrics
    } else if head.ends_with("logs") {
        ArchiveSignal::Logs
    } else {
        return Err("the name is not <prefix><traces|metrics|logs>_<unique>".to_owned());
    };
    Ok((signal, format, gzip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_file_names() {
        assert_eq!(collector_file("traces_AbC123xyz.json"), Ok((ArchiveSignal::Spans, ArchiveFormat::OtlpJson, false)));
        assert_eq!(collector_file("prod-metrics_0190a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b.binpb"), Ok((ArchiveSignal::Metrics, ArchiveFormat::OtlpProto, false)));
        assert_eq!(collector_file("logs_q1w2e3r4t.json.gz"), Ok((ArchiveSignal::Logs, ArchiveFormat::OtlpJson, true)));
        for bad in ["traces_x.parquet", "README", "spans_x.json", "traces.json"] {
            assert!(collector_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_locate_their_object() {
        let object = ListedObject { key: "k".into(), size: 3, minute: 0, signal: ArchiveSignal::Logs, format: ArchiveFormat::Archived, gzip: false };
        let listing = Listing { objects: vec![object.clone(), ListedObject { key: "l".into(), ..object }], ..Listing::default() };
        assert_eq!(listing.locate((1 << 32) | 7).map(|(o, row)| (o.key.as_str(), row)), Some(("l", 7)));
        assert!(listing.locate(2 << 32).is_none());
        assert_eq!(listing.total_bytes(), 6);
    }
}
