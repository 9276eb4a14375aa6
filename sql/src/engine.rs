//! The query engine both protocols share: parses Postgres-flavoured SQL, refuses writes,
//! plans with DataFusion and runs a plan against one pinned snapshot.
//!
//! One `SessionContext` is built at start (catalog `observebridge`, schema `public`,
//! `information_schema`, `pg_catalog` and the Postgres functions of `datafusion-pg-catalog`).
//! Every query runs in a copy of its state that carries the query's [`QueryScope`]: the snapshot
//! pinned when it started and the tenant it may see.
//!
//! Statements are sorted before anything is planned: queries (`SELECT`, `WITH`, `VALUES`,
//! `EXPLAIN`, `SHOW TABLES` ...) are planned; `SET`, `SHOW <variable>`, `BEGIN`, `COMMIT` and
//! `ROLLBACK` are answered by the protocol layer; everything that writes (DDL, DML, `COPY FROM`,
//! `GRANT` ...) is refused with SQLSTATE 25006. A planned statement is checked once more with
//! DataFusion's own `SQLOptions` (no DDL, no DML, no statements), so nothing that writes gets
//! through by a path the first check did not foresee.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, ParamValues, ScalarValue};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SQLOptions, SessionState};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{ColumnarValue, LogicalPlan, ScalarUDF, Volatility, create_udf};
use datafusion::physical_plan::{SendableRecordBatchStream, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::TryStreamExt;
use observebridge_connectors::parquet::ObjectStoreConfig;

use crate::catalog::{CATALOG, QueryScope, SCHEMA, ViewSchema};
use crate::error::{QueryError, ServeError, sqlstate};
use crate::history::History;
use crate::live::LiveViews;

/// The version string clients see (`server_version`); libpq and drivers parse the leading
/// `16.6` (the Postgres dialect `datafusion-pg-catalog` emulates).
pub const SERVER_VERSION: &str = "16.6 (ObserveBridge)";

/// A statement, sorted and, for queries, planned. Cheap to clone (plans share their nodes).
#[derive(Clone, Debug)]
pub enum Prepared {
    /// A query, planned; may hold `$n` placeholders.
    Query(LogicalPlan),
    /// `SET name = value` (also `SET TIME ZONE`, `SET NAMES`): accepted, remembered per session.
    Set { name: String, value: String },
    /// `SHOW name`.
    Show { name: String },
    /// `BEGIN` / `START TRANSACTION`: later queries of the transaction read one snapshot.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// A statement with nothing to do here (`DISCARD ALL`, `DEALLOCATE`), and its command tag.
    NoOp(&'static str),
}

/// Rows of one statement.
#[derive(Clone, Debug)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Parses, checks, plans and runs SQL over the live views and their history.
pub struct QueryEngine {
    ctx: SessionContext,
    live: Arc<LiveViews>,
    parser: PostgresCompatibilityParser,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine").field("frontier", &self.live.frontier()).finish()
    }
}

impl QueryEngine {
    /// The engine over `live`, with `<view>_history` tables when `history` is given.
    pub fn new(live: Arc<LiveViews>, history: Option<&ObjectStoreConfig>) -> Result<Self, ServeError> {
        let engine_error = |e: &dyn std::fmt::Display| ServeError::Engine(e.to_string());
        // No listing cache: a window the Parquet sink wrote a moment ago must be visible to the
        // next query (objects never change once written, so footers may stay cached).
        let cache = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let runtime = RuntimeEnvBuilder::new().with_cache_manager(cache).build_arc().map_err(|e| engine_error(&e))?;
        let history = history.map(|cfg| History::new(cfg, &runtime)).transpose()?.map(Arc::new);
        let config = SessionConfig::new().with_default_catalog_and_schema(CATALOG, SCHEMA).with_information_schema(true);
        let state = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(SCHEMA, Arc::new(ViewSchema::new(Arc::clone(&live), history))).map_err(|e| engine_error(&e))?;
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider).map_err(|e| engine_error(&e))?;
        ctx.register_udf(current_setting_udf());
        Ok(QueryEngine { ctx, live, parser: PostgresCompatibilityParser::new() })
    }

    /// The live views this engine reads.
    pub fn live(&self) -> &Arc<LiveViews> {
        &self.live
    }

    /// A scope over the current snapshot.
    pub fn scope(&self, tenant: Option<String>) -> QueryScope {
        QueryScope { snapshot: self.live.snapshot(), tenant }
    }

    /// Splits `sql` into statements (with the rewrites psql, Grafana and other clients' catalog
    /// queries need).
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, QueryError> {
        self.parser.parse(sql).map_err(|e| QueryError::syntax(&e))
    }

    /// Sorts a statement; plans queries; refuses writes.
    pub async fn prepare(&self, statement: Statement) -> Result<Prepared, QueryError> {
        if let Some(prepared) = classify(&statement)? {
            return Ok(prepared);
        }
        let state = self.ctx.state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(statement.clone()))).await?;
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false).verify_plan(&plan).map_err(|_| match &plan {
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => QueryError::read_only(&command_name(&statement)),
            _ => QueryError::new(sqlstate::NOT_SUPPORTED, format!("{} is not supported", command_name(&statement))),
        })?;
        Ok(Prepared::Query(plan))
    }

    /// Runs a planned query (with its parameter values, if it has placeholders) against `scope`.
    pub async fn execute(&self, plan: &LogicalPlan, params: Option<ParamValues>, scope: QueryScope) -> Result<SendableRecordBatchStream, QueryError> {
        let state = self.state(scope);
        let plan = match params {
            Some(params) => plan.clone().replace_params_with_values(&params)?,
            None => plan.clone(),
        };
        let physical = state.create_physical_plan(&plan).await?;
        Ok(execute_stream(physical, state.task_ctx())?)
    }

    /// Runs one statement of `sql` to completion (HTTP, tests, benchmarks). `SET` and the
    /// transaction statements return no rows; `SHOW` one.
    pub async fn query(&self, sql: &str, tenant: Option<&str>) -> Result<QueryOutput, QueryError> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(QueryError::new(sqlstate::SYNTAX_ERROR, format!("expected one statement, got {}", statements.len())).with_hint("Send one statement per request."));
        }
        let statement = statements.remove(0);
        match self.prepare(statement).await? {
            Prepared::Query(plan) => {
                let schema = Arc::new(plan.schema().as_arrow().clone());
                let stream = self.execute(&plan, None, self.scope(tenant.map(str::to_string))).await?;
                let batches: Vec<RecordBatch> = stream.try_collect().await?;
                Ok(QueryOutput { schema, batches })
            }
            Prepared::Show { name } => show_output(&name, |_| None),
            Prepared::Set { .. } | Prepared::Begin | Prepared::Commit | Prepared::Rollback | Prepared::NoOp(_) => {
                Ok(QueryOutput { schema: Arc::new(Schema::empty()), batches: Vec::new() })
            }
        }
    }

    /// The state a query plans and runs in: the engine's, carrying the query's scope.
    fn state(&self, scope: QueryScope) -> SessionState {
        let mut state = self.ctx.state();
        state.config_mut().set_extension(Arc::new(scope));
        state
    }
}

