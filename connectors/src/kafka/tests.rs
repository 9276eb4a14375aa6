//! Kafka source and dead-letter sink against librdkafka's in-process mock cluster.
//!
//! The mock cluster does not answer offsets-for-times lookups by timestamp nor create topics
//! through the admin API; those are covered against a real broker in `tests/kafka.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::*;
use crate::dead_letter::{DeadLetterRecord, DeadLetterSink};
use crate::source::{PartitionCommit, PartitionInfo, Poll, RawRecord, Source, SourceError};

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    MockCluster::new(1).expect("mock cluster")
}

fn config(brokers: &str, topic: &str, group: &str) -> KafkaSourceConfig {
    KafkaSourceConfig::new(brokers, vec![topic.to_owned()], group)
}

/// Produces `count` messages `"<partition>-<i>"` to each of `partitions`.
fn load(brokers: &str, topic: &str, partitions: &[i32], count: usize, from: usize) {
    for &p in partitions {
        let messages: Vec<(Option<Vec<u8>>, Vec<u8>)> = (from..from + count)
            .map(|i| (None, format!("{p}-{i}").into_bytes()))
            .collect();
        produce_all(brokers, topic, &messages, Some(p)).expect("produce");
    }
}

/// Polls until `n` records arrived (or 15 s passed), then once more briefly to catch extras.
fn poll_n(source: &mut KafkaSource, n: usize) -> Vec<RawRecord> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        assert_eq!(
            source
                .poll(1000, Duration::from_millis(200), &mut out)
                .expect("poll"),
            Poll::Open
        );
    }
    source
        .poll(1000, Duration::from_millis(300), &mut out)
        .expect("poll");
    assert_eq!(out.len(), n, "records: {out:?}");
    out
}

fn payload(record: &RawRecord) -> String {
    String::from_utf8(record.payload.clone()).expect("utf-8")
}

#[test]
fn assigns_every_partition_and_reads_exact_offsets() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("assign-all", 3, 1).expect("topic");
    load(&brokers, "assign-all", &[0, 1, 2], 10, 0);

    let mut source =
        KafkaSource::new("src", &config(&brokers, "assign-all", "g-assign-all")).expect("source");
    let names: Vec<String> = source.partitions().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "kafka:assign-all/0",
            "kafka:assign-all/1",
            "kafka:assign-all/2"
        ]
    );
    assert!(
        source
            .partitions()
            .iter()
            .all(|p| p.replay_until.is_none() && p.max_event_time.is_none())
    );

    let records = poll_n(&mut source, 30);
    for p in 0..3u32 {
        let got: Vec<(u64, String)> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| (r.offset, payload(r)))
            .collect();
        let want: Vec<(u64, String)> = (0..10u64).map(|i| (i, format!("{p}-{i}"))).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn poll_respects_max_and_returns_after_timeout_when_idle() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("max", 1, 1).expect("topic");
    load(&brokers, "max", &[0], 25, 0);
    let mut source = KafkaSource::new("src", &config(&brokers, "max", "g-max")).expect("source");

    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while out.len() < 25 && Instant::now() < deadline {
        let before = out.len();
        source
            .poll(10, Duration::from_millis(200), &mut out)
            .expect("poll");
        assert!(out.len() - before <= 10);
    }
    assert_eq!(
        out.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..25).collect::<Vec<u64>>()
    );

    let started = Instant::now();
    assert_eq!(
        source
            .poll(10, Duration::from_millis(300), &mut out)
            .expect("poll"),
        Poll::Open
    );
    assert_eq!(out.len(), 25);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "idle poll took {:?}",
        started.elapsed()
    );
}

