//! Helpers for tests and tools: create a topic, load messages into one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::context::LogContext;
use super::producer::{Outgoing, idempotent_producer, send_and_wait};
use crate::source::SourceError;

/// How long topic creation may take, including until the topic shows in metadata.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Produces `messages` (key, value) to `topic`, to `partition` or by key when `None`, and returns
/// once every one is acknowledged. Used by end-to-end tests and tools to load data.
///
/// Each message goes in a record batch of its own, so that readers can resume at any offset even
/// on brokers that cannot fetch from the middle of a batch (tansu 0.6); loading is slower for it.
pub fn produce_all(
    brokers: &str,
    topic: &str,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
    partition: Option<i32>,
) -> Result<(), SourceError> {
    let error = |message: String| SourceError::Kafka {
        name: format!("producer for topic {topic}"),
        message,
    };
    // One message per batch: every offset is then a batch boundary. Brokers that can only fetch
    // from the start of a stored batch (tansu 0.6 skips the rest of a batch fetched from its
    // middle) can then resume a reader at any offset.
    let properties = BTreeMap::from([("batch.num.messages".to_owned(), "1".to_owned())]);
    let producer = idempotent_producer(&format!("produce:{topic}"), brokers, &properties)
        .map_err(|e| error(format!("cannot create the producer: {e}")))?;
    let outgoing = messages.iter().map(|(key, value)| Outgoing {
        topic,
        key: key.as_deref(),
        payload: Some(value),
        partition,
    });
    send_and_wait(&producer, outgoing).map_err(|failure| error(failure.to_string()))
}

/// Creates `topic` with `partitions` partitions and the broker's default replication, and waits
/// until its metadata shows them. A topic that already exists is left as it is (`Ok`).
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), SourceError> {
    let error = |message: String| SourceError::Kafka {
        name: format!("admin for topic {topic}"),
        message,
    };
    let admin: AdminClient<LogContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create_with_context(LogContext::new(&format!("admin:{topic}")))
        .map_err(|e| error(format!("cannot create the admin client: {e}")))?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .map_err(|e| error(format!("topic creation failed: {e}")))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, "kafka topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "kafka topic already exists")
            }
            Err((_, code)) => return Err(error(format!("topic creation failed: {code}"))),
        }
    }
    // Creation is acknowledged by the controller; wait until metadata shows the partitions.
    wait_for_topic(&admin, topic, ADMIN_TIMEOUT).map_err(error)
}

/// Waits until `topic`'s metadata shows it without error and with partitions (creation is
/// acknowledged by the controller before every broker knows the topic).
pub(crate) fn wait_for_topic(admin: &AdminClient<LogContext>, topic: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("cannot fetch the metadata of the created topic: {e}"))?;
        let ready = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the created topic did not show in metadata within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
