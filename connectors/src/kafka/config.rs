//! Configuration of the Kafka source and the Kafka dead-letter destination: serde data, checked
//! by `validate()` before any connection is made.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A configuration field breaks a rule; found by `validate()` before any I/O.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kafka config {field}: {message}")]
pub struct ConfigError {
    /// The offending field (`brokers`, `topics[1]`, `properties.group.id`, ...).
    pub field: String,
    /// What is wrong with it, and a hint.
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where a partition starts when its consumer group has no committed offset for it (or when
/// committed offsets are ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// The oldest offset the broker still holds.
    #[default]
    Earliest,
    /// The end of the partition as of startup: only messages produced afterwards are read.
    Latest,
    /// The first message whose timestamp is at or after this RFC 3339 instant
    /// (`{timestamp: "2024-05-01T12:00:00Z"}`), found with the broker's offsets-for-times lookup;
    /// the end of the partition when there is none.
    Timestamp(String),
}

impl StartPosition {
    /// The timestamp in milliseconds since the epoch, for [`StartPosition::Timestamp`].
    pub(crate) fn timestamp_ms(&self) -> Result<Option<i64>, ConfigError> {
        match self {
            StartPosition::Timestamp(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| Some(t.with_timezone(&Utc).timestamp_millis()))
                .map_err(|e| {
                    ConfigError::new(
                        "start.timestamp",
                        format!("{text:?} is not an RFC 3339 timestamp ({e}). Write it like \"2024-05-01T12:00:00Z\"."),
                    )
                }),
            StartPosition::Earliest | StartPosition::Latest => Ok(None),
        }
    }
}

/// The share of partitions one process of a multi-process run takes: partition `p` of every topic
/// is read by the process whose `index` is `p % count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionFilter {
    /// This process's index, from 0 to `count - 1`.
    pub index: u32,
    /// How many processes share the topics (at least 1).
    pub count: u32,
}

impl PartitionFilter {
    /// Whether this process takes Kafka partition `partition`.
    pub fn takes(&self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.count == self.index)
    }
}

/// librdkafka properties the source sets itself; setting them in `properties` is refused.
const SOURCE_OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers` instead"),
    ("metadata.broker.list", "set `brokers` instead"),
    ("group.id", "set `group_id` instead"),
    (
        "enable.auto.commit",
        "the source commits itself, after every sink made a frontier durable",
    ),
    (
        "enable.auto.offset.store",
        "the source commits explicit offsets",
    ),
    (
        "enable.partition.eof",
        "the source never reports partition ends",
    ),
];

/// librdkafka properties the dead-letter producer sets itself.
const DEAD_LETTER_OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers` instead"),
    ("metadata.broker.list", "set `brokers` instead"),
    (
        "enable.idempotence",
        "the dead-letter producer is always idempotent",
    ),
    (
        "transactional.id",
        "the dead-letter producer is not transactional",
    ),
];