#[test]
fn restart_resumes_at_restart_offset_with_replay_until_and_max_event_time() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("resume", 3, 1).expect("topic");
    load(&brokers, "resume", &[0, 1, 2], 10, 0);
    let cfg = config(&brokers, "resume", "g-resume");

    let mut first = KafkaSource::new("src", &cfg).expect("source");
    poll_n(&mut first, 30);
    first
        .commit(&[
            PartitionCommit {
                partition: 0,
                next_offset: 8,
                restart_offset: 5,
                max_event_time: Some(1_700_000_000_123),
            },
            PartitionCommit {
                partition: 2,
                next_offset: 10,
                restart_offset: 10,
                max_event_time: None,
            },
        ])
        .expect("commit");
    drop(first);

    let mut second = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(
        second.partitions(),
        vec![
            PartitionInfo {
                name: "kafka:resume/0".into(),
                replay_until: Some(8),
                max_event_time: Some(1_700_000_000_123)
            },
            PartitionInfo {
                name: "kafka:resume/1".into(),
                replay_until: None,
                max_event_time: None
            },
            PartitionInfo {
                name: "kafka:resume/2".into(),
                replay_until: Some(10),
                max_event_time: None
            },
        ]
    );
    // Partition 0 re-reads 5..10, partition 1 (no commit) everything, partition 2 nothing.
    let records = poll_n(&mut second, 15);
    let offsets = |p: u32| {
        records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect::<Vec<_>>()
    };
    assert_eq!(offsets(0), vec![5, 6, 7, 8, 9]);
    assert_eq!(offsets(1), (0..10).collect::<Vec<u64>>());
    assert!(offsets(2).is_empty());

    // New messages continue after the committed end.
    load(&brokers, "resume", &[2], 2, 10);
    let records = poll_n(&mut second, 2);
    assert_eq!(
        records
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect::<Vec<_>>(),
        vec![(2, 10), (2, 11)]
    );
}

#[test]
fn ignore_committed_starts_at_start_position() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("ignore", 1, 1).expect("topic");
    load(&brokers, "ignore", &[0], 6, 0);
    let mut cfg = config(&brokers, "ignore", "g-ignore");

    let mut first = KafkaSource::new("src", &cfg).expect("source");
    poll_n(&mut first, 6);
    first
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 6,
            restart_offset: 4,
            max_event_time: Some(7),
        }])
        .expect("commit");
    drop(first);

    cfg.ignore_committed = true;
    let mut second = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(second.partitions()[0].replay_until, None);
    assert_eq!(second.partitions()[0].max_event_time, None);
    let records = poll_n(&mut second, 6);
    assert_eq!(records[0].offset, 0);
}

#[test]
fn start_latest_skips_earlier_messages() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("latest", 2, 1).expect("topic");
    load(&brokers, "latest", &[0, 1], 5, 0);
    let mut cfg = config(&brokers, "latest", "g-latest");
    cfg.start = StartPosition::Latest;

    let mut source = KafkaSource::new("src", &cfg).expect("source");
    load(&brokers, "latest", &[0, 1], 3, 5);
    let mut records = poll_n(&mut source, 6);
    records.sort_by_key(|r| (r.partition, r.offset));
    let got: Vec<(u32, u64, String)> = records
        .iter()
        .map(|r| (r.partition, r.offset, payload(r)))
        .collect();
    let want: Vec<(u32, u64, String)> = (0..2u32)
        .flat_map(|p| (5..8u64).map(move |i| (p, i, format!("{p}-{i}"))))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn commit_without_metadata_restarts_at_committed_offset() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("foreign", 1, 1).expect("topic");
    load(&brokers, "foreign", &[0], 5, 0);

    // Another tool commits offset 3 with no metadata.
    let other: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "g-foreign")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("foreign", 0, Offset::Offset(3))
        .expect("offset");
    other.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(other);

    let mut source =
        KafkaSource::new("src", &config(&brokers, "foreign", "g-foreign")).expect("source");
    assert_eq!(source.partitions()[0].replay_until, Some(3));
    assert_eq!(source.partitions()[0].max_event_time, None);
    let records = poll_n(&mut source, 2);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

#[test]
fn commit_metadata_is_the_documented_json() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("meta", 1, 1).expect("topic");
    let mut source = KafkaSource::new("src", &config(&brokers, "meta", "g-meta")).expect("source");
    source
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 9,
            restart_offset: 2,
            max_event_time: None,
        }])
        .expect("commit");

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "g-meta")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("meta", 0);
    let committed = reader
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    let elem = committed.find_partition("meta", 0).expect("partition");
    assert_eq!(elem.offset(), Offset::Offset(9));
    assert_eq!(elem.metadata(), r#"{"restart":2,"max_ts":null}"#);
}

#[test]
fn partition_filter_takes_its_share() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("filter", 3, 1).expect("topic");
    load(&brokers, "filter", &[0, 1, 2], 2, 0);
    let mut cfg = config(&brokers, "filter", "g-filter");
    cfg.partitions = Some(PartitionFilter { index: 1, count: 2 });

    let mut source = KafkaSource::new("src", &cfg).expect("source");
    let names: Vec<String> = source.partitions().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["kafka:filter/1"]);
    let records = poll_n(&mut source, 2);
    assert!(
        records
            .iter()
            .all(|r| r.partition == 0 && payload(r).starts_with("1-"))
    );
}

