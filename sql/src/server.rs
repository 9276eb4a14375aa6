//! Starting and stopping the listeners.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::SqlConfig;
use crate::engine::QueryEngine;
use crate::error::ServeError;
use crate::http;
use crate::live::LiveViews;
use crate::pg::PgHandlers;

/// The running SQL servers. Dropping it stops them (open connections are closed); so does
/// [`SqlServer::shutdown`], which also waits until they are gone.
#[derive(Debug)]
pub struct SqlServer {
    pg_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SqlServer {
    /// Where the Postgres wire protocol is served (the bound address: port 0 resolved).
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg_addr
    }

    /// Where `POST /v1/sql` is served (the bound address).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Stops accepting, closes open connections and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }

    /// How to connect, for the terminal: `psql -h 127.0.0.1 -p 6875`, the HTTP URL.
    pub fn connect_hint(&self) -> String {
        let mut lines = Vec::new();
        if let Some(pg) = self.pg_addr {
            lines.push(format!("SQL: psql -h {} -p {}  (any user and database)", pg.ip(), pg.port()));
        }
        if let Some(http) = self.http_addr {
            lines.push(format!("SQL over HTTP: curl -d 'SELECT * FROM dim_resource LIMIT 5' http://{http}/v1/sql"));
        }
        lines.join("\n")
    }
}

impl Drop for SqlServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the servers `config` asks for on the current tokio runtime, over `live`.
///
/// Validates the config, builds the query engine (and the history tables' object store), binds
/// both listeners (an address in use is an error naming it) and returns once they accept
/// connections. With `enabled: false` nothing is started.
pub async fn serve(config: SqlConfig, live: Arc<LiveViews>) -> Result<SqlServer, ServeError> {
    config.validate()?;
    let (stop, stopped) = watch::channel(false);
    let mut server = SqlServer { pg_addr: None, http_addr: None, stop, tasks: Vec::new() };
    if !config.enabled {
        return Ok(server);
    }
    let engine = Arc::new(QueryEngine::new(live, config.history.as_ref())?);
    let auth = config.auth.map(Arc::new);
    if let Some(addr) = config.pg_listen {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what: "the postgres wire protocol (sql.pg_listen)", addr, source })?;
        server.pg_addr = Some(local_addr(&listener, addr)?);
        let handlers = Arc::new(PgHandlers::new(Arc::clone(&engine), auth.clone()));
        server.tasks.push(tokio::spawn(accept_pg(listener, handlers, stopped.clone())));
    }
    if let Some(addr) = config.http_listen {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what: "http (sql.http_listen)", addr, source })?;
        server.http_addr = Some(local_addr(&listener, addr)?);
        let router = http::router(Arc::clone(&engine), auth.clone());
        let mut stopped = stopped.clone();
        server.tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                tracing::error!(%error, "sql http server failed");
            }
        }));
    }
    tracing::info!(pg = ?server.pg_addr, http = ?server.http_addr, auth = auth.is_some(), "sql served");
    Ok(server)
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Bind { what: "reading the bound address", addr, source })
}

/// Accepts Postgres connections until told to stop; then closes the open ones.
async fn accept_pg(listener: TcpListener, handlers: Arc<PgHandlers>, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handlers = Arc::clone(&handlers);
                    connections.spawn(async move {
                        if let Err(error) = pgwire::tokio::process_socket(socket, None, handlers).await {
                            tracing::debug!(%peer, %error, "sql connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "sql: accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}
