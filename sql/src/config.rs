//! The `sql:` section of a job spec: where SQL is served, who may read what, where history is.
//!
//! ```yaml
//! sql:
//!   pg_listen: 127.0.0.1:6875      # psql -h 127.0.0.1 -p 6875
//!   http_listen: 127.0.0.1:6876    # curl -d 'SELECT 1' http://127.0.0.1:6876/v1/sql
//!   auth:
//!     tokens:
//!       s3cr3t-acme: acme          # this token reads tenant acme only
//!       s3cr3t-ops: "*"            # this one reads every tenant
//!   history:                       # default: the job's sinks.parquet
//!     url: s3://telemetry/observebridge
//!     endpoint: http://127.0.0.1:5555
//!   live_retention: 1h             # windows older than this are only in <view>_history
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use observebridge_connectors::parquet::ObjectStoreConfig;
use serde::Deserialize;

use crate::error::ServeError;

/// Where and how SQL is served.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// Whether SQL is served at all (default true); `enabled: false` starts neither listener.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Postgres wire protocol address (psql, drivers, Grafana). Default `127.0.0.1:6875`;
    /// `null` turns it off; port 0 picks a free port.
    #[serde(default = "default_pg_listen")]
    pub pg_listen: Option<SocketAddr>,
    /// HTTP address of `POST /v1/sql`. Default `127.0.0.1:6876`; `null` turns it off; port 0
    /// picks a free port.
    #[serde(default = "default_http_listen")]
    pub http_listen: Option<SocketAddr>,
    /// Token authentication and tenant scoping. Absent (the default): no authentication, any
    /// user and database name are accepted and every tenant's rows are visible.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Where the `<view>_history` tables read the views' Parquet output. In a job the default is
    /// the job's `sinks.parquet`; without either there are no history tables.
    #[serde(default)]
    pub history: Option<ObjectStoreConfig>,
    /// How long a window (`bucket`), or a closed interval (`valid_to`), stays in the live tables
    /// once the watermark has passed it (default `1h`); older rows are only in
    /// `<view>_history`. Bounds the memory the live tables take.
    #[serde(default = "default_live_retention", with = "humantime_serde")]
    pub live_retention: Duration,
}

/// Tokens, each mapped to the tenant it may read.
///
/// A Postgres client sends its token as the password (any user name); an HTTP client as
/// `Authorization: Bearer <token>`. Every table scan of a tenant token keeps only rows whose
/// `tenant` column is that tenant, whatever the SQL says.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `token: tenant`; the tenant `"*"` reads every tenant. Tokens are secrets: never printed.
    pub tokens: BTreeMap<String, String>,
}

/// The tenant value that lets a token read every tenant.
pub const ALL_TENANTS: &str = "*";

fn default_live_retention() -> Duration {
    crate::live::DEFAULT_RETENTION
}

fn default_enabled() -> bool {
    true
}

/// `127.0.0.1:6875`, Materialize's port: psql users already know it.
fn default_pg_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 6875)))
}

fn default_http_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 6876)))
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            enabled: default_enabled(),
            pg_listen: default_pg_listen(),
            http_listen: default_http_listen(),
            auth: None,
            history: None,
            live_retention: default_live_retention(),
        }
    }
}

impl fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConfig")
            .field("enabled", &self.enabled)
            .field("pg_listen", &self.pg_listen)
            .field("http_listen", &self.http_listen)
            .field("auth", &self.auth)
            .field("history", &self.history)
            .field("live_retention", &self.live_retention)
            .finish()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are secrets: show only which tenants are readable.
        let tenants: Vec<&str> = self.tokens.values().map(String::as_str).collect();
        f.debug_struct("AuthConfig").field("tokens", &format_args!("<{} redacted> for tenants {tenants:?}", self.tokens.len())).finish()
    }
}

impl SqlConfig {
    /// A config for tests and embedding: both listeners on `127.0.0.1:0` (free ports), no
    /// authentication, no history.
    pub fn ephemeral() -> Self {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        SqlConfig { pg_listen: any, http_listen: any, ..SqlConfig::default() }
    }