#[test]
fn several_topics_are_numbered_in_config_order() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("zeta", 2, 1).expect("topic");
    cluster.create_topic("alpha", 1, 1).expect("topic");
    load(&brokers, "alpha", &[0], 1, 0);
    let cfg = KafkaSourceConfig::new(&brokers, vec!["zeta".into(), "alpha".into()], "g-multi");
    let mut source = KafkaSource::new("src", &cfg).expect("source");
    let names: Vec<String> = source.partitions().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["kafka:zeta/0", "kafka:zeta/1", "kafka:alpha/0"]);
    let records = poll_n(&mut source, 1);
    assert_eq!(
        (
            records[0].partition,
            records[0].offset,
            payload(&records[0])
        ),
        (2, 0, "0-0".to_owned())
    );
}

#[test]
fn bad_commits_are_refused() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("badcommit", 1, 1).expect("topic");
    let mut source =
        KafkaSource::new("src", &config(&brokers, "badcommit", "g-bad")).expect("source");
    let err = source
        .commit(&[PartitionCommit {
            partition: 5,
            next_offset: 1,
            restart_offset: 0,
            max_event_time: None,
        }])
        .expect_err("unknown partition index");
    assert!(err.to_string().contains("partition index 5"), "{err}");
    let err = source
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 1,
            restart_offset: 2,
            max_event_time: None,
        }])
        .expect_err("restart after next");
    assert!(err.to_string().contains("restart offset 2"), "{err}");
    source.commit(&[]).expect("empty commit is a no-op");
}

#[test]
fn unknown_topic_is_an_error_naming_it() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let err = match KafkaSource::new("src", &config(&brokers, "does-not-exist", "g-unknown")) {
        Ok(_) => panic!("an unknown topic must be refused"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, SourceError::Kafka { name, .. } if name == "src"),
        "{err:?}"
    );
    assert!(err.to_string().contains("does-not-exist"), "{err}");
}

#[test]
fn invalid_config_is_refused_before_connecting() {
    let err = match KafkaSource::new("src", &config("", "t", "g")) {
        Ok(_) => panic!("empty brokers must be refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("brokers"), "{err}");
}

#[test]
fn dead_letter_sink_writes_keyed_json() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("dlq", 1, 1).expect("topic");
    let mut sink = KafkaDeadLetterSink::new(&KafkaDeadLetterConfig {
        brokers: brokers.clone(),
        topic: "dlq".into(),
        properties: BTreeMap::new(),
    })
    .expect("sink");
    let records = vec![
        DeadLetterRecord {
            kind: "decode".into(),
            reason: "not json".into(),
            source: "kafka:logs/3".into(),
            offset: 17,
            payload: Some("{oops".into()),
            payload_base64: None,
        },
        DeadLetterRecord {
            kind: "late".into(),
            reason: "event time 2 h behind the watermark".into(),
            source: "file:/tmp/x.jsonl".into(),
            offset: 4,
            payload: None,
            payload_base64: Some("AAE=".into()),
        },
    ];
    sink.write(&records).expect("write");
    sink.write(&[]).expect("empty write");

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "g-dlq-reader")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("dlq", 0, Offset::Beginning)
        .expect("offset");
    reader.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.len() < 2 && Instant::now() < deadline {
        if let Some(message) = reader.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8 key");
            let record: DeadLetterRecord =
                serde_json::from_slice(message.payload().expect("value")).expect("json");
            got.push((key, record));
        }
    }
    let want: Vec<(String, DeadLetterRecord)> = records
        .iter()
        .map(|r| (r.source.clone(), r.clone()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn dead_letter_sink_refuses_a_missing_topic() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let result = KafkaDeadLetterSink::new(&KafkaDeadLetterConfig {
        brokers,
        topic: "no-such-dlq".into(),
        properties: BTreeMap::new(),
    });
    let err = match result {
        Ok(_) => panic!("a missing dead-letter topic must be refused"),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("no-such-dlq")
            && err.to_string().contains("Create the topic first"),
        "{err}"
    );
}

/// What a broker that drops commit metadata (tansu 0.6) leaves: the offset alone.
fn commit_plain(brokers: &str, group: &str, topic: &str, offset: i64) {
    let other: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    other.commit(&tpl, CommitMode::Sync).expect("commit");
}

#[test]
fn checkpoint_topic_restores_metadata_the_group_commit_lost() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("ck-data", 1, 1).expect("topic");
    cluster.create_topic("ck-store", 1, 1).expect("topic");
    load(&brokers, "ck-data", &[0], 10, 0);
    let mut cfg = config(&brokers, "ck-data", "g-ck");
    cfg.checkpoint_topic = Some("ck-store".into());

    let mut first = KafkaSource::new("src", &cfg).expect("source");
    poll_n(&mut first, 10);
    first
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 6,
            restart_offset: 2,
            max_event_time: Some(11),
        }])
        .expect("commit");
    first
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 8,
            restart_offset: 5,
            max_event_time: Some(42),
        }])
        .expect("commit");
    drop(first);
    commit_plain(&brokers, "g-ck", "ck-data", 8);

    let mut second = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(
        second.partitions(),
        vec![PartitionInfo {
            name: "kafka:ck-data/0".into(),
            replay_until: Some(8),
            max_event_time: Some(42)
        }]
    );
    assert_eq!(poll_n(&mut second, 5)[0].offset, 5);
}

