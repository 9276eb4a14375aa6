//! The Postgres sink's configuration: serde data, checked by [`PostgresConfig::validate`] before
//! any connection is opened.

use std::fmt;

use crate::retry::RetryConfig;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::error::PostgresError;

/// Where and how the Postgres sink writes.
///
/// In a job spec:
///
/// ```yaml
/// url: postgres://observebridge:secret@db.internal:5432/observebridge
/// schema: telemetry
/// tls: { mode: verify-full, ca_file: /etc/ssl/certs/db-ca.pem }
/// max_connections: 4
/// retry: { initial_backoff: 200ms, max_backoff: 10s }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL, `postgres://user:password@host:port/database`. The password is never
    /// logged. TLS is set with `tls`, not with `sslmode` in the URL.
    pub url: String,
    /// Schema the tables live in. The sink creates it if missing and puts it first in every
    /// connection's `search_path` (followed by `public`, where extensions such as TimescaleDB
    /// usually live); every statement the sink writes names it explicitly. Default `public`.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// TLS to the server. Default: mode `prefer`.
    #[serde(default = "default_tls")]
    pub tls: TlsConfig,
    /// Most connections the sink keeps open. Default 4.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long one attempt waits to get a connection (opening one if needed, which includes
    /// waiting for a server that refuses connections) before it fails and is retried, as a
    /// duration (`"10s"`). Default 10s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Backoff between attempts when the server is unreachable or a transaction fails for a
    /// transient reason.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Maintain `dim_tenant` and `dim_resource` from upserted rows that have a `tenant` and a
    /// `resource` (URN) column. Default true.
    #[serde(default = "default_dimensions")]
    pub dimensions: bool,
}

/// TLS between the sink and the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `disable`, `prefer` (TLS if the server offers it, certificate not checked), `require`
    /// (TLS, certificate not checked unless `ca_file` is set), `verify-ca` (certificate signed
    /// by a trusted CA) or `verify-full` (and issued for the URL's host). Default `prefer`.
    #[serde(default = "default_tls_mode")]
    pub mode: TlsMode,
    /// PEM file of the CA(s) that sign the server's certificate. Without it `verify-ca` and
    /// `verify-full` trust the Mozilla root set (webpki roots). Used with `require`,
    /// `verify-ca` and `verify-full` only.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How TLS is negotiated and checked; the libpq `sslmode` values of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS or nothing; the certificate is checked only when a `ca_file` is given.
    Require,
    /// TLS, and the server's certificate must chain to a trusted CA.
    VerifyCa,
    /// TLS, trusted CA, and the certificate must name the host of the URL.
    VerifyFull,
}


fn default_schema() -> String {
    "public".to_owned()
}

fn default_tls() -> TlsConfig {
    TlsConfig {
        mode: default_tls_mode(),
        ca_file: None,
    }
}

fn default_tls_mode() -> TlsMode {
    TlsMode::Prefer
}

fn default_max_connections() -> u32 {
    4
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}




fn default_dimensions() -> bool {
    true
}

/// Longest Postgres identifier (NAMEDATALEN - 1).
const MAX_IDENTIFIER_LEN: usize = 63;

/// URL query parameters that would contradict settings the sink makes itself.
const RESERVED_URL_PARAMS: &[(&str, &str)] = &[
    ("sslmode", "set `tls.mode` instead"),
    ("sslrootcert", "set `tls.ca_file` instead"),
    (
        "options",
        "the sink sets the connection options itself (search_path from `schema`)",
    ),
];

