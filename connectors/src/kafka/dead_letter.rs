//! The Kafka dead-letter destination.

use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer};

use super::config::KafkaDeadLetterConfig;
use super::context::DeliveryContext;
use super::producer::{Outgoing, idempotent_producer, send_and_wait};
use crate::dead_letter::{DeadLetterError, DeadLetterRecord, DeadLetterSink};

/// How long `new` waits for the topic's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes dead letters to a Kafka topic with an idempotent producer (`enable.idempotence=true`,
/// `acks=all`): key = the source partition name (`kafka:<topic>/<p>`, `file:<path>`, ...), so the
/// dead letters of one partition stay in order; value = the [`DeadLetterRecord`] as JSON.
///
/// [`write`](DeadLetterSink::write) returns once the broker acknowledged every record.
pub struct KafkaDeadLetterSink {
    topic: String,
    producer: BaseProducer<DeliveryContext>,
}

impl KafkaDeadLetterSink {
    /// Validates `cfg`, creates the producer and checks that the topic exists (the sink does not
    /// create topics).
    pub fn new(cfg: &KafkaDeadLetterConfig) -> Result<Self, DeadLetterError> {
        let error = |message: String| DeadLetterError::Kafka {
            topic: cfg.topic.clone(),
            message,
        };
        cfg.validate().map_err(|e| error(e.to_string()))?;
        // The topic must exist: a dead-letter topic created on the fly by a broker's defaults
        // would likely have the wrong retention. `properties` may still turn this on.
        let mut properties = cfg.properties.clone();
        properties
            .entry("allow.auto.create.topics".to_owned())
            .or_insert_with(|| "false".to_owned());
        let producer = idempotent_producer(
            &format!("dead-letter:{}", cfg.topic),
            &cfg.brokers,
            &properties,
        )
        .map_err(|e| error(format!("cannot create the producer: {e}")))?;
        let metadata = producer
            .client()
            .fetch_metadata(Some(&cfg.topic), METADATA_TIMEOUT)
            .map_err(|e| error(format!("cannot fetch the topic's metadata: {e}")))?;
        if let Some(code) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == cfg.topic)
            .and_then(|t| t.error())
        {
            let code = RDKafkaErrorCode::from(code);
            let hint = if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                " Create the topic first."
            } else {
                ""
            };
            return Err(error(format!("topic is not writable: {code}.{hint}")));
        }
        Ok(Self {
            topic: cfg.topic.clone(),
            producer,
        })
    }
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn write(&mut self, records: &[DeadLetterRecord]) -> Result<(), DeadLetterError> {
        if records.is_empty() {
            return Ok(());
        }
        let values = records
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DeadLetterError::Kafka {
                topic: self.topic.clone(),
                message: format!("cannot encode a dead letter: {e}"),
            })?;
        let messages = records.iter().zip(&values).map(|(record, value)| Outgoing {
            topic: &self.topic,
            key: Some(record.source.as_bytes()),
            payload: Some(value),
            partition: None,
        });
        send_and_wait(&self.producer, messages).map_err(|failure| DeadLetterError::Kafka {
            topic: self.topic.clone(),
            message: failure.to_string(),
        })?;
        tracing::debug!(
            topic = self.topic.as_str(),
            records = records.len(),
            "dead letters written to kafka"
        );
        Ok(())
    }
}
