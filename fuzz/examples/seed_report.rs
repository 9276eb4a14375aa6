//! Prints what the product's decoders make of every seed in `corpus/`: records decoded and errors
//! (with the first error), so that a seed that no longer decodes (the format moved on) is seen.
//! A fuzz run starts from the seeds; a seed that is refused at its first byte explores little.
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --target-dir fuzz/target --example seed_report

use std::path::Path;

use observebridge_dataflows::decode::k8s::{KeyedHasher, decode_k8s};
use observebridge_dataflows::decode::{DecodeConfig, decode_logs, decode_metrics, decode_spans};
use observebridge_dataflows::record::{Signal, WireFormat};
use observebridge_fuzz::message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let cfg = DecodeConfig::default();
    for target in ["otlp_proto", "otlp_json", "k8s_event", "log_line"] {
        let mut files: Vec<_> = std::fs::read_dir(corpus.join(target))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.sort();
        for path in files {
            let data = std::fs::read(&path)?;
            let (records, errors): (usize, Vec<String>) = match target {
                "otlp_proto" | "otlp_json" => {
                    let format = if target == "otlp_proto" { WireFormat::OtlpProto } else { WireFormat::OtlpJson };
                    let (mut s, mut l, mut m) = (Vec::new(), Vec::new(), Vec::new());
                    let (mut se, mut le, mut me) = (Vec::new(), Vec::new(), Vec::new());
                    decode_spans(&message(Signal::Spans, format, 0, &data), &cfg, &mut s, &mut se);
                    decode_logs(&message(Signal::Logs, format, 0, &data), &cfg, &mut l, &mut le);
                    decode_metrics(&message(Signal::Metrics, format, 0, &data), &cfg, &mut m, &mut me);
                    // Only the signal the request is for can decode; report the best one.
                    let best = [(s.len(), strings(&se)), (l.len(), strings(&le)), (m.len(), strings(&me))]
                        .into_iter()
                        .max_by_key(|(n, e)| (*n, usize::MAX - e.len()))
                        .unwrap_or_default();
                    best
                }
                "k8s_event" => {
                    let hasher = KeyedHasher::new(&cfg.secret_hash_key.0);
                    let (mut out, mut errors) = (Vec::new(), Vec::new());
                    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        decode_k8s(&message(Signal::K8s, WireFormat::JsonLines, 0, line), &cfg, &hasher, &mut out, &mut errors);
                    }
                    (out.len(), strings(&errors))
                }
                _ => {
                    // The text decoder with the seed's profile, and the JSON-lines decoders.
                    let (text, text_errors) = observebridge_fuzz::log_line(&data);
                    let line = data.get(1..).unwrap_or_default();
                    let (mut l, mut m, mut le, mut me) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                    decode_logs(&message(Signal::Logs, WireFormat::JsonLines, 0, line), &cfg, &mut l, &mut le);
                    decode_metrics(&message(Signal::Metrics, WireFormat::JsonLines, 0, line), &cfg, &mut m, &mut me);
                    let records = text + l.len() + m.len();
                    (records, if records > 0 { Vec::new() } else { text_errors })
                }
            };
            println!(
                "{target:<11} {:<22} {records:>3} record(s) {:>2} error(s) {}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                errors.len(),
                errors.first().map(String::as_str).unwrap_or("")
            );
        }
    }
    Ok(())
}

fn strings<E: std::fmt::Display>(errors: &[E]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
