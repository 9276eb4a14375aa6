//! Errors of the SQL layer: applying frontiers ([`LiveError`]), starting the servers
//! ([`ServeError`]) and running queries ([`QueryError`], which carries a Postgres SQLSTATE).

use std::net::SocketAddr;

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// Registering a view or applying a frontier to the live snapshots failed. Nothing of the
/// frontier is visible when `apply` returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("view {view} is not registered; register its schema and key columns before applying changes to it")]
    UnknownView { view: String },
    #[error("view {view}: {message}")]
    Schema { view: String, message: String },
    #[error("view {view}: {source}")]
    Arrow {
        view: String,
        #[source]
        source: ArrowError,
    },
}

/// The SQL servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("sql config: {field}: {message}")]
    Config { field: &'static str, message: String },
    #[error("sql: cannot listen on {addr} for {what}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("sql: history tables (sql.history): {0}")]
    History(#[from] observebridge_connectors::parquet::ParquetError),
    #[error("sql: setting up the query engine: {0}")]
    Engine(String),
}

/// SQLSTATE codes the servers answer with (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
pub mod sqlstate {
    /// `syntax_error`
    pub const SYNTAX_ERROR: &str = "42601";
    /// `undefined_table`
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// `undefined_column`
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// `undefined_function`
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// `ambiguous_column`
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    /// `datatype_mismatch`
    pub const DATATYPE_MISMATCH: &str = "42804";
    /// `syntax_error_or_access_rule_violation` (other planning errors)
    pub const PLANNING_ERROR: &str = "42000";
    /// `read_only_sql_transaction`: DDL, DML and COPY FROM.
    pub const READ_ONLY: &str = "25006";
    /// `in_failed_sql_transaction`
    pub const IN_FAILED_TRANSACTION: &str = "25P02";
    /// `feature_not_supported`
    pub const NOT_SUPPORTED: &str = "0A000";
    /// `undefined_object` (unknown configuration parameter)
    pub const UNDEFINED_OBJECT: &str = "42704";
    /// `invalid_text_representation` (a value that does not parse as its type)
    pub const INVALID_TEXT: &str = "22P02";
    /// `division_by_zero`
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// `data_exception`
    pub const DATA_EXCEPTION: &str = "22000";
    /// `invalid_parameter_value`
    pub const INVALID_PARAMETER: &str = "22023";
    /// `program_limit_exceeded` (out of memory for a query)
    pub const LIMIT_EXCEEDED: &str = "54000";
    /// `insufficient_privilege`
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// `invalid_password`
    pub const INVALID_PASSWORD: &str = "28P01";
    /// `io_error` (reading history objects)
    pub const IO_ERROR: &str = "58030";
    /// `internal_error`
    pub const INTERNAL: &str = "XX000";
}

/// A query that failed: a Postgres SQLSTATE, a message naming the problem and, sometimes, a hint.
/// pgwire sends it as an `ErrorResponse`; HTTP as `{"error": message, "code": code}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// The SQLSTATE (see [`sqlstate`]).
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl QueryError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        QueryError { code, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The refusal of a statement that would write: everything served here is read-only.
    pub fn read_only(what: &str) -> Self {
        QueryError::new(sqlstate::READ_ONLY, format!("cannot execute {what}: ObserveBridge SQL is read-only"))
            .with_hint("Views are maintained by the engine from its inputs; query them with SELECT.")
    }

    pub fn syntax(error: &ParserError) -> Self {
        let message = match error {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => "query is nested too deeply".to_string(),
        };
        QueryError::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {message}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        QueryError::new(sqlstate::INTERNAL, message)
    }
}

impl From<DataFusionError> for QueryError {
    /// Maps DataFusion's error kinds to SQLSTATEs; the message is DataFusion's own, without its
    /// "Error during planning:" style prefixes.
    fn from(error: DataFusionError) -> Self {
        from_datafusion(&error)
    }
}

fn from_datafusion(error: &DataFusionError) -> QueryError {
    use sqlstate::*;
    match error {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => from_datafusion(inner),
        DataFusionError::Shared(inner) => from_datafusion(inner),
        DataFusionError::Collection(errors) => errors.first().map_or_else(|| QueryError::internal("unknown error"), from_datafusion),
        DataFusionError::SQL(e, _) => QueryError::syntax(e),
        DataFusionError::SchemaError(e, _) => {
            let code = match e.as_ref() {
                datafusion::common::SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
                datafusion::common::SchemaError::AmbiguousReference { .. } => AMBIGUOUS_COLUMN,
                _ => PLANNING_ERROR,
            };
            QueryError::new(code, e.to_string())
        }
        DataFusionError::Plan(m) => {
            let lower = m.to_ascii_lowercase();
            let code = if lower.contains("table") && lower.contains("not found") {
                UNDEFINED_TABLE
            } else if lower.contains("invalid function") || lower.contains("function") && lower.contains("not found") {
                UNDEFINED_FUNCTION
            } else if lower.contains("cannot infer common") || lower.contains("coercion") || lower.contains("no function matches") {
                DATATYPE_MISMATCH
            } else {
                PLANNING_ERROR
            };
            QueryError::new(code, first_line(m))
        }
        DataFusionError::NotImplemented(m) => QueryError::new(NOT_SUPPORTED, format!("not supported: {}", first_line(m))),
        DataFusionError::ArrowError(e, _) => {
            let code = match e.as_ref() {
                ArrowError::DivideByZero => DIVISION_BY_ZERO,
                ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT,
                _ => DATA_EXCEPTION,
            };
            QueryError::new(code, e.to_string())
        }
        DataFusionError::ResourcesExhausted(m) => QueryError::new(LIMIT_EXCEEDED, format!("query needs more memory than allowed: {m}")),
        DataFusionError::ParquetError(e) => QueryError::new(IO_ERROR, format!("reading history: {e}")),
        DataFusionError::ObjectStore(e) => QueryError::new(IO_ERROR, format!("reading history: {e}")),
        DataFusionError::IoError(e) => QueryError::new(IO_ERROR, e.to_string()),
        DataFusionError::Execution(m) => {
            let code = if m.contains("Cannot cast") || m.contains("cast") { INVALID_TEXT } else { DATA_EXCEPTION };
            QueryError::new(code, first_line(m))
        }
        DataFusionError::External(e) => match e.downcast_ref::<QueryError>() {
            Some(q) => q.clone(),
            None => QueryError::new(DATA_EXCEPTION, e.to_string()),
        },
        other => QueryError::internal(other.to_string()),
    }
}

/// DataFusion's messages sometimes carry a backtrace or extra lines; the first names the problem.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datafusion_errors_map_to_sqlstates() {
        let e: QueryError = DataFusionError::Plan("table 'observebridge.public.nope' not found".into()).into();
        assert_eq!(e.code, sqlstate::UNDEFINED_TABLE);
        assert_eq!(e.message, "table 'observebridge.public.nope' not found");
        let e: QueryError = DataFusionError::Context("x".into(), Box::new(DataFusionError::NotImplemented("LATERAL".into()))).into();
        assert_eq!(e.code, sqlstate::NOT_SUPPORTED);
        let e: QueryError = DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None).into();
        assert_eq!(e.code, sqlstate::DIVISION_BY_ZERO);
    }
}