#[test]
fn newer_checkpoint_wins_after_a_crash_between_the_two_writes() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("ck2-data", 1, 1).expect("topic");
    cluster.create_topic("ck2-store", 1, 1).expect("topic");
    load(&brokers, "ck2-data", &[0], 10, 0);
    let mut cfg = config(&brokers, "ck2-data", "g-ck2");
    cfg.checkpoint_topic = Some("ck2-store".into());

    let mut first = KafkaSource::new("src", &cfg).expect("source");
    first
        .commit(&[PartitionCommit {
            partition: 0,
            next_offset: 8,
            restart_offset: 5,
            max_event_time: Some(42),
        }])
        .expect("commit");
    drop(first);
    // The checkpoint of the next commit was written, then the process died before the group commit.
    let checkpoint = br#"{"offset":9,"restart":7,"max_ts":50}"#.to_vec();
    produce_all(
        &brokers,
        "ck2-store",
        &[(Some(b"g-ck2/ck2-data/0".to_vec()), checkpoint)],
        Some(0),
    )
    .expect("produce");
    // Checkpoints of other groups are not read.
    let other = br#"{"offset":1,"restart":0,"max_ts":null}"#.to_vec();
    produce_all(
        &brokers,
        "ck2-store",
        &[(Some(b"other/ck2-data/0".to_vec()), other)],
        Some(0),
    )
    .expect("produce");

    let mut second = KafkaSource::new("src", &cfg).expect("source");
    assert_eq!(second.partitions()[0].replay_until, Some(9));
    assert_eq!(second.partitions()[0].max_event_time, Some(50));
    assert_eq!(poll_n(&mut second, 3)[0].offset, 7);
}

#[test]
fn missing_checkpoint_topic_is_an_error() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("ck3-data", 1, 1).expect("topic");
    let mut cfg = config(&brokers, "ck3-data", "g-ck3");
    cfg.checkpoint_topic = Some("ck3-missing".into());
    let err = match KafkaSource::new("src", &cfg) {
        Ok(_) => panic!("a missing checkpoint topic must be refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("ck3-missing"), "{err}");
}

#[test]
fn deleted_topic_fails_poll() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("vanishing", 1, 1).expect("topic");
    let mut cfg = config(&brokers, "vanishing", "g-vanishing");
    cfg.properties.insert("topic.metadata.refresh.interval.ms".into(), "100".into());
    cfg.properties.insert("topic.metadata.propagation.max.ms".into(), "10".into());
    let mut source = KafkaSource::new("src", &cfg).expect("source");
    cluster
        .topic_error("vanishing", rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        .expect("topic error");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = Vec::new();
    let err = loop {
        match source.poll(100, Duration::from_millis(200), &mut out) {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => panic!("poll kept going on a deleted topic"),
        }
    };
    assert!(err.to_string().contains("cannot go on reading"), "{err}");
}

#[test]
fn broker_outage_is_retried_not_an_error() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("outage", 1, 1).expect("topic");
    load(&brokers, "outage", &[0], 3, 0);
    let mut source = KafkaSource::new("src", &config(&brokers, "outage", "g-outage")).expect("source");
    assert_eq!(poll_n(&mut source, 3).len(), 3);

    cluster.broker_down(1).expect("broker down");
    let mut out = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(source.poll(100, Duration::from_millis(200), &mut out).expect("outage is not an error"), Poll::Open);
    }
    cluster.broker_up(1).expect("broker up");
    load(&brokers, "outage", &[0], 2, 3);
    let records = poll_n(&mut source, 2);
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4]);
}