/// Configuration of a [`KafkaSource`](super::KafkaSource).
///
/// The source does not join a consumer group: it reads the metadata of its topics and assigns
/// itself all their partitions (or its [`PartitionFilter`] share of them). `group_id` only names
/// where offsets are committed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, comma separated (`host1:9092,host2:9092`).
    pub brokers: String,
    /// Topics to read, all partitions of each. Partitions are numbered in the source in this
    /// order, then by partition number.
    pub topics: Vec<String>,
    /// Consumer group the offsets are committed to (and read back from at startup).
    pub group_id: String,
    /// Where a partition starts when the group has no committed offset for it: `earliest`
    /// (default), `latest` or `{timestamp: "<RFC 3339>"}`.
    #[serde(default = "default_start")]
    pub start: StartPosition,
    /// Start every partition at `start` even when the group has committed offsets. Default false.
    #[serde(default = "default_ignore_committed")]
    pub ignore_committed: bool,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*`, ...). Values of keys
    /// containing `password`, `secret` or `sasl.oauthbearer` are redacted in `Debug`.
    #[serde(default = "default_properties")]
    pub properties: BTreeMap<String, String>,
    /// Take only partitions `p` with `p % count == index`, for multi-process runs. Default: all.
    #[serde(default = "default_partitions")]
    pub partitions: Option<PartitionFilter>,
    /// A topic (one partition, compacted) that also keeps every commit with its restart offset
    /// and largest event time, for brokers that store commits but drop their metadata string
    /// (tansu 0.6 does). At startup the newer of the group commit and the checkpoint wins.
    /// Default: none; Apache Kafka and compatible brokers keep commit metadata.
    #[serde(default = "default_checkpoint_topic")]
    pub checkpoint_topic: Option<String>,
}

fn default_start() -> StartPosition {
    StartPosition::Earliest
}

fn default_ignore_committed() -> bool {
    false
}

fn default_properties() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn default_partitions() -> Option<PartitionFilter> {
    None
}

fn default_checkpoint_topic() -> Option<String> {
    None
}

impl KafkaSourceConfig {
    /// A configuration with the defaults for everything but brokers, topics and group.
    pub fn new(
        brokers: impl Into<String>,
        topics: Vec<String>,
        group_id: impl Into<String>,
    ) -> Self {
        Self {
            brokers: brokers.into(),
            topics,
            group_id: group_id.into(),
            start: default_start(),
            ignore_committed: default_ignore_committed(),
            properties: default_properties(),
            partitions: default_partitions(),
            checkpoint_topic: default_checkpoint_topic(),
        }
    }

    /// Checks every rule that can be checked without talking to a broker.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_brokers(&self.brokers)?;
        if self.topics.is_empty() {
            return Err(ConfigError::new(
                "topics",
                "no topic given. Name at least one topic to read.",
            ));
        }
        for (i, topic) in self.topics.iter().enumerate() {
            validate_topic_name(&format!("topics[{i}]"), topic)?;
            if self.topics[..i].contains(topic) {
                return Err(ConfigError::new(
                    format!("topics[{i}]"),
                    format!("topic {topic:?} is listed twice"),
                ));
            }
        }
        if self.group_id.trim().is_empty() {
            return Err(ConfigError::new(
                "group_id",
                "is empty. Offsets are committed to this consumer group; name one per job.",
            ));
        }
        self.start.timestamp_ms()?;
        if let Some(filter) = &self.partitions {
            if filter.count == 0 {
                return Err(ConfigError::new(
                    "partitions.count",
                    "is 0. It is the number of processes, at least 1.",
                ));
            }
            if filter.index >= filter.count {
                return Err(ConfigError::new(
                    "partitions.index",
                    format!(
                        "is {} but must be below partitions.count ({})",
                        filter.index, filter.count
                    ),
                ));
            }
        }
        if let Some(topic) = &self.checkpoint_topic {
            validate_topic_name("checkpoint_topic", topic)?;
            if self.topics.contains(topic) {
                return Err(ConfigError::new(
                    "checkpoint_topic",
                    format!(
                        "{topic:?} is also a topic the source reads. Give checkpoints a topic of their own."
                    ),
                ));
            }
        }
        validate_properties(&self.properties, SOURCE_OWNED_PROPERTIES)
    }
}

impl fmt::Debug for KafkaSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSourceConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("start", &self.start)
            .field("ignore_committed", &self.ignore_committed)
            .field("properties", &Redacted(&self.properties))
            .field("partitions", &self.partitions)
            .field("checkpoint_topic", &self.checkpoint_topic)
            .finish()
    }
}

/// Configuration of a [`KafkaDeadLetterSink`](super::KafkaDeadLetterSink).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaDeadLetterConfig {
    /// Bootstrap brokers, comma separated (`host1:9092,host2:9092`).
    pub brokers: String,
    /// Topic the dead letters are written to; it must exist.
    pub topic: String,
    /// Extra librdkafka producer properties (`security.protocol`, `sasl.*`, `ssl.*`,
    /// `compression.type`, ...). Values of keys containing `password`, `secret` or
    /// `sasl.oauthbearer` are redacted in `Debug`.
    #[serde(default = "default_properties")]
    pub properties: BTreeMap<String, String>,
}

impl KafkaDeadLetterConfig {
    /// Checks every rule that can be checked without talking to a broker.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_brokers(&self.brokers)?;
        validate_topic_name("topic", &self.topic)?;
        validate_properties(&self.properties, DEAD_LETTER_OWNED_PROPERTIES)
    }
}

impl fmt::Debug for KafkaDeadLetterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaDeadLetterConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("properties", &Redacted(&self.properties))
            .finish()
    }
}

/// Whether the value of librdkafka property `key` is a secret.
pub(crate) fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.contains("sasl.oauthbearer")
}

/// Prints a property map with secret values replaced by `<redacted>`.
struct Redacted<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                (
                    k,
                    if is_secret_property(k) {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            }))
            .finish()
    }
}

fn validate_brokers(brokers: &str) -> Result<(), ConfigError> {
    if brokers.trim().is_empty() {
        return Err(ConfigError::new(
            "brokers",
            "is empty. Name at least one bootstrap broker as host:port.",
        ));
    }
    if brokers.split(',').any(|b| b.trim().is_empty()) {
        return Err(ConfigError::new(
            "brokers",
            format!("{brokers:?} has an empty entry between commas"),
        ));
    }
    Ok(())
}

/// Kafka's own rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_topic_name(field: &str, topic: &str) -> Result<(), ConfigError> {
    if topic.is_empty() {
        return Err(ConfigError::new(field, "topic name is empty"));
    }
    if topic.len() > 249 || topic == "." || topic == ".." {
        return Err(ConfigError::new(
            field,
            format!("{topic:?} is not a legal Kafka topic name"),
        ));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ConfigError::new(
            field,
            format!(
                "topic {topic:?} contains {c:?}. Kafka topic names use only letters, digits, '.', '_' and '-'."
            ),
        ));
    }
    Ok(())
}

fn validate_properties(
    properties: &BTreeMap<String, String>,
    owned: &[(&str, &str)],
) -> Result<(), ConfigError> {
    for key in properties.keys() {
        let field = format!("properties.{key}");
        if key.trim().is_empty() {
            return Err(ConfigError::new("properties", "has an empty key"));
        }
        if let Some((_, hint)) = owned
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key.trim()))
        {
            return Err(ConfigError::new(
                field,
                format!("is set by the connector itself: {hint}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> KafkaSourceConfig {
        KafkaSourceConfig::new(
            "127.0.0.1:9092",
            vec!["spans".into(), "logs".into()],
            "job-1",
        )
    }

    fn field_of(cfg: &KafkaSourceConfig) -> String {
        cfg.validate().expect_err("config must be refused").field
    }

    #[test]
    fn valid_config_passes() {
        valid().validate().expect("valid");
        let mut cfg = valid();
        cfg.start = StartPosition::Timestamp("2024-05-01T12:00:00+02:00".into());
        cfg.partitions = Some(PartitionFilter { index: 2, count: 3 });
        cfg.properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        cfg.validate().expect("valid");
    }

    #[test]
    fn empty_brokers_refused() {
        let mut cfg = valid();
        cfg.brokers = " ".into();
        assert_eq!(field_of(&cfg), "brokers");
        cfg.brokers = "a:1,,b:2".into();
        assert_eq!(field_of(&cfg), "brokers");
    }

    #[test]
    fn no_topics_refused() {
        let mut cfg = valid();
        cfg.topics.clear();
        assert_eq!(field_of(&cfg), "topics");
    }

    #[test]
    fn bad_or_duplicate_topic_refused() {
        let mut cfg = valid();
        cfg.topics = vec!["ok".into(), "not ok".into()];
        assert_eq!(field_of(&cfg), "topics[1]");
        cfg.topics = vec!["a".into(), "a".into()];
        assert_eq!(field_of(&cfg), "topics[1]");
        cfg.topics = vec![String::new()];
        assert_eq!(field_of(&cfg), "topics[0]");
    }

    #[test]
    fn empty_group_refused() {
        let mut cfg = valid();
        cfg.group_id = String::new();
        assert_eq!(field_of(&cfg), "group_id");
    }

    #[test]
    fn bad_timestamp_refused() {
        let mut cfg = valid();
        cfg.start = StartPosition::Timestamp("yesterday".into());
        let err = cfg.validate().expect_err("refused");
        assert_eq!(err.field, "start.timestamp");
        assert!(err.to_string().contains("\"yesterday\""), "{err}");
    }

    #[test]
    fn filter_count_zero_refused() {
        let mut cfg = valid();
        cfg.partitions = Some(PartitionFilter { index: 0, count: 0 });
        assert_eq!(field_of(&cfg), "partitions.count");
    }

    #[test]
    fn filter_index_out_of_range_refused() {
        let mut cfg = valid();
        cfg.partitions = Some(PartitionFilter { index: 3, count: 3 });
        assert_eq!(field_of(&cfg), "partitions.index");
    }

    #[test]
    fn bad_checkpoint_topic_refused() {
        let mut cfg = valid();
        cfg.checkpoint_topic = Some("spans".into());
        assert_eq!(field_of(&cfg), "checkpoint_topic");
        cfg.checkpoint_topic = Some("a/b".into());
        assert_eq!(field_of(&cfg), "checkpoint_topic");
        cfg.checkpoint_topic = Some("observebridge-checkpoints".into());
        cfg.validate().expect("valid");
    }

    #[test]
    fn owned_properties_refused() {
        let mut cfg = valid();
        cfg.properties.insert("group.id".into(), "other".into());
        assert_eq!(field_of(&cfg), "properties.group.id");
        let mut cfg = valid();
        cfg.properties
            .insert("enable.auto.commit".into(), "true".into());
        assert_eq!(field_of(&cfg), "properties.enable.auto.commit");
    }

    #[test]
    fn dead_letter_config_rules() {
        let cfg = KafkaDeadLetterConfig {
            brokers: "b:9092".into(),
            topic: "dlq".into(),
            properties: BTreeMap::new(),
        };
        cfg.validate().expect("valid");
        let mut bad = cfg.clone();
        bad.brokers.clear();
        assert_eq!(bad.validate().expect_err("refused").field, "brokers");
        let mut bad = cfg.clone();
        bad.topic.clear();
        assert_eq!(bad.validate().expect_err("refused").field, "topic");
        let mut bad = cfg;
        bad.properties
            .insert("enable.idempotence".into(), "false".into());
        assert_eq!(
            bad.validate().expect_err("refused").field,
            "properties.enable.idempotence"
        );
    }

    #[test]
    fn partition_filter_takes_its_share() {
        let filter = PartitionFilter { index: 1, count: 3 };
        let taken: Vec<i32> = (0..7).filter(|p| filter.takes(*p)).collect();
        assert_eq!(taken, vec![1, 4]);
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut cfg = valid();
        cfg.properties
            .insert("sasl.password".into(), "hunter2".into());
        cfg.properties
            .insert("ssl.key.password".into(), "hunter3".into());
        cfg.properties
            .insert("sasl.oauthbearer.client.secret".into(), "hunter4".into());
        cfg.properties.insert(
            "sasl.oauthbearer.config".into(),
            "principal=x token=hunter5".into(),
        );
        cfg.properties
            .insert("sasl.username".into(), "alice".into());
        let printed = format!("{cfg:?}");
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(
            printed.contains("alice") && printed.contains("<redacted>"),
            "{printed}"
        );

        let dlq = KafkaDeadLetterConfig {
            brokers: "b:9092".into(),
            topic: "dlq".into(),
            properties: cfg.properties,
        };
        let printed = format!("{dlq:?}");
        assert!(
            !printed.contains("hunter2") && printed.contains("alice"),
            "{printed}"
        );
    }

    #[test]
    fn deserializes_with_defaults_and_refuses_unknown_fields() {
        let cfg: KafkaSourceConfig =
            serde_json::from_str(r#"{"brokers":"b:9092","topics":["t"],"group_id":"g"}"#)
                .expect("parses");
        assert_eq!(cfg, KafkaSourceConfig::new("b:9092", vec!["t".into()], "g"));
        let cfg: KafkaSourceConfig = serde_json::from_str(
            r#"{"brokers":"b:9092","topics":["t"],"group_id":"g","start":{"timestamp":"2024-05-01T00:00:00Z"},"partitions":{"index":0,"count":2}}"#,
        )
        .expect("parses");
        assert_eq!(
            cfg.start,
            StartPosition::Timestamp("2024-05-01T00:00:00Z".into())
        );
        assert_eq!(
            cfg.start.timestamp_ms().expect("valid"),
            Some(1_714_521_600_000)
        );
        let cfg: KafkaSourceConfig = serde_json::from_str(
            r#"{"brokers":"b:9092","topics":["t"],"group_id":"g","start":"latest"}"#,
        )
        .expect("parses");
        assert_eq!(cfg.start, StartPosition::Latest);
        assert!(
            serde_json::from_str::<KafkaSourceConfig>(
                r#"{"brokers":"b","topics":["t"],"group_id":"g","groupid":"x"}"#
            )
            .is_err()
        );
    }
}
