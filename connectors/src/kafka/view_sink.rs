//! The Kafka sink for view changes: one compacted topic per view whose content is the view.
//!
//! The engine hands the sink, per completed [`Frontier`], a [`TableChanges`] per view (the same
//! batches the Postgres sink applies). For view `v` the sink writes to topic `<topic_prefix>v`:
//!
//! - **key**: the view's primary key as a JSON object of the key columns, written in
//!   `TableChanges::key_columns` order (`{"bucket":"2026-11-21T13:05:00.000Z","tenant":"acme",..}`).
//!   The text is produced by this module column by column, not through `serde_json::Map`, so it is
//!   byte-for-byte the same whichever serde_json features the build unifies: an upsert and a later
//!   delete of a row always have the same key bytes, which is what compaction and partitioning
//!   compare.
//! - **value** (`envelope: plain`, the default): the whole row as a JSON object, columns in
//!   schema order. A delete is a tombstone (the key with a null value), so once the broker has
//!   compacted the topic it holds exactly the current view.
//! - **partition**: by key, with librdkafka's `murmur2_random` partitioner (the Java client's
//!   default) unless `properties.partitioner` says otherwise.
//!
//! Arrow values become JSON as follows: integers and floats are numbers (NaN and ±infinity are
//! `null`); `Utf8` columns are strings, including columns holding JSON text (`evidence`, `diff`,
//! `labels` stay strings, they are not re-parsed); timestamps are RFC 3339 UTC strings with
//! millisecond precision (`2026-11-21T13:05:00.000Z`, sub-millisecond digits truncated towards
//! the past; a timestamp without a time zone is read as UTC); dates are `YYYY-MM-DD`; lists are
//! arrays; structs are objects; nulls are `null`. Other Arrow types are refused with an error
//! naming the view and the column.
//!
//! # Progress marker
//!
//! After the data of a frontier the sink writes a marker to `<topic_prefix>_progress`
//! (compacted, partition 0): key = the job name, value =
//! `{"job":..,"epoch":..,"watermark_ms":..,"positions":..}` copied from the [`Frontier`].
//! [`KafkaViewSink::new`] reads the topic from its beginning to its end and keeps the last value
//! of the job's key, so after a restart [`KafkaViewSink::last_published`] says up to which source
//! positions the topics are complete and the engine can skip re-publishing those frontiers.
//!
//! # Delivery
//!
//! - **`exactly_once`**: a transactional producer (`transactional.id`, default
//!   `observebridge-<job>-views`). Each frontier, data and marker, is ONE Kafka transaction:
//!   a `read_committed` consumer sees all of a frontier or none of it, and the messages of an
//!   aborted attempt (a failed publish, a crashed process whose transaction the next
//!   `init_transactions` aborts) are never visible to it. A second sink with the same
//!   transactional id fences the first, whose next publish fails with
//!   [`KafkaViewSinkError::Fatal`].
//! - **`at_least_once`**: an idempotent producer (`enable.idempotence`, `acks=all`); the data of a
//!   frontier is acknowledged by the broker before its marker is written. A frontier that is
//!   retried (after an error, or after a crash between the data and the marker) may appear twice
//!   in a topic; since both copies carry the same key and value, a compacted topic's final content
//!   is the same as with `exactly_once`. Consumers must read with `read_uncommitted` semantics in
//!   mind: they can see a frontier half written.
//! - **`auto`** (default): tries `exactly_once` and falls back to `at_least_once`, with a warning
//!   saying why, when the broker does not support transactions. To find out, `new` runs one probe
//!   transaction holding a single tombstone for key `<job>/delivery-probe` in partition 0 of the
//!   progress topic and aborts it: librdkafka checks that the broker implements `EndTxn` only
//!   when a transaction with data ends, and `init_transactions` alone succeeds on brokers that
//!   cannot end one.
//!
//! **tansu 0.6** (the broker of the test suite) accepts `InitProducerId` with a transactional id
//! and `AddPartitionsToTxn`, but does not implement `EndTxn` (it is missing from its ApiVersions;
//! librdkafka: "EndTxnRequest (KIP-98) not supported by broker"), and its fetch responses always
//! carry an empty aborted-transactions list, so aborted records become visible to
//! `read_committed` readers once the transaction is rolled back. On tansu `exactly_once` is
//! therefore refused by `new` and `auto` resolves to `at_least_once`. tansu also does not compact:
//! its topics keep every message, and a reader must fold them by key (tombstones delete).
//!
//! # Debezium envelope
//!
//! With `envelope: debezium` the value is
//! `{"before":<row or null>,"after":<row or null>,"op":"c"|"u"|"d","ts_ms":<wall clock ms>,
//! "source":{"job":..,"view":..,"epoch":..}}`, and a delete is followed by a tombstone for the same
//! key (as Debezium does), so compaction still removes deleted rows. `before` comes from a cache,
//! per view, of the last value this sink published for each key, holding at most
//! `debezium_cache_rows` keys per view (the least recently published key is evicted first). The
//! cache starts empty at every start of the process and is not filled from the topic: **a key that
//! is not in the cache (first change after a restart, or evicted) is published as `op: "c"` with
//! `before: null`, and its delete as `op: "d"` with `before: null`.** The cache is updated only
//! once a frontier is durable, so a retried frontier carries the same `before` values.
//!
//! ```no_run
//! # use observebridge_connectors::kafka::{KafkaViewSink, KafkaViewSinkConfig, KafkaViewSinkError};
//! # use observebridge_connectors::sink::{Frontier, TableChanges};
//! # fn run(frontier: Frontier, changes: Vec<TableChanges>) -> Result<(), KafkaViewSinkError> {
//! let cfg = KafkaViewSinkConfig::new("kafka-1:9092,kafka-2:9092");
//! let mut sink = KafkaViewSink::new("checkout-prod", &cfg)?; // topics, transactions, marker
//! if let Some(positions) = sink.last_published() {
//!     // skip frontiers at or before `positions`: they are already in the topics
//! }
//! sink.publish_with_retry(&frontier, &changes, |attempt, error| {
//!     eprintln!("kafka unavailable (attempt {attempt}): {error}");
//! })?; // Err only for permanent errors: stop the job
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, ArrowPrimitiveType, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::config::{ConfigError, is_secret_property};
use super::context::{DeliveryContext, LogContext};
use super::admin::wait_for_topic;
use super::producer::{self, SendFailure, idempotent_producer};
use crate::retry::RetryConfig;
use crate::sink::{Frontier, TableChanges};

/// How long `new` may wait for the brokers (metadata, `init_transactions`, the probe).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit or an abort may take before the attempt is reported as failed, unless
/// `properties."transaction.timeout.ms"` says otherwise (librdkafka's default for it is 60 s).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long topic creation may take, including until the topic shows in metadata.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Reading the progress topic fails when no progress was made for this long.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The progress topic is `<topic_prefix>` followed by this.
const PROGRESS_SUFFIX: &str = "_progress";
/// Markers (and the delivery probe) all go to this partition of the progress topic.
const PROGRESS_PARTITION: i32 = 0;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The shape of message values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// The row as a JSON object; a delete is a tombstone.
    #[default]
    Plain,
    /// Debezium's change event (`before`, `after`, `op`, `ts_ms`, `source`); a delete is a `d`
    /// event followed by a tombstone.
    Debezium,
}

/// The delivery guarantee asked for (see the module docs for what each one promises).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// `exactly_once` when the broker supports transactions, else `at_least_once` with a warning.
    #[default]
    Auto,
    /// One Kafka transaction per frontier; `new` fails if the broker cannot do transactions.
    ExactlyOnce,
    /// Idempotent producer, every delivery acknowledged; a retried frontier may appear twice.
    AtLeastOnce,
}

