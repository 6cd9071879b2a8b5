//! The jitter buffer on its own: packets with any sequence, timestamp, SSRC, payload and
//! arrival time, popped a frame at a time through each codec's decoder.
#![no_main]

use hotline_media::codec::{Codec, VoiceCodec};
use hotline_media::receive::ReceiveStream;
use hotline_media::rtp::{RtpPacket, Ssrc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut data)) = data.split_first() else {
        return;
    };
    let codec = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus][usize::from(selector % 4)];
    let Ok(mut decoder) = VoiceCodec::new(codec) else {
        return;
    };
    let mut stream = ReceiveStream::new(codec);
    let mut out = vec![0i16; 320];
    let mut arrival = 0u64;
    // Each packet: 2 bytes sequence, 4 timestamp, 1 ssrc, 1 arrival step, 1 length, payload.
    while data.len() >= 9 {
        let sequence = u16::from_le_bytes([data[0], data[1]]);
        let timestamp = u32::from_le_bytes([data[2], data[3], data[4], data[5]]);
        let ssrc = Ssrc(u32::from(data[6] % 3));
        arrival += u64::from(data[7]);
        let length = usize::from(data[8]).min(data.len() - 9);
        let payload = &data[9..9 + length];
        data = &data[9 + length..];
        let packet = RtpPacket {
            marker: false,
            payload_type: 0,
            sequence,
            timestamp,
            ssrc,
            payload,
        };
        stream.receive(&packet, arrival, &decoder);
        let frame = (codec.pcm_rate_hz() / 50) as usize;
        let _ = stream.pop(&mut out[..frame], &mut decoder);
    }
    let _ = stream.counters();
});
