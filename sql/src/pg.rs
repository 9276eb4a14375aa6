//! The Postgres wire protocol, with pgwire: startup and authentication, the simple and the
//! extended query protocol, and result encoding (with arrow-pg).
//!
//! - **Startup**: any user and database name are accepted. With auth on, the server asks for a
//!   cleartext password and takes it as a token (see [`crate::AuthConfig`]); the token's tenant
//!   is kept with the connection and scopes every query it runs.
//! - **Queries**: [`QueryEngine`] sorts and plans each statement; rows are encoded per column
//!   type (`timestamptz`, `float8`, `int8`, `text` ...) in text or binary, as the client asks.
//!   The first batch is computed before the row description goes out, so that most execution
//!   errors arrive as a plain `ErrorResponse` with their SQLSTATE.
//! - **Transactions**: `BEGIN` pins the snapshot the transaction's first query reads; every
//!   query until `COMMIT`/`ROLLBACK` reads that same frontier (repeatable read). After an error
//!   inside a transaction, statements are refused (25P02) until it ends, as Postgres does.
//! - **Settings**: `SET` is accepted and remembered for `SHOW`; it changes nothing else (times
//!   are always UTC).

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::datatypes::DataType;
use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;

use crate::catalog::QueryScope;
use crate::config::AuthConfig;
use crate::engine::{Prepared, QueryEngine, SERVER_VERSION, show_output, show_schema};
use crate::error::{QueryError, sqlstate};
use crate::live::Snapshot;

/// The handlers of every connection.
pub(crate) struct PgHandlers {
    service: Arc<PgService>,
    startup: Arc<PgStartup>,
}

impl PgHandlers {
    pub(crate) fn new(engine: Arc<QueryEngine>, auth: Option<Arc<AuthConfig>>) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_string();
        parameters.default_transaction_read_only = true;
        parameters.is_superuser = false;
        parameters.time_zone = "UTC".to_string();
        let parser = Arc::new(PgParser { engine: Arc::clone(&engine) });
        PgHandlers {
            service: Arc::new(PgService { engine, parser }),
            startup: Arc::new(PgStartup { auth, parameters, pids: RandomPidSecretKeyGenerator::default() }),
        }
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// What a connection keeps: its tenant and the snapshot its open transaction reads.
#[derive(Debug, Default)]
struct Connection {
    /// `None`: every tenant (auth off, or a `"*"` token).
    tenant: Option<String>,
    in_transaction: AtomicBool,
    pinned: Mutex<Option<Arc<Snapshot>>>,
}

/// Startup: accepts any user and database; with auth on, the password is the token.
struct PgStartup {
    auth: Option<Arc<AuthConfig>>,
    parameters: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
}

impl PgStartup {
    async fn accept<C>(&self, client: &mut C, tenant: Option<String>) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        tracing::debug!(user = client.metadata().get(METADATA_USER).map(String::as_str), tenant = tenant.as_deref().unwrap_or("*"), "sql connection");
        client.session_extensions().insert(Connection { tenant, ..Connection::default() });
        let (pid, key) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, key);
        finish_authentication(client, &self.parameters).await
    }
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.is_none() {
                    return self.accept(client, None).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let scope = self.auth.as_ref().and_then(|auth| auth.scope_of(&password.password));
                let Some(tenant) = scope else {
                    let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                    tracing::info!(user, "sql connection refused: unknown token");
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        sqlstate::INVALID_PASSWORD.into(),
                        format!("password authentication failed for user \"{user}\": the password must be an access token from sql.auth.tokens"),
                    ))));
                };
                self.accept(client, tenant).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A prepared statement of the extended protocol.
#[derive(Clone, Debug)]
pub(crate) struct PgStatement {
    prepared: Prepared,
}

pub(crate) struct PgParser {
    engine: Arc<QueryEngine>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.engine.parse(sql).map_err(user_error)?;
        match statements.len() {
            0 => Ok(None),
            1 => {
                let prepared = self.engine.prepare(statements.remove(0)).await.map_err(user_error)?;
                Ok(Some(PgStatement { prepared }))
            }
            n => Err(user_error(QueryError::new(sqlstate::SYNTAX_ERROR, format!("cannot insert multiple commands into a prepared statement (got {n})")))),
        }
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        match &statement.prepared {
            Prepared::Query(plan) => parameter_types(plan)?.iter().map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type)).collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn get_result_schema(&self, statement: &PgStatement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        match &statement.prepared {
            Prepared::Query(plan) => arrow_schema_to_pg_fields(plan.schema().as_arrow(), format, None),
            Prepared::Show { name } => arrow_schema_to_pg_fields(&show_schema(name), format, None),
            _ => Ok(Vec::new()),
        }
    }
}

/// The parameter types of a plan's `$1 .. $n`, in order (`None` where DataFusion could not tell).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types().map_err(|e| user_error(e.into()))?;
    let mut entries: Vec<(usize, Option<DataType>)> = types.into_iter().map(|(id, t)| (id.trim_start_matches('$').parse().unwrap_or(usize::MAX), t)).collect();
    entries.sort_by_key(|(n, _)| *n);
    Ok(entries.into_iter().map(|(_, t)| t).collect())
}