/// Configuration of a [`KafkaViewSink`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaViewSinkConfig {
    /// Bootstrap brokers, comma separated (`host1:9092,host2:9092`).
    pub brokers: String,
    /// Topic of view `v` is `<topic_prefix>v`; the progress topic is `<topic_prefix>_progress`.
    /// Default `observebridge.`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// `plain` (default: the row, tombstone on delete) or `debezium` (change events).
    #[serde(default)]
    pub envelope: Envelope,
    /// `auto` (default), `exactly_once` or `at_least_once`.
    #[serde(default)]
    pub delivery: Delivery,
    /// The views to publish; changes of other views are ignored. Default: every view.
    #[serde(default)]
    pub views: Option<Vec<String>>,
    /// Create missing topics (view topics with `partitions` partitions, the progress topic with
    /// one), all with `cleanup.policy=compact`. When false, a missing topic is an error. Default
    /// true.
    #[serde(default = "default_create_topics")]
    pub create_topics: bool,
    /// Partitions of the view topics the sink creates. Default 1.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// The producer's `transactional.id` (`exactly_once`, `auto`). Default
    /// `observebridge-<job>-views`. Two running sinks with the same id fence each other.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Extra librdkafka properties for the producer, the progress reader and the admin client
    /// (`security.protocol`, `sasl.*`, `ssl.*`, `compression.type`, `message.timeout.ms`, ...).
    /// Values of keys containing `password`, `secret` or `sasl.oauthbearer` are redacted in
    /// `Debug` and never logged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// With `envelope: debezium`, how many keys per view the `before` cache holds. Default
    /// 1 000 000.
    #[serde(default = "default_debezium_cache_rows")]
    pub debezium_cache_rows: usize,
    /// Backoff of [`KafkaViewSink::publish_with_retry`] (`initial_backoff`, `max_backoff`).
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_topic_prefix() -> String {
    "observebridge.".to_owned()
}

fn default_create_topics() -> bool {
    true
}

fn default_partitions() -> i32 {
    1
}

fn default_debezium_cache_rows() -> usize {
    1_000_000
}

/// librdkafka properties the sink sets itself; setting them in `properties` is refused.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers` instead"),
    ("metadata.broker.list", "set `brokers` instead"),
    ("transactional.id", "set `transactional_id` instead"),
    (
        "enable.idempotence",
        "the view sink's producer is always idempotent",
    ),
    ("acks", "the idempotent producer needs acks=all"),
    (
        "isolation.level",
        "the progress marker is read with the isolation its delivery needs",
    ),
    (
        "group.id",
        "the progress reader names its own group and never joins it",
    ),
    ("enable.auto.commit", "the progress reader never commits"),
    (
        "enable.partition.eof",
        "the progress reader needs partition ends",
    ),
];

impl KafkaViewSinkConfig {
    /// A configuration with the defaults for everything but the brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: default_topic_prefix(),
            envelope: Envelope::default(),
            delivery: Delivery::default(),
            views: None,
            create_topics: default_create_topics(),
            partitions: default_partitions(),
            transactional_id: None,
            properties: BTreeMap::new(),
            debezium_cache_rows: default_debezium_cache_rows(),
            retry: RetryConfig::default(),
        }
    }

    /// Checks every rule that can be checked without talking to a broker.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(config_error(
                "brokers",
                "is empty. Name at least one bootstrap broker as host:port.",
            ));
        }
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(config_error(
                "brokers",
                format!("{:?} has an empty entry between commas", self.brokers),
            ));
        }
        if self.topic_prefix.is_empty() {
            return Err(config_error(
                "topic_prefix",
                "is empty. Topics are named <topic_prefix><view>; use a prefix such as \"observebridge.\".",
            ));
        }
        check_topic_name("topic_prefix", &self.progress_topic())?;
        if let Some(views) = &self.views {
            if views.is_empty() {
                return Err(config_error(
                    "views",
                    "is an empty list. Omit it to publish every view.",
                ));
            }
            for (i, view) in views.iter().enumerate() {
                let field = format!("views[{i}]");
                check_view(&field, &self.topic_prefix, view)?;
                if views[..i].contains(view) {
                    return Err(config_error(
                        field,
                        format!("view {view:?} is listed twice"),
                    ));
                }
            }
        }
        if self.partitions < 1 {
            return Err(config_error(
                "partitions",
                format!("is {} but must be at least 1", self.partitions),
            ));
        }
        if let Some(id) = &self.transactional_id {
            if id.trim().is_empty() {
                return Err(config_error(
                    "transactional_id",
                    "is empty. Omit it for the default observebridge-<job>-views.",
                ));
            }
            if self.delivery == Delivery::AtLeastOnce {
                return Err(config_error(
                    "transactional_id",
                    "is set but delivery is at_least_once, which uses no transactions",
                ));
            }
        }
        if self.envelope == Envelope::Debezium && self.debezium_cache_rows == 0 {
            return Err(config_error(
                "debezium_cache_rows",
                "is 0. The debezium envelope needs room for at least one key per view.",
            ));
        }
        if let Some((field, message)) = self.retry.problem() {
            return Err(config_error(field, message));
        }
        for key in self.properties.keys() {
            if key.trim().is_empty() {
                return Err(config_error("properties", "has an empty key"));
            }
            if let Some((_, hint)) = OWNED_PROPERTIES
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key.trim()))
            {
                return Err(config_error(
                    format!("properties.{key}"),
                    format!("is set by the view sink itself: {hint}"),
                ));
            }
        }
        Ok(())
    }

    fn progress_topic(&self) -> String {
        format!("{}{PROGRESS_SUFFIX}", self.topic_prefix)
    }

    fn selects(&self, view: &str) -> bool {
        self.views
            .as_ref()
            .is_none_or(|views| views.iter().any(|v| v == view))
    }
}

impl fmt::Debug for KafkaViewSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaViewSinkConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("envelope", &self.envelope)
            .field("delivery", &self.delivery)
            .field("views", &self.views)
            .field("create_topics", &self.create_topics)
            .field("partitions", &self.partitions)
            .field("transactional_id", &self.transactional_id)
            .field("properties", &RedactedProperties(&self.properties))
            .field("debezium_cache_rows", &self.debezium_cache_rows)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Prints a property map with secret values replaced by `<redacted>`.
struct RedactedProperties<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedProperties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if is_secret_property(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

fn config_error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// A view name must make a legal topic name with the prefix and must not be the progress topic.
fn check_view(field: &str, prefix: &str, view: &str) -> Result<(), ConfigError> {
    if view.is_empty() {
        return Err(config_error(field, "view name is empty"));
    }
    if view == PROGRESS_SUFFIX {
        return Err(config_error(
            field,
            format!("view {view:?} would be written to the progress topic"),
        ));
    }
    check_topic_name(field, &format!("{prefix}{view}"))
}

/// Kafka's own rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn check_topic_name(field: &str, topic: &str) -> Result<(), ConfigError> {
    if topic.len() > 249 || topic == "." || topic == ".." {
        return Err(config_error(
            field,
            format!("makes topic {topic:?}, which is not a legal Kafka topic name"),
        ));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(config_error(
            field,
            format!(
                "makes topic {topic:?}, which contains {c:?}. Kafka topic names use only letters, digits, '.', '_' and '-'."
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What can go wrong in the Kafka view sink.
#[derive(Debug, thiserror::Error)]
pub enum KafkaViewSinkError {
    /// The configuration breaks a rule (found before any I/O).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The brokers could not be reached or refused the client (from `new`).
    #[error("kafka view sink cannot use brokers {brokers}: {message}")]
    Connect { brokers: String, message: String },
    /// `delivery: exactly_once` was asked for but the brokers cannot do transactions.
    #[error(
        "kafka view sink: brokers {brokers} do not support transactions ({message}). Use delivery: auto or at_least_once with this broker."
    )]
    TransactionsUnsupported { brokers: String, message: String },
    /// A topic could not be created, or is missing.
    #[error("kafka view sink topic {topic}: {message}")]
    Topic {
        topic: String,
        message: String,
        transient: bool,
    },
    /// A view's changes cannot be turned into JSON messages.
    #[error("kafka view sink cannot encode view {view}, column {column}: {message}")]
    Encode {
        view: String,
        column: String,
        message: String,
    },
    /// The progress topic could not be read back (from `new`).
    #[error("kafka view sink cannot read progress topic {topic}: {message}")]
    Progress { topic: String, message: String },
    /// A frontier was not published. Nothing of it is visible to `read_committed` readers when
    /// the sink is transactional; with `at_least_once` part of it may be.
    #[error("kafka view sink did not publish frontier {epoch} of job {job}: {message}")]
    Publish {
        job: String,
        epoch: u64,
        message: String,
        transient: bool,
    },
    /// The producer is unusable: fenced by another producer with the same transactional id, or
    /// failed fatally. Stop this sink.
    #[error(
        "kafka view sink producer {transactional_id} failed fatally: {message}. Another instance of the job may be publishing with the same transactional id."
    )]
    Fatal {
        transactional_id: String,
        message: String,
    },
}

impl KafkaViewSinkError {
    /// Whether trying again later may succeed (a broker unavailable, a timeout); what
    /// [`KafkaViewSink::publish_with_retry`] retries.
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaViewSinkError::Topic { transient, .. }
            | KafkaViewSinkError::Publish { transient, .. } => *transient,
            KafkaViewSinkError::Config(_)
            | KafkaViewSinkError::Connect { .. }
            | KafkaViewSinkError::TransactionsUnsupported { .. }
            | KafkaViewSinkError::Encode { .. }
            | KafkaViewSinkError::Progress { .. }
            | KafkaViewSinkError::Fatal { .. } => false,
        }
    }
}

