//! The wideband codecs against a real softphone: baresip (Debian `baresip-core`, whose `g722.so`
//! uses spandsp and whose `opus.so` uses the system libopus) calls `hotline serve` offering only
//! G.722, then only Opus. hotline runs with its default `sip.codecs`, so each call also checks
//! that the default preference accepts the codec. The call must be answered with that codec
//! (the record's `call_start`), and audio must flow both ways: hotline's recording holds the
//! caller's speech (and the recognizer understands it), and baresip's own dump of what it heard
//! holds the bot's greeting.
//!
//! baresip's `aufile` source must match the codec's PCM exactly: 16 kHz mono for G.722, 48 kHz
//! stereo for Opus; sox makes those from the recorded caller.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::baresip::BaresipCall;
use common::hotline::Hotline;
use common::ports::RtpPorts;
use common::records::{final_transcripts, first, loud_frames, loud_frames_per_channel};
use common::shared::shared;

/// The recorded caller at `rate_hz` with `channels`, one second of silence before and twelve
/// after (time for the greeting).
fn source_wav(out: &Path, rate_hz: u32, channels: u32) {
    let sox = Command::new("sox")
        .arg(shared(
            "audio/telephone/speak-to-customer-support_mulaw8k.wav",
        ))
        .args(["-r", &rate_hz.to_string(), "-c", &channels.to_string()])
        .args(["-b", "16", "-e", "signed-integer"])
        .arg(out)
        .args(["pad", "1", "12"])
        .status()
        .expect("run sox (Debian package sox)");
    assert!(sox.success(), "sox converts the recording");
}

/// baresip offers only `baresip_codec` (loading `module`; the name must carry baresip's own
/// rate and channels, or the account falls back to offering every codec); hotline (default
/// codecs) must answer with `record_codec` and carry audio both ways.
///
/// One call at a time: each runs a hotline, baresip and PocketSphinx, and two of those at once
/// on two cores starve the media tasks, whose late packets are concealed and garble the words
/// the recognizer is asked to find.
fn call_with(module: &str, baresip_codec: &str, record_codec: &str, rate_hz: u32, channels: u32) {
    let _turn = common::alone();
    let work = tempfile::tempdir().expect("tempdir");
    let caller_wav = work.path().join("caller.wav");
    source_wav(&caller_wav, rate_hz, channels);
    let hotline = Hotline::start(&format!("port = 0\n{}", RtpPorts::free(5).toml()));
    let baresip = BaresipCall {
        target: format!("sip:bot@{}", hotline.sip_addr()),
        source_wav: &caller_wav,
        codecs: baresip_codec,
        extra_modules: &[module],
        quit_after_s: 25,
        tls_ca: None,
        account_params: "",
    }
    .run(work.path());
    assert!(
        !baresip.screen.contains("audio codec not found"),
        "baresip knows {baresip_codec}:\n{}",
        baresip.screen
    );
    assert!(
        baresip.screen.contains("Call established"),
        "hotline answered baresip:\n{}\n{}",
        baresip.screen,
        hotline.log_text()
    );

    let events = hotline.one_call(Duration::from_secs(20));
    let start = first(&events, "call_start");
    assert_eq!(
        (&start["transport"], &start["codec"]),
        (
            &serde_json::json!("sip-udp"),
            &serde_json::json!(record_codec)
        ),
        "{start}\n{}",
        baresip.screen
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "bot_audio_start" && e["turn"] == 0),
        "the greeting was sent: {events:#?}"
    );
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognised through {record_codec}: {finals:?}\n{events:#?}"
    );

    // hotline's own recording: [caller, bot].
    let dirs = hotline.call_dirs();
    let recording = dirs
        .first()
        .map(|d| d.join("recording.wav"))
        .expect("a call record folder");
    let per_channel = loud_frames_per_channel(&recording, 300.0);
    assert!(
        per_channel.first().is_some_and(|&caller| caller > 50),
        "hotline recorded the caller through {record_codec}: {per_channel:?}"
    );

    let sent = loud_frames(&baresip.dump("-enc.wav"), 300.0);
    let heard = loud_frames(&baresip.dump("-dec.wav"), 300.0);
    assert!(sent > 50, "baresip sent the caller ({sent} loud frames)");
    assert!(
        heard > 25,
        "baresip heard the bot through {record_codec} ({heard} loud frames)"
    );
}

/// The same baresip offer to a hotline that speaks only G.711 gets no call (488): the offer
/// really held nothing but `baresip_codec`.
fn refused_by_a_g711_only_hotline(module: &str, baresip_codec: &str, rate_hz: u32, channels: u32) {
    let work = tempfile::tempdir().expect("tempdir");
    let caller_wav = work.path().join("caller.wav");
    source_wav(&caller_wav, rate_hz, channels);
    let hotline = Hotline::start(&format!(
        "port = 0\n{}codecs = [\"PCMU\", \"PCMA\"]\n",
        RtpPorts::free(2).toml()
    ));
    let baresip = BaresipCall {
        target: format!("sip:bot@{}", hotline.sip_addr()),
        source_wav: &caller_wav,
        codecs: baresip_codec,
        extra_modules: &[module],
        quit_after_s: 5,
        tls_ca: None,
        account_params: "",
    }
    .run(work.path());
    assert!(
        !baresip.screen.contains("Call established") && baresip.screen.contains("488"),
        "a G.711-only hotline refuses an offer of {baresip_codec}:\n{}\n{}",
        baresip.screen,
        hotline.log_text()
    );
    assert!(hotline.call_dirs().is_empty(), "no call was started");
}

/// G.722 only: spandsp's encoder and decoder at the other end of ours.
#[test]
fn a_g722_call_from_baresip_carries_wideband_audio_both_ways() {
    call_with("g722.so", "G722/16000/1", "G722", 16_000, 1);
    refused_by_a_g711_only_hotline("g722.so", "G722/16000/1", 16_000, 1);
}

/// Opus only: baresip offers `opus/48000/2` with a dynamic payload type; hotline answers with
/// that payload type and its mono 16 kHz fmtp.
#[test]
fn an_opus_call_from_baresip_carries_audio_both_ways() {
    call_with("opus.so", "opus/48000/2", "opus", 48_000, 2);
    refused_by_a_g711_only_hotline("opus.so", "opus/48000/2", 48_000, 2);
}
