//! Errors of the Parquet sink and its object store configuration.

use std::error::Error as StdError;

/// Errors of the object store configuration, the Parquet sink and [`read_parquet`](super::read_parquet).
///
/// [`ParquetError::is_transient`] tells the sink's retry loop which failures are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// A configuration field breaks a rule; found by `validate()` before any I/O.
    #[error("object store config {field}: {message}")]
    Config {
        /// The offending field (`url`, `endpoint`, `retry.max_backoff`, ...).
        field: &'static str,
        /// What is wrong with it, and a hint.
        message: String,
    },
    /// The local directory objects go to could not be created.
    #[error("object store directory {path}: cannot create it: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The `object_store` client could not be built from a valid-looking configuration.
    #[error("object store {url}: cannot build the client: {source}")]
    Build {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// The window handed to the sink cannot be written (bad view name, timestamp out of range).
    #[error("parquet window of view {view:?}: {message}")]
    Window { view: String, message: String },
    /// Encoding the rows as Parquet failed.
    #[error("parquet object {key}: encoding failed: {source}")]
    Encode {
        key: String,
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// The put of an encoded object failed.
    #[error("parquet object {key}: put failed: {source}")]
    Put {
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// Reading an object back failed.
    #[error("parquet object {key}: read failed: {source}")]
    Read {
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// An object's bytes are not readable Parquet.
    #[error("parquet object {key}: decoding failed: {source}")]
    Decode {
        key: String,
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// A record batch of an object could not be decoded.
    #[error("parquet object {key}: decoding a record batch failed: {source}")]
    DecodeBatch {
        key: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl ParquetError {
    /// Whether retrying the same operation later may succeed: network failures, timeouts,
    /// server errors (5xx), throttling (408, 429) and local I/O hiccups (full disk, interrupted
    /// calls). Configuration errors, bad windows, encoding errors, missing buckets, denied
    /// permissions, bad credentials and other client errors (4xx) are permanent: retrying them
    /// would only hide the problem.
    pub fn is_transient(&self) -> bool {
        match self {
            ParquetError::Put { source, .. } | ParquetError::Read { source, .. } => {
                store_error_is_transient(source)
            }
            ParquetError::Config { .. }
            | ParquetError::CreateDir { .. }
            | ParquetError::Build { .. }
            | ParquetError::Window { .. }
            | ParquetError::Encode { .. }
            | ParquetError::Decode { .. }
            | ParquetError::DecodeBatch { .. } => false,
        }
    }
}

/// Classifies an `object_store` error.
///
/// `object_store` maps 401/403/404/409/412 to their own variants and everything else a remote
/// store returns to `Generic`, whose source (a private retry error type) cannot be downcast; so
/// inside `Generic` this walks the source chain: a transport error (`HttpError`) or an I/O error
/// decides by its kind, and an HTTP status is read from the message object_store formats as
/// `non-2xx status code: <code>`. Anything else unknown is treated as transient, the safe default
/// for a sink that must not lose a final window.
fn store_error_is_transient(err: &object_store::Error) -> bool {
    use object_store::Error as E;
    match err {
        E::Generic { source, .. } => generic_is_transient(source.as_ref()),
        E::JoinError { .. } => true,
        E::NotFound { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // `object_store::Error` is non-exhaustive; a new variant is most likely a new kind of
        // remote failure.
        _ => true,
    }
}

fn generic_is_transient(source: &(dyn StdError + Send + Sync + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(source);
    while let Some(err) = current {
        if err
            .downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_error_is_transient(io);
        }
        if let Some(status) = status_in_message(&err.to_string()) {
            return status_is_transient(status);
        }
        current = err.source();
    }
    true
}

/// Reads the status from object_store's `Server returned non-2xx status code: 503 Service ...`.
fn status_in_message(message: &str) -> Option<u16> {
    const MARKER: &str = "non-2xx status code: ";
    let start = message.find(MARKER)? + MARKER.len();
    message.get(start..start + 3)?.parse().ok()
}

fn status_is_transient(status: u16) -> bool {
    !(400..500).contains(&status) || status == 408 || status == 429
}

fn io_error_is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    !matches!(
        err.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::InvalidInput
            | K::InvalidFilename
            | K::NotADirectory
            | K::IsADirectory
            | K::Unsupported
            | K::AlreadyExists
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_object_store_message() {
        let msg = "Generic S3 error: Error performing PUT http://x/b/k in 1ms - Server returned \
                   non-2xx status code: 400 Bad Request: <Error/>";
        assert_eq!(status_in_message(msg), Some(400));
        assert_eq!(status_in_message("no status here"), None);
        assert!(!status_is_transient(400));
        assert!(!status_is_transient(404));
        assert!(status_is_transient(408));
        assert!(status_is_transient(429));
        assert!(status_is_transient(500));
        assert!(status_is_transient(503));
    }

    #[test]
    fn named_store_errors_are_classified() {
        let put = |source| ParquetError::Put {
            key: "k".into(),
            source,
        };
        let not_found = object_store::Error::NotFound {
            path: "k".into(),
            source: "gone".into(),
        };
        assert!(!put(not_found).is_transient());
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "no".into(),
        };
        assert!(!put(denied).is_transient());
        let disk_full = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::new(std::io::ErrorKind::StorageFull, "full")),
        };
        assert!(put(disk_full).is_transient());
        let read_only = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::ReadOnlyFilesystem,
                "ro",
            )),
        };
        assert!(!put(read_only).is_transient());
        let config = ParquetError::Config {
            field: "url",
            message: "empty".into(),
        };
        assert!(!config.is_transient());
    }
}