/// Sorts statements that are not planned by DataFusion: `None` for the ones it plans.
fn classify(statement: &Statement) -> Result<Option<Prepared>, QueryError> {
    Ok(Some(match statement {
        Statement::Query(_) => return Ok(None),
        Statement::Explain { statement: inner, .. } => {
            // EXPLAIN of a write is refused like the write itself.
            classify(inner)?;
            return Ok(None);
        }
        Statement::Set(set) => {
            let (name, value) = match set {
                Set::SingleAssignment { variable, values, .. } => (variable.to_string(), join(values)),
                Set::SetTimeZone { value, .. } => ("timezone".to_string(), value.to_string()),
                Set::SetNames { charset_name, .. } => ("client_encoding".to_string(), charset_name.to_string()),
                other => (other.to_string(), String::new()),
            };
            Prepared::Set { name: name.to_ascii_lowercase(), value: unquote(&value) }
        }
        Statement::ShowVariable { variable } => {
            let name = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect::<Vec<_>>().join(" ");
            // `SHOW TABLES`-style statements are not variables: DataFusion plans them.
            if matches!(name.as_str(), "tables" | "columns" | "all") {
                return Ok(None);
            }
            Prepared::Show { name }
        }
        Statement::StartTransaction { .. } => Prepared::Begin,
        Statement::Commit { .. } => Prepared::Commit,
        Statement::Rollback { .. } => Prepared::Rollback,
        Statement::Discard { .. } => Prepared::NoOp("DISCARD ALL"),
        Statement::Deallocate { .. } => Prepared::NoOp("DEALLOCATE"),
        Statement::Copy { to: true, .. } => {
            return Err(QueryError::new(sqlstate::NOT_SUPPORTED, "COPY TO is not supported").with_hint("Run the SELECT itself; psql's \\copy (SELECT ...) TO works the same way."));
        }
        Statement::Copy { to: false, .. } => return Err(QueryError::read_only("COPY FROM")),
        other => {
            let name = command_name(other);
            let first = name.split(' ').next().unwrap_or_default();
            if WRITE_COMMANDS.contains(&first) {
                return Err(QueryError::read_only(&name));
            }
            return Ok(None);
        }
    }))
}