/// Errors that retrying cannot fix: authorization, unsupported features, invalid requests.
const PERMANENT_CODES: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::UnsupportedFeature,
    RDKafkaErrorCode::UnsupportedVersion,
    RDKafkaErrorCode::Authentication,
    RDKafkaErrorCode::SaslAuthenticationFailed,
    RDKafkaErrorCode::TopicAuthorizationFailed,
    RDKafkaErrorCode::ClusterAuthorizationFailed,
    RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
    RDKafkaErrorCode::MessageSizeTooLarge,
    RDKafkaErrorCode::InvalidRecord,
    RDKafkaErrorCode::InvalidTopic,
    RDKafkaErrorCode::InvalidConfig,
    RDKafkaErrorCode::InvalidPartitions,
    RDKafkaErrorCode::InvalidReplicationFactor,
    RDKafkaErrorCode::InvalidRequiredAcks,
    RDKafkaErrorCode::InvalidTransactionTimeout,
    RDKafkaErrorCode::PolicyViolation,
];

/// Errors meaning the broker cannot do transactions at all (`auto` falls back on these).
const NO_TRANSACTION_CODES: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::UnsupportedFeature,
    RDKafkaErrorCode::UnsupportedVersion,
    RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
    RDKafkaErrorCode::ClusterAuthorizationFailed,
];

fn is_permanent_code(code: Option<RDKafkaErrorCode>) -> bool {
    code.is_some_and(|code| PERMANENT_CODES.contains(&code))
}

/// Delivery reports only carry the error's text; it is librdkafka's description of the code,
/// which is what `RDKafkaErrorCode`'s `Display` prints too.
fn is_permanent_report(report: &str) -> bool {
    PERMANENT_CODES
        .iter()
        .any(|code| report.contains(&code.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Arrow -> JSON
// ---------------------------------------------------------------------------------------------

/// Writes the JSON of one row of a column. Writing into a `Vec` cannot fail; the error is a
/// value JSON cannot represent (an out-of-range timestamp).
type Encoder<'a> = Box<dyn Fn(usize, &mut Vec<u8>) -> Result<(), String> + 'a>;

/// Writes `value` as JSON. serde_json can only fail on I/O errors (none with a `Vec`) and on
/// maps with non-string keys (never written here).
fn push_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(&mut *out, value);
}

fn push_display(out: &mut Vec<u8>, value: impl fmt::Display) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
}

fn push_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        push_json(out, &value);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn push_f32(out: &mut Vec<u8>, value: f32) {
    // f32 through serde_json keeps its shortest representation (0.1, not 0.10000000149011612).
    if value.is_finite() {
        push_json(out, &value);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn push_millis(out: &mut Vec<u8>, ms: Option<i64>, raw: i64) -> Result<(), String> {
    let time = ms
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| format!("timestamp {raw} is out of the representable range"))?;
    out.push(b'"');
    out.extend_from_slice(time.to_rfc3339_opts(SecondsFormat::Millis, true).as_bytes());
    out.push(b'"');
    Ok(())
}

fn integers<'a, T>(array: &'a dyn Array) -> Encoder<'a>
where
    T: ArrowPrimitiveType,
    T::Native: fmt::Display,
{
    let array = array.as_primitive::<T>();
    Box::new(move |i, out| {
        push_display(out, array.value(i));
        Ok(())
    })
}

fn timestamps<'a, T>(array: &'a dyn Array, to_ms: fn(i64) -> Option<i64>) -> Encoder<'a>
where
    T: ArrowPrimitiveType<Native = i64>,
{
    let array = array.as_primitive::<T>();
    Box::new(move |i, out| {
        let raw = array.value(i);
        push_millis(out, to_ms(raw), raw)
    })
}

/// Writes the elements `range` of `values` (through `element`) as a JSON array.
fn push_array(
    out: &mut Vec<u8>,
    element: &Encoder<'_>,
    range: std::ops::Range<usize>,
) -> Result<(), String> {
    out.push(b'[');
    for (n, j) in range.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        element(j, out)?;
    }
    out.push(b']');
    Ok(())
}

