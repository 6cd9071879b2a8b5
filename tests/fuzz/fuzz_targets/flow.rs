//! The flow loader: TOML, the flow schema and its compilation (nodes, intents, slots, links).
#![no_main]

use hotline::dialogue::flow::Flow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(flow) = Flow::parse(text, "fuzz.toml") {
        for node in flow.nodes.values() {
            let _ = node.expected_intents();
        }
    }
});
