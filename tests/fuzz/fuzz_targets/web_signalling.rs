//! The web phone's signalling JSON: the offer message on `/api/ws` (SDP size, flow, language,
//! vars) and the page's commands on the events socket (DTMF, hang-up).
#![no_main]

use hotline::web::events::parse_page_message;
use hotline::web::signalling::read_offer_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = read_offer_message(text, 4096);
    let _ = parse_page_message(text);
});
