//! RTP for SIPp to play: a builder for one RTP stream with send times, pcap files SIPp's
//! `play_pcap_audio` reads (Ethernet, IPv4, UDP), G.711 payloads, and test signals (DTMF tone
//! pairs). SIPp rewrites the addresses and ports when it plays, so the ones written here are
//! placeholders.

use std::path::Path;

use hotline_media::codec::g711::{
    alaw_encode as linear_to_alaw, ulaw_decode as ulaw_to_linear, ulaw_encode as linear_to_ulaw,
};
use hotline_media::rtp::{RtpPacket, Ssrc};

/// The SSRC of streams built here.
pub const TEST_SSRC: Ssrc = Ssrc(0x5151_0001);
/// Payload types of the static G.711 codecs.
pub const PT_PCMU: u8 = 0;
pub const PT_PCMA: u8 = 8;
/// Samples (= RTP timestamp units) in 20 ms at 8 kHz.
pub const SAMPLES_PER_20_MS: u32 = 160;

/// One RTP packet with [`TEST_SSRC`] and no marker bit.
pub fn rtp_packet(payload_type: u8, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    RtpPacket {
        marker: false,
        payload_type,
        sequence,
        timestamp,
        ssrc: TEST_SSRC,
        payload,
    }
    .write(&mut out);
    out
}

/// An RTP stream being built: packets with their send times (ms from the start), sequence
/// numbers counting up by one per packet.
#[derive(Debug, Default)]
pub struct RtpStream {
    /// `(send time in ms, RTP packet)` in order.
    pub packets: Vec<(u64, Vec<u8>)>,
    /// The next packet's sequence number.
    pub sequence: u16,
    /// The next send time.
    pub t_ms: u64,
}

impl RtpStream {
    /// Adds one packet at the current time and moves the clock on by `advance_ms`.
    pub fn push(&mut self, payload_type: u8, timestamp: u32, payload: &[u8], advance_ms: u64) {
        self.packets.push((
            self.t_ms,
            rtp_packet(payload_type, self.sequence, timestamp, payload),
        ));
        self.sequence = self.sequence.wrapping_add(1);
        self.t_ms += advance_ms;
    }

    /// Adds 8 kHz G.711 bytes (already encoded) as 20 ms packets, timestamps from `timestamp`;
    /// returns the timestamp after the last packet. A short last chunk is padded with `fill`.
    pub fn push_g711(&mut self, payload_type: u8, timestamp: u32, bytes: &[u8], fill: u8) -> u32 {
        let mut ts = timestamp;
        for chunk in bytes.chunks(SAMPLES_PER_20_MS as usize) {
            let mut payload = chunk.to_vec();
            payload.resize(SAMPLES_PER_20_MS as usize, fill);
            self.push(payload_type, ts, &payload, 20);
            ts = ts.wrapping_add(SAMPLES_PER_20_MS);
        }
        ts
    }

    /// Writes the stream as a pcap file.
    pub fn write_pcap(&self, path: &Path) {
        write_pcap(path, &self.packets);
    }
}

/// The silent G.711 byte of a payload type (µ-law 0xff, A-law 0xd5).
pub fn g711_silence(payload_type: u8) -> u8 {
    if payload_type == PT_PCMA {
        0xd5
    } else {
        0xff
    }
}

/// 16-bit PCM at 8 kHz as G.711 bytes for payload type 0 (µ-law) or 8 (A-law).
pub fn g711_encode(payload_type: u8, pcm: &[i16]) -> Vec<u8> {
    pcm.iter()
        .map(|&s| {
            if payload_type == PT_PCMA {
                linear_to_alaw(s)
            } else {
                linear_to_ulaw(s)
            }
        })
        .collect()
}

/// µ-law bytes re-encoded for a payload type (kept for PCMU, through linear for PCMA).
pub fn from_ulaw(payload_type: u8, ulaw: &[u8]) -> Vec<u8> {
    if payload_type == PT_PCMA {
        ulaw.iter()
            .map(|&b| linear_to_alaw(ulaw_to_linear(b)))
            .collect()
    } else {
        ulaw.to_vec()
    }
}

/// The `data` chunk of a WAV file, and its format tag (7 = µ-law, 6 = A-law, 1 = PCM).
pub fn wav_data(path: &Path) -> (u16, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read WAV {}: {e}", path.display()));
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF",
        "{} is a WAV file",
        path.display()
    );
    let mut at = 12;
    let mut format = 0;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " && body.len() >= 2 {
            format = u16::from_le_bytes([body[0], body[1]]);
        }
        if id == b"data" {
            return (format, body.to_vec());
        }
        at += 8 + len + (len % 2);
    }
    panic!("no data chunk in {}", path.display());
}

