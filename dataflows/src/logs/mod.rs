//! Logs: header formats, masking and the Drain-style template miner behind `log_pattern`.
//!
//! A plain-text line is split into its header and its message ([`HeaderFormat`]); the message
//! is masked ([`Masker`]: numbers, ids, IPs, paths ... become `<*>`) and clustered by the
//! tenant's [`Miner`], which says which pattern the line belongs to and whether that pattern is
//! new or just changed (what the view layer turns into `log_pattern` rows):
//!
//! ```
//! use observebridge_dataflows::logs::{Change, HeaderFormat, Miner, MinerConfig};
//!
//! let format = HeaderFormat::parse("<Date> <Time> <Level> <Component>: <Content>").unwrap();
//! let line = format.split("2026-11-20 10:00:01 INFO api: user alice logged in from 10.0.0.7").unwrap();
//! assert_eq!(line.get("Level"), Some("INFO"));
//!
//! let mut miner = Miner::new("tenant-a", MinerConfig::default());
//! let first = miner.add(line.content, 1_000);
//! let second = miner.add("user bob logged in from 10.0.0.9", 2_000);
//! assert_eq!((first.change, second.change), (Change::Created, Change::TemplateChanged));
//! assert_eq!(second.id, first.id); // the fingerprint id survives the generalisation
//! assert_eq!(miner.cluster(first.id).unwrap().template(), "user <*> logged in from <*>");
//! ```
//!
//! Everything here is plain Rust with no timely inside; the view layer keeps one miner per
//! tenant and persists [`Miner::snapshot`] so that ids survive restarts ([`Miner::restore`]).
//!
//! # Layout
//! - [`header`]: Loghub-style header formats (`<Date> <Time> <Level> <Component>: <Content>`)
//!   that split a plain-text line into header fields and its message.
//! - [`mask`]: the single-pass masker that turns the variables of a message into `<*>`.
//! - [`drain`]: the Drain-style miner (one per tenant): clusters, stable fingerprint ids,
//!   snapshot/restore, parameter extraction.
//! - [`loghub`]: the accuracy evaluation on Loghub's labelled samples (GA, PA) behind
//!   `observebridge eval loghub`.

pub mod drain;
pub mod header;
pub mod loghub;
pub mod mask;

pub use drain::{extract_parameters, Change, Cluster, ClusterRecord, Match, Miner, MinerConfig, MinerStats};
pub use header::{Header, HeaderFormat};
pub use mask::{MaskConfig, MaskedLine, Masker};

/// The wildcard: what a masked value or a generalised template position reads as.
pub const WILDCARD: &str = "<*>";
