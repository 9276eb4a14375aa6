//! Producing a batch and waiting for every delivery report: the dead-letter sink, the checkpoint
//! topic, the view sink and [`produce_all`](super::produce_all) all need "durable when `Ok`".

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

use super::context::DeliveryContext;

/// One message to produce.
pub(crate) struct Outgoing<'a> {
    pub(crate) topic: &'a str,
    pub(crate) key: Option<&'a [u8]>,
    /// `None` sends a tombstone (a null value).
    pub(crate) payload: Option<&'a [u8]>,
    /// A fixed partition, or `None` for the default partitioner (by key).
    pub(crate) partition: Option<i32>,
}

/// Why a batch was not delivered. Callers that retry tell transient from permanent failures by
/// the error code ([`SendFailure::Queue`]) or the delivery report's text
/// ([`SendFailure::Undelivered`]).
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// librdkafka refused to queue message `index`.
    Queue { index: usize, topic: String, error: KafkaError },
    /// Waiting for the delivery reports failed.
    Flush(KafkaError),
    /// The broker did not take message `index` of `sent`; `error` is the report's text and
    /// `fatal` the producer's fatal error, if it has one.
    Undelivered { index: usize, sent: usize, error: String, fatal: Option<String> },
    /// Fewer delivery reports than messages.
    Unreported { reported: usize, sent: usize },
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendFailure::Queue { index, topic, error } => {
                write!(f, "message {index} to topic {topic} could not be queued: {error}")
            }
            SendFailure::Flush(error) => write!(f, "flush failed: {error}"),
            SendFailure::Undelivered { index, sent, error, fatal } => {
                write!(f, "message {index} of {sent} was not delivered: {error}")?;
                match fatal {
                    Some(reason) => write!(f, " (fatal: {reason})"),
                    None => Ok(()),
                }
            }
            SendFailure::Unreported { reported, sent } => {
                write!(f, "only {reported} of {sent} messages reported delivered")
            }
        }
    }
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

/// Sends `messages` and waits until the broker acknowledged every one of them.
///
/// Returns the first failure. Messages already handed to librdkafka when a send fails are still
/// flushed, so the next batch starts with nothing in flight.
pub(crate) fn send_and_wait<'a>(
    producer: &BaseProducer<DeliveryContext>,
    messages: impl IntoIterator<Item = Outgoing<'a>>,
) -> Result<(), SendFailure> {
    producer.context().reset();
    let mut sent = 0usize;
    let mut send_error = None;
    for message in messages {
        if let Err(error) = send_one(producer, sent, &message) {
            send_error = Some(SendFailure::Queue { index: sent, topic: message.topic.to_owned(), error });
            break;
        }
        sent += 1;
    }
    // Delivery reports are bounded by `message.timeout.ms` (librdkafka default 5 minutes; at most
    // `transaction.timeout.ms` for a transactional producer), so waiting without a timeout of our
    // own still ends.
    let flushed = producer.flush(Timeout::Never);
    let deliveries = producer.context().take();
    if let Some(e) = send_error {
        return Err(e);
    }
    if let Err(e) = flushed {
        return Err(SendFailure::Flush(e));
    }
    if let Some((index, error)) = deliveries.first_failure {
        let fatal = producer.client().fatal_error().map(|(_, reason)| reason);
        return Err(SendFailure::Undelivered { index, sent, error, fatal });
    }
    if deliveries.reported != sent {
        return Err(SendFailure::Unreported { reported: deliveries.reported, sent });
    }
    Ok(())
}

fn send_one(
    producer: &BaseProducer<DeliveryContext>,
    index: usize,
    message: &Outgoing<'_>,
) -> Result<(), KafkaError> {
    loop {
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(message.topic, index);
        if let Some(payload) = message.payload {
            record = record.payload(payload);
        }
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
