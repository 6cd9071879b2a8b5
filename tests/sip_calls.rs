//! Phone callers end to end: SIPp (a real SIP peer, Debian `sip-tester`) calls hotline over UDP
//! on loopback, plays a recorded caller as RTP from a pcap, and hangs up. hotline runs with its
//! real engines (offline recognizer, espeak-ng TTS). Between SIPp and hotline's RTP ports sits a
//! small NAT emulation: hotline advertises a public address (127.0.0.3) where the test relays
//! media, so the relay sees what the caller hears and hotline must answer symmetrically.
//! A caller who cancels while hotline rings (`sip.answer_delay_ms`) leaves no call behind.
//!
//! SIPp's pcap player writes through a raw socket, so these tests need root (CI runs as root);
//! they say so and fail when SIPp cannot send.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use hotline_sip::codec::{alaw_to_linear, linear_to_alaw, ulaw_to_linear};
use hotline_sip::rtp::{RtpPacket, Ssrc};

fn shared() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("audio").is_dir(),
        "shared test data not found at {} (set HOTLINE_SHARED)",
        dir.display()
    );
    dir
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sip/scenarios")
        .join(name)
}

/// The `data` chunk of a WAV file, and its format tag (7 = µ-law, 6 = A-law, 1 = PCM).
fn wav_data(path: &Path) -> (u16, Vec<u8>) {
    let bytes = std::fs::read(path).expect("read WAV");
    assert_eq!(&bytes[..4], b"RIFF", "{} is a WAV file", path.display());
    let mut at = 12;
    let mut format = 0;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            format = u16::from_le_bytes([body[0], body[1]]);
        }
        if id == b"data" {
            return (format, body.to_vec());
        }
        at += 8 + len + (len % 2);
    }
    panic!("no data chunk in {}", path.display());
}

