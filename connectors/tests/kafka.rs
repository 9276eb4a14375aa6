//! The Kafka source and dead-letter sink against a real Kafka-protocol broker.
//!
//! Needs `OBSERVEBRIDGE_TEST_KAFKA_BROKERS` (`scripts/services.sh` starts a broker and prints it).
//! Every test uses its own topics and groups.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use observebridge_connectors::dead_letter::{DeadLetterRecord, DeadLetterSink};
use observebridge_connectors::kafka::{
    KafkaDeadLetterConfig, KafkaDeadLetterSink, KafkaSource, KafkaSourceConfig, StartPosition,
    create_topic, produce_all,
};
use observebridge_connectors::source::{PartitionCommit, PartitionInfo, Poll, RawRecord, Source};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn brokers() -> String {
    std::env::var("OBSERVEBRIDGE_TEST_KAFKA_BROKERS")
        .expect("set OBSERVEBRIDGE_TEST_KAFKA_BROKERS (run scripts/test.sh)")
}

/// A name no other test (or earlier run against the same broker) uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn load(brokers: &str, topic: &str, partition: i32, range: std::ops::Range<usize>) {
    let messages: Vec<(Option<Vec<u8>>, Vec<u8>)> = range
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                format!("{partition}-{i}").into_bytes(),
            )
        })
        .collect();
    produce_all(brokers, topic, &messages, Some(partition)).expect("produce");
}

/// Polls until `n` records arrived (or 30 s passed), then once more to catch extras.
fn poll_n(source: &mut KafkaSource, n: usize) -> Vec<RawRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        assert_eq!(
            source
                .poll(1000, Duration::from_millis(250), &mut out)
                .expect("poll"),
            Poll::Open
        );
    }
    source
        .poll(1000, Duration::from_millis(500), &mut out)
        .expect("poll");
    assert_eq!(out.len(), n, "records: {out:?}");
    out
}

fn summary(records: &[RawRecord]) -> Vec<(u32, u64, String)> {
    let mut got: Vec<(u32, u64, String)> = records
        .iter()
        .map(|r| {
            (
                r.partition,
                r.offset,
                String::from_utf8(r.payload.clone()).expect("utf-8"),
            )
        })
        .collect();
    got.sort();
    got
}

#[test]
fn create_topic_is_idempotent() {
    let brokers = brokers();
    let topic = unique("create");
    create_topic(&brokers, &topic, 3).expect("create");
    create_topic(&brokers, &topic, 3).expect("create again");
    let source = KafkaSource::new(
        "src",
        &KafkaSourceConfig::new(&brokers, vec![topic.clone()], unique("g")),
    )
    .expect("source");
    assert_eq!(source.partitions().len(), 3);
}

#[test]
fn produce_consume_round_trip() {
    let brokers = brokers();
    let topic = unique("roundtrip");
    create_topic(&brokers, &topic, 3).expect("create");
    for p in 0..3 {
        load(&brokers, &topic, p, 0..5);
    }
    let mut source = KafkaSource::new(
        "src",
        &KafkaSourceConfig::new(&brokers, vec![topic.clone()], unique("g")),
    )
    .expect("source");
    let names: Vec<String> = source.partitions().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        (0..3)
            .map(|p| format!("kafka:{topic}/{p}"))
            .collect::<Vec<_>>()
    );
    let records = poll_n(&mut source, 15);
    let want: Vec<(u32, u64, String)> = (0..3u32)
        .flat_map(|p| (0..5u64).map(move |i| (p, i, format!("{p}-{i}"))))
        .collect();
    assert_eq!(summary(&records), want);
}

/// Loads 10 messages to partition 0 and 4 to partition 1, reads them all and commits partition 0
/// at 9 with restart 6 and max event time 1_715_000_000_000.
fn commit_once(cfg: &KafkaSourceConfig, topic: &str) {
    let brokers = &cfg.brokers;
    load(brokers, topic, 0, 0..10);
    load(brokers, topic, 1, 0..4);
    let mut first = KafkaSource::new("src", cfg).expect("source");
    poll_n(&mut first, 14);
    first
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 9,
            restart_offset: 6,
            max_event_time: Some(1_715_000_000_000),
        }])
        .expect("commit");
}

/// The committed offset and metadata string the broker returns for partition 0 of `topic`.
fn committed(brokers: &str, group: &str, topic: &str) -> (Offset, String) {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = reader
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    let p0 = committed.find_partition(topic, 0).expect("partition 0");
    (p0.offset(), p0.metadata().to_owned())
}

#[test]
fn commit_round_trips_through_the_broker() {
    let brokers = brokers();
    let topic = unique("commit");
    let group = unique("g-commit");
    create_topic(&brokers, &topic, 2).expect("create");
    let cfg = KafkaSourceConfig::new(&brokers, vec![topic.clone()], &group);
    commit_once(&cfg, &topic);

    let (offset, metadata) = committed(&brokers, &group, &topic);
    assert_eq!(offset, Offset::Offset(9));
    // Apache Kafka keeps the metadata string; tansu 0.6 stores it but answers every offset fetch
    // with empty metadata. Then the source restarts at the committed offset (and the checkpoint
    // topic, tested below, is what restores the restart offset and watermark).
    let kept = metadata == r#"{"restart":6,"max_ts":1715000000000}"#;
    assert!(
        kept || metadata.is_empty(),
        "unexpected metadata {metadata:?}"
    );
    eprintln!("broker keeps commit metadata: {kept}");

    let mut second = KafkaSource::new("src", &cfg).expect("source");
    let (restart, max_event_time) = if kept {
        (6, Some(1_715_000_000_000))
    } else {
        (9, None)
    };
    assert_eq!(
        second.partitions(),
        vec![
            PartitionInfo {
                name: format!("kafka:{topic}/0"),
                replay_until: Some(9),
                max_event_time
            },
            PartitionInfo {
                name: format!("kafka:{topic}/1"),
                replay_until: None,
                max_event_time: None
            },
        ]
    );
    let records = poll_n(&mut second, 10 - restart as usize + 4);
    let offsets = |p: u32| {
        records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect::<Vec<_>>()
    };
    assert_eq!(offsets(0), (restart..10).collect::<Vec<u64>>());
    assert_eq!(offsets(1), vec![0, 1, 2, 3]);
}