/// The encoder of `array`'s rows; `Err` names an unsupported Arrow type.
fn encoder(array: &dyn Array) -> Result<Encoder<'_>, String> {
    let inner: Encoder<'_> = match array.data_type() {
        DataType::Null => {
            return Ok(Box::new(|_, out| {
                out.extend_from_slice(b"null");
                Ok(())
            }));
        }
        DataType::Boolean => {
            let array = array.as_boolean();
            Box::new(move |i, out| {
                out.extend_from_slice(if array.value(i) { b"true" } else { b"false" });
                Ok(())
            })
        }
        DataType::Int8 => integers::<Int8Type>(array),
        DataType::Int16 => integers::<Int16Type>(array),
        DataType::Int32 => integers::<Int32Type>(array),
        DataType::Int64 => integers::<Int64Type>(array),
        DataType::UInt8 => integers::<UInt8Type>(array),
        DataType::UInt16 => integers::<UInt16Type>(array),
        DataType::UInt32 => integers::<UInt32Type>(array),
        DataType::UInt64 => integers::<UInt64Type>(array),
        DataType::Float16 => {
            let array = array.as_primitive::<Float16Type>();
            Box::new(move |i, out| {
                push_f32(out, array.value(i).to_f32());
                Ok(())
            })
        }
        DataType::Float32 => {
            let array = array.as_primitive::<Float32Type>();
            Box::new(move |i, out| {
                push_f32(out, array.value(i));
                Ok(())
            })
        }
        DataType::Float64 => {
            let array = array.as_primitive::<Float64Type>();
            Box::new(move |i, out| {
                push_f64(out, array.value(i));
                Ok(())
            })
        }
        DataType::Utf8 => {
            let array = array.as_string::<i32>();
            Box::new(move |i, out| {
                push_json(out, array.value(i));
                Ok(())
            })
        }
        DataType::LargeUtf8 => {
            let array = array.as_string::<i64>();
            Box::new(move |i, out| {
                push_json(out, array.value(i));
                Ok(())
            })
        }
        DataType::Utf8View => {
            let array = array.as_string_view();
            Box::new(move |i, out| {
                push_json(out, array.value(i));
                Ok(())
            })
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            timestamps::<TimestampSecondType>(array, |v| v.checked_mul(1000))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            timestamps::<TimestampMillisecondType>(array, Some)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            timestamps::<TimestampMicrosecondType>(array, |v| Some(v.div_euclid(1_000)))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            timestamps::<TimestampNanosecondType>(array, |v| Some(v.div_euclid(1_000_000)))
        }
        DataType::Date32 => {
            let array = array.as_primitive::<Date32Type>();
            Box::new(move |i, out| {
                let days = array.value(i);
                // 719_163 days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
                let date = days
                    .checked_add(719_163)
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .ok_or_else(|| format!("date {days} is out of the representable range"))?;
                push_json(out, &date.format("%Y-%m-%d").to_string());
                Ok(())
            })
        }
        DataType::Date64 => {
            let array = array.as_primitive::<Date64Type>();
            Box::new(move |i, out| {
                let ms = array.value(i);
                let date = DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| format!("date {ms} is out of the representable range"))?;
                push_json(out, &date.date_naive().format("%Y-%m-%d").to_string());
                Ok(())
            })
        }
        DataType::List(_) => {
            let array = array.as_list::<i32>();
            let element = encoder(array.values().as_ref())?;
            let offsets = array.value_offsets();
            Box::new(move |i, out| {
                let (start, end) = (offsets[i], offsets[i + 1]);
                push_array(out, &element, start as usize..end as usize)
            })
        }
        DataType::LargeList(_) => {
            let array = array.as_list::<i64>();
            let element = encoder(array.values().as_ref())?;
            let offsets = array.value_offsets();
            Box::new(move |i, out| {
                let (start, end) = (offsets[i], offsets[i + 1]);
                push_array(out, &element, start as usize..end as usize)
            })
        }
        DataType::FixedSizeList(_, _) => {
            let array = array.as_fixed_size_list();
            let element = encoder(array.values().as_ref())?;
            let length = array.value_length() as usize;
            Box::new(move |i, out| {
                let start = array.value_offset(i) as usize;
                push_array(out, &element, start..start + length)
            })
        }
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let children = fields
                .iter()
                .zip(array.columns())
                .map(|(field, column)| {
                    Ok((field_name_json(field.name()), encoder(column.as_ref())?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Box::new(move |i, out| push_object(out, &children, i))
        }
        other => return Err(format!("Arrow type {other} is not supported")),
    };
    if array.null_count() == 0 {
        return Ok(inner);
    }
    Ok(Box::new(move |i, out| {
        if array.is_null(i) {
            out.extend_from_slice(b"null");
            Ok(())
        } else {
            inner(i, out)
        }
    }))
}

/// `"name"` as JSON text, followed by the colon.
fn field_name_json(name: &str) -> Vec<u8> {
    let mut text = Vec::with_capacity(name.len() + 3);
    push_json(&mut text, name);
    text.push(b':');
    text
}

/// Writes `{"a":..,"b":..}` for row `i`, fields in the order given.
fn push_object(
    out: &mut Vec<u8>,
    fields: &[(Vec<u8>, Encoder<'_>)],
    i: usize,
) -> Result<(), String> {
    out.push(b'{');
    for (n, (name, encode)) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        encode(i, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Writes JSON objects of chosen columns of a batch, one row at a time.
struct ObjectEncoder<'a> {
    view: &'a str,
    columns: Vec<(Vec<u8>, Encoder<'a>)>,
    names: Vec<&'a str>,
}

impl<'a> ObjectEncoder<'a> {
    /// Every column of `batch`, in schema order.
    fn all_columns(view: &'a str, batch: &'a RecordBatch) -> Result<Self, KafkaViewSinkError> {
        let schema = batch.schema_ref();
        let names = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Self::build(view, batch, names)
    }

    /// The key columns of `batch`, in `key_columns` order.
    fn key_columns(
        view: &'a str,
        batch: &'a RecordBatch,
        key_columns: &'a [String],
    ) -> Result<Self, KafkaViewSinkError> {
        if key_columns.is_empty() {
            return Err(KafkaViewSinkError::Encode {
                view: view.to_owned(),
                column: "(key)".to_owned(),
                message: "the view has no key columns. Every view needs a primary key to be compacted by.".to_owned(),
            });
        }
        Self::build(
            view,
            batch,
            key_columns.iter().map(String::as_str).collect(),
        )
    }

    fn build(
        view: &'a str,
        batch: &'a RecordBatch,
        names: Vec<&'a str>,
    ) -> Result<Self, KafkaViewSinkError> {
        let error = |column: &str, message: String| KafkaViewSinkError::Encode {
            view: view.to_owned(),
            column: column.to_owned(),
            message,
        };
        let mut columns = Vec::with_capacity(names.len());
        for name in &names {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| error(name, "is missing from the batch".to_owned()))?;
            let encode = encoder(column.as_ref()).map_err(|message| error(name, message))?;
            columns.push((field_name_json(name), encode));
        }
        Ok(Self {
            view,
            columns,
            names,
        })
    }

    fn encode(&self, row: usize) -> Result<Vec<u8>, KafkaViewSinkError> {
        let mut out = Vec::with_capacity(64 * self.columns.len());
        out.push(b'{');
        for (n, ((name, encode), column)) in self.columns.iter().zip(&self.names).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name);
            encode(row, &mut out).map_err(|message| KafkaViewSinkError::Encode {
                view: self.view.to_owned(),
                column: (*column).to_owned(),
                message,
            })?;
        }
        out.push(b'}');
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Debezium `before` cache
// ---------------------------------------------------------------------------------------------

/// The last published value of each key of one view, at most `capacity` keys; the key written
/// least recently is evicted first.
#[derive(Debug)]
struct BeforeCache {
    capacity: usize,
    rows: HashMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Write sequence -> key: the oldest write first.
    order: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl BeforeCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            rows: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.rows.get(key).map(|(row, _)| row.as_slice())
    }

    fn put(&mut self, key: Vec<u8>, row: Vec<u8>) {
        let seq = self.next;
        self.next += 1;
        if let Some((_, old)) = self.rows.insert(key.clone(), (row, seq)) {
            self.order.remove(&old);
        }
        self.order.insert(seq, key);
        while self.rows.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.rows.remove(&oldest);
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some((_, seq)) = self.rows.remove(key) {
            self.order.remove(&seq);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.rows.len()
    }
}

// ---------------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------------

/// What one publish wrote to the view topics (the progress marker is not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Messages written to view topics, tombstones included.
    pub messages: u64,
    /// How many of `messages` were tombstones (deletes).
    pub tombstones: u64,
}

/// The progress marker's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Marker {
    job: String,
    epoch: u64,
    watermark_ms: Option<i64>,
    positions: serde_json::Value,
}

/// The delivery the sink resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    ExactlyOnce,
    AtLeastOnce,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::ExactlyOnce => "exactly_once",
            Mode::AtLeastOnce => "at_least_once",
        }
    }
}

/// One message of a frontier.
struct Outgoing {
    /// Index into [`Staged::topics`].
    topic: usize,
    key: Vec<u8>,
    /// `None` is a tombstone.
    payload: Option<Vec<u8>>,
}

/// A change to the `before` cache, applied once the frontier is durable.
struct CacheUpdate {
    view: String,
    key: Vec<u8>,
    /// `None` removes the key.
    row: Option<Vec<u8>>,
}

/// A failed transactional attempt; `commit_pending` when its commit may still complete.
struct TransactionFailure {
    error: KafkaViewSinkError,
    commit_pending: bool,
}

/// A frontier encoded and ready to send.
struct Staged {
    frontier: Frontier,
    topics: Vec<String>,
    messages: Vec<Outgoing>,
    marker: Vec<u8>,
    stats: PublishStats,
    cache: Vec<CacheUpdate>,
}