/// Writes RTP packets (with their send times) as a pcap SIPp can play: Ethernet, IPv4, UDP.
fn write_pcap(path: &Path, packets: &[(u64, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (at_ms, rtp) in packets {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let frame_len = 14 + ip_len;
        out.extend_from_slice(&((at_ms / 1000) as u32).to_le_bytes());
        out.extend_from_slice(&(((at_ms % 1000) * 1000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame_len as u32).to_le_bytes());
        out.extend_from_slice(&(frame_len as u32).to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let mut ip = vec![
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            1,
        ];
        let sum = ip
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&ip);
        out.extend_from_slice(&6000u16.to_be_bytes());
        out.extend_from_slice(&6000u16.to_be_bytes());
        out.extend_from_slice(&(udp_len as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(rtp);
    }
    std::fs::write(path, out).expect("write pcap");
}

fn rtp(payload_type: u8, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    RtpPacket {
        marker: false,
        payload_type,
        sequence,
        timestamp,
        ssrc: Ssrc(0x5151_0001),
        payload,
    }
    .write(&mut out);
    out
}

/// The recorded caller as 20 ms RTP packets of PCMU (pt 0) or PCMA (pt 8), after a short lead-in
/// of silence, followed by trailing silence so the endpoint is reached.
fn caller_pcap(dir: &Path, payload_type: u8) -> PathBuf {
    let (format, data) =
        wav_data(&shared().join("audio/telephone/speak-to-customer-support_mulaw8k.wav"));
    assert_eq!(format, 7, "the recording is µ-law");
    let silence = if payload_type == 0 { 0xffu8 } else { 0xd5 };
    let mut payload: Vec<u8> = vec![silence; 8_000];
    payload.extend(data.iter().map(|&b| {
        if payload_type == 0 {
            b
        } else {
            linear_to_alaw(ulaw_to_linear(b))
        }
    }));
    payload.extend(std::iter::repeat_n(silence, 16_000));
    let packets: Vec<(u64, Vec<u8>)> = payload
        .chunks(160)
        .enumerate()
        .map(|(i, chunk)| {
            (
                i as u64 * 20,
                rtp(payload_type, i as u16, (i * 160) as u32, chunk),
            )
        })
        .collect();
    let path = dir.join(format!("caller-{payload_type}.pcap"));
    write_pcap(&path, &packets);
    path
}

/// The NAT in front of hotline's media: relays between the caller and hotline and measures what
/// the caller hears.
struct MediaRelay {
    loud_packets: Arc<AtomicUsize>,
    caller_packets: Arc<AtomicUsize>,
}

impl MediaRelay {
    /// Binds `public_ip:port` for every RTP port of hotline's range and relays to 127.0.0.1.
    fn start(public_ip: &str, rtp_ports: std::ops::RangeInclusive<u16>) -> Self {
        let loud_packets = Arc::new(AtomicUsize::new(0));
        let caller_packets = Arc::new(AtomicUsize::new(0));
        for port in rtp_ports.step_by(2) {
            let socket =
                UdpSocket::bind((public_ip, port)).expect("bind the relay (127.0.0.3 is loopback)");
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
            let hotline: SocketAddr = ([127, 0, 0, 1], port).into();
            let (loud, from_caller) = (loud_packets.clone(), caller_packets.clone());
            std::thread::spawn(move || {
                let mut caller: Option<SocketAddr> = None;
                let mut buffer = [0u8; 2048];
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(120) {
                    let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    if from == hotline {
                        if let Ok(packet) = RtpPacket::parse(&buffer[..len]) {
                            let samples: Vec<i16> = packet
                                .payload
                                .iter()
                                .map(|&b| {
                                    if packet.payload_type == 8 {
                                        alaw_to_linear(b)
                                    } else {
                                        ulaw_to_linear(b)
                                    }
                                })
                                .collect();
                            if hotline::audio::rms(&samples) > 300.0 {
                                loud.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if let Some(caller) = caller {
                            let _ = socket.send_to(&buffer[..len], caller);
                        }
                    } else {
                        caller = Some(from);
                        from_caller.fetch_add(1, Ordering::Relaxed);
                        let _ = socket.send_to(&buffer[..len], hotline);
                    }
                }
            });
        }
        Self {
            loud_packets,
            caller_packets,
        }
    }
}

/// A running hotline phone edge with real engines.
struct Hotline {
    sip_port: u16,
    records: tempfile::TempDir,
    engines: Arc<hotline::call::Engines>,
    stop: watch::Sender<bool>,
}

async fn start_hotline(extra_sip: &str, rtp_min: u16, max_calls: usize) -> Hotline {
    let records = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[asr]\nengine = \"sphinx\"\n[server]\nrecords_dir = \"{}\"\nmax_calls = {max_calls}\n[web]\nenabled = false\n\
         [sip]\nport = 0\npublic_ip = \"127.0.0.3\"\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\n{extra_sip}\n",
        records.path().display(),
        rtp_min + 3
    );
    let config = hotline::config::Config::parse(&text, "test config").expect("config parses");
    let sip = config.sip.clone();
    let engines = tokio::task::spawn_blocking(move || hotline::call::Engines::load(config))
        .await
        .expect("join")
        .expect("engines load (needs pocketsphinx-en-us and espeak-ng)");
    let server = hotline::phone::bind(&sip)
        .await
        .expect("bind the phone edge");
    let sip_port = server.local_addr().port();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(hotline::phone::serve(server, engines.clone(), stop_rx));
    Hotline {
        sip_port,
        records,
        engines,
        stop,
    }
}

fn sipp(
    hotline_sip_port: u16,
    scenario_file: &str,
    local_port: u16,
    media_port: u16,
    keys: &[(&str, String)],
) -> std::process::Output {
    let mut command = Command::new("sipp");
    command
        .arg("-sf")
        .arg(scenario(scenario_file))
        .arg(format!("127.0.0.1:{hotline_sip_port}"))
        .args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-m",
            "1",
            "-l",
            "1",
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
        ])
        .args([
            "-p",
            &local_port.to_string(),
            "-mp",
            &media_port.to_string(),
        ]);
    for (key, value) in keys {
        // `[service]` is SIPp's own keyword, set with -s.
        let flag = if *key == "service" { "-s" } else { "-key" };
        if flag == "-s" {
            command.args([flag, value]);
        } else {
            command.args([flag, key, value]);
        }
    }
    let output = command
        .output()
        .expect("run sipp (Debian package sip-tester)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sipp failed ({}) (its pcap player needs root):\n{}\n{}",
        output.status,
        &stdout[stdout.len().saturating_sub(3000)..],
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Waits for the one call's record to end with a hangup, and returns its events.
async fn call_events(hotline: &Hotline) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(hotline.records.path())
            .expect("records dir")
            .flatten()
        {
            let path = entry.path().join("events.jsonl");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let events: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                if events.iter().any(|e| e["type"] == "hangup") {
                    found.push(events);
                }
            }
        }
        if let Some(events) = found.pop() {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no finished call record in {}",
            hotline.records.path().display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

async fn caller_is_heard_and_greeted(payload_type: u8, codec: &str, base_port: u16) {
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = caller_pcap(work.path(), payload_type);
    let rtp_min = base_port + 100;
    let relay = MediaRelay::start("127.0.0.3", rtp_min..=rtp_min + 3);
    let hotline = start_hotline(&format!("codecs = [\"{codec}\"]"), rtp_min, 4).await;
    let keys = [
        ("service", "support".to_string()),
        ("codec_pt", payload_type.to_string()),
        ("codec_name", codec.to_string()),
        ("pcap", pcap.display().to_string()),
    ];
    let sip_port = hotline.sip_port;
    let keys = keys.to_vec();
    tokio::task::spawn_blocking(move || {
        sipp(
            sip_port,
            "uac_utterance.xml",
            base_port,
            base_port + 10,
            &keys,
        )
    })
    .await
    .expect("join");
    let events = call_events(&hotline).await;
    let _ = hotline.stop.send(true);

    let start = &of_type(&events, "call_start")[0];
    assert_eq!(start["transport"], "sip-udp", "{start}");
    assert_eq!(start["codec"], codec, "{start}");
    assert!(
        start["from"]
            .as_str()
            .unwrap_or("")
            .starts_with("sip:caller@127.0.0.1"),
        "{start}"
    );
    assert!(
        start["to"]
            .as_str()
            .unwrap_or("")
            .starts_with("sip:support@"),
        "{start}"
    );
    let finals: Vec<&str> = of_type(&events, "transcript")
        .into_iter()
        .filter(|e| e["final"] == true)
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognized: {finals:?}\n{events:#?}"
    );
    assert!(
        relay.caller_packets.load(Ordering::Relaxed) > 100,
        "the caller's RTP went through the relay"
    );
    let loud = relay.loud_packets.load(Ordering::Relaxed);
    assert!(
        loud > 25,
        "the caller heard the bot (non-silent RTP packets: {loud})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_caller_on_pcmu_is_recognized_and_hears_the_greeting() {
    caller_is_heard_and_greeted(0, "PCMU", 31_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_caller_on_pcma_is_recognized_and_hears_the_greeting() {
    caller_is_heard_and_greeted(8, "PCMA", 32_000).await;
}

/// RFC 4733 key presses without marker bits (as carriers send them): three packets per press,
/// the end packet sent three times, all sharing the press's timestamp.
fn dtmf_pcap(dir: &Path, keys: &[u8]) -> PathBuf {
    let mut packets = Vec::new();
    let mut seq = 0u16;
    let mut t_ms = 0u64;
    for i in 0..25u32 {
        packets.push((t_ms, rtp(0, seq, i * 160, &[0xff; 160])));
        seq += 1;
        t_ms += 20;
    }
    let mut ts = 25 * 160u32;
    for &key in keys {
        for (n, end) in [
            (1u16, false),
            (2, false),
            (3, false),
            (4, true),
            (4, true),
            (4, true),
        ] {
            let duration = n * 160;
            let flags = if end { 0x80 | 10 } else { 10 };
            packets.push((
                t_ms,
                rtp(
                    101,
                    seq,
                    ts,
                    &[key, flags, (duration >> 8) as u8, duration as u8],
                ),
            ));
            seq += 1;
            t_ms += 20;
        }
        ts += 8 * 160;
        for _ in 0..10 {
            packets.push((t_ms, rtp(0, seq, ts, &[0xff; 160])));
            seq += 1;
            ts += 160;
            t_ms += 20;
        }
    }
    let path = dir.join("dtmf.pcap");
    write_pcap(&path, &packets);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_arrives_from_rfc4733_without_marker_and_from_sip_info() {
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = dtmf_pcap(work.path(), &[1, 5, 11]);
    let base_port = 33_000;
    let rtp_min = base_port + 100;
    let _relay = MediaRelay::start("127.0.0.3", rtp_min..=rtp_min + 3);
    let hotline = start_hotline("", rtp_min, 4).await;
    let keys = vec![
        ("service", "keys".to_string()),
        ("pcap", pcap.display().to_string()),
        ("info_digit", "7".to_string()),
    ];
    let sip_port = hotline.sip_port;
    tokio::task::spawn_blocking(move || {
        sipp(sip_port, "uac_dtmf.xml", base_port, base_port + 10, &keys)
    })
    .await
    .expect("join");
    let events = call_events(&hotline).await;
    let _ = hotline.stop.send(true);
    let digits: Vec<&str> = of_type(&events, "dtmf")
        .iter()
        .filter_map(|e| e["digit"].as_str())
        .collect();
    assert_eq!(digits, vec!["1", "5", "#", "7"], "{events:#?}");
}

/// A caller who cancels while it rings gets 487 for the INVITE and 200 for the CANCEL (SIPp
/// checks both and that nothing follows), and no call is started or recorded, even after the
/// ringing time is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_cancels_while_ringing_leaves_no_call() {
    let base_port = 35_000;
    let rtp_min = base_port + 100;
    let hotline = start_hotline("answer_delay_ms = 2500", rtp_min, 4).await;
    let sip_port = hotline.sip_port;
    let keys = vec![("service", "support".to_string())];
    tokio::task::spawn_blocking(move || {
        sipp(sip_port, "uac_cancel.xml", base_port, base_port + 10, &keys)
    })
    .await
    .expect("join");
    // Past the ringing time: a call that was not forgotten would be answered by now.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let records: Vec<PathBuf> = std::fs::read_dir(hotline.records.path())
        .expect("records dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        records.is_empty(),
        "a cancelled call left records: {records:?}"
    );
    assert_eq!(hotline.engines.active_calls(), 0, "no call is in progress");
    let _ = hotline.stop.send(true);
}
