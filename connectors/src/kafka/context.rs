//! librdkafka client contexts: log lines and global errors go to `tracing` with the client's name,
//! and producers collect delivery reports so a caller can wait until every message is acked.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Context of every client the connectors create: forwards librdkafka's logs and global errors
/// to `tracing`, tagged with the client (source or sink) name.
pub(crate) struct LogContext {
    /// The source or sink this client belongs to.
    pub(crate) client: String,
    /// Per (topic, partition), the high watermark from the last statistics report (only filled
    /// when `statistics.interval.ms` is set, as the source does): the partition's end, for lag.
    pub(crate) ends: Mutex<HashMap<(String, i32), i64>>,
}

impl LogContext {
    pub(crate) fn new(client: &str) -> Self {
        Self {
            client: client.to_owned(),
            ends: Mutex::default(),
        }
    }
}

impl ClientContext for LogContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Ok(mut ends) = self.ends.lock() else { return };
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                // -1 is librdkafka's internal UA partition; -1001 an unknown offset.
                if partition >= 0 && p.hi_offset >= 0 {
                    ends.insert((topic.clone(), partition), p.hi_offset);
                }
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let client = self.client.as_str();
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(client, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(client, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(client, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(client, facility = fac, "librdkafka: {log_message}")
            }
        }
    }

    /// Global errors (a broker down, all brokers down, a failed authentication) are retried by
    /// librdkafka itself; they are logged, and only fatal ones are reported by the next call.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(client = self.client.as_str(), error = %error, reason, "kafka client error, librdkafka retries");
    }
}

impl ConsumerContext for LogContext {}

/// Delivery reports of one batch of produced messages.
#[derive(Default)]
pub(crate) struct Deliveries {
    /// How many delivery reports arrived (success or failure).
    pub(crate) reported: usize,
    /// The first failure: message index and error.
    pub(crate) first_failure: Option<(usize, String)>,
}

/// Producer context: [`LogContext`] plus the delivery reports of the batch in flight. The
/// delivery opaque is the message's index in its batch.
pub(crate) struct DeliveryContext {
    pub(crate) log: LogContext,
    pub(crate) deliveries: Mutex<Deliveries>,
}

impl DeliveryContext {
    pub(crate) fn new(client: &str) -> Self {
        Self {
            log: LogContext::new(client),
            deliveries: Mutex::new(Deliveries::default()),
        }
    }

    /// Forgets the reports of the previous batch.
    pub(crate) fn reset(&self) {
        *self.lock() = Deliveries::default();
    }

    /// The reports so far: how many arrived and the first failure.
    pub(crate) fn take(&self) -> Deliveries {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        // A panic while holding this lock cannot leave `Deliveries` half-updated.
        self.deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, index: usize) {
        let mut deliveries = self.lock();
        deliveries.reported += 1;
        if let Err((error, _)) = delivery_result
            && deliveries.first_failure.is_none()
        {
            deliveries.first_failure = Some((index, error.to_string()));
        }
    }
}
