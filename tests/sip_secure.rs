//! Encrypted phone calls: baresip calls hotline over SIP over TLS (`sips:`, a self-signed
//! certificate baresip is told to trust with `sip_cafile`), and, with `mediaenc=srtp-mand`,
//! over SRTP with SDES keys (RFC 4568) in the SDP. The call is answered, hotline recognises
//! what the caller says, and baresip hears the bot: audio goes both ways through the
//! encryption. The record says `sip-tls`.

mod common;

use std::time::Duration;

use common::baresip::{g711_source_wav, BaresipCall};
use common::hotline::Hotline;
use common::ports::RtpPorts;
use common::records::{final_transcripts, first, loud_frames};
use common::shared::shared;

fn secure_call(account_params: &str) -> (Vec<serde_json::Value>, usize, usize) {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
    let cert = work.path().join("cert.pem");
    let key = work.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let caller_wav = work.path().join("caller.wav");
    g711_source_wav(
        &shared("audio/telephone/speak-to-customer-support_mulaw8k.wav"),
        &caller_wav,
        1,
        12,
    );
    let hotline = Hotline::start(&format!(
        "port = 0\n{}codecs = [\"PCMU\"]\ntls_port = 0\ntls_cert = {:?}\ntls_key = {:?}\n",
        RtpPorts::free(5).toml(),
        cert.display().to_string(),
        key.display().to_string()
    ));
    let tls_port = hotline.tls_port.expect("hotline serves SIP over TLS");
    let baresip = BaresipCall {
        target: format!("sip:bot@127.0.0.1:{tls_port};transport=tls"),
        source_wav: &caller_wav,
        codecs: "PCMU",
        extra_modules: &["srtp.so"],
        quit_after_s: 25,
        tls_ca: Some(&cert),
        account_params,
    }
    .run(work.path());
    baresip.assert_established(&hotline.log_text());
    let events = hotline.one_call(Duration::from_secs(20));
    let sent = loud_frames(&baresip.dump("-enc.wav"), 300.0);
    let heard = loud_frames(&baresip.dump("-dec.wav"), 300.0);
    (events, sent, heard)
}

#[test]
fn a_baresip_call_over_tls_carries_audio_both_ways() {
    let (events, sent, heard) = secure_call("");
    let start = first(&events, "call_start");
    assert_eq!(start["transport"], "sip-tls", "{start}");
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognised over TLS: {finals:?}"
    );
    assert!(sent > 50, "baresip sent the caller ({sent} loud frames)");
    assert!(heard > 25, "baresip heard the bot ({heard} loud frames)");
}

#[test]
fn a_baresip_call_over_tls_and_srtp_carries_audio_both_ways() {
    let (events, sent, heard) = secure_call(";mediaenc=srtp-mand");
    let start = first(&events, "call_start");
    assert_eq!(start["transport"], "sip-tls", "{start}");
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognised through SRTP: {finals:?}"
    );
    assert!(sent > 50, "baresip sent the caller ({sent} loud frames)");
    assert!(
        heard > 25,
        "baresip decrypted and heard the bot ({heard} loud frames)"
    );
    let media = &events.last().expect("events")["media"];
    assert_eq!(
        media["dropped_malformed"].as_u64().unwrap_or(0),
        0,
        "every SRTP packet authenticated: {media}"
    );
}