/// Publishes view changes to Kafka, one topic per view, one frontier at a time (see the module
/// docs for the message format and the guarantees).
///
/// Blocking: called from the engine's coordinator thread. Not shared: `publish` takes
/// `&mut self`.
pub struct KafkaViewSink {
    job: String,
    cfg: KafkaViewSinkConfig,
    transactional_id: String,
    progress_topic: String,
    mode: Mode,
    producer: BaseProducer<DeliveryContext>,
    /// Topics known to exist (created or seen in metadata).
    topics: HashSet<String>,
    last: Option<Marker>,
    caches: HashMap<String, BeforeCache>,
    /// A transaction was begun and not yet ended; abort it before the next one.
    needs_abort: bool,
    /// A frontier whose commit failed with a retriable error: commit again before anything else.
    pending_commit: Option<Staged>,
    /// Timeout of commit and abort calls: the transaction timeout.
    transaction_timeout: Duration,
}

impl KafkaViewSink {
    /// Validates `cfg`, connects, creates the missing topics (when `create_topics`), resolves the
    /// delivery (initialising transactions for `exactly_once` and `auto`) and reads the job's last
    /// progress marker. Errors name the brokers and the cause; unreachable brokers fail after
    /// about 30 s.
    pub fn new(job: &str, cfg: &KafkaViewSinkConfig) -> Result<Self, KafkaViewSinkError> {
        cfg.validate()?;
        if job.trim().is_empty() {
            return Err(
                config_error("job", "is empty. The job name keys the progress marker.").into(),
            );
        }
        let connect_error = |message: String| KafkaViewSinkError::Connect {
            brokers: cfg.brokers.clone(),
            message,
        };
        let transactional_id = cfg
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("observebridge-{job}-views"));
        let transactional = cfg.delivery != Delivery::AtLeastOnce;
        let producer = build_producer(job, cfg, transactional.then_some(transactional_id.as_str()))
            .map_err(|e| connect_error(format!("cannot create the producer: {e}")))?;
        producer
            .client()
            .fetch_metadata(None, CONNECT_TIMEOUT)
            .map_err(|e| {
                connect_error(format!(
                    "no metadata within {CONNECT_TIMEOUT:?}: {e}. Check that the brokers are reachable and the security properties."
                ))
            })?;
        let mut sink = Self {
            job: job.to_owned(),
            cfg: cfg.clone(),
            transactional_id,
            progress_topic: cfg.progress_topic(),
            mode: if transactional {
                Mode::ExactlyOnce
            } else {
                Mode::AtLeastOnce
            },
            producer,
            topics: HashSet::new(),
            last: None,
            caches: HashMap::new(),
            needs_abort: false,
            pending_commit: None,
            transaction_timeout: cfg
                .properties
                .get("transaction.timeout.ms")
                .and_then(|ms| ms.trim().parse().ok())
                .map_or(TRANSACTION_TIMEOUT, Duration::from_millis),
        };
        sink.ensure_topics(&[sink.progress_topic.clone()], 1)?;
        if let Some(views) = &cfg.views {
            let topics: Vec<String> = views
                .iter()
                .map(|v| format!("{}{v}", cfg.topic_prefix))
                .collect();
            sink.ensure_topics(&topics, cfg.partitions)?;
        }
        if transactional {
            sink.resolve_transactions()?;
        }
        sink.last = sink.read_marker()?;
        tracing::info!(
            job,
            brokers = cfg.brokers.as_str(),
            delivery = sink.mode.as_str(),
            envelope = ?cfg.envelope,
            topic_prefix = cfg.topic_prefix.as_str(),
            last_epoch = sink.last.as_ref().map(|m| m.epoch),
            "kafka view sink ready"
        );
        Ok(sink)
    }

    /// Positions (`Frontier::positions`) of the last frontier this job published, from the
    /// progress marker read by `new` and updated by every successful publish.
    pub fn last_published(&self) -> Option<&serde_json::Value> {
        self.last.as_ref().map(|m| &m.positions)
    }

    /// `"exactly_once"` or `"at_least_once"`: what this sink delivers (`auto` is resolved by
    /// `new`).
    pub fn delivery(&self) -> &'static str {
        self.mode.as_str()
    }

    /// Publishes one frontier: every change of every selected view, then the progress marker. In
    /// one Kafka transaction when the sink is transactional; otherwise the data is acknowledged
    /// before the marker is written. The frontier is durable when this returns `Ok`.
    ///
    /// After an `Err`, publish the same frontier again ([`publish_with_retry`](Self::publish_with_retry)
    /// does): a commit that timed out is completed by the next call before anything else.
    pub fn publish(
        &mut self,
        frontier: &Frontier,
        changes: &[TableChanges],
    ) -> Result<PublishStats, KafkaViewSinkError> {
        if frontier.job != self.job {
            return Err(self.publish_error(
                frontier,
                format!(
                    "the frontier belongs to job {:?} but this sink publishes job {:?}",
                    frontier.job, self.job
                ),
                false,
            ));
        }
        let started = Instant::now();
        if let Some(stats) = self.complete_pending_commit(frontier)? {
            return Ok(stats);
        }
        let staged = self.stage(frontier, changes)?;
        let missing: Vec<String> = staged
            .topics
            .iter()
            .filter(|t| !self.topics.contains(*t))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.ensure_topics(&missing, self.cfg.partitions)?;
        }
        match self.mode {
            Mode::ExactlyOnce => {
                if let Err(failure) = self.send_transaction(&staged) {
                    if failure.commit_pending {
                        // The commit goes on in the background; the next call completes it.
                        self.pending_commit = Some(staged);
                    }
                    return Err(failure.error);
                }
            }
            Mode::AtLeastOnce => self.send_idempotent(&staged)?,
        }
        let stats = self.finish(staged);
        tracing::debug!(
            job = self.job.as_str(),
            epoch = frontier.epoch,
            messages = stats.messages,
            tombstones = stats.tombstones,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kafka view frontier published"
        );
        Ok(stats)
    }

    /// Like [`publish`](Self::publish), but waits and tries again after a transient error (a
    /// broker unavailable, a timeout, an aborted transaction) for as long as it takes, with
    /// exponential backoff from `retry.initial_backoff` up to `retry.max_backoff`: the caller
    /// blocks meanwhile, which pauses ingestion; nothing is dropped. `on_retry(attempt, &error)`
    /// is called after each failed attempt, attempts counting from 1.
    ///
    /// Returns `Err` only for a permanent error (authorization, an invalid topic or config, a
    /// value that cannot be encoded, a fenced producer), after which the caller should stop.
    pub fn publish_with_retry(
        &mut self,
        frontier: &Frontier,
        changes: &[TableChanges],
        mut on_retry: impl FnMut(u32, &KafkaViewSinkError),
    ) -> Result<PublishStats, KafkaViewSinkError> {
        let mut attempt: u32 = 0;
        let mut backoff = self.cfg.retry.initial_backoff;
        loop {
            match self.publish(frontier, changes) {
                Ok(stats) => {
                    if attempt > 0 {
                        tracing::info!(
                            job = self.job.as_str(),
                            epoch = frontier.epoch,
                            attempts = attempt + 1,
                            "kafka view sink recovered"
                        );
                    }
                    return Ok(stats);
                }
                Err(error) if error.is_transient() => {
                    attempt = attempt.saturating_add(1);
                    on_retry(attempt, &error);
                    tracing::warn!(
                        job = self.job.as_str(),
                        epoch = frontier.epoch,
                        attempt,
                        backoff_ms = backoff.as_millis() as u64,
                        %error,
                        "kafka view publish failed; retrying"
                    );
                    std::thread::sleep(backoff);
                    backoff = self.cfg.retry.next(backoff);
                }
                Err(error) => {
                    tracing::error!(job = self.job.as_str(), epoch = frontier.epoch, %error, "kafka view publish failed permanently");
                    return Err(error);
                }
            }
        }
    }

    // --- start-up -----------------------------------------------------------------------------

    /// `init_transactions`, then a probe transaction (one tombstone, aborted) to learn whether
    /// the broker can end transactions. On failure `exactly_once` is an error and `auto` falls
    /// back to an idempotent producer.
    fn resolve_transactions(&mut self) -> Result<(), KafkaViewSinkError> {
        let (error, unsupported) = match self.probe_transactions() {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        if !unsupported {
            return Err(KafkaViewSinkError::Connect {
                brokers: self.cfg.brokers.clone(),
                message: format!(
                    "cannot initialise transactions for transactional id {}: {error}",
                    self.transactional_id
                ),
            });
        }
        if self.cfg.delivery == Delivery::ExactlyOnce {
            return Err(KafkaViewSinkError::TransactionsUnsupported {
                brokers: self.cfg.brokers.clone(),
                message: error,
            });
        }
        tracing::warn!(
            job = self.job.as_str(),
            brokers = self.cfg.brokers.as_str(),
            error = error.as_str(),
            "kafka brokers cannot do transactions; delivery auto falls back to at_least_once (a retried frontier may be written twice)"
        );
        self.producer = build_producer(&self.job, &self.cfg, None).map_err(|e| {
            KafkaViewSinkError::Connect {
                brokers: self.cfg.brokers.clone(),
                message: format!("cannot create the idempotent producer: {e}"),
            }
        })?;
        self.mode = Mode::AtLeastOnce;
        Ok(())
    }

    /// `init_transactions`, then one transaction holding a tombstone for `<job>/delivery-probe`,
    /// aborted. `Err((message, unsupported))`.
    fn probe_transactions(&self) -> Result<(), (String, bool)> {
        let unsupported_code = |e: &KafkaError| {
            e.rdkafka_error_code()
                .is_some_and(|code| NO_TRANSACTION_CODES.contains(&code))
        };
        let kafka = |e: KafkaError| (e.to_string(), unsupported_code(&e));
        self.producer
            .init_transactions(CONNECT_TIMEOUT)
            .map_err(kafka)?;
        self.producer.begin_transaction().map_err(kafka)?;
        let key = format!("{}/delivery-probe", self.job);
        let probe = [producer::Outgoing {
            topic: self.progress_topic.as_str(),
            partition: Some(PROGRESS_PARTITION),
            key: Some(key.as_bytes()),
            payload: None,
        }];
        if let Err((message, _)) = send_all(&self.producer, probe.into_iter()) {
            let _ = self.producer.abort_transaction(CONNECT_TIMEOUT);
            let unsupported = NO_TRANSACTION_CODES
                .iter()
                .any(|code| message.contains(&code.to_string()));
            return Err((
                format!("the probe transaction failed: {message}"),
                unsupported,
            ));
        }
        self.producer
            .abort_transaction(CONNECT_TIMEOUT)
            .map_err(kafka)
    }

    /// Reads partition 0 of the progress topic from its beginning to its end (the last stable
    /// offset for `read_committed`), keeping the last marker of this job.
    fn read_marker(&self) -> Result<Option<Marker>, KafkaViewSinkError> {
        let topic = self.progress_topic.as_str();
        let error = |message: String| KafkaViewSinkError::Progress {
            topic: topic.to_owned(),
            message,
        };
        let isolation = match self.mode {
            Mode::ExactlyOnce => "read_committed",
            Mode::AtLeastOnce => "read_uncommitted",
        };
        let mut config = ClientConfig::new();
        for (key, value) in &self.cfg.properties {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.cfg.brokers)
            .set(
                "client.id",
                format!("observebridge-view-sink:{}:progress", self.job),
            )
            // librdkafka assigns only with a group; this one is never joined nor committed to.
            .set(
                "group.id",
                format!("{}-progress-reader", self.transactional_id),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", isolation);
        let consumer: BaseConsumer<LogContext> = config
            .create_with_context(LogContext::new(&format!("view-sink:{}:progress", self.job)))
            .map_err(|e| error(format!("cannot create the reader: {e}")))?;
        let (low, high) = consumer
            .fetch_watermarks(topic, PROGRESS_PARTITION, CONNECT_TIMEOUT)
            .map_err(|e| error(format!("cannot fetch its offsets: {e}")))?;
        if high <= low {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, PROGRESS_PARTITION, Offset::Beginning)
            .and_then(|()| consumer.assign(&tpl))
            .map_err(|e| error(format!("cannot assign partition {PROGRESS_PARTITION}: {e}")))?;

        let mut found = None;
        let mut next = low;
        let mut last_progress = Instant::now();
        // The end is reached when the reader's position passes `high`. A partition-EOF event
        // alone is not trusted (tansu signals one at the end of each fetched batch), and the
        // last offsets may be transaction markers, which are never delivered as messages, so
        // the position (which skips them) is checked rather than the last message's offset.
        while next < high {
            if last_progress.elapsed() >= READ_IDLE_TIMEOUT {
                return Err(error(format!(
                    "stuck at offset {next} of {high} for {READ_IDLE_TIMEOUT:?}"
                )));
            }
            match consumer.poll(Duration::from_millis(250)) {
                Some(Ok(message)) => {
                    next = message.offset() + 1;
                    last_progress = Instant::now();
                    if message.key() != Some(self.job.as_bytes()) {
                        continue;
                    }
                    match message.payload().map(serde_json::from_slice::<Marker>) {
                        None => found = None,
                        Some(Ok(marker)) => found = Some(marker),
                        Some(Err(e)) => tracing::warn!(
                            job = self.job.as_str(),
                            topic,
                            offset = message.offset(),
                            error = %e,
                            "progress marker is not valid JSON; skipped"
                        ),
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => {
                    tracing::warn!(job = self.job.as_str(), topic, error = %e, "progress topic read error, retrying");
                }
            }
            let position = consumer
                .position()
                .ok()
                .and_then(|tpl| {
                    tpl.find_partition(topic, PROGRESS_PARTITION)
                        .and_then(|p| p.offset().to_raw())
                })
                .unwrap_or(next);
            if position > next {
                next = position;
                last_progress = Instant::now();
            }
        }
        Ok(found)
    }

    // --- topics -------------------------------------------------------------------------------

    /// Makes sure `topics` exist: creates them (compacted) when `create_topics`, else checks
    /// the metadata. Known topics are remembered.
    fn ensure_topics(
        &mut self,
        topics: &[String],
        partitions: i32,
    ) -> Result<(), KafkaViewSinkError> {
        // A frontier spanning several epochs or workers holds several changes of one view: one
        // name once (a create request naming a topic twice is refused as malformed).
        let mut unique: Vec<String> = topics.to_vec();
        unique.sort();
        unique.dedup();
        let topics = unique.as_slice();
        if self.cfg.create_topics {
            create_compacted_topics(&self.cfg, &self.job, topics, partitions)?;
        } else {
            for topic in topics {
                let metadata = self
                    .producer
                    .client()
                    .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
                    .map_err(|e| KafkaViewSinkError::Topic {
                        topic: topic.clone(),
                        message: format!("cannot fetch its metadata: {e}"),
                        transient: true,
                    })?;
                let error = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map_or(Some(RDKafkaErrorCode::UnknownTopicOrPartition), |t| {
                        t.error().map(RDKafkaErrorCode::from)
                    });
                if let Some(code) = error {
                    let hint = if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                        " Create it (cleanup.policy=compact) or set create_topics: true."
                    } else {
                        ""
                    };
                    return Err(KafkaViewSinkError::Topic {
                        topic: topic.clone(),
                        message: format!("is not writable: {code}.{hint}"),
                        transient: false,
                    });
                }
            }
        }
        self.topics.extend(topics.iter().cloned());
        Ok(())
    }

    // --- publishing ---------------------------------------------------------------------------

    fn publish_error(
        &self,
        frontier: &Frontier,
        message: String,
        transient: bool,
    ) -> KafkaViewSinkError {
        KafkaViewSinkError::Publish {
            job: self.job.clone(),
            epoch: frontier.epoch,
            message,
            transient,
        }
    }

    fn fatal(&self, message: String) -> KafkaViewSinkError {
        KafkaViewSinkError::Fatal {
            transactional_id: self.transactional_id.clone(),
            message,
        }
    }

    /// Encodes every message of the frontier; the `before` cache is read, not changed.
    fn stage(
        &self,
        frontier: &Frontier,
        changes: &[TableChanges],
    ) -> Result<Staged, KafkaViewSinkError> {
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut staged = Staged {
            frontier: frontier.clone(),
            topics: Vec::new(),
            messages: Vec::new(),
            marker: Vec::new(),
            stats: PublishStats::default(),
            cache: Vec::new(),
        };
        for change in changes {
            let view = change.table.as_str();
            if !self.cfg.selects(view) {
                tracing::trace!(view, "view not selected for kafka; skipped");
                continue;
            }
            if change.upserts.num_rows() == 0 && change.deletes.num_rows() == 0 {
                continue;
            }
            check_view("views", &self.cfg.topic_prefix, view).map_err(|e| {
                KafkaViewSinkError::Topic {
                    topic: format!("{}{view}", self.cfg.topic_prefix),
                    message: e.message,
                    transient: false,
                }
            })?;
            let topic = staged.topics.len();
            staged
                .topics
                .push(format!("{}{view}", self.cfg.topic_prefix));
            let cache = self.caches.get(view);
            let source = DebeziumSource {
                job: &self.job,
                view,
                epoch: frontier.epoch,
                ts_ms,
            };

            // Encoders are built only for non-empty batches: an empty one may have no columns.
            if change.deletes.num_rows() > 0 {
                let keys = ObjectEncoder::key_columns(view, &change.deletes, &change.key_columns)?;
                for row in 0..change.deletes.num_rows() {
                    let key = keys.encode(row)?;
                    if self.cfg.envelope == Envelope::Debezium {
                        let before = cache.and_then(|c| c.get(&key));
                        let event = debezium_event(before, None, "d", &source);
                        staged.messages.push(Outgoing {
                            topic,
                            key: key.clone(),
                            payload: Some(event),
                        });
                        staged.cache.push(CacheUpdate {
                            view: view.to_owned(),
                            key: key.clone(),
                            row: None,
                        });
                    }
                    staged.messages.push(Outgoing {
                        topic,
                        key,
                        payload: None,
                    });
                    staged.stats.tombstones += 1;
                }
            }
            if change.upserts.num_rows() > 0 {
                let keys = ObjectEncoder::key_columns(view, &change.upserts, &change.key_columns)?;
                let rows = ObjectEncoder::all_columns(view, &change.upserts)?;
                for row in 0..change.upserts.num_rows() {
                    let key = keys.encode(row)?;
                    let value = rows.encode(row)?;
                    let payload = match self.cfg.envelope {
                        Envelope::Plain => value,
                        Envelope::Debezium => {
                            let before = cache.and_then(|c| c.get(&key));
                            let op = if before.is_some() { "u" } else { "c" };
                            let event = debezium_event(before, Some(&value), op, &source);
                            staged.cache.push(CacheUpdate {
                                view: view.to_owned(),
                                key: key.clone(),
                                row: Some(value),
                            });
                            event
                        }
                    };
                    staged.messages.push(Outgoing {
                        topic,
                        key,
                        payload: Some(payload),
                    });
                }
            }
        }
        staged.stats.messages = staged.messages.len() as u64;
        let marker = Marker {
            job: self.job.clone(),
            epoch: frontier.epoch,
            watermark_ms: frontier.watermark_ms,
            positions: frontier.positions.clone(),
        };
        staged.marker = serde_json::to_vec(&marker).map_err(|e| {
            self.publish_error(
                frontier,
                format!("cannot encode the progress marker: {e}"),
                false,
            )
        })?;
        Ok(staged)
    }

    /// The data messages of `staged`, then (when `with_marker`) its marker.
    fn outgoing<'s>(
        &'s self,
        staged: &'s Staged,
        with_marker: bool,
    ) -> impl Iterator<Item = producer::Outgoing<'s>> + 's {
        let data = staged.messages.iter().map(|m| producer::Outgoing {
            topic: staged.topics[m.topic].as_str(),
            partition: None,
            key: Some(m.key.as_slice()),
            payload: m.payload.as_deref(),
        });
        data.chain(with_marker.then(|| self.marker_record(staged)))
    }

    fn marker_record<'s>(&'s self, staged: &'s Staged) -> producer::Outgoing<'s> {
        producer::Outgoing {
            topic: self.progress_topic.as_str(),
            partition: Some(PROGRESS_PARTITION),
            key: Some(self.job.as_bytes()),
            payload: Some(staged.marker.as_slice()),
        }
    }

    /// One transaction: begin, every message and the marker, commit.
    fn send_transaction(&mut self, staged: &Staged) -> Result<(), TransactionFailure> {
        let frontier = &staged.frontier;
        let failed = |error| TransactionFailure {
            error,
            commit_pending: false,
        };
        if self.needs_abort {
            self.abort(frontier).map_err(failed)?;
        }
        if let Err(e) = self.producer.begin_transaction() {
            return Err(failed(self.transaction_error(frontier, "begin", &e)));
        }
        self.needs_abort = true;
        if let Err((message, permanent)) = send_all(&self.producer, self.outgoing(staged, true)) {
            if let Some((_, reason)) = self.producer.client().fatal_error() {
                return Err(failed(self.fatal(reason)));
            }
            // Best effort: if the abort fails, the next attempt aborts first.
            let _ = self.abort(frontier);
            return Err(failed(self.publish_error(frontier, message, !permanent)));
        }
        match self.producer.commit_transaction(self.transaction_timeout) {
            Ok(()) => {
                self.needs_abort = false;
                Ok(())
            }
            Err(e) => {
                let error = self.transaction_error(frontier, "commit", &e);
                if is_retriable_commit(&e) {
                    // Only another commit may follow a commit that timed out.
                    self.needs_abort = false;
                    return Err(TransactionFailure {
                        error,
                        commit_pending: true,
                    });
                }
                if !matches!(error, KafkaViewSinkError::Fatal { .. }) {
                    let _ = self.abort(frontier);
                }
                Err(failed(error))
            }
        }
    }

    /// Completes a commit that failed with a retriable error. `Some(stats)` when that commit was
    /// of `frontier` (a retry of the same publish).
    fn complete_pending_commit(
        &mut self,
        frontier: &Frontier,
    ) -> Result<Option<PublishStats>, KafkaViewSinkError> {
        let Some(pending) = self.pending_commit.take() else {
            return Ok(None);
        };
        match self.producer.commit_transaction(self.transaction_timeout) {
            Ok(()) => {
                let same = pending.frontier == *frontier;
                let stats = self.finish(pending);
                Ok(same.then_some(stats))
            }
            Err(e) => {
                let error = self.transaction_error(&pending.frontier, "commit", &e);
                if is_retriable_commit(&e) {
                    self.pending_commit = Some(pending);
                } else if !matches!(error, KafkaViewSinkError::Fatal { .. }) {
                    self.needs_abort = true;
                    let _ = self.abort(&pending.frontier);
                }
                Err(error)
            }
        }
    }

    fn abort(&mut self, frontier: &Frontier) -> Result<(), KafkaViewSinkError> {
        match self.producer.abort_transaction(self.transaction_timeout) {
            Ok(()) => {
                self.needs_abort = false;
                Ok(())
            }
            Err(e) => Err(self.transaction_error(frontier, "abort", &e)),
        }
    }

    fn transaction_error(
        &self,
        frontier: &Frontier,
        step: &str,
        error: &KafkaError,
    ) -> KafkaViewSinkError {
        let fatal = match error {
            KafkaError::Transaction(e) => e.is_fatal(),
            _ => false,
        } || self.producer.client().fatal_error().is_some();
        if fatal {
            return self.fatal(format!("transaction {step} failed: {error}"));
        }
        let permanent = is_permanent_code(error.rdkafka_error_code());
        self.publish_error(
            frontier,
            format!("transaction {step} failed: {error}"),
            !permanent,
        )
    }

    /// Data first, acknowledged; then the marker. A producer that failed fatally (idempotence
    /// broken) is replaced and the attempt reported as transient.
    fn send_idempotent(&mut self, staged: &Staged) -> Result<(), KafkaViewSinkError> {
        let frontier = &staged.frontier;
        let sent = send_all(&self.producer, self.outgoing(staged, false))
            .and_then(|()| send_all(&self.producer, std::iter::once(self.marker_record(staged))));
        let Err((message, permanent)) = sent else {
            return Ok(());
        };
        if let Some((_, reason)) = self.producer.client().fatal_error() {
            tracing::warn!(
                job = self.job.as_str(),
                reason = reason.as_str(),
                "kafka view sink producer failed fatally; replacing it"
            );
            match build_producer(&self.job, &self.cfg, None) {
                Ok(producer) => self.producer = producer,
                Err(e) => {
                    tracing::warn!(job = self.job.as_str(), error = %e, "cannot replace the kafka view sink producer; the next attempt retries")
                }
            }
            return Err(self.publish_error(
                frontier,
                format!("{message} (producer failed fatally: {reason})"),
                true,
            ));
        }
        Err(self.publish_error(frontier, message, !permanent))
    }

    /// Applies a durable frontier: the `before` cache and the last published positions.
    fn finish(&mut self, staged: Staged) -> PublishStats {
        if self.cfg.envelope == Envelope::Debezium {
            for update in staged.cache {
                let capacity = self.cfg.debezium_cache_rows;
                let cache = self
                    .caches
                    .entry(update.view)
                    .or_insert_with(|| BeforeCache::new(capacity));
                match update.row {
                    Some(row) => cache.put(update.key, row),
                    None => cache.remove(&update.key),
                }
            }
        }
        self.last = Some(Marker {
            job: self.job.clone(),
            epoch: staged.frontier.epoch,
            watermark_ms: staged.frontier.watermark_ms,
            positions: staged.frontier.positions,
        });
        staged.stats
    }

    #[cfg(test)]
    fn cached_keys(&self, view: &str) -> usize {
        self.caches.get(view).map_or(0, BeforeCache::len)
    }
}

fn is_retriable_commit(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => {
            e.is_retriable()
                && !e.is_fatal()
                && !e.txn_requires_abort()
                && !is_permanent_code(Some(e.code()))
        }
        _ => false,
    }
}

