//! The checkpoint topic: a copy of every commit, with its restart metadata, in a (compacted)
//! topic, for brokers that store commits but do not return their metadata string (tansu 0.6
//! answers every offset fetch with empty metadata).
//!
//! One message per partition commit, all to partition 0 of the topic: key
//! `<group_id>/<topic>/<partition>` (topic names cannot contain `/`), value
//! `{"offset":<next offset>,"restart":<offset>,"max_ts":<ms or null>}`. Compaction keeps the last
//! one per key. A checkpoint is written, durably, before the group commit, so after a crash
//! between the two it is the newer of the two and wins.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::BaseProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::context::{DeliveryContext, LogContext};
use super::producer::{Outgoing, idempotent_producer, send_and_wait};

/// How long reading the checkpoint topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition's commit as the checkpoint topic holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// The committed offset: the next one to read.
    pub(crate) offset: u64,
    /// Where to start re-reading after a restart.
    pub(crate) restart: u64,
    /// The largest event time seen up to `offset`.
    pub(crate) max_ts: Option<i64>,
}

/// Reads and writes the checkpoints of one consumer group.
pub(crate) struct Checkpoints {
    /// The source's name, for logs.
    source: String,
    brokers: String,
    properties: BTreeMap<String, String>,
    topic: String,
    group: String,
    producer: BaseProducer<DeliveryContext>,
}

impl Checkpoints {
    /// Creates the producer; the topic is first touched by [`Checkpoints::read`].
    pub(crate) fn new(
        source: &str,
        brokers: &str,
        properties: &BTreeMap<String, String>,
        topic: &str,
        group: &str,
    ) -> Result<Self, String> {
        // One record per batch: tansu 0.6 serves only the first record of a stored batch to a
        // reader, so a checkpoint batched behind another would be lost (Apache Kafka is not
        // affected; checkpoints are few and small, so this costs nothing there either).
        let mut producer_properties = properties.clone();
        producer_properties.entry("batch.num.messages".to_owned()).or_insert_with(|| "1".to_owned());
        let producer = idempotent_producer(&format!("{source}:checkpoints"), brokers, &producer_properties)
            .map_err(|e| {
            format!("cannot create the producer of checkpoint topic {topic}: {e}")
        })?;
        Ok(Self {
            source: source.to_owned(),
            brokers: brokers.to_owned(),
            properties: properties.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            producer,
        })
    }

    fn key(&self, topic: &str, partition: i32) -> String {
        format!("{}/{topic}/{partition}", self.group)
    }

    /// The last checkpoint of each of `partitions` that has one, read from the start of the
    /// topic to its end.
    pub(crate) fn read(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<HashMap<(String, i32), Checkpoint>, String> {
        let wanted: HashMap<String, (String, i32)> = partitions
            .iter()
            .map(|(t, p)| (self.key(t, *p), (t.clone(), *p)))
            .collect();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set(
                "client.id",
                format!("observebridge-{}:checkpoints", self.source),
            )
            // librdkafka assigns only with a group; this one never joins nor commits.
            .set("group.id", format!("{}.checkpoint-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        let consumer: BaseConsumer<LogContext> = config
            .create_with_context(LogContext::new(&format!("{}:checkpoints", self.source)))
            .map_err(|e| {
                format!(
                    "cannot create the reader of checkpoint topic {}: {e}",
                    self.topic
                )
            })?;
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, 0, READ_TIMEOUT)
            .map_err(|e| {
                format!(
                    "cannot read checkpoint topic {}: {e}. Create it (1 partition, compacted).",
                    self.topic
                )
            })?;
        let mut found = HashMap::new();
        if high <= low {
            return Ok(found);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Beginning)
            .map_err(|e| format!("cannot assign checkpoint topic {}: {e}", self.topic))?;
        consumer
            .assign(&tpl)
            .map_err(|e| format!("cannot assign checkpoint topic {}: {e}", self.topic))?;

        let deadline = Instant::now() + READ_TIMEOUT;
        // Read up to `high`, the end fetched above. A partition-EOF event alone is not trusted:
        // tansu signals it at the end of each fetched batch, before the true end.
        let mut next = low;
        loop {
            if Instant::now() >= deadline {
                return Err(format!(
                    "checkpoint topic {} was not read to its end (offset {high}) within {READ_TIMEOUT:?}",
                    self.topic
                ));
            }
            let message = match consumer.poll(Duration::from_millis(250)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) if next >= high => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => {
                    tracing::warn!(source = self.source.as_str(), topic = self.topic.as_str(), error = %e, "checkpoint topic read error, retrying");
                    continue;
                }
                Some(Ok(message)) => message,
            };
            let target = message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| wanted.get(k));
            if let Some(target) = target {
                match message.payload().map(serde_json::from_slice::<Checkpoint>) {
                    None => {
                        found.remove(target);
                    }
                    Some(Ok(checkpoint)) => {
                        found.insert(target.clone(), checkpoint);
                    }
                    Some(Err(e)) => tracing::warn!(
                        source = self.source.as_str(),
                        topic = self.topic.as_str(),
                        offset = message.offset(),
                        error = %e,
                        "checkpoint is not valid JSON; skipped"
                    ),
                }
            }
            next = message.offset() + 1;
            if next >= high {
                break;
            }
        }
        Ok(found)
    }

    /// Writes the checkpoints and waits until the broker acknowledged all of them.
    pub(crate) fn write(&self, checkpoints: &[(&str, i32, Checkpoint)]) -> Result<(), String> {
        let encoded = checkpoints
            .iter()
            .map(|(topic, partition, checkpoint)| {
                serde_json::to_vec(checkpoint).map(|value| (self.key(topic, *partition), value))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot encode a checkpoint: {e}"))?;
        let messages = encoded.iter().map(|(key, value)| Outgoing {
            topic: &self.topic,
            key: Some(key.as_bytes()),
            payload: Some(value),
            partition: Some(0),
        });
        send_and_wait(&self.producer, messages)
            .map_err(|e| format!("cannot write checkpoint topic {}: {e}", self.topic))
    }
}