/// Simple and extended query protocol over one [`QueryEngine`].
pub(crate) struct PgService {
    engine: Arc<QueryEngine>,
    parser: Arc<PgParser>,
}

impl PgService {
    /// Runs one prepared statement for `client`.
    async fn run<C>(&self, client: &mut C, prepared: &Prepared, params: Option<datafusion::common::ParamValues>, format: &Format) -> Result<Response, QueryError>
    where
        C: ClientInfo + Send,
    {
        let connection = client.session_extensions().get::<Connection>().ok_or_else(|| QueryError::internal("connection state missing"))?;
        let aborted = client.transaction_status() == pgwire::messages::response::TransactionStatus::Error;
        if aborted && !matches!(prepared, Prepared::Commit | Prepared::Rollback) {
            return Err(QueryError::new(sqlstate::IN_FAILED_TRANSACTION, "current transaction is aborted, commands ignored until end of transaction block"));
        }
        match prepared {
            Prepared::Query(plan) => {
                let scope = QueryScope { snapshot: self.snapshot_for(&connection), tenant: connection.tenant.clone() };
                let stream = self.engine.execute(plan, params, scope).await?;
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                let fields = Arc::new(arrow_schema_to_pg_fields(&stream.schema(), format, Some(options)).map_err(|e| QueryError::internal(e.to_string()))?);
                let mut stream = stream;
                // The first batch before the row description: most errors surface here.
                let first = match stream.next().await {
                    Some(Err(e)) => return Err(e.into()),
                    other => other,
                };
                let rows_fields = Arc::clone(&fields);
                let batches = stream::iter(first).chain(stream);
                let rows = batches
                    .map(move |batch: Result<_, DataFusionError>| match batch {
                        Ok(batch) => stream::iter(encode_recordbatch(Arc::clone(&rows_fields), batch)).left_stream(),
                        Err(e) => stream::iter(std::iter::once(Err(user_error(e.into())))).right_stream(),
                    })
                    .flatten();
                Ok(Response::Query(QueryResponse::new(fields, rows)))
            }
            Prepared::Show { name } => {
                let metadata = client.metadata().clone();
                let output = show_output(name, |n| metadata.get(n).cloned())?;
                let fields = Arc::new(arrow_schema_to_pg_fields(&output.schema, format, None).map_err(|e| QueryError::internal(e.to_string()))?);
                let rows: Vec<_> = output.batches.into_iter().flat_map(|b| encode_recordbatch(Arc::clone(&fields), b)).collect();
                Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
            }
            Prepared::Set { name, value } => {
                client.metadata_mut().insert(name.clone(), value.clone());
                Ok(Response::Execution(Tag::new("SET")))
            }
            Prepared::Begin => {
                connection.in_transaction.store(true, Ordering::SeqCst);
                Ok(Response::TransactionStart(Tag::new("BEGIN")))
            }
            Prepared::Commit | Prepared::Rollback => {
                connection.in_transaction.store(false, Ordering::SeqCst);
                *connection.pinned.lock().unwrap_or_else(PoisonError::into_inner) = None;
                let tag = if matches!(prepared, Prepared::Commit) && !aborted { "COMMIT" } else { "ROLLBACK" };
                Ok(Response::TransactionEnd(Tag::new(tag)))
            }
            Prepared::NoOp(tag) => Ok(Response::Execution(Tag::new(tag))),
        }
    }

    /// The snapshot a query reads: the current one, or the one its transaction pinned.
    fn snapshot_for(&self, connection: &Connection) -> Arc<Snapshot> {
        if !connection.in_transaction.load(Ordering::SeqCst) {
            return self.engine.live().snapshot();
        }
        let mut pinned = connection.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(pinned.get_or_insert_with(|| self.engine.live().snapshot()))
    }
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.engine.parse(query).map_err(user_error)?;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let result = match self.engine.prepare(statement).await {
                Ok(prepared) => self.run(client, &prepared, None, &Format::UnifiedText).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(response) => responses.push(response),
                Err(e) => {
                    // Like Postgres: the statements after a failed one are not run.
                    log_error(&e, query);
                    responses.push(Response::Error(Box::new(error_info(e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<PgStatement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement.prepared;
        let params = match prepared {
            Prepared::Query(plan) if portal.parameter_len() > 0 => {
                let types = parameter_types(plan)?;
                let refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
                Some(deserialize_parameters(portal, &refs)?)
            }
            _ => None,
        };
        self.run(client, prepared, params, &portal.result_column_format).await.map_err(|e| {
            log_error(&e, "(extended protocol)");
            user_error(e)
        })
    }
}

fn log_error(error: &QueryError, query: &str) {
    if error.code == sqlstate::INTERNAL {
        tracing::warn!(code = error.code, error = %error.message, query, "sql query failed");
    } else {
        tracing::debug!(code = error.code, error = %error.message, query, "sql query refused");
    }
}

fn error_info(error: QueryError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), error.code.into(), error.message);
    info.hint = error.hint;
    info
}

fn user_error(error: QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(error)))
}