impl fmt::Debug for KafkaViewSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaViewSink")
            .field("job", &self.job)
            .field("brokers", &self.cfg.brokers)
            .field("delivery", &self.mode.as_str())
            .field("progress_topic", &self.progress_topic)
            .finish_non_exhaustive()
    }
}

/// The Debezium `source` block.
struct DebeziumSource<'a> {
    job: &'a str,
    view: &'a str,
    epoch: u64,
    ts_ms: i64,
}

fn debezium_event(
    before: Option<&[u8]>,
    after: Option<&[u8]>,
    op: &str,
    source: &DebeziumSource<'_>,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(before.map_or(4, <[u8]>::len) + after.map_or(4, <[u8]>::len) + 128);
    out.extend_from_slice(b"{\"before\":");
    out.extend_from_slice(before.unwrap_or(b"null"));
    out.extend_from_slice(b",\"after\":");
    out.extend_from_slice(after.unwrap_or(b"null"));
    out.extend_from_slice(b",\"op\":");
    push_json(&mut out, op);
    out.extend_from_slice(b",\"ts_ms\":");
    push_display(&mut out, source.ts_ms);
    out.extend_from_slice(b",\"source\":{\"job\":");
    push_json(&mut out, source.job);
    out.extend_from_slice(b",\"view\":");
    push_json(&mut out, source.view);
    out.extend_from_slice(b",\"epoch\":");
    push_display(&mut out, source.epoch);
    out.extend_from_slice(b"}}");
    out
}

