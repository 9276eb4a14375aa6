//! The Parquet sink: one object per final window, at a deterministic key, with deterministic bytes.

use std::fmt;
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::file::properties::WriterProperties;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{ObjectStoreConfig, ParquetError, RetryConfig};
use crate::sink::FinalWindow;

/// zstd level of the written objects: zstd's own default, a good ratio at a low CPU cost.
const ZSTD_LEVEL: i32 = 3;

/// Writes final windows as Parquet objects under a prefix of an object store.
///
/// Called by the engine for every window that became final (the watermark passed its end). The
/// engine may hand the same window again after a retry or a restart: the object key depends only
/// on the view and the window start, and the bytes only on the rows, so the second write replaces
/// the object with an identical one. Puts are atomic: readers see the whole object or none.
pub struct ParquetSink {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    retry: RetryConfig,
}

impl fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store's Display names its kind and bucket or root, nothing secret.
        f.debug_struct("ParquetSink")
            .field("store", &format_args!("{}", self.store))
            .field("prefix", &self.prefix.as_ref())
            .field("retry", &self.retry)
            .finish()
    }
}

impl ParquetSink {
    /// Validates the configuration and builds the store (creating a local directory if needed).
    pub fn new(cfg: &ObjectStoreConfig) -> Result<Self, ParquetError> {
        let (store, prefix) = cfg.build()?;
        Ok(ParquetSink {
            store,
            prefix,
            retry: cfg.retry.clone(),
        })
    }

    /// The key of a window's object relative to the prefix:
    /// `<view>/date=YYYY-MM-DD/hour=HH/<view>-YYYYMMDDTHHMMSSZ.parquet`, in UTC, from
    /// `window_start_ms`. Deterministic: the same window always maps to the same key.
    ///
    /// The raw archive's minutes (views named `raw/<signal>`) go to
    /// `raw/<signal>/date=YYYY-MM-DD/hour=HH/minute=MM/<signal>-YYYYMMDDTHHMMZ.parquet`, the key
    /// the engine's `raw_locator` rows and `sample_ref`s name (a test in `tests/schemas.rs`
    /// holds the two definitions together).
    ///
    /// Window starts beyond chrono's range (about ±262,000 years) are clamped here;
    /// [`write`](Self::write) refuses them before they could share a key.
    pub fn object_key(view: &str, window_start_ms: i64) -> String {
        let start = DateTime::<Utc>::from_timestamp_millis(window_start_ms).unwrap_or(
            if window_start_ms < 0 {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            },
        );
        if let Some(signal) = raw_signal(view) {
            return format!(
                "raw/{signal}/date={}/hour={}/minute={}/{signal}-{}.parquet",
                start.format("%Y-%m-%d"),
                start.format("%H"),
                start.format("%M"),
                start.format("%Y%m%dT%H%MZ"),
            );
        }
        format!(
            "{view}/date={}/hour={}/{view}-{}.parquet",
            start.format("%Y-%m-%d"),
            start.format("%H"),
            start.format("%Y%m%dT%H%M%SZ"),
        )
    }

    /// The window start a view's object key names (the inverse of [`object_key`](Self::object_key)
    /// for views; `key` may carry the store's prefix). `None` for another view's key or the raw
    /// archive's.
    pub fn window_start(view: &str, key: &str) -> Option<i64> {
        let name = key.rsplit('/').next()?;
        let stamp = name.strip_prefix(view)?.strip_prefix('-')?.strip_suffix(".parquet")?;
        let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok()?;
        Some(at.and_utc().timestamp_millis())
    }

    /// Encodes the rows as one Parquet object (zstd, the batch's Arrow schema embedded;
    /// byte-for-byte deterministic for the same rows, so a retried or repeated write produces the
    /// same object, never a duplicate) and puts it (a single PUT; object_store puts are atomic,
    /// so readers never see half an object).
    ///
    /// Transient failures (see [`ParquetError::is_transient`]) are retried with exponential
    /// backoff (`cfg.retry`) for as long as it takes; `on_retry(attempt, error)` is called before
    /// each wait, with `attempt` counting from 1, so the caller can count and report. Permanent
    /// failures are returned at once. Returns the object's full key in the store (prefix
    /// included), as [`read_parquet`] takes it.
    pub async fn write(
        &self,
        window: &FinalWindow,
        mut on_retry: impl FnMut(u32, &ParquetError),
    ) -> Result<String, ParquetError> {
        check_window(window)?;
        let relative = Self::object_key(&window.view, window.window_start_ms);
        let location = relative
            .split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part));
        let key = location.to_string();

        let encoded = encode(&window.rows, &key).await?;
        let size = encoded.len();
        // A payload is reference counted: every attempt sends the same bytes without copying.
        let payload = PutPayload::from_bytes(encoded);

        let mut attempt: u32 = 0;
        let mut backoff = self.retry.initial_backoff;
        loop {
            match self.store.put(&location, payload.clone()).await {
                Ok(_) => {
                    tracing::info!(
                        view = %window.view,
                        key = %key,
                        rows = window.rows.num_rows(),
                        bytes = size,
                        retries = attempt,
                        "parquet window written"
                    );
                    return Ok(key);
                }
                Err(source) => {
                    let err = ParquetError::Put {
                        key: key.clone(),
                        source,
                    };
                    if !err.is_transient() {
                        tracing::error!(view = %window.view, key = %key, error = %err, "parquet put failed permanently");
                        return Err(err);
                    }
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(
                        view = %window.view,
                        key = %key,
                        attempt,
                        backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                        error = %err,
                        "parquet put failed, retrying"
                    );
                    on_retry(attempt, &err);
                    tokio::time::sleep(backoff).await;
                    backoff = self.retry.next(backoff);
                }
            }
        }
    }

    /// The store objects are written to, for readers and tests.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix every key written starts with (the bucket prefix, or a local directory's
    /// absolute path).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }
}

