//! The job spec parser and validator (`observebridge::job::JobSpec`): strict YAML parsing, then
//! `validate()`. Refusing a spec is fine; panicking is not, and a spec that parses is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observebridge::job::JobSpec;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = JobSpec::parse(&text, "fuzz") {
        // `parse` validates: a spec it returns has no problems left.
        let problems = spec.validate();
        assert!(problems.is_empty(), "parse accepted a spec that validate refuses: {problems:?}");
    }
});
