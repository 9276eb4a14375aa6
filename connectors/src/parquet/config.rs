//! Where Parquet objects go: a local directory or an S3(-compatible) bucket.

use std::fmt;
use std::sync::Arc;

use crate::retry::RetryConfig;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use serde::Deserialize;
use url::Url;

use super::ParquetError;

/// Where objects go: a plain path or `file://` URL (local), or `s3://bucket/prefix`.
///
/// ```yaml
/// url: s3://telemetry/observebridge
/// endpoint: http://127.0.0.1:5555
/// region: us-east-1
/// access_key_id: test
/// secret_access_key: test
/// retry: { initial_backoff: 200ms, max_backoff: 10s }
/// ```
///
/// [`ObjectStoreConfig::validate`] checks every rule without touching the network or the disk;
/// [`ObjectStoreConfig::build`] validates first, then creates the client.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// Where objects go: `./data` or `/abs/dir` (a local directory, created if missing, relative
    /// paths resolve against the working directory), `file:///abs/dir`, or `s3://bucket/prefix`
    /// (the prefix is optional). Default `./data`.
    #[serde(default = "default_url")]
    pub url: String,
    /// S3-compatible endpoint (MinIO, moto, Ceph ...), e.g. `http://127.0.0.1:5555`; requests then
    /// use path-style addressing. Only for `s3://` URLs. Default: AWS itself (or `AWS_ENDPOINT`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region of the bucket. Only for `s3://` URLs. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// from the environment, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Access key id. Only for `s3://` URLs; give it with `secret_access_key` or not at all.
    /// Default: the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, web identity, instance metadata ...).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key, paired with `access_key_id`. Never printed (redacted in `Debug`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Whether plain `http://` is allowed. Only for `s3://` URLs. Default: true exactly when
    /// `endpoint` starts with `http://`.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// How failed puts are retried. Transient failures (network, 5xx, throttling) are retried
    /// for as long as it takes, with exponential backoff; permanent ones fail the write.
    #[serde(default)]
    pub retry: RetryConfig,
}


fn default_url() -> String {
    "./data".to_string()
}

/// How many times `object_store` itself retries one request before the sink's own loop (which
/// never gives up on transient errors) sees the failure, calls `on_retry` and backs off.
const STORE_MAX_RETRIES: usize = 3;


impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig {
            url: default_url(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: None,
            retry: RetryConfig::default(),
        }
    }
}

impl fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A parsed `url`.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    /// A local directory, as written (relative paths are resolved by `build`).
    Local(std::path::PathBuf),
    /// A bucket and a prefix inside it (no leading or trailing `/`, possibly empty).
    S3 { bucket: String, prefix: String },
}