#[test]
fn checkpoint_topic_restores_restart_offset_and_watermark() {
    let brokers = brokers();
    let topic = unique("ckpt-data");
    let checkpoints = unique("ckpt-store");
    let group = unique("g-ckpt");
    create_topic(&brokers, &topic, 2).expect("create");
    create_topic(&brokers, &checkpoints, 1).expect("create");
    let mut cfg = KafkaSourceConfig::new(&brokers, vec![topic.clone()], &group);
    cfg.checkpoint_topic = Some(checkpoints.clone());
    commit_once(&cfg, &topic);
    assert_eq!(committed(&brokers, &group, &topic).0, Offset::Offset(9));

    let mut second = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(
        second.partitions(),
        vec![
            PartitionInfo {
                name: format!("kafka:{topic}/0"),
                replay_until: Some(9),
                max_event_time: Some(1_715_000_000_000)
            },
            PartitionInfo {
                name: format!("kafka:{topic}/1"),
                replay_until: None,
                max_event_time: None
            },
        ]
    );
    let records = poll_n(&mut second, 8);
    let offsets = |p: u32| {
        records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect::<Vec<_>>()
    };
    assert_eq!(offsets(0), vec![6, 7, 8, 9]);
    assert_eq!(offsets(1), vec![0, 1, 2, 3]);

    // A later commit replaces the earlier one.
    second
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 10,
            restart_offset: 10,
            max_event_time: None,
        }])
        .expect("commit");
    drop(second);
    let third = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(third.partitions()[0].replay_until, Some(10));
    assert_eq!(third.partitions()[0].max_event_time, None);
}

#[test]
fn start_at_latest_and_at_timestamp() {
    let brokers = brokers();
    let topic = unique("start");
    create_topic(&brokers, &topic, 1).expect("create");
    load(&brokers, &topic, 0, 0..3);
    std::thread::sleep(Duration::from_millis(50));
    let between = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(50));
    load(&brokers, &topic, 0, 3..5);

    let mut cfg = KafkaSourceConfig::new(&brokers, vec![topic.clone()], unique("g-ts"));
    cfg.start = StartPosition::Timestamp(between.to_rfc3339());
    let mut by_time = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(
        summary(&poll_n(&mut by_time, 2)),
        vec![(0, 3, "0-3".into()), (0, 4, "0-4".into())]
    );

    let mut cfg = KafkaSourceConfig::new(&brokers, vec![topic.clone()], unique("g-latest"));
    cfg.start = StartPosition::Latest;
    let mut latest = KafkaSource::new("src", &cfg).expect("source");
    load(&brokers, &topic, 0, 5..7);
    assert_eq!(
        summary(&poll_n(&mut latest, 2)),
        vec![(0, 5, "0-5".into()), (0, 6, "0-6".into())]
    );
    // Not tested here: a timestamp after the last message. Kafka answers "no offset" and the
    // source starts at the end; tansu 0.6 answers offset 0.
}

#[test]
fn dead_letters_read_back_as_json() {
    let brokers = brokers();
    let topic = unique("dlq");
    create_topic(&brokers, &topic, 1).expect("create");
    let mut sink = KafkaDeadLetterSink::new(&KafkaDeadLetterConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        properties: BTreeMap::new(),
    })
    .expect("sink");
    let records = vec![
        DeadLetterRecord::new(
            "decode",
            "not an OTLP message",
            "kafka:spans/2",
            41,
            &[0x0A, 0xFF, 0x00],
        ),
        DeadLetterRecord::new(
            "late",
            "event time 5m behind the watermark",
            "kafka:logs/0",
            7,
            b"{\"ts\":1}",
        ),
    ];
    sink.write(&records).expect("write");

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("g-dlq"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("offset");
    reader.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 && Instant::now() < deadline {
        if let Some(message) = reader.poll(Duration::from_millis(250)) {
            let message = message.expect("message");
            let key = String::from_utf8(message.key().expect("key").to_vec()).expect("key");
            let value: DeadLetterRecord =
                serde_json::from_slice(message.payload().expect("value")).expect("json");
            got.push((key, value));
        }
    }
    assert_eq!(
        got,
        records
            .iter()
            .map(|r| (r.source.clone(), r.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(got[0].1.payload_base64.as_deref(), Some("Cv8A"));
}

#[test]
fn unknown_topic_is_refused() {
    let brokers = brokers();
    let topic = unique("never-created");
    let err = match KafkaSource::new(
        "src",
        &KafkaSourceConfig::new(&brokers, vec![topic.clone()], unique("g")),
    ) {
        Ok(_) => panic!("topic {topic} does not exist and must be refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains(&topic), "{err}");
}
