//! The `observebridge` binary's library: the job spec, the runtime that runs one job, and the
//! job server (`observebridge serve`) with its HTTP API and client.
//!
//! # Layout
//! - [`job`]: the job spec (YAML), parsed strictly and validated before anything starts.
//! - [`runtime`]: sources -> driver -> timely workers -> coordinator -> sinks, and commits.
//! - [`replay`]: a job's dataflows over a window read back from object storage, the window's
//!   rows rewritten in its sinks.
//! - [`server`]: `observebridge serve`: many jobs in one process, the `/v1/jobs` HTTP API, the
//!   store that keeps their specs across restarts.
//! - [`client`]: the CLI's side of the API (`observebridge job submit|list|status|stop`).

pub mod client;
pub mod job;
pub mod metrics;
pub mod replay;
pub mod runtime;
pub mod server;