impl PostgresConfig {
    /// A config with every optional field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: default_schema(),
            tls: default_tls(),
            max_connections: default_max_connections(),
            connect_timeout: default_connect_timeout(),
            retry: RetryConfig::default(),
            dimensions: default_dimensions(),
        }
    }

    /// Checks the config without touching the network or the file system, so that a job spec
    /// is refused before anything starts. Errors name the field at fault.
    pub fn validate(&self) -> Result<(), PostgresError> {
        let invalid =
            |field: &'static str, reason: String| PostgresError::InvalidConfig { field, reason };

        let url = url::Url::parse(&self.url).map_err(|e| {
            invalid(
                "url",
                format!("{} is not a URL: {e}", redact_url(&self.url)),
            )
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(invalid(
                "url",
                format!(
                    "scheme `{}` is not postgres; expected postgres://user:password@host:port/database",
                    url.scheme()
                ),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(
                "url",
                "has no host; expected postgres://user:password@host:port/database".to_owned(),
            ));
        }
        for (key, _) in url.query_pairs() {
            if let Some((_, hint)) = RESERVED_URL_PARAMS.iter().find(|(name, _)| *name == key) {
                return Err(invalid("url", format!("sets `{key}`; {hint}")));
            }
        }

        validate_identifier(&self.schema).map_err(|reason| invalid("schema", reason))?;

        if self.tls.ca_file.is_some() && matches!(self.tls.mode, TlsMode::Disable | TlsMode::Prefer)
        {
            return Err(invalid(
                "tls.ca_file",
                format!(
                    "is set but mode `{}` never checks certificates. Use mode verify-full (or verify-ca), or remove ca_file.",
                    self.tls.mode.as_str()
                ),
            ));
        }
        if self
            .tls
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(invalid("tls.ca_file", "is an empty path".to_owned()));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".to_owned()));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid(
                "connect_timeout",
                "must be greater than zero".to_owned(),
            ));
        }
        if let Some((field, reason)) = self.retry.problem() {
            return Err(invalid(field, reason));
        }
        Ok(())
    }

    /// The URL with its password replaced by `****`, for logs and error messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// sqlx connect options: the URL (parsed by sqlx, which also reads `~/.pgpass` when the URL
    /// has no password: hence here and not in `validate`), TLS, and the schema as the first entry of `search_path`
    /// (a startup parameter, so every connection the pool opens has it, reconnects included).
    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions, PostgresError> {
        let mut options = self
            .url
            .parse::<PgConnectOptions>()
            .map_err(|e| PostgresError::InvalidConfig {
                field: "url",
                reason: format!("is not a Postgres connection URL: {e}"),
            })?
            .ssl_mode(self.tls.mode.into())
            .application_name("observebridge");
        if let Some(ca_file) = &self.tls.ca_file {
            options = options.ssl_root_cert(ca_file);
        }
        Ok(options.options([("search_path", self.search_path())]))
    }

    /// `"<schema>", public` (or just `public`).
    fn search_path(&self) -> String {
        if self.schema == "public" {
            "public".to_owned()
        } else {
            format!("{}, public", super::columns::quote_ident(&self.schema))
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("tls", &self.tls)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("dimensions", &self.dimensions)
            .finish()
    }
}

impl TlsMode {
    /// The mode as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

impl From<TlsMode> for PgSslMode {
    fn from(mode: TlsMode) -> Self {
        match mode {
            TlsMode::Disable => PgSslMode::Disable,
            TlsMode::Prefer => PgSslMode::Prefer,
            TlsMode::Require => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

/// A plain SQL identifier: what the sink can put in `search_path` and quote without surprises.
fn validate_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("is empty".to_owned());
    };
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "`{name}` must start with a letter or an underscore"
        ));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!(
            "`{name}` contains `{bad}`; use letters, digits and underscores"
        ));
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return Err(format!(
            "`{name}` is longer than {MAX_IDENTIFIER_LEN} bytes"
        ));
    }
    if name.to_ascii_lowercase().starts_with("pg_") {
        return Err(format!(
            "`{name}` starts with `pg_`, which Postgres reserves for system schemas"
        ));
    }
    Ok(())
}

fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = url.set_password(Some("****"));
            }
            url.to_string()
        }
        // Unparseable: it may still hold a password, so show nothing of it.
        Err(_) => "<unparseable url, redacted>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> PostgresConfig {
        PostgresConfig::new("postgres://ob:secret@127.0.0.1:5432/ob")
    }

    fn refused_field(cfg: &PostgresConfig) -> (&'static str, String) {
        match cfg.validate() {
            Err(PostgresError::InvalidConfig { field, reason }) => (field, reason),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        ok().validate().unwrap();
    }

    #[test]
    fn yaml_with_humantime_durations_and_defaults() {
        let cfg: PostgresConfig = serde_yaml_ng::from_str(
            "url: postgres://ob:secret@db:5432/ob\nschema: telemetry\ntls: { mode: verify-full }\nretry: { initial_backoff: 50ms, max_backoff: 2s }\n",
        )
        .unwrap();
        assert_eq!(cfg.schema, "telemetry");
        assert_eq!(cfg.tls.mode, TlsMode::VerifyFull);
        assert_eq!(cfg.retry.initial_backoff, Duration::from_millis(50));
        assert_eq!(cfg.retry.max_backoff, Duration::from_secs(2));
        assert_eq!(cfg.max_connections, 4);
        assert_eq!(cfg.connect_timeout, Duration::from_secs(10));
        assert!(cfg.dimensions);
        cfg.validate().unwrap();

        let minimal: PostgresConfig = serde_yaml_ng::from_str("url: postgres://db/ob\n").unwrap();
        assert_eq!(minimal, PostgresConfig::new("postgres://db/ob"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_yaml_ng::from_str::<PostgresConfig>("url: postgres://db/ob\nshema: x\n")
            .unwrap_err();
        assert!(err.to_string().contains("shema"), "{err}");
        let err = serde_yaml_ng::from_str::<PostgresConfig>(
            "url: postgres://db/ob\ntls: { mode: sometimes }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }

    #[test]
    fn debug_redacts_the_password() {
        let shown = format!("{:?}", ok());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            shown.contains("postgres://ob:****@127.0.0.1:5432/ob"),
            "{shown}"
        );
        let garbled = PostgresConfig::new("postgres://ob:se cret@[bad/ob");
        assert!(!format!("{garbled:?}").contains("cret"));
    }

    #[test]
    fn validate_refuses_unparseable_url() {
        let (field, reason) = refused_field(&PostgresConfig::new("not a url"));
        assert_eq!(field, "url");
        assert!(reason.contains("not a URL"), "{reason}");
    }

    #[test]
    fn validate_refuses_other_scheme() {
        let (field, reason) = refused_field(&PostgresConfig::new("mysql://ob:secret@127.0.0.1/ob"));
        assert_eq!(field, "url");
        assert!(reason.contains("mysql"), "{reason}");
    }

    #[test]
    fn validate_refuses_url_without_host() {
        let (field, reason) = refused_field(&PostgresConfig::new("postgres:///ob"));
        assert_eq!(field, "url");
        assert!(reason.contains("no host"), "{reason}");
    }

    #[test]
    fn validate_refuses_sslmode_in_url() {
        let (field, reason) =
            refused_field(&PostgresConfig::new("postgres://ob@db/ob?sslmode=disable"));
        assert_eq!(field, "url");
        assert!(reason.contains("tls.mode"), "{reason}");
    }

    #[test]
    fn validate_refuses_schema_that_is_not_an_identifier() {
        for bad in ["", "1abc", "tele metry", "a;drop", "x\"y"] {
            let cfg = PostgresConfig {
                schema: bad.to_owned(),
                ..ok()
            };
            assert_eq!(refused_field(&cfg).0, "schema", "{bad:?}");
        }
        let long = PostgresConfig {
            schema: "s".repeat(64),
            ..ok()
        };
        assert_eq!(refused_field(&long).0, "schema");
    }

    #[test]
    fn validate_refuses_reserved_schema() {
        let cfg = PostgresConfig {
            schema: "pg_telemetry".to_owned(),
            ..ok()
        };
        let (field, reason) = refused_field(&cfg);
        assert_eq!(field, "schema");
        assert!(reason.contains("pg_"), "{reason}");
    }

    #[test]
    fn validate_refuses_ca_file_without_verification() {
        let cfg = PostgresConfig {
            tls: TlsConfig {
                mode: TlsMode::Prefer,
                ca_file: Some("/etc/ssl/ca.pem".into()),
            },
            ..ok()
        };
        let (field, reason) = refused_field(&cfg);
        assert_eq!(field, "tls.ca_file");
        assert!(reason.contains("prefer"), "{reason}");
    }

    #[test]
    fn validate_refuses_empty_ca_file() {
        let cfg = PostgresConfig {
            tls: TlsConfig {
                mode: TlsMode::VerifyFull,
                ca_file: Some("".into()),
            },
            ..ok()
        };
        assert_eq!(refused_field(&cfg).0, "tls.ca_file");
    }

    #[test]
    fn validate_accepts_verify_modes_without_ca_file() {
        for mode in [TlsMode::Require, TlsMode::VerifyCa, TlsMode::VerifyFull] {
            PostgresConfig {
                tls: TlsConfig {
                    mode,
                    ca_file: None,
                },
                ..ok()
            }
            .validate()
            .unwrap();
        }
    }

    #[test]
    fn validate_refuses_zero_connections() {
        let cfg = PostgresConfig {
            max_connections: 0,
            ..ok()
        };
        assert_eq!(refused_field(&cfg).0, "max_connections");
    }

    #[test]
    fn validate_refuses_zero_connect_timeout() {
        let cfg = PostgresConfig {
            connect_timeout: Duration::ZERO,
            ..ok()
        };
        assert_eq!(refused_field(&cfg).0, "connect_timeout");
    }

    #[test]
    fn validate_refuses_zero_initial_backoff() {
        let cfg = PostgresConfig {
            retry: RetryConfig {
                initial_backoff: Duration::ZERO,
                ..RetryConfig::default()
            },
            ..ok()
        };
        assert_eq!(refused_field(&cfg).0, "retry.initial_backoff");
    }

    #[test]
    fn validate_refuses_max_backoff_below_initial() {
        let cfg = PostgresConfig {
            retry: RetryConfig {
                initial_backoff: Duration::from_secs(5),
                max_backoff: Duration::from_secs(1),
            },
            ..ok()
        };
        let (field, reason) = refused_field(&cfg);
        assert_eq!(field, "retry.max_backoff");
        assert!(reason.contains("1s") && reason.contains("5s"), "{reason}");
    }
}