/// The sink's producer: idempotent (`acks=all`), transactional when `transactional_id` is given,
/// partitioning by key like the Java client unless the properties say otherwise.
fn build_producer(
    job: &str,
    cfg: &KafkaViewSinkConfig,
    transactional_id: Option<&str>,
) -> Result<BaseProducer<DeliveryContext>, KafkaError> {
    let mut properties = cfg.properties.clone();
    properties
        .entry("partitioner".to_owned())
        .or_insert_with(|| "murmur2_random".to_owned());
    if !cfg.create_topics {
        // A missing topic is an error, not something the broker's defaults create.
        properties
            .entry("allow.auto.create.topics".to_owned())
            .or_insert_with(|| "false".to_owned());
    }
    if let Some(id) = transactional_id {
        properties.insert("transactional.id".to_owned(), id.to_owned());
    }
    idempotent_producer(&format!("view-sink:{job}"), &cfg.brokers, &properties)
}

/// [`producer::send_and_wait`], with the failure as `(message, permanent)`: permanent when the
/// error code (a message that could not be queued) or the delivery report's text names one of
/// [`PERMANENT_CODES`].
fn send_all<'m>(
    client: &BaseProducer<DeliveryContext>,
    messages: impl Iterator<Item = producer::Outgoing<'m>>,
) -> Result<(), (String, bool)> {
    producer::send_and_wait(client, messages).map_err(|failure| {
        let permanent = match &failure {
            SendFailure::Queue { error, .. } => is_permanent_code(error.rdkafka_error_code()),
            SendFailure::Undelivered { error, .. } => is_permanent_report(error),
            SendFailure::Flush(_) | SendFailure::Unreported { .. } => false,
        };
        (failure.to_string(), permanent)
    })
}

