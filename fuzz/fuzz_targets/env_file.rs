//! Env files (`env_file::parse`, `decode`): any text reads without a panic, and any
//! value survives `encode` then `decode` on one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff::deploy::env_file;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = env_file::parse(text);
    let _ = env_file::decode(text);
    let encoded = env_file::encode(text);
    assert!(!encoded.contains('\n') && !encoded.contains('\r'));
    assert_eq!(env_file::decode(&encoded), text);
    let line = format!("KEY={encoded}\n");
    assert_eq!(
        env_file::parse(&line),
        vec![("KEY".to_string(), text.to_string())]
    );
});
