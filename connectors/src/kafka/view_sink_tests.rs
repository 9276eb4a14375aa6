//! The Kafka view sink against a real Kafka-protocol broker (`OBSERVEBRIDGE_TEST_KAFKA_BROKERS`,
//! started by `scripts/services.sh`; tansu 0.6 in this repository's setup) and, for the
//! transactional path tansu cannot take, against librdkafka's in-process mock cluster.
//!
//! Every test uses a topic prefix of its own. tansu does not compact, so readers fold every
//! message by key (a tombstone deletes), which is what a compacted topic converges to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array,
    Int64Array, LargeStringArray, ListArray, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::*;

fn brokers() -> String {
    std::env::var("OBSERVEBRIDGE_TEST_KAFKA_BROKERS")
        .expect("set OBSERVEBRIDGE_TEST_KAFKA_BROKERS (scripts/services.sh starts a broker)")
}

/// A name no other test (or earlier run against the same broker) uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A topic prefix of its own for one test: `<name>-<pid>-<nanos>.`.
fn prefix(name: &str) -> String {
    format!("{}.", unique(name))
}

fn config(brokers: &str, prefix: &str) -> KafkaViewSinkConfig {
    KafkaViewSinkConfig {
        topic_prefix: prefix.to_owned(),
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
        ..KafkaViewSinkConfig::new(brokers)
    }
}

fn frontier(job: &str, epoch: u64, offset: u64) -> Frontier {
    Frontier {
        job: job.to_owned(),
        epoch,
        watermark_ms: Some(1_795_000_000_000 + epoch as i64),
        positions: json!({"kafka:spans/0": offset, "kafka:spans/1": offset + 1}),
    }
}

/// 2026-11-21T13:05:00Z and 13:10:00Z, in ms.
const T0: i64 = 1_795_266_300_000;
const T1: i64 = T0 + 300_000;

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    )
}

/// A `service_call`-like view: key (bucket, tenant, src); calls, p95_ms, sample_ref.
struct Row {
    bucket: i64,
    tenant: &'static str,
    src: &'static str,
    calls: i64,
    p95_ms: f64,
    sample_ref: Option<&'static str>,
}

fn key_columns() -> Vec<String> {
    vec!["bucket".into(), "tenant".into(), "src".into()]
}

fn upserts(rows: &[Row]) -> RecordBatch {
    let schema = Schema::new(vec![
        ts_field("bucket"),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("src", DataType::Utf8, false),
        Field::new("calls", DataType::Int64, false),
        Field::new("p95_ms", DataType::Float64, false),
        Field::new("sample_ref", DataType::Utf8, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from(rows.iter().map(|r| r.bucket).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.tenant).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.src).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.calls).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|r| r.p95_ms).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.sample_ref).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("upserts batch")
}

/// Deletes: only the key columns, in key order.
fn deletes(keys: &[(i64, &str, &str)]) -> RecordBatch {
    let schema = Schema::new(vec![
        ts_field("bucket"),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("src", DataType::Utf8, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from(keys.iter().map(|k| k.0).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(
            keys.iter().map(|k| k.1).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            keys.iter().map(|k| k.2).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("deletes batch")
}

fn changes(view: &str, up: &[Row], del: &[(i64, &str, &str)]) -> TableChanges {
    TableChanges {
        table: view.to_owned(),
        key_columns: key_columns(),
        upserts: upserts(up),
        deletes: deletes(del),
    }
}

/// Key and value text of a message (`None` value: a tombstone).
type Received = (String, Option<String>);

/// Reads partition 0 of `topic` from the beginning until `expected` messages arrived (30 s at
/// most), then a little longer to catch any extra one.
fn read_topic(brokers: &str, topic: &str, expected: usize, isolation: &str) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("view-sink-reader"))
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let take = |deadline: Instant, stop_at: usize, got: &mut Vec<Received>| {
        while got.len() < stop_at && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.expect("message");
                let key =
                    String::from_utf8(message.key().expect("every message has a key").to_vec())
                        .expect("utf-8 key");
                let value = message
                    .payload()
                    .map(|p| String::from_utf8(p.to_vec()).expect("utf-8 value"));
                got.push((key, value));
            }
        }
    };
    take(Instant::now() + Duration::from_secs(30), expected, &mut got);
    take(
        Instant::now() + Duration::from_millis(700),
        usize::MAX,
        &mut got,
    );
    assert_eq!(got.len(), expected, "messages of {topic}: {got:#?}");
    got
}

/// Reads partition 0 of `topic` until at least `minimum` messages arrived and nothing more
/// comes for a moment: for at-least-once paths where a retry may duplicate messages.
fn read_topic_at_least(brokers: &str, topic: &str, minimum: usize) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("view-sink-reader"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline
        && (got.len() < minimum || quiet_since.elapsed() < Duration::from_millis(700))
    {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("message");
            let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8 key");
            let value = message
                .payload()
                .map(|p| String::from_utf8(p.to_vec()).expect("utf-8 value"));
            got.push((key, value));
            quiet_since = Instant::now();
        }
    }
    assert!(got.len() >= minimum, "messages of {topic}: {got:#?}");
    got
}

