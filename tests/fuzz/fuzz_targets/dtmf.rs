//! The DTMF detectors: RFC 4733 payloads, SIP INFO bodies, and in-band tones (the bytes as
//! 8 kHz and 16 kHz PCM).
#![no_main]

use hotline_sip::dtmf::{info_digit, TelephoneEventReceiver, ToneDetector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut events = TelephoneEventReceiver::default();
    for (i, chunk) in data.chunks(4).enumerate() {
        let _ = events.on_packet(i as u32 / 3, chunk);
    }
    for content_type in ["application/dtmf-relay", "application/dtmf", "text/plain"] {
        let _ = info_digit(content_type, data);
    }
    let pcm: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    for rate in [8_000, 16_000] {
        let mut tones = ToneDetector::new(rate);
        for block in pcm.chunks((rate / 50) as usize) {
            let _ = tones.on_block(block);
        }
    }
});
