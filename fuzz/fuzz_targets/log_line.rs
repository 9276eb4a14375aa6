//! JSON-lines logs and metrics and plain-text log lines (with a Loghub header format, or one
//! taken from the input) through their decoders, then the template miner.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = observebridge_fuzz::log_line(data);
});