/// What a compacted topic converges to: the last value of each key, tombstones removing it.
fn fold(messages: &[Received]) -> BTreeMap<String, Value> {
    let mut view = BTreeMap::new();
    for (key, value) in messages {
        match value {
            Some(value) => {
                view.insert(
                    key.clone(),
                    serde_json::from_str(value).expect("value is JSON"),
                );
            }
            None => {
                view.remove(key);
            }
        }
    }
    view
}

fn key_text(bucket: &str, tenant: &str, src: &str) -> String {
    format!(r#"{{"bucket":"{bucket}","tenant":"{tenant}","src":"{src}"}}"#)
}

#[test]
fn upserts_and_deletes_of_two_frontiers_fold_to_the_view() {
    let brokers = brokers();
    let prefix = prefix("vs-fold");
    let mut sink = KafkaViewSink::new("fold-job", &config(&brokers, &prefix)).expect("sink");
    assert_eq!(sink.last_published(), None);

    let first = changes(
        "service_call_5m",
        &[
            Row {
                bucket: T0,
                tenant: "acme",
                src: "checkout",
                calls: 12,
                p95_ms: 81.5,
                sample_ref: Some("s3://raw/spans/a"),
            },
            Row {
                bucket: T0,
                tenant: "acme",
                src: "cart",
                calls: 3,
                p95_ms: f64::NAN,
                sample_ref: None,
            },
            Row {
                bucket: T1,
                tenant: "globex",
                src: "api",
                calls: 7,
                p95_ms: 12.25,
                sample_ref: Some("say \"hi\"\n"),
            },
        ],
        &[],
    );
    let stats = sink
        .publish(&frontier("fold-job", 1, 10), &[first])
        .expect("publish 1");
    assert_eq!(
        stats,
        PublishStats {
            messages: 3,
            tombstones: 0
        }
    );

    let second = changes(
        "service_call_5m",
        &[
            Row {
                bucket: T0,
                tenant: "acme",
                src: "checkout",
                calls: 20,
                p95_ms: 90.0,
                sample_ref: Some("s3://raw/spans/b"),
            },
            Row {
                bucket: T1,
                tenant: "acme",
                src: "search",
                calls: 1,
                p95_ms: f64::INFINITY,
                sample_ref: None,
            },
        ],
        &[(T0, "acme", "cart")],
    );
    let stats = sink
        .publish(&frontier("fold-job", 2, 20), &[second])
        .expect("publish 2");
    assert_eq!(
        stats,
        PublishStats {
            messages: 3,
            tombstones: 1
        }
    );
    assert_eq!(
        sink.last_published(),
        Some(&frontier("fold-job", 2, 20).positions)
    );

    let messages = read_topic(
        &brokers,
        &format!("{prefix}service_call_5m"),
        6,
        "read_committed",
    );
    // The exact text of the first message: key columns in key order, the row in schema order,
    // the timestamp as RFC 3339 UTC with milliseconds.
    assert_eq!(
        messages[0].0,
        r#"{"bucket":"2026-11-21T13:05:00.000Z","tenant":"acme","src":"checkout"}"#
    );
    assert_eq!(
        messages[0].1.as_deref(),
        Some(
            r#"{"bucket":"2026-11-21T13:05:00.000Z","tenant":"acme","src":"checkout","calls":12,"p95_ms":81.5,"sample_ref":"s3://raw/spans/a"}"#
        )
    );

    let expected = BTreeMap::from([
        (
            key_text("2026-11-21T13:05:00.000Z", "acme", "checkout"),
            json!({"bucket": "2026-11-21T13:05:00.000Z", "tenant": "acme", "src": "checkout", "calls": 20, "p95_ms": 90.0, "sample_ref": "s3://raw/spans/b"}),
        ),
        (
            key_text("2026-11-21T13:10:00.000Z", "globex", "api"),
            json!({"bucket": "2026-11-21T13:10:00.000Z", "tenant": "globex", "src": "api", "calls": 7, "p95_ms": 12.25, "sample_ref": "say \"hi\"\n"}),
        ),
        (
            key_text("2026-11-21T13:10:00.000Z", "acme", "search"),
            json!({"bucket": "2026-11-21T13:10:00.000Z", "tenant": "acme", "src": "search", "calls": 1, "p95_ms": null, "sample_ref": null}),
        ),
    ]);
    assert_eq!(fold(&messages), expected);
    // The deleted row's key is exactly the key its upsert had: the tombstone removes it.
    assert!(
        messages.contains(&(key_text("2026-11-21T13:05:00.000Z", "acme", "cart"), None)),
        "{messages:#?}"
    );
}

#[test]
fn debezium_envelope_reports_create_update_delete_and_a_tombstone() {
    let brokers = brokers();
    let prefix = prefix("vs-dbz");
    let cfg = KafkaViewSinkConfig {
        envelope: Envelope::Debezium,
        ..config(&brokers, &prefix)
    };
    let mut sink = KafkaViewSink::new("dbz-job", &cfg).expect("sink");
    let row = |calls, p95_ms| Row {
        bucket: T0,
        tenant: "acme",
        src: "checkout",
        calls,
        p95_ms,
        sample_ref: None,
    };

    sink.publish(
        &frontier("dbz-job", 1, 1),
        &[changes("v", &[row(1, 10.0)], &[])],
    )
    .expect("create");
    sink.publish(
        &frontier("dbz-job", 2, 2),
        &[changes("v", &[row(2, 20.0)], &[])],
    )
    .expect("update");
    let stats = sink
        .publish(
            &frontier("dbz-job", 3, 3),
            &[changes(
                "v",
                &[],
                &[(T0, "acme", "checkout"), (T1, "acme", "never-published")],
            )],
        )
        .expect("delete");
    // Two `d` events and two tombstones.
    assert_eq!(
        stats,
        PublishStats {
            messages: 4,
            tombstones: 2
        }
    );
    assert_eq!(sink.cached_keys("v"), 0);

    let messages = read_topic(&brokers, &format!("{prefix}v"), 6, "read_committed");
    let key = key_text("2026-11-21T13:05:00.000Z", "acme", "checkout");
    let row_json = |calls: i64, p95: f64| json!({"bucket": "2026-11-21T13:05:00.000Z", "tenant": "acme", "src": "checkout", "calls": calls, "p95_ms": p95, "sample_ref": null});
    let event = |message: &Received| -> Value {
        let mut value: Value =
            serde_json::from_str(message.1.as_deref().expect("an event, not a tombstone"))
                .expect("json");
        let ts_ms = value
            .as_object_mut()
            .expect("object")
            .remove("ts_ms")
            .expect("ts_ms");
        assert!(
            ts_ms.as_i64().is_some_and(|ms| ms > 1_700_000_000_000),
            "ts_ms {ts_ms}"
        );
        value
    };
    let source = |epoch: u64| json!({"job": "dbz-job", "view": "v", "epoch": epoch});

    assert_eq!(messages[0].0, key);
    assert_eq!(
        event(&messages[0]),
        json!({"before": null, "after": row_json(1, 10.0), "op": "c", "source": source(1)})
    );
    assert_eq!(messages[1].0, key);
    assert_eq!(
        event(&messages[1]),
        json!({"before": row_json(1, 10.0), "after": row_json(2, 20.0), "op": "u", "source": source(2)})
    );
    assert_eq!(messages[2].0, key);
    assert_eq!(
        event(&messages[2]),
        json!({"before": row_json(2, 20.0), "after": null, "op": "d", "source": source(3)})
    );
    assert_eq!(messages[3], (key.clone(), None));
    // A key the cache does not know: `d` with `before: null`, then its tombstone.
    let unknown = key_text("2026-11-21T13:10:00.000Z", "acme", "never-published");
    assert_eq!(messages[4].0, unknown);
    assert_eq!(
        event(&messages[4]),
        json!({"before": null, "after": null, "op": "d", "source": source(3)})
    );
    assert_eq!(messages[5], (unknown, None));
}

#[test]
fn debezium_cache_evicts_the_oldest_key_which_then_reads_as_a_create() {
    let brokers = brokers();
    let prefix = prefix("vs-evict");
    let cfg = KafkaViewSinkConfig {
        envelope: Envelope::Debezium,
        debezium_cache_rows: 1,
        ..config(&brokers, &prefix)
    };
    let mut sink = KafkaViewSink::new("evict-job", &cfg).expect("sink");
    let row = |src, calls| Row {
        bucket: T0,
        tenant: "acme",
        src,
        calls,
        p95_ms: 1.0,
        sample_ref: None,
    };
    sink.publish(
        &frontier("evict-job", 1, 1),
        &[changes("v", &[row("a", 1), row("b", 1)], &[])],
    )
    .expect("publish 1");
    assert_eq!(sink.cached_keys("v"), 1);
    sink.publish(
        &frontier("evict-job", 2, 2),
        &[changes("v", &[row("a", 2), row("b", 2)], &[])],
    )
    .expect("publish 2");
    let messages = read_topic(&brokers, &format!("{prefix}v"), 4, "read_committed");
    let ops: Vec<(String, String)> = messages
        .iter()
        .map(|(_, value)| {
            let value: Value =
                serde_json::from_str(value.as_deref().expect("event")).expect("json");
            (
                value["after"]["src"].as_str().expect("src").to_owned(),
                value["op"].as_str().expect("op").to_owned(),
            )
        })
        .collect();
    // "a" was evicted by "b" (cache of one key), so its update is published as a create.
    let expected: Vec<(String, String)> = [("a", "c"), ("b", "c"), ("a", "c"), ("b", "u")]
        .iter()
        .map(|(s, o)| (s.to_string(), o.to_string()))
        .collect();
    assert_eq!(ops, expected);
}

#[test]
fn progress_marker_is_read_back_per_job() {
    let brokers = brokers();
    let prefix = prefix("vs-progress");
    let cfg = config(&brokers, &prefix);
    let mut first = KafkaViewSink::new("job-a", &cfg).expect("sink a");
    let change = || {
        changes(
            "v",
            &[Row {
                bucket: T0,
                tenant: "t",
                src: "s",
                calls: 1,
                p95_ms: 1.0,
                sample_ref: None,
            }],
            &[],
        )
    };
    first
        .publish(&frontier("job-a", 1, 100), &[change()])
        .expect("a 1");
    first
        .publish(&frontier("job-a", 2, 250), &[])
        .expect("a 2, no changes");
    let mut other = KafkaViewSink::new("job-b", &cfg).expect("sink b");
    assert_eq!(other.last_published(), None, "job-b has no marker yet");
    other
        .publish(&frontier("job-b", 7, 999), &[change()])
        .expect("b 7");
    drop(first);
    drop(other);

    let again = KafkaViewSink::new("job-a", &cfg).expect("sink a again");
    assert_eq!(
        again.last_published(),
        Some(&json!({"kafka:spans/0": 250, "kafka:spans/1": 251}))
    );
    let other_again = KafkaViewSink::new("job-b", &cfg).expect("sink b again");
    assert_eq!(
        other_again.last_published(),
        Some(&json!({"kafka:spans/0": 999, "kafka:spans/1": 1000}))
    );
    let fresh = KafkaViewSink::new("job-c", &cfg).expect("sink c");
    assert_eq!(fresh.last_published(), None);

    // The marker as other tools see it. Besides the three markers, the topic holds the delivery
    // probe of each of the five `new` (visible to read_uncommitted readers), under its own key.
    let markers: Vec<Received> = read_topic(
        &brokers,
        &format!("{prefix}_progress"),
        8,
        "read_uncommitted",
    )
    .into_iter()
    .filter(|(key, _)| !key.ends_with("/delivery-probe"))
    .collect();
    let last_a = markers
        .iter()
        .rev()
        .find(|(key, _)| key == "job-a")
        .expect("a marker of job-a");
    let value: Value = serde_json::from_str(last_a.1.as_deref().expect("value")).expect("json");
    assert_eq!(
        value,
        json!({"job": "job-a", "epoch": 2, "watermark_ms": 1_795_000_000_002_i64, "positions": {"kafka:spans/0": 250, "kafka:spans/1": 251}})
    );
}

#[test]
fn unselected_views_are_not_published() {
    let brokers = brokers();
    let prefix = prefix("vs-select");
    let cfg = KafkaViewSinkConfig {
        views: Some(vec!["a".into()]),
        ..config(&brokers, &prefix)
    };
    let mut sink = KafkaViewSink::new("select-job", &cfg).expect("sink");
    let row = || Row {
        bucket: T0,
        tenant: "t",
        src: "s",
        calls: 1,
        p95_ms: 1.0,
        sample_ref: None,
    };
    let stats = sink
        .publish(
            &frontier("select-job", 1, 1),
            &[
                TableChanges {
                    // A batch without columns, as an engine may hand when nothing was deleted.
                    deletes: RecordBatch::new_empty(Arc::new(Schema::empty())),
                    ..changes("a", &[row()], &[])
                },
                changes("b", &[row(), row()], &[]),
            ],
        )
        .expect("publish");
    assert_eq!(
        stats,
        PublishStats {
            messages: 1,
            tombstones: 0
        }
    );
    assert_eq!(
        read_topic(&brokers, &format!("{prefix}a"), 1, "read_committed").len(),
        1
    );
    let metadata = sink
        .producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    assert!(
        !metadata
            .topics()
            .iter()
            .any(|t| t.name() == format!("{prefix}b")),
        "topic of the unselected view b was created"
    );
}

/// Evidence for the module docs: tansu 0.6 cannot end a transaction (no `EndTxn`), so
/// `exactly_once` is refused and `auto` falls back. On a broker with transactions this test
/// fails, which is the signal to run the transactional tests against it instead.
#[test]
fn tansu_has_no_transactions_so_exactly_once_is_refused_and_auto_falls_back() {
    let brokers = brokers();
    let prefix = prefix("vs-txn");
    let exactly_once = KafkaViewSinkConfig {
        delivery: Delivery::ExactlyOnce,
        ..config(&brokers, &prefix)
    };
    let error = KafkaViewSink::new("txn-job", &exactly_once)
        .expect_err("tansu 0.6 cannot commit a transaction");
    assert!(
        matches!(error, KafkaViewSinkError::TransactionsUnsupported { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains(&brokers) && text.contains("EndTxn"), "{text}");
    assert!(!error.is_transient());

    let auto = KafkaViewSink::new("txn-job", &config(&brokers, &prefix)).expect("auto falls back");
    assert_eq!(auto.delivery(), "at_least_once");
    let explicit = KafkaViewSinkConfig {
        delivery: Delivery::AtLeastOnce,
        ..config(&brokers, &prefix)
    };
    assert_eq!(
        KafkaViewSink::new("txn-job", &explicit)
            .expect("at least once")
            .delivery(),
        "at_least_once"
    );
}

fn mock_cluster() -> MockCluster<'static, DefaultProducerContext> {
    MockCluster::new(1).expect("mock cluster")
}

/// The mock cluster cannot create topics through the admin API: tests create them up front
/// and name the views, so `new` checks their topics while the broker is up.
fn mock_config(
    cluster: &MockCluster<'static, DefaultProducerContext>,
    prefix: &str,
    views: &[&str],
) -> KafkaViewSinkConfig {
    cluster
        .create_topic(&format!("{prefix}_progress"), 1, 1)
        .expect("progress topic");
    for view in views {
        cluster
            .create_topic(&format!("{prefix}{view}"), 1, 1)
            .expect("view topic");
    }
    let views = (!views.is_empty()).then(|| views.iter().map(|v| v.to_string()).collect());
    KafkaViewSinkConfig {
        create_topics: false,
        views,
        ..config(&cluster.bootstrap_servers(), prefix)
    }
}

/// The transactional path against librdkafka's mock cluster, which implements transactions
/// but writes no transaction markers (so it cannot show that aborted data stays hidden) and
/// gives every `init_transactions` a new producer id (so it cannot fence); fencing is injected.
#[test]
fn transactional_sink_commits_frontiers_and_stops_when_fenced() {
    let cluster = mock_cluster();
    let cfg = KafkaViewSinkConfig {
        delivery: Delivery::ExactlyOnce,
        ..mock_config(&cluster, "mock.", &["v"])
    };
    let mut first = KafkaViewSink::new("mock-job", &cfg).expect("transactional sink");
    assert_eq!(first.delivery(), "exactly_once");
    let row = Row {
        bucket: T0,
        tenant: "t",
        src: "s",
        calls: 5,
        p95_ms: 2.5,
        sample_ref: None,
    };
    first
        .publish(&frontier("mock-job", 1, 10), &[changes("v", &[row], &[])])
        .expect("publish 1");
    first
        .publish(
            &frontier("mock-job", 2, 11),
            &[changes("v", &[], &[(T0, "t", "s")])],
        )
        .expect("publish 2");
    let messages = read_topic(&cluster.bootstrap_servers(), "mock.v", 2, "read_committed");
    assert_eq!(
        messages[1],
        (key_text("2026-11-21T13:05:00.000Z", "t", "s"), None)
    );
    assert_eq!(fold(&messages), BTreeMap::new());

    // A second instance of the job reads the marker back with read_committed.
    let second = KafkaViewSink::new("mock-job", &cfg).expect("second instance");
    assert_eq!(second.delivery(), "exactly_once");
    assert_eq!(
        second.last_published(),
        Some(&frontier("mock-job", 2, 11).positions)
    );

    // The coordinator answers the commit with PRODUCER_FENCED, as Kafka does once another
    // producer took the transactional id: a permanent error.
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let error = first
        .publish(&frontier("mock-job", 3, 12), &[])
        .expect_err("the fenced instance cannot publish");
    assert!(!error.is_transient(), "{error:?}");
    assert!(
        matches!(error, KafkaViewSinkError::Fatal { .. }),
        "{error:?}"
    );
    assert_eq!(
        first.last_published(),
        Some(&frontier("mock-job", 2, 11).positions)
    );
}

#[test]
fn transactional_publish_with_retry_aborts_and_retries_while_the_broker_is_down() {
    let cluster = mock_cluster();
    let mut cfg = KafkaViewSinkConfig {
        delivery: Delivery::ExactlyOnce,
        ..mock_config(&cluster, "txretry.", &["v"])
    };
    cfg.properties
        .insert("transaction.timeout.ms".into(), "2000".into());
    let mut sink = KafkaViewSink::new("txretry-job", &cfg).expect("sink");
    assert_eq!(sink.delivery(), "exactly_once");
    cluster.broker_down(1).expect("broker down");
    let mut attempts = Vec::new();
    let row = Row {
        bucket: T0,
        tenant: "t",
        src: "s",
        calls: 5,
        p95_ms: 2.5,
        sample_ref: None,
    };
    sink.publish_with_retry(
        &frontier("txretry-job", 1, 10),
        &[changes("v", &[row], &[])],
        |attempt, error| {
            assert!(error.is_transient(), "{error:?}");
            attempts.push(attempt);
            if attempt == 2 {
                cluster.broker_up(1).expect("broker up");
            }
        },
    )
    .expect("published once the broker is back");
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_eq!(
        sink.last_published(),
        Some(&frontier("txretry-job", 1, 10).positions)
    );
    let view = fold(&read_topic_at_least(
        &cluster.bootstrap_servers(),
        "txretry.v",
        1,
    ));
    assert_eq!(view.len(), 1, "{view:?}");
}

#[test]
fn broker_without_end_txn_refuses_exactly_once_and_auto_falls_back() {
    let cluster = mock_cluster();
    cluster
        .apiversion(RDKafkaApiKey::EndTxn, None, None)
        .expect("disable EndTxn");
    let cfg = mock_config(&cluster, "noend.", &[]);
    let exactly_once = KafkaViewSinkConfig {
        delivery: Delivery::ExactlyOnce,
        ..cfg.clone()
    };
    let error = KafkaViewSink::new("j", &exactly_once).expect_err("refused");
    assert!(
        matches!(error, KafkaViewSinkError::TransactionsUnsupported { .. }),
        "{error:?}"
    );
    let auto = KafkaViewSink::new("j", &cfg).expect("auto");
    assert_eq!(auto.delivery(), "at_least_once");
}

#[test]
fn publish_with_retry_pauses_while_the_broker_is_down() {
    let cluster = mock_cluster();
    let mut cfg = KafkaViewSinkConfig {
        delivery: Delivery::AtLeastOnce,
        ..mock_config(&cluster, "retry.", &["v"])
    };
    cfg.properties
        .insert("message.timeout.ms".into(), "1500".into());
    let mut sink = KafkaViewSink::new("retry-job", &cfg).expect("sink");
    cluster.broker_down(1).expect("broker down");
    let mut attempts = Vec::new();
    let row = Row {
        bucket: T0,
        tenant: "t",
        src: "s",
        calls: 5,
        p95_ms: 2.5,
        sample_ref: None,
    };
    let stats = sink
        .publish_with_retry(
            &frontier("retry-job", 1, 10),
            &[changes("v", &[row], &[])],
            |attempt, error| {
                assert!(error.is_transient(), "{error:?}");
                attempts.push(attempt);
                if attempt == 2 {
                    cluster.broker_up(1).expect("broker up");
                }
            },
        )
        .expect("published once the broker is back");
    assert_eq!(stats.messages, 1);
    assert!(
        attempts.len() >= 2 && attempts[..2] == [1, 2],
        "{attempts:?}"
    );
    assert_eq!(
        sink.last_published(),
        Some(&frontier("retry-job", 1, 10).positions)
    );
    // At least once: the retried message may be there twice; the folded view has it once.
    let view = fold(&read_topic_at_least(
        &cluster.bootstrap_servers(),
        "retry.v",
        1,
    ));
    assert_eq!(view.len(), 1, "{view:?}");
}

#[test]
fn unreachable_brokers_fail_new_with_an_error_naming_them() {
    let cfg = config("127.0.0.1:1", "unreachable.");
    let error = KafkaViewSink::new("job", &cfg).expect_err("nothing listens on port 1");
    assert!(
        matches!(error, KafkaViewSinkError::Connect { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

#[test]
fn config_rules_name_the_field() {
    let valid = KafkaViewSinkConfig::new("b:9092");
    valid.validate().expect("valid");
    let field = |cfg: KafkaViewSinkConfig| cfg.validate().expect_err("refused").field;

    assert_eq!(
        field(KafkaViewSinkConfig {
            brokers: " ".into(),
            ..valid.clone()
        }),
        "brokers"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            brokers: "a:1,,b:2".into(),
            ..valid.clone()
        }),
        "brokers"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            topic_prefix: String::new(),
            ..valid.clone()
        }),
        "topic_prefix"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            topic_prefix: "views/".into(),
            ..valid.clone()
        }),
        "topic_prefix"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            partitions: 0,
            ..valid.clone()
        }),
        "partitions"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            views: Some(vec![]),
            ..valid.clone()
        }),
        "views"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            views: Some(vec!["ok".into(), "not ok".into()]),
            ..valid.clone()
        }),
        "views[1]"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            views: Some(vec!["a".into(), "a".into()]),
            ..valid.clone()
        }),
        "views[1]"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            views: Some(vec!["_progress".into()]),
            ..valid.clone()
        }),
        "views[0]"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            transactional_id: Some("t".into()),
            delivery: Delivery::AtLeastOnce,
            ..valid.clone()
        }),
        "transactional_id"
    );
    assert_eq!(
        field(KafkaViewSinkConfig {
            envelope: Envelope::Debezium,
            debezium_cache_rows: 0,
            ..valid.clone()
        }),
        "debezium_cache_rows"
    );
    let mut owned = valid.clone();
    owned
        .properties
        .insert("transactional.id".into(), "x".into());
    assert_eq!(field(owned), "properties.transactional.id");
    let short = RetryConfig {
        initial_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(1),
    };
    assert_eq!(
        field(KafkaViewSinkConfig {
            retry: short,
            ..valid.clone()
        }),
        "retry.max_backoff"
    );

    // The error says which field, and `new` refuses before any I/O.
    let error = KafkaViewSink::new(
        "job",
        &KafkaViewSinkConfig {
            partitions: 0,
            ..valid.clone()
        },
    )
    .expect_err("refused");
    assert!(matches!(error, KafkaViewSinkError::Config(_)), "{error:?}");
    assert!(error.to_string().contains("partitions"), "{error}");

    // serde: defaults, names of the enums, unknown fields refused by name.
    let parsed: KafkaViewSinkConfig =
        serde_json::from_str(r#"{"brokers":"b:9092"}"#).expect("parses");
    assert_eq!(parsed, valid);
    assert_eq!(parsed.topic_prefix, "observebridge.");
    assert!(
        parsed.create_topics && parsed.partitions == 1 && parsed.debezium_cache_rows == 1_000_000
    );
    let parsed: KafkaViewSinkConfig = serde_json::from_str(
        r#"{"brokers":"b","envelope":"debezium","delivery":"exactly_once","views":["metric_1m"]}"#,
    )
    .expect("parses");
    assert_eq!(
        (parsed.envelope, parsed.delivery),
        (Envelope::Debezium, Delivery::ExactlyOnce)
    );
    let unknown = serde_json::from_str::<KafkaViewSinkConfig>(r#"{"brokers":"b","partiton":3}"#)
        .expect_err("unknown field");
    assert!(unknown.to_string().contains("partiton"), "{unknown}");
    let bad_delivery =
        serde_json::from_str::<KafkaViewSinkConfig>(r#"{"brokers":"b","delivery":"twice"}"#)
            .expect_err("bad delivery");
    assert!(bad_delivery.to_string().contains("twice"), "{bad_delivery}");
}

#[test]
fn debug_redacts_secret_properties() {
    let mut cfg = KafkaViewSinkConfig::new("b:9092");
    cfg.properties
        .insert("sasl.password".into(), "hunter2".into());
    cfg.properties
        .insert("sasl.username".into(), "alice".into());
    let printed = format!("{cfg:?}");
    assert!(
        !printed.contains("hunter2") && printed.contains("alice") && printed.contains("<redacted>"),
        "{printed}"
    );
}

fn encode_all(batch: &RecordBatch) -> Vec<String> {
    let encoder = ObjectEncoder::all_columns("v", batch).expect("encoder");
    (0..batch.num_rows())
        .map(|row| String::from_utf8(encoder.encode(row).expect("encode")).expect("utf-8"))
        .collect()
}

#[test]
fn arrow_values_become_the_documented_json() {
    let schema = Schema::new(vec![
        Field::new("i32", DataType::Int32, true),
        Field::new("u64", DataType::UInt64, false),
        Field::new("f32", DataType::Float32, false),
        Field::new("f64", DataType::Float64, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("large", DataType::LargeUtf8, false),
        Field::new(
            "us",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("s", DataType::Timestamp(TimeUnit::Second, None), false),
        Field::new(
            "ns",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            false,
        ),
        Field::new("day", DataType::Date32, false),
        Field::new(
            "list",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![Some(-7), None])),
        Arc::new(UInt64Array::from(vec![u64::MAX, 0])),
        Arc::new(Float32Array::from(vec![0.1, f32::NEG_INFINITY])),
        Arc::new(Float64Array::from(vec![3.0, f64::NAN])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(StringArray::from(vec![r#"{"a":[1,2]}"#, ""])),
        Arc::new(LargeStringArray::from(vec!["ü", "tab\t"])),
        // 13:05:00.123999 (sub-millisecond digits truncated) and 1 µs before the epoch.
        Arc::new(
            TimestampMicrosecondArray::from(vec![1_795_266_300_123_999, -1]).with_timezone("UTC"),
        ),
        Arc::new(TimestampSecondArray::from(vec![0, 1_795_266_300])),
        // The instant is printed in UTC whatever the column's zone.
        Arc::new(
            TimestampNanosecondArray::from(vec![1_795_266_300_000_000_001, 0])
                .with_timezone("+02:00"),
        ),
        Arc::new(Date32Array::from(vec![20_778, -1])),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
        ])),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns).expect("batch");
    assert_eq!(
        encode_all(&batch),
        vec![
            r#"{"i32":-7,"u64":18446744073709551615,"f32":0.1,"f64":3.0,"flag":true,"evidence":"{\"a\":[1,2]}","large":"ü","us":"2026-11-21T13:05:00.123Z","s":"1970-01-01T00:00:00.000Z","ns":"2026-11-21T13:05:00.000Z","day":"2026-11-21","list":[1,null,3]}"#,
            r#"{"i32":null,"u64":0,"f32":null,"f64":null,"flag":null,"evidence":"","large":"tab\t","us":"1969-12-31T23:59:59.999Z","s":"2026-11-21T13:05:00.000Z","ns":"1970-01-01T00:00:00.000Z","day":"1969-12-31","list":null}"#,
        ]
    );
}

#[test]
fn keys_follow_key_column_order_and_unsupported_types_name_the_column() {
    let batch = upserts(&[Row {
        bucket: T0,
        tenant: "acme",
        src: "api",
        calls: 1,
        p95_ms: 1.0,
        sample_ref: None,
    }]);
    // Not schema order and not sorted: the key is written in the order the view declares.
    let key_columns = vec!["tenant".to_owned(), "bucket".to_owned(), "calls".to_owned()];
    let keys = ObjectEncoder::key_columns("v", &batch, &key_columns).expect("encoder");
    assert_eq!(
        String::from_utf8(keys.encode(0).expect("key")).expect("utf-8"),
        r#"{"tenant":"acme","bucket":"2026-11-21T13:05:00.000Z","calls":1}"#
    );
    let missing = vec!["nope".to_owned()];
    let error = ObjectEncoder::key_columns("v", &batch, &missing)
        .err()
        .expect("missing key column");
    assert!(error.to_string().contains("column nope"), "{error}");

    let schema = Schema::new(vec![Field::new("blob", DataType::Binary, false)]);
    let blob: ArrayRef = Arc::new(BinaryArray::from(vec![b"x".as_slice()]));
    let batch = RecordBatch::try_new(Arc::new(schema), vec![blob]).expect("batch");
    let error = ObjectEncoder::all_columns("v", &batch)
        .err()
        .expect("binary is not supported");
    assert!(
        matches!(&error, KafkaViewSinkError::Encode { view, column, .. } if view == "v" && column == "blob"),
        "{error:?}"
    );
}

#[test]
fn before_cache_evicts_the_least_recently_written_key() {
    let mut cache = BeforeCache::new(2);
    cache.put(b"a".to_vec(), b"1".to_vec());
    cache.put(b"b".to_vec(), b"1".to_vec());
    cache.put(b"a".to_vec(), b"2".to_vec()); // a is now the most recent
    cache.put(b"c".to_vec(), b"1".to_vec()); // evicts b
    assert_eq!(cache.get(b"a"), Some(b"2".as_slice()));
    assert_eq!(cache.get(b"b"), None);
    assert_eq!(cache.get(b"c"), Some(b"1".as_slice()));
    cache.remove(b"a");
    assert_eq!((cache.len(), cache.get(b"a")), (1, None));
    cache.put(b"d".to_vec(), b"1".to_vec());
    assert_eq!(cache.len(), 2);
}
