//! app.toml text (`AppConfig::parse`: TOML, then the lexical checks). No panic, no hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = skiff::app_config::AppConfig::parse(Path::new("app.toml"), text);
    }
});
