//! A node's state.toml (`NodeState::parse`). A state that parses renders to text that
//! parses back to the same rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff::node_state::NodeState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(state) = NodeState::parse("fuzz", text) {
        let once = state.render();
        let again = NodeState::parse("fuzz", &once).expect("a rendered state parses back");
        assert_eq!(again.render(), once);
    }
});
