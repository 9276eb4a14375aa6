//! Kafka: the source (assigned partitions, commits with restart metadata), the dead-letter
//! producer, and the view sink (one changelog topic per view).
//!
//! The source does not join a consumer group. It reads the metadata of its topics and assigns
//! itself their partitions, like Flink's Kafka source; the group only stores commits. Each commit
//! carries, as its metadata string, `{"restart":<offset>,"max_ts":<ms or null>}`: the offset to
//! re-read from after a restart so open windows can be rebuilt, and the largest event time seen,
//! which restores the watermark. After a restart the source starts each partition at `restart`
//! and reports the committed offset as [`PartitionInfo::replay_until`](crate::source::PartitionInfo).
//! Brokers that store commits but drop their metadata (tansu 0.6) lose the restart offset and the
//! watermark; for them, [`KafkaSourceConfig::checkpoint_topic`] names a topic that keeps a copy of
//! every commit with its metadata.
//!
//! # Layout
//! - `config`: [`KafkaSourceConfig`], [`KafkaDeadLetterConfig`] and their validation.
//! - `source`: [`KafkaSource`].
//! - `checkpoint`: the optional checkpoint topic, a copy of every commit with its metadata for
//!   brokers that drop commit metadata (tansu 0.6).
//! - `dead_letter`: [`KafkaDeadLetterSink`].
//! - `admin`: [`create_topic`] and [`produce_all`], for tests and tools.
//! - `context`: librdkafka logs to `tracing`; delivery reports of produced batches.
//! - `producer`: produce a batch and wait for every acknowledgement.
//! - `view_sink`: [`KafkaViewSink`]: per view a compacted topic (key = primary key JSON, value =
//!   row JSON, tombstone on delete), a progress marker per job, transactional where the broker
//!   can be.

mod admin;
mod checkpoint;
mod config;
mod context;
mod dead_letter;
mod producer;
mod source;
mod view_sink;

#[cfg(test)]
mod tests;

pub use admin::{create_topic, produce_all};
pub use config::{
    ConfigError, KafkaDeadLetterConfig, KafkaSourceConfig, PartitionFilter, StartPosition,
};
pub use dead_letter::KafkaDeadLetterSink;
pub use source::{KafkaSource, partition_name};
pub use view_sink::{Delivery, Envelope, KafkaViewSink, KafkaViewSinkConfig, KafkaViewSinkError, PublishStats};
