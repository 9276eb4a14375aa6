//! OTLP protobuf (`Export{Trace,Logs,Metrics}ServiceRequest`, the Collector's Kafka exporter
//! default): the same bytes through the span, log and metric decoders, then pairing, the miner
//! and metric_1m's accumulator. Seeds: corpus/otlp_proto (examples/make_seeds.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use observebridge_dataflows::record::WireFormat;

fuzz_target!(|data: &[u8]| {
    observebridge_fuzz::otlp(data, WireFormat::OtlpProto);
});