/// First keywords of statements that write or change the catalog.
const WRITE_COMMANDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "TRUNCATE", "COPY", "CREATE", "ALTER", "DROP", "RENAME", "GRANT", "REVOKE", "COMMENT", "VACUUM",
    "ANALYZE", "REINDEX", "CLUSTER", "REFRESH", "CALL", "LOCK", "LOAD", "UNLOAD", "INSTALL", "ATTACH", "DETACH", "IMPORT", "SECURITY", "REASSIGN",
];

/// The command of a statement as Postgres names it (`INSERT`, `CREATE TABLE`, `DROP VIEW` ...).
fn command_name(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(6).collect();
    let first = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    match first.as_str() {
        "CREATE" | "ALTER" | "DROP" => {
            let rest: Vec<String> = words[1..].iter().map(|w| w.to_ascii_uppercase()).filter(|w| w.chars().all(|c| c.is_ascii_alphabetic())).collect();
            // `CREATE OR REPLACE VIEW`, `CREATE TABLE`: the object kind is the first word after the modifiers.
            let kind = rest.iter().find(|w| !matches!(w.as_str(), "OR" | "REPLACE" | "TEMP" | "TEMPORARY" | "UNIQUE" | "EXTERNAL" | "IF" | "MATERIALIZED"));
            match (rest.iter().any(|w| w == "MATERIALIZED"), kind) {
                (true, _) => format!("{first} MATERIALIZED VIEW"),
                (false, Some(kind)) => format!("{first} {kind}"),
                (false, None) => first,
            }
        }
        _ => first,
    }
}

fn join(values: &[datafusion::sql::sqlparser::ast::Expr]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('\'').trim_matches('"').to_string()
}

/// The value `SHOW name` answers: the session's own setting when it has one (`session`), else
/// the server's.
pub(crate) fn show_value(name: &str, session: impl Fn(&str) -> Option<String>) -> Result<String, QueryError> {
    let name = name.to_ascii_lowercase();
    if let Some(value) = session(&name) {
        return Ok(value);
    }
    let value = match name.as_str() {
        "server_version" => SERVER_VERSION,
        "server_version_num" => "160006",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" | "transaction_read_only" | "default_transaction_read_only" => "on",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "timezone" | "time zone" | "log_timezone" => "UTC",
        "search_path" => "public",
        "transaction_isolation" | "transaction isolation level" | "default_transaction_isolation" => "repeatable read",
        "max_identifier_length" => "63",
        "lc_collate" | "lc_ctype" => "C",
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
        "application_name" => "",
        "extra_float_digits" => "1",
        "bytea_output" => "hex",
        "is_superuser" => "off",
        _ => return Err(QueryError::new(sqlstate::UNDEFINED_OBJECT, format!("unrecognized configuration parameter \"{name}\""))),
    };
    Ok(value.to_string())
}

