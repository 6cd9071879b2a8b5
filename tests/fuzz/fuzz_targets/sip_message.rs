//! The SIP message reader: one datagram, and the same bytes as a TCP stream cut anywhere.
#![no_main]

use hotline_sip::message::{SipMessage, StreamFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SipMessage::parse(data) {
        let _ = message.cseq();
        let _ = message.branch();
        let _ = message.tag("To");
        let _ = message.tag("From");
        for name in ["Via", "Contact", "Call-ID", "Content-Length", "Require"] {
            let _ = message.headers_named(name).count();
        }
    }
    let cut = data.first().map_or(0, |b| *b as usize) % (data.len() + 1);
    let mut framer = StreamFramer::default();
    framer.push(&data[..cut]);
    framer.push(&data[cut..]);
    while let Ok(Some(message)) = framer.next_message() {
        let _ = SipMessage::parse(&message);
    }
});
