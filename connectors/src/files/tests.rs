//! The JSON-lines source and dead-letter file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::dead_letter::{DeadLetterError, DeadLetterRecord, DeadLetterSink};
use crate::source::{PartitionInfo, Poll, RawRecord, Source, SourceError};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

fn record(partition: u32, offset: u64, payload: &str) -> RawRecord {
    RawRecord {
        partition,
        offset,
        payload: payload.as_bytes().to_vec(),
    }
}

/// Two files with blank lines, a CRLF line and a last line without a newline.
fn two_files(dir: &Path) -> Vec<PathBuf> {
    vec![
        write(dir, "a.jsonl", "{\"n\":1}\n\n{\"n\":2}\r\n   \n{\"n\":3}\n"),
        write(dir, "b.jsonl", "\n{\"n\":4}\n{\"n\":5}"),
    ]
}

fn expected() -> Vec<RawRecord> {
    vec![
        record(0, 1, r#"{"n":1}"#),
        record(0, 3, r#"{"n":2}"#),
        record(0, 5, r#"{"n":3}"#),
        record(1, 2, r#"{"n":4}"#),
        record(1, 3, r#"{"n":5}"#),
    ]
}

#[test]
fn reads_files_in_order_with_line_offsets_then_exhausted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = two_files(dir.path());
    let mut source = JsonLinesSource::new(
        "files",
        &FileSourceConfig {
            paths: paths.clone(),
        },
    )
    .expect("source");
    assert_eq!(
        source.partitions(),
        paths
            .iter()
            .map(|p| PartitionInfo {
                name: format!("file:{}", p.display()),
                replay_until: None,
                max_event_time: None
            })
            .collect::<Vec<_>>()
    );

    let mut out = Vec::new();
    assert_eq!(
        source.poll(100, Duration::ZERO, &mut out).expect("poll"),
        Poll::Exhausted
    );
    assert_eq!(out, expected());
    assert_eq!(
        source.poll(100, Duration::ZERO, &mut out).expect("poll"),
        Poll::Exhausted
    );
    assert_eq!(out.len(), 5);
}

#[test]
fn max_is_respected_across_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut source = JsonLinesSource::new(
        "files",
        &FileSourceConfig {
            paths: two_files(dir.path()),
        },
    )
    .expect("source");
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let before = out.len();
        let poll = source.poll(2, Duration::ZERO, &mut out).expect("poll");
        sizes.push(out.len() - before);
        if poll == Poll::Exhausted {
            break;
        }
    }
    assert_eq!(out, expected());
    assert!(sizes.iter().all(|n| *n <= 2), "{sizes:?}");
    assert_eq!(sizes, [2, 2, 1]);

    let mut source = JsonLinesSource::new(
        "files",
        &FileSourceConfig {
            paths: two_files(dir.path()),
        },
    )
    .expect("source");
    let mut out = Vec::new();
    assert_eq!(
        source.poll(0, Duration::ZERO, &mut out).expect("poll"),
        Poll::Open
    );
    assert!(out.is_empty());
}

#[test]
fn utf8_bom_and_binary_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bom.jsonl");
    std::fs::write(&path, b"\xEF\xBB\xBF{\"n\":1}\n\xFF\xFE\n").expect("write");
    let mut source =
        JsonLinesSource::new("files", &FileSourceConfig { paths: vec![path] }).expect("source");
    let mut out = Vec::new();
    source.poll(10, Duration::ZERO, &mut out).expect("poll");
    assert_eq!(
        out,
        vec![
            record(0, 1, r#"{"n":1}"#),
            RawRecord {
                partition: 0,
                offset: 2,
                payload: vec![0xFF, 0xFE]
            }
        ]
    );
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let present = write(dir.path(), "a.jsonl", "{}\n");
    let missing = dir.path().join("missing.jsonl");
    let err = match JsonLinesSource::new(
        "files",
        &FileSourceConfig {
            paths: vec![present, missing.clone()],
        },
    ) {
        Ok(_) => panic!("a missing file must be refused"),
        Err(e) => e,
    };
    match &err {
        SourceError::File { path, source } => {
            assert_eq!(path, &missing.display().to_string());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a file error, got {other:?}"),
    }
    assert!(err.to_string().contains("missing.jsonl"), "{err}");
}

#[test]
fn file_removed_after_new_is_an_error_on_poll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a.jsonl", "{}\n");
    let b = write(dir.path(), "b.jsonl", "{}\n");
    let mut source = JsonLinesSource::new(
        "files",
        &FileSourceConfig {
            paths: vec![a, b.clone()],
        },
    )
    .expect("source");
    std::fs::remove_file(&b).expect("remove");
    let mut out = Vec::new();
    let err = source
        .poll(10, Duration::ZERO, &mut out)
        .expect_err("b is gone");
    assert!(
        matches!(&err, SourceError::File { path, .. } if path == &b.display().to_string()),
        "{err:?}"
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn config_rules() {
    assert_eq!(
        FileSourceConfig { paths: vec![] }
            .validate()
            .expect_err("empty")
            .field,
        "paths"
    );
    assert_eq!(
        FileSourceConfig {
            paths: vec![PathBuf::new()]
        }
        .validate()
        .expect_err("blank")
        .field,
        "paths[0]"
    );
    let twice = FileSourceConfig {
        paths: vec!["a".into(), "b".into(), "a".into()],
    };
    assert_eq!(twice.validate().expect_err("duplicate").field, "paths[2]");
    assert_eq!(
        FileDeadLetterConfig {
            path: PathBuf::new()
        }
        .validate()
        .expect_err("empty")
        .field,
        "path"
    );
    assert!(serde_json::from_str::<FileSourceConfig>(r#"{"paths":["a"],"path":"b"}"#).is_err());
    let err = match JsonLinesSource::new("files", &FileSourceConfig { paths: vec![] }) {
        Ok(_) => panic!("refused"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, SourceError::Other { name, .. } if name == "files"),
        "{err:?}"
    );
}

#[test]
fn new_record_keeps_utf8_as_text_and_binary_as_base64() {
    let text = DeadLetterRecord::new(
        "decode",
        "missing field ts",
        "file:a.jsonl",
        3,
        "{\"x\":\"é\"}".as_bytes(),
    );
    assert_eq!(text.payload.as_deref(), Some("{\"x\":\"é\"}"));
    assert_eq!(text.payload_base64, None);
    assert_eq!(
        (
            text.kind.as_str(),
            text.reason.as_str(),
            text.source.as_str(),
            text.offset
        ),
        ("decode", "missing field ts", "file:a.jsonl", 3)
    );

    let binary = DeadLetterRecord::new(
        "decode",
        "not utf-8",
        "kafka:spans/0",
        9,
        &[0x00, 0xFF, 0x10],
    );
    assert_eq!(binary.payload, None);
    assert_eq!(binary.payload_base64.as_deref(), Some("AP8Q"));
}

#[test]
fn dead_letter_file_appends_and_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/deeper/dead.jsonl");
    let cfg = FileDeadLetterConfig { path: path.clone() };
    let first = vec![
        DeadLetterRecord::new("decode", "not json", "file:a.jsonl", 2, b"{oops"),
        DeadLetterRecord::new("decode", "not utf-8", "kafka:spans/1", 40, &[0xC3, 0x28]),
    ];
    let second = vec![DeadLetterRecord::new(
        "late",
        "event time 3m behind the watermark",
        "file:b.jsonl",
        7,
        b"{\"ts\":1}",
    )];

    let mut sink = FileDeadLetterSink::new(&cfg).expect("sink");
    sink.write(&first).expect("write");
    sink.write(&[]).expect("empty write");
    drop(sink);
    // A new sink on the same file appends.
    let mut sink = FileDeadLetterSink::new(&cfg).expect("sink");
    sink.write(&second).expect("write");

    let text = std::fs::read_to_string(&path).expect("read back");
    assert_eq!(text.lines().count(), 3);
    assert!(text.ends_with('\n'));
    let read: Vec<DeadLetterRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let want: Vec<DeadLetterRecord> = first.into_iter().chain(second).collect();
    assert_eq!(read, want);
    let first_line: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("line")).expect("json");
    assert_eq!(first_line["payload"], "{oops");
    assert!(first_line.get("payload_base64").is_none());
    let second_line: serde_json::Value =
        serde_json::from_str(text.lines().nth(1).expect("line")).expect("json");
    assert_eq!(second_line["payload_base64"], "wyg=");
    assert!(second_line.get("payload").is_none());
}

#[test]
fn dead_letter_file_in_a_directory_that_cannot_be_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = write(dir.path(), "blocker", "a file, not a directory");
    let path = blocker.join("dead.jsonl");
    let err = match FileDeadLetterSink::new(&FileDeadLetterConfig { path: path.clone() }) {
        Ok(_) => panic!("cannot create a directory under a file"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, DeadLetterError::File { path: p, .. } if p == &path.display().to_string()),
        "{err:?}"
    );
}