    /// Checks every rule without any I/O; `serve` calls it first. Returns the first broken rule,
    /// naming the field.
    pub fn validate(&self) -> Result<(), ServeError> {
        if let (Some(pg), Some(http)) = (self.pg_listen, self.http_listen)
            && pg == http
            && pg.port() != 0
        {
            return Err(ServeError::Config { field: "http_listen", message: format!("{http} is also pg_listen; give each its own port") });
        }
        if self.live_retention.is_zero() {
            return Err(ServeError::Config { field: "live_retention", message: "must be greater than 0".into() });
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        if let Some(history) = &self.history {
            history.validate()?;
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self) -> Result<(), ServeError> {
        let fail = |message: String| Err(ServeError::Config { field: "auth.tokens", message });
        if self.tokens.is_empty() {
            return fail("is empty: with auth on, nobody could connect; add `<token>: <tenant>` entries or remove `auth`".into());
        }
        for (token, tenant) in &self.tokens {
            if token.trim().is_empty() {
                return fail("a token is empty".into());
            }
            if token.len() < 8 {
                return fail(format!("the token for tenant {tenant:?} is shorter than 8 characters"));
            }
            if tenant.trim().is_empty() {
                return fail("a token maps to an empty tenant; use a tenant name or \"*\" for every tenant".into());
            }
        }
        Ok(())
    }

    /// What `token` may read: `None` for an unknown token, `Some(None)` for every tenant,
    /// `Some(Some(tenant))` for one tenant.
    pub fn scope_of(&self, token: &str) -> Option<Option<String>> {
        self.tokens.get(token).map(|tenant| (tenant != ALL_TENANTS).then(|| tenant.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SqlConfig, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn defaults_serve_both_protocols_on_localhost() {
        let cfg = parse("{}").expect("parse");
        assert!(cfg.enabled);
        assert_eq!(cfg.pg_listen, Some("127.0.0.1:6875".parse().expect("addr")));
        assert_eq!(cfg.http_listen, Some("127.0.0.1:6876".parse().expect("addr")));
        assert!(cfg.auth.is_none() && cfg.history.is_none());
        assert_eq!(cfg.live_retention, Duration::from_secs(3600));
        assert_eq!(parse("live_retention: 15m").expect("parse").live_retention, Duration::from_secs(900));
        let off = parse("http_listen: null\nenabled: false").expect("parse");
        assert!(!off.enabled);
        assert_eq!(off.http_listen, None);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let err = parse("pg_lisen: 127.0.0.1:1").expect_err("refused").to_string();
        assert!(err.contains("unknown field `pg_lisen`"), "{err}");
        assert!(parse("pg_listen: localhost").is_err());
        let same = parse("pg_listen: 127.0.0.1:7000\nhttp_listen: 127.0.0.1:7000").expect("parse");
        assert!(same.validate().expect_err("refused").to_string().contains("http_listen"));
        let empty = parse("auth: { tokens: {} }").expect("parse");
        assert!(empty.validate().expect_err("refused").to_string().contains("auth.tokens: is empty"));
        let short = parse("auth: { tokens: { abc: acme } }").expect("parse");
        assert!(short.validate().expect_err("refused").to_string().contains("shorter than 8"));
    }

    #[test]
    fn tokens_map_to_tenants_and_are_never_printed() {
        let cfg = parse("auth: { tokens: { token-acme-1: acme, token-all-1: '*' } }").expect("parse");
        cfg.validate().expect("valid");
        let auth = cfg.auth.as_ref().expect("auth");
        assert_eq!(auth.scope_of("token-acme-1"), Some(Some("acme".to_string())));
        assert_eq!(auth.scope_of("token-all-1"), Some(None));
        assert_eq!(auth.scope_of("nope"), None);
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("token-acme-1") && printed.contains("acme"), "{printed}");
    }
}
