//! OTLP JSON: the same bytes through the span, log and metric decoders, then pairing, the miner
//! and metric_1m's accumulator. Seeds: corpus/otlp_json (the opentelemetry-proto examples).
#![no_main]

use libfuzzer_sys::fuzz_target;
use observebridge_dataflows::record::WireFormat;

fuzz_target!(|data: &[u8]| {
    observebridge_fuzz::otlp(data, WireFormat::OtlpJson);
});
