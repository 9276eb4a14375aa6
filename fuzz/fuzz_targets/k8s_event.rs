//! Kubernetes watch events (`{"type":...,"object":{...}}`, one per line) through the K8s decoder
//! (dataflows/src/decode/k8s.rs), the dead-letter redaction and the change detector.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    observebridge_fuzz::k8s(data);
});
