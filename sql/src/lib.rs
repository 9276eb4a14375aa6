//! ObserveBridge SQL: the live views and their Parquet history as tables, served over the
//! Postgres wire protocol (psql, drivers, Grafana) and HTTP, read-only.
//!
//! The engine registers every view it computes with [`LiveViews`] and, after each frontier is
//! durable in Postgres and Parquet, hands the frontier's changes to [`LiveViews::apply`]. Queries
//! run with DataFusion against one immutable snapshot: every table in one query is at the same
//! frontier, and no query ever sees half of one.
//!
//! ```no_run
//! # async fn demo(frontier: observebridge_connectors::sink::Frontier,
//! #               changes: Vec<observebridge_connectors::sink::TableChanges>,
//! #               schema: arrow::datatypes::SchemaRef) -> Result<(), Box<dyn std::error::Error>> {
//! use observebridge_sql::{LiveViews, SqlConfig, serve};
//!
//! let live = LiveViews::new();
//! live.register("metric_1m", schema, &["bucket", "tenant", "resource", "metric", "series"])?;
//! let server = serve(SqlConfig::default(), live.clone()).await?; // psql -h 127.0.0.1 -p 6875
//! live.apply(&frontier, &changes)?;                             // queries see it from now on
//! # drop(server); Ok(()) }
//! ```
//!
//! # Layout
//! - [`live`]: [`LiveViews`]: per view a key -> row map kept as immutable Arrow chunks plus live
//!   bitmaps, published per frontier as one [`Snapshot`] of every table; and `dim_resource`,
//!   derived from the views' URN columns.
//! - [`catalog`]: the DataFusion schema `public` (views, `dim_resource`, `<view>_history`) and the
//!   live-table scan, which applies pushed-down filters and the tenant on the snapshot.
//! - `history`: `<view>_history` over `<prefix>/<view>/date=/hour=/*.parquet`, partition pruning
//!   from `bucket` filters, tenant filter.
//! - [`engine`]: [`QueryEngine`]: parse (Postgres dialect, client catalog-query rewrites), refuse
//!   writes, plan, run against a [`QueryScope`].
//! - `pg`: the Postgres wire protocol (pgwire): startup and token auth, simple and extended
//!   query protocol, typed rows.
//! - `http`: `POST /v1/sql` (axum): JSON rows or an Arrow IPC stream.
//! - `server`: [`serve`] and [`SqlServer`] (bound addresses, shutdown).
//! - [`config`]: [`SqlConfig`] and [`AuthConfig`] (the `sql:` section of a job spec).
//! - [`error`]: [`LiveError`], [`ServeError`], [`QueryError`] (with its SQLSTATE).

pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
mod history;
mod http;
pub mod live;
mod pg;
mod server;

pub use catalog::QueryScope;
pub use config::{ALL_TENANTS, AuthConfig, SqlConfig};
pub use engine::{Prepared, QueryEngine, QueryOutput};
pub use error::{LiveError, QueryError, ServeError};
pub use http::ARROW_STREAM;
pub use live::{DIM_RESOURCE, LiveViews, Snapshot, TableSnapshot};
pub use server::{SqlServer, serve};
