//! The config parser and validator (`Config::parse`) on arbitrary text:
//! every input is a config or diagnostics, never a panic.

#![no_main]

use kavro_host::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse("fuzz.toml", text) {
        Ok(config) => {
            // What the host reads off a valid config right after.
            let _ = config.worker_threads();
            assert!(config.post_slots() >= 1);
        }
        Err(diagnostics) => {
            assert!(!diagnostics.0.is_empty(), "an error without a diagnostic");
            for d in &diagnostics.0 {
                if let Some((line, column)) = d.position {
                    assert!(line >= 1 && column >= 1, "{d}");
                    assert!(line <= text.lines().count().max(1) + 1, "{d}");
                }
            }
            // As `kavro-host validate` prints them.
            let _ = diagnostics.to_string();
        }
    }
});