impl ObjectStoreConfig {
    /// Checks every rule without any I/O; [`build`](Self::build) calls it first. Returns the first
    /// broken rule, naming the field.
    pub fn validate(&self) -> Result<(), ParquetError> {
        let location = self.location()?;
        if let Location::Local(_) = location {
            for (field, set) in [
                ("endpoint", self.endpoint.is_some()),
                ("region", self.region.is_some()),
                ("access_key_id", self.access_key_id.is_some()),
                ("secret_access_key", self.secret_access_key.is_some()),
                ("allow_http", self.allow_http.is_some()),
            ] {
                if set {
                    return Err(config_error(
                        field,
                        format!(
                            "only applies to s3:// urls, but url {:?} is a local path",
                            self.url
                        ),
                    ));
                }
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let parsed = Url::parse(endpoint).map_err(|e| {
                config_error(
                    "endpoint",
                    format!("{endpoint:?} is not a URL ({e}); write it like http://127.0.0.1:9000"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https")
                || parsed.host_str().is_none_or(str::is_empty)
            {
                return Err(config_error(
                    "endpoint",
                    format!("{endpoint:?} is not an http:// or https:// URL with a host"),
                ));
            }
            if parsed.scheme() == "http" && self.allow_http == Some(false) {
                return Err(config_error(
                    "allow_http",
                    format!(
                        "is false but endpoint {endpoint:?} uses http://; use https:// or allow http"
                    ),
                ));
            }
        }
        if let Some(region) = &self.region
            && region.trim().is_empty()
        {
            return Err(config_error(
                "region",
                "is empty; leave it out for the default".to_string(),
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                if id.is_empty() {
                    return Err(config_error("access_key_id", "is empty".to_string()));
                }
                if secret.is_empty() {
                    return Err(config_error("secret_access_key", "is empty".to_string()));
                }
            }
            (Some(_), None) => {
                return Err(config_error(
                    "secret_access_key",
                    "is missing while access_key_id is set; give both or neither".to_string(),
                ));
            }
            (None, Some(_)) => {
                return Err(config_error(
                    "access_key_id",
                    "is missing while secret_access_key is set; give both or neither".to_string(),
                ));
            }
            (None, None) => {}
        }
        if let Some((field, reason)) = self.retry.problem() {
            return Err(config_error(field, reason));
        }
        Ok(())
    }

    /// Validates, then builds the client and the prefix under which objects go.
    ///
    /// A local directory is created if missing; the store is then the whole local file system
    /// and the prefix the directory's absolute path, which is how DataFusion names local files
    /// too. For `s3://bucket/prefix` the store is the bucket and the prefix `prefix`.
    pub fn build(&self) -> Result<(Arc<dyn ObjectStore>, Path), ParquetError> {
        self.validate()?;
        match self.location()? {
            Location::Local(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| ParquetError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                let absolute =
                    std::fs::canonicalize(&dir).map_err(|source| ParquetError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                let prefix =
                    Path::from_absolute_path(&absolute).map_err(|e| ParquetError::Build {
                        url: self.url.clone(),
                        source: e.into(),
                    })?;
                tracing::info!(url = %self.url, dir = %absolute.display(), "parquet objects go to a local directory");
                Ok((Arc::new(LocalFileSystem::new()), prefix))
            }
            Location::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(self.store_retry());
                if let Some(endpoint) = &self.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                // Without a configured region, the builder keeps the environment's, else
                // object_store's own default, `us-east-1`.
                if let Some(region) = &self.region {
                    builder = builder.with_region(region);
                }
                if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                }
                let allow_http = self.allow_http.unwrap_or_else(|| {
                    self.endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://"))
                });
                builder = builder.with_allow_http(allow_http);
                let store = builder.build().map_err(|source| ParquetError::Build {
                    url: self.url.clone(),
                    source,
                })?;
                let prefix = Path::parse(&prefix).map_err(|e| ParquetError::Build {
                    url: self.url.clone(),
                    source: e.into(),
                })?;
                tracing::info!(
                    url = %self.url,
                    bucket = %bucket,
                    endpoint = self.endpoint.as_deref().unwrap_or("aws"),
                    allow_http,
                    "parquet objects go to s3"
                );
                Ok((Arc::new(store), prefix))
            }
        }
    }

    /// `object_store`'s own per-request retry: short, shaped like ours, so that a long outage
    /// surfaces to the sink's loop (and to `on_retry`) instead of hiding inside one put.
    fn store_retry(&self) -> object_store::RetryConfig {
        object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: self.retry.initial_backoff,
                max_backoff: self.retry.max_backoff,
                base: 2.0,
            },
            max_retries: STORE_MAX_RETRIES,
            retry_timeout: self
                .retry
                .max_backoff
                .saturating_mul(STORE_MAX_RETRIES as u32 + 1),
        }
    }

    /// Parses `url` into a local directory or a bucket and prefix.
    fn location(&self) -> Result<Location, ParquetError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(config_error(
                "url",
                "is empty; give a directory, file:///dir or s3://bucket/prefix".to_string(),
            ));
        }
        if url != self.url {
            return Err(config_error(
                "url",
                format!("{:?} has leading or trailing whitespace", self.url),
            ));
        }
        let Some((scheme, _)) = url.split_once("://") else {
            return Ok(Location::Local(std::path::PathBuf::from(url)));
        };
        let parsed = Url::parse(url)
            .map_err(|e| config_error("url", format!("{url:?} is not a valid URL: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(config_error(
                "url",
                "must not hold credentials; use access_key_id and secret_access_key".to_string(),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(config_error(
                "url",
                format!("{url:?} must not have a query or a fragment"),
            ));
        }
        match parsed.scheme() {
            "file" => {
                if parsed
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(config_error(
                        "url",
                        format!("{url:?} names a remote host; write file:///absolute/dir"),
                    ));
                }
                let dir = parsed.to_file_path().map_err(|()| {
                    config_error("url", format!("{url:?} is not an absolute file path"))
                })?;
                Ok(Location::Local(dir))
            }
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err(config_error(
                        "url",
                        format!("{url:?} has no bucket; write s3://bucket/prefix"),
                    ));
                }
                validate_bucket(&bucket)?;
                let path = parsed.path();
                let prefix = path.trim_matches('/');
                if !prefix.is_empty() {
                    Path::parse(prefix).map_err(|e| {
                        config_error(
                            "url",
                            format!("prefix {prefix:?} is not a valid object path: {e}"),
                        )
                    })?;
                }
                Ok(Location::S3 {
                    bucket,
                    prefix: prefix.to_string(),
                })
            }
            _ => Err(config_error(
                "url",
                format!(
                    "unsupported scheme {scheme:?}; use a directory, file:///dir or s3://bucket/prefix"
                ),
            )),
        }
    }
}

/// S3 bucket naming rules: 3 to 63 characters of lowercase letters, digits, `.` and `-`, starting
/// and ending with a letter or digit.
fn validate_bucket(bucket: &str) -> Result<(), ParquetError> {
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let valid_ends = bucket
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !(3..=63).contains(&bucket.len()) || !valid_chars || !valid_ends {
        return Err(config_error(
            "url",
            format!(
                "bucket {bucket:?} is not a valid bucket name: 3 to 63 lowercase letters, digits, '.' \
                 or '-', starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

fn config_error(field: &'static str, message: String) -> ParquetError {
    ParquetError::Config { field, message }
}

#[cfg(test)]
impl ObjectStoreConfig {
    /// The parsed location, for tests of the URL rules.
    pub(super) fn location_for_test(&self) -> Result<(bool, String, String), ParquetError> {
        Ok(match self.location()? {
            Location::Local(dir) => (true, String::new(), dir.display().to_string()),
            Location::S3 { bucket, prefix } => (false, bucket, prefix),
        })
    }
}
