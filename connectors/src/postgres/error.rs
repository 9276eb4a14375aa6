//! What can go wrong in the Postgres sink, and which of it is worth retrying.

/// An error of the Postgres sink.
///
/// [`is_transient`](PostgresError::is_transient) tells the retry loop whether waiting can help
/// (the server is unreachable, restarting, or aborted the transaction for concurrency reasons) or
/// whether the job must stop (a missing table or column, a type mismatch, a bad config).
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// A config field is invalid; found by `validate()` before any I/O.
    #[error("invalid postgres sink config: `{field}` {reason}")]
    InvalidConfig {
        /// The field at fault, as written in the config (`retry.max_backoff`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Could not open a connection (or the first one) to the server.
    #[error(
        "cannot connect to postgres at {target}: {source}{}",
        connect_hint(source)
    )]
    Connect {
        /// The redacted URL.
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// Creating the schema or running the migrations failed.
    #[error("migrating postgres schema `{schema}` failed: {source}")]
    Migrate {
        /// The sink's schema.
        schema: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// The table a batch is for does not exist in the sink's schema.
    #[error(
        "table `{schema}.{table}` does not exist. Run the migrations (PostgresSink::migrate) or check the sink's `schema`."
    )]
    TableNotFound {
        /// The sink's schema.
        schema: String,
        /// The table of the batch.
        table: String,
    },

    /// A column of a batch is not a column of its table.
    #[error(
        "column `{column}` of the {part} batch for table `{table}` is not in the table. The view's Arrow schema and the migrations disagree."
    )]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column named by the Arrow schema.
        column: String,
        /// `upserts` or `deletes`.
        part: &'static str,
    },

    /// A key column is missing from a batch.
    #[error("key column `{column}` is missing from the {part} batch for table `{table}`")]
    MissingKeyColumn {
        /// The table.
        table: String,
        /// The key column.
        column: String,
        /// `upserts` or `deletes`.
        part: &'static str,
    },

    /// An Arrow column has a type the sink cannot bind.
    #[error(
        "column `{column}` of table `{table}` has Arrow type {data_type}, which the postgres sink cannot write. {hint}"
    )]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The Arrow type.
        data_type: String,
        /// What to use instead.
        hint: &'static str,
    },

    /// A value cannot be represented in Postgres (a timestamp out of range, an epoch above
    /// `i64::MAX`).
    #[error("value of `{column}` for table `{table}` is out of range: {reason}")]
    OutOfRange {
        /// The table (or `ob_progress`).
        table: String,
        /// The column.
        column: String,
        /// What is out of range.
        reason: String,
    },

    /// A statement failed. `action` says which one (`upsert`, `delete`, `begin`, `commit`, ...).
    #[error(
        "postgres {action} on `{table}` failed: {source}{}",
        statement_hint(source)
    )]
    Statement {
        /// What the statement did.
        action: &'static str,
        /// The table it touched (or `transaction`).
        table: String,
        /// The driver's error, which carries the SQLSTATE for database errors.
        #[source]
        source: sqlx::Error,
    },

    /// A stored progress row could not be read back.
    #[error("progress row of job `{job}` is unreadable: {reason}")]
    BadProgress {
        /// The job.
        job: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PostgresError {
    /// True if trying again later can succeed: the connection was refused, reset or timed out,
    /// the pool had no connection in time, or the server reported a connection exception
    /// (class 08), a serialization failure or deadlock (40001, 40P01), a shutdown or restart
    /// (57P01-57P03), a lack of resources (class 53), a lock timeout (55P03), a read-only
    /// server during failover (25006) or an I/O error of its own (class 58).
    ///
    /// Everything else is permanent: retrying a missing table, a bad value or a TLS
    /// certificate problem would loop forever.
    pub fn is_transient(&self) -> bool {
        match self {
            // A connection cut during its start-up (the TLS negotiation sees a closed socket as a
            // bad SSLRequest answer) is an outage, not a protocol bug: wait and reconnect.
            PostgresError::Connect { source: sqlx::Error::Protocol(_), .. }
            | PostgresError::Statement { action: "begin", source: sqlx::Error::Protocol(_), .. } => true,
            PostgresError::Connect { source, .. } | PostgresError::Statement { source, .. } => {
                is_transient_sqlx(source)
            }
            PostgresError::Migrate {
                source:
                    sqlx::migrate::MigrateError::Execute(source)
                    | sqlx::migrate::MigrateError::ExecuteMigration(source, _),
                ..
            } => is_transient_sqlx(source),
            _ => false,
        }
    }

    /// The SQLSTATE of the database error behind this one, if any.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            PostgresError::Connect { source, .. } | PostgresError::Statement { source, .. } => {
                source
                    .as_database_error()
                    .and_then(|e| e.code())
                    .map(|c| c.into_owned())
            }
            _ => None,
        }
    }
}

fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(io) => !is_tls_or_config_io(io),
        sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// I/O errors that waiting does not cure. sqlx reports a refused TLS certificate (rustls
/// `InvalidCertificate`) as an I/O error of kind `InvalidData`; an unreadable `ca_file` is
/// `NotFound` or `PermissionDenied`. Refused, reset, timed-out or dropped connections, and
/// failed DNS look-ups (kind `Other`, as in a network outage), are transient.
fn is_tls_or_config_io(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::InvalidData
            | ErrorKind::InvalidInput
            | ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::Unsupported
    )
}

/// SQLSTATEs after which the same transaction can succeed later.
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection_exception
        || code.starts_with("53") // insufficient_resources (too_many_connections, out_of_memory, ...)
        || code.starts_with("58") // system_error, io_error
        || matches!(
            code,
            "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "55P03" // lock_not_available
                | "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "57014" // query_canceled (statement_timeout)
                | "25006" // read_only_sql_transaction (a standby during failover)
        )
}

const TLS_HINT: &str = ". TLS failed: check `tls.mode` and `tls.ca_file`, and with verify-full that the URL's host is a name in the server's certificate (or use verify-ca).";

fn connect_hint(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Tls(_) => TLS_HINT,
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => TLS_HINT,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => {
            ". Check that the server is running and reachable from here (host, port, firewall)."
        }
        _ => "",
    }
}

fn statement_hint(error: &sqlx::Error) -> &'static str {
    let Some(code) = error.as_database_error().and_then(|e| e.code()) else {
        return "";
    };
    match &*code {
        "42P01" => ". The table does not exist: run the migrations.",
        "42703" => {
            ". The view's Arrow schema and the table's columns disagree: run the migrations."
        }
        "42P10" => ". The table has no primary key or unique index on the batch's key columns.",
        "21000" => ". The batch holds the same key twice; a frontier must carry each key once.",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes() {
        for code in [
            "08006", "08001", "40001", "40P01", "57P01", "57P03", "53300", "55P03",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in [
            "42P01", "42703", "22P02", "42804", "23505", "28P01", "3D000", "21000",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn io_and_pool_timeouts_are_transient_tls_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let stmt = |source| PostgresError::Statement {
            action: "upsert",
            table: "t".into(),
            source,
        };
        assert!(stmt(sqlx::Error::Io(refused)).is_transient());
        assert!(stmt(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!stmt(sqlx::Error::Tls("bad certificate".into())).is_transient());
        // What rustls certificate errors look like through sqlx.
        let bad_cert =
            std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate");
        assert!(!stmt(sqlx::Error::Io(bad_cert)).is_transient());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(stmt(sqlx::Error::Io(reset)).is_transient());
        assert!(!stmt(sqlx::Error::PoolClosed).is_transient());
        assert!(
            !PostgresError::TableNotFound {
                schema: "s".into(),
                table: "t".into()
            }
            .is_transient()
        );
    }
}
