//! The sync manifest's text form (`Manifest::parse`). A manifest that parses writes
//! (`to_text`) a text that parses back to the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff::sync::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::parse(text, "fuzz") {
        let written = m.to_text();
        let back = Manifest::parse(&written, "fuzz").expect("to_text parses back");
        assert_eq!(back.entries, m.entries);
        assert_eq!(back.to_text(), written);
    }
});
