//! Producing a batch and waiting for every delivery report: the dead-letter sink and
//! [`produce_all`](super::produce_all) both need "durable when `Ok`".

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

use super::context::DeliveryContext;

/// One message to produce.
pub(crate) struct Outgoing<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) payload: &'a [u8],
    /// A fixed partition, or `None` for the default partitioner (by key).
    pub(crate) partition: Option<i32>,
}

/// Builds an idempotent producer (`acks=all`, no reordering or duplicates on retries).
pub(crate) fn idempotent_producer(
    client: &str,
    brokers: &str,
    properties: &BTreeMap<String, String>,
) -> Result<BaseProducer<DeliveryContext>, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", format!("observebridge-{client}"))
        .set("enable.idempotence", "true")
        .set("acks", "all");
    for (key, value) in properties {
        config.set(key, value);
    }
    config.create_with_context(DeliveryContext::new(client))
}

/// Sends `messages` to `topic` and waits until the broker acknowledged every one of them.
///
/// Returns the first failure as a message. Messages already handed to librdkafka when a send
/// fails are still flushed, so the next batch starts with nothing in flight.
pub(crate) fn send_and_wait<'a>(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    messages: impl IntoIterator<Item = Outgoing<'a>>,
) -> Result<(), String> {
    producer.context().reset();
    let mut sent = 0usize;
    let mut send_error = None;
    for message in messages {
        if let Err(e) = send_one(producer, topic, sent, &message) {
            send_error = Some(format!("message {sent} could not be queued: {e}"));
            break;
        }
        sent += 1;
    }
    // Delivery reports are bounded by `message.timeout.ms` (librdkafka default 5 minutes), so
    // waiting without a timeout of our own still ends.
    let flushed = producer.flush(Timeout::Never);
    let deliveries = producer.context().take();
    if let Some(e) = send_error {
        return Err(e);
    }
    if let Err(e) = flushed {
        return Err(format!("flush failed: {e}"));
    }
    if let Some((index, error)) = deliveries.first_failure {
        let fatal = producer
            .client()
            .fatal_error()
            .map(|(_, reason)| format!(" (fatal: {reason})"))
            .unwrap_or_default();
        return Err(format!(
            "message {index} of {sent} was not delivered: {error}{fatal}"
        ));
    }
    if deliveries.reported != sent {
        return Err(format!(
            "only {} of {sent} messages reported delivered",
            deliveries.reported
        ));
    }
    Ok(())
}

fn send_one(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    index: usize,
    message: &Outgoing<'_>,
) -> Result<(), KafkaError> {
    loop {
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, index).payload(message.payload);
        if let Some(key) = message.key {
            record = record.key(key);
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // The local queue is full: serve delivery reports to make room, then retry.
                producer.poll(Duration::from_millis(100));
            }
            Err((e, _)) => return Err(e),
        }
    }
}