/// Reads a Parquet object back into record batches (used by tests and, later, by replay/SQL).
///
/// Fetches the whole object in one GET: window objects are small, and one request is cheaper
/// than the footer-then-ranges dance of the async reader.
pub async fn read_parquet(
    store: &dyn ObjectStore,
    key: &Path,
) -> Result<Vec<RecordBatch>, ParquetError> {
    let name = key.to_string();
    let data = store
        .get(key)
        .await
        .map_err(|source| ParquetError::Read {
            key: name.clone(),
            source,
        })?
        .bytes()
        .await
        .map_err(|source| ParquetError::Read {
            key: name.clone(),
            source,
        })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data).map_err(|source| ParquetError::Decode {
            key: name.clone(),
            source,
        })?;
    // The reader's batches carry the fields but not the schema-level metadata; put the file's
    // full schema back so that a read returns what was written.
    let schema = Arc::clone(builder.schema());
    let reader = builder.build().map_err(|source| ParquetError::Decode {
        key: name.clone(),
        source,
    })?;
    reader
        .map(|batch| batch.and_then(|batch| batch.with_schema(Arc::clone(&schema))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ParquetError::DecodeBatch { key: name, source })
}

/// The signal of a raw archive view (`raw/<signal>`), if `view` is one.
fn raw_signal(view: &str) -> Option<&str> {
    view.strip_prefix("raw/")
}

/// A view or signal name: non-empty ASCII letters, digits, '_' or '-'.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Refuses windows whose key would be ambiguous or invalid.
fn check_window(window: &FinalWindow) -> Result<(), ParquetError> {
    let fail = |message: String| {
        Err(ParquetError::Window {
            view: window.view.clone(),
            message,
        })
    };
    if let Some(signal) = raw_signal(&window.view) {
        if !is_plain_name(signal) {
            return fail(
                "a raw archive view is raw/<signal>, the signal non-empty ASCII letters, digits, '_' or '-'"
                    .to_string(),
            );
        }
        if window.window_start_ms.rem_euclid(60_000) != 0 {
            // The key has minute resolution.
            return fail(format!(
                "raw archive minute start {} ms is not a whole minute",
                window.window_start_ms
            ));
        }
    } else if !is_plain_name(&window.view) {
        return fail(
            "the view name must be non-empty ASCII letters, digits, '_' or '-'".to_string(),
        );
    }
    if DateTime::<Utc>::from_timestamp_millis(window.window_start_ms).is_none() {
        return fail(format!(
            "window start {} ms is out of the representable range",
            window.window_start_ms
        ));
    }
    if window.window_start_ms.rem_euclid(1000) != 0 {
        // The key has second resolution; two windows inside one second would share it.
        return fail(format!(
            "window start {} ms is not a whole second",
            window.window_start_ms
        ));
    }
    Ok(())
}

/// Encodes the rows off the async runtime (encoding and zstd are CPU work).
async fn encode(rows: &RecordBatch, key: &str) -> Result<Bytes, ParquetError> {
    let rows = rows.clone();
    let encoded = tokio::task::spawn_blocking(move || encode_blocking(&rows))
        .await
        .unwrap_or_else(|e| {
            Err(::parquet::errors::ParquetError::General(format!(
                "encoding task failed: {e}"
            )))
        });
    encoded.map_err(|source| ParquetError::Encode {
        key: key.to_string(),
        source,
    })
}

/// One row group per window (up to the writer's default row-group size). The Arrow schema is
/// embedded with its metadata keys sorted, so the bytes do not depend on hash-map order;
/// `created_by` names the parquet-rs version, fixed for a build.
fn encode_blocking(rows: &RecordBatch) -> Result<Bytes, ::parquet::errors::ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), rows.schema(), Some(props))?;
    writer.write(rows)?;
    Ok(Bytes::from(writer.into_inner()?))
}