/// `current_setting(name)`: the server's value of a setting (what `SHOW name` answers without
/// a session `SET`). Clients and dashboards read `search_path` and `server_version_num` so.
fn current_setting_udf() -> ScalarUDF {
    let fun = |args: &[ColumnarValue]| -> datafusion::common::Result<ColumnarValue> {
        let setting = |name: &str| show_value(name, |_| None).map_err(|e| DataFusionError::Execution(e.message));
        match args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(name))) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(name.as_deref().map(setting).transpose()?))),
            Some(ColumnarValue::Array(names)) => {
                let names = names.as_string_opt::<i32>().ok_or_else(|| DataFusionError::Execution("current_setting takes a text argument".into()))?;
                let values = names.iter().map(|n| n.map(setting).transpose()).collect::<datafusion::common::Result<StringArray>>()?;
                Ok(ColumnarValue::Array(Arc::new(values)))
            }
            _ => Err(DataFusionError::Execution("current_setting takes one text argument".into())),
        }
    };
    create_udf("current_setting", vec![DataType::Utf8], DataType::Utf8, Volatility::Stable, Arc::new(fun))
}

/// The result schema of `SHOW name`: one text column named after the setting.
pub(crate) fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name.replace(' ', "_"), DataType::Utf8, false)]))
}

/// `SHOW name` as a one-row, one-column result.
pub(crate) fn show_output(name: &str, session: impl Fn(&str) -> Option<String>) -> Result<QueryOutput, QueryError> {
    let value = show_value(name, session)?;
    let schema = show_schema(name);
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(vec![value]))]).map_err(|e| QueryError::internal(e.to_string()))?;
    Ok(QueryOutput { schema, batches: vec![batch] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> QueryEngine {
        QueryEngine::new(LiveViews::new(), None).expect("engine")
    }

    fn statement(sql: &str) -> Statement {
        engine().parse(sql).expect("parse").remove(0)
    }

    #[test]
    fn writes_are_refused_by_name() {
        for (sql, name) in [
            ("INSERT INTO dim_resource VALUES ('a')", "INSERT"),
            ("UPDATE dim_resource SET name = 'x'", "UPDATE"),
            ("DELETE FROM dim_resource", "DELETE"),
            ("CREATE TABLE t (a int)", "CREATE TABLE"),
            ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("DROP TABLE dim_resource", "DROP TABLE"),
            ("ALTER TABLE dim_resource ADD COLUMN x int", "ALTER TABLE"),
            ("TRUNCATE dim_resource", "TRUNCATE"),
            ("COPY dim_resource FROM STDIN", "COPY FROM"),
            ("EXPLAIN INSERT INTO dim_resource VALUES ('a')", "INSERT"),
        ] {
            let err = classify(&statement(sql)).expect_err(sql);
            assert_eq!(err.code, sqlstate::READ_ONLY, "{sql}");
            assert!(err.message.starts_with(&format!("cannot execute {name}:")), "{sql}: {}", err.message);
        }
    }

    #[test]
    fn session_statements_are_sorted() {
        assert!(matches!(classify(&statement("SELECT 1")), Ok(None)));
        assert!(matches!(classify(&statement("BEGIN")), Ok(Some(Prepared::Begin))));
        assert!(matches!(classify(&statement("COMMIT")), Ok(Some(Prepared::Commit))));
        match classify(&statement("SET application_name = 'grafana'")) {
            Ok(Some(Prepared::Set { name, value })) => assert_eq!((name.as_str(), value.as_str()), ("application_name", "grafana")),
            other => panic!("{other:?}"),
        }
        match classify(&statement("SHOW transaction_isolation")) {
            Ok(Some(Prepared::Show { name })) => assert_eq!(name, "transaction_isolation"),
            other => panic!("{other:?}"),
        }
        assert_eq!(show_value("nope", |_| None).expect_err("unknown").code, sqlstate::UNDEFINED_OBJECT);
    }
}