/// The row and column frequencies of a DTMF key (`0-9`, `*`, `#`, `A-D`).
pub fn dtmf_frequencies_hz(key: char) -> (f32, f32) {
    const ROWS_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    for (row, keys) in KEYS.iter().enumerate() {
        if let Some(col) = keys.find(key) {
            return (ROWS_HZ[row], COLS_HZ[col]);
        }
    }
    panic!("{key:?} is not a DTMF key");
}

/// A DTMF tone pair at 8 kHz: `duration_ms` of the key's two sines, each of `amplitude` (a
/// telephone sends each at about -7 dBm0, i.e. an amplitude near 7000 of 32767).
pub fn dtmf_tone(key: char, duration_ms: u32, amplitude: f32) -> Vec<i16> {
    let (low_hz, high_hz) = dtmf_frequencies_hz(key);
    let samples = 8 * duration_ms as usize;
    (0..samples)
        .map(|i| {
            let t = i as f32 / 8_000.0;
            let v = amplitude
                * ((std::f32::consts::TAU * low_hz * t).sin()
                    + (std::f32::consts::TAU * high_hz * t).sin());
            v.clamp(-32_768.0, 32_767.0) as i16
        })
        .collect()
}

/// Writes RTP packets (with their send times in ms) as a pcap SIPp can play: Ethernet, IPv4,
/// UDP from 127.0.0.1:6000 to 127.0.0.1:6000.
pub fn write_pcap(path: &Path, packets: &[(u64, Vec<u8>)]) {
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
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64; // TTL
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
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
    std::fs::write(path, out).unwrap_or_else(|e| panic!("write pcap {}: {e}", path.display()));
}

/// The shared recording of a caller asking for customer support, as 20 ms G.711 RTP packets
/// (`payload_type` PCMU or PCMA) after 1 s of silence and followed by 2 s of silence so the
/// endpoint is reached; written to `dir` as a pcap for SIPp's `play_pcap_audio`.
pub fn support_request_pcap(dir: &Path, payload_type: u8) -> std::path::PathBuf {
    let (format, data) = wav_data(&crate::common::shared::shared(
        "audio/telephone/speak-to-customer-support_mulaw8k.wav",
    ));
    assert_eq!(format, 7, "the recording is µ-law");
    utterance_pcap(dir, "support-request", &data, payload_type)
}

/// `text` spoken by espeak-ng and made telephone audio (8 kHz µ-law, by sox), as
/// [`support_request_pcap`] lays it out.
pub fn spoken_pcap(dir: &Path, name: &str, text: &str, payload_type: u8) -> std::path::PathBuf {
    let wav = crate::common::speech::speak(dir, name, text);
    let ulaw = dir.join(format!("{name}-mulaw8k.wav"));
    let status = std::process::Command::new("sox")
        .arg(&wav)
        .args(["-r", "8000", "-c", "1", "-e", "u-law"])
        .arg(&ulaw)
        .status()
        .expect("sox is installed (apt-get install sox)");
    assert!(status.success(), "sox failed on {}", wav.display());
    let (format, data) = wav_data(&ulaw);
    assert_eq!(format, 7, "sox wrote µ-law");
    utterance_pcap(dir, name, &data, payload_type)
}

/// One caller turn (µ-law bytes) after 1 s of silence and before 2 s of it, as a pcap.
fn utterance_pcap(dir: &Path, name: &str, ulaw: &[u8], payload_type: u8) -> std::path::PathBuf {
    let silence = g711_silence(payload_type);
    let mut payload: Vec<u8> = vec![silence; 8_000];
    payload.extend(from_ulaw(payload_type, ulaw));
    payload.extend(std::iter::repeat_n(silence, 16_000));
    let mut stream = RtpStream::default();
    stream.push_g711(payload_type, 0, &payload, silence);
    let path = dir.join(format!("{name}-{payload_type}.pcap"));
    stream.write_pcap(&path);
    path
}

/// RFC 4733 key presses without marker bits (as carriers send them): three packets per press,
/// the end packet sent three times, all sharing the press's timestamp.
pub fn dtmf_pcap(dir: &Path, keys: &[u8]) -> std::path::PathBuf {
    let mut stream = RtpStream::default();
    let mut ts = stream.push_g711(PT_PCMU, 0, &[0xff; 25 * 160], 0xff);
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
            stream.push(
                101,
                ts,
                &[key, flags, (duration >> 8) as u8, duration as u8],
                20,
            );
        }
        ts += 8 * 160;
        ts = stream.push_g711(PT_PCMU, ts, &[0xff; 10 * 160], 0xff);
    }
    let path = dir.join("dtmf.pcap");
    stream.write_pcap(&path);
    path
}