/// Creates `topics` with `partitions` partitions, `cleanup.policy=compact` and the broker's
/// default replication, and waits until metadata shows them. Existing topics are left as they
/// are. (`super::create_topic` makes one topic with the broker's default config and no client
/// properties; the view sink needs compaction and the security properties.)
fn create_compacted_topics(
    cfg: &KafkaViewSinkConfig,
    job: &str,
    topics: &[String],
    partitions: i32,
) -> Result<(), KafkaViewSinkError> {
    let all = topics.join(",");
    let error = |topic: &str, message: String, transient: bool| KafkaViewSinkError::Topic {
        topic: topic.to_owned(),
        message,
        transient,
    };
    let mut config = ClientConfig::new();
    for (key, value) in &cfg.properties {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &cfg.brokers);
    let admin: AdminClient<LogContext> = config
        .create_with_context(LogContext::new(&format!("view-sink:{job}:admin")))
        .map_err(|e| error(&all, format!("cannot create the admin client: {e}"), false))?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(t, partitions, TopicReplication::Fixed(-1))
                .set("cleanup.policy", "compact")
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics(&new_topics, &options))
        .map_err(|e| error(&all, format!("topic creation failed: {e}"), true))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "kafka view topic created (compacted)"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "kafka view topic already exists")
            }
            // Not allowed to create topics: fine if it exists already (created by an operator).
            Err((
                topic,
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed),
            )) => {
                let exists = admin
                    .inner()
                    .fetch_metadata(Some(&topic), ADMIN_TIMEOUT)
                    .is_ok_and(|m| {
                        m.topics()
                            .iter()
                            .any(|t| t.name() == topic && t.error().is_none())
                    });
                if !exists {
                    return Err(error(
                        &topic,
                        format!(
                            "creation failed: {code}. Create it (cleanup.policy=compact) or grant the sink CREATE on it."
                        ),
                        false,
                    ));
                }
            }
            Err((topic, code)) => {
                return Err(error(
                    &topic,
                    format!("creation failed: {code}"),
                    !PERMANENT_CODES.contains(&code),
                ));
            }
        }
    }
    for topic in topics {
        wait_for_topic(&admin, topic, ADMIN_TIMEOUT).map_err(|message| error(topic, message, true))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "view_sink_tests.rs"]
mod tests;
