//! What encryption costs a phone call's media: one 20 ms step of a G.711 call's media session
//! (the caller's packet in, decoded on the tick, the bot's frame encoded and sent), plain RTP
//! against SRTP (AES_CM_128_HMAC_SHA1_80: decrypt and authenticate in, encrypt and tag out),
//! side by side in one run. The difference, over 20 ms, is SRTP's share of a core per call.
//! Run with `cargo bench --bench srtp`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use hotline_sip::media::MediaSession;
use hotline_sip::rtp::Ssrc;
use hotline_sip::sdp::{Codec, Direction, Negotiated, RtcpTarget, SrtpKeys, SrtpSuite};

fn negotiated(srtp: Option<SrtpKeys>) -> Negotiated {
    Negotiated {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: None,
        direction: Direction::SendRecv,
        remote_ip: "127.0.0.1".parse().expect("ip"),
        remote_port: 4000,
        rtcp: RtcpTarget::NextPort,
        srtp,
    }
}

fn keys(remote: u8, local: u8) -> SrtpKeys {
    SrtpKeys {
        suite: SrtpSuite::Aes128Sha1_80,
        tag: 1,
        remote: vec![remote; SrtpSuite::KEY_SALT_LEN],
        local: vec![local; SrtpSuite::KEY_SALT_LEN],
    }
}

/// A caller end and a server end; each step the caller's packet reaches the server, which
/// ticks and sends its own.
fn bench_call(
    c: &mut Criterion,
    name: &str,
    caller_keys: Option<SrtpKeys>,
    server_keys: Option<SrtpKeys>,
) {
    let mut caller =
        MediaSession::new(negotiated(caller_keys), Ssrc(1), 1, 1, 60_000, 0).expect("caller");
    let mut server =
        MediaSession::new(negotiated(server_keys), Ssrc(2), 1, 1, 60_000, 0).expect("server");
    let from: SocketAddr = "127.0.0.1:5555".parse().expect("addr");
    let voice: Vec<i16> = (0..160).map(|n| ((n * 37) % 4000) as i16 - 2000).collect();
    let mut now = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            now += 20;
            caller.queue_audio(voice.clone());
            let Some((_, packet)) = caller.tick(now).rtp else {
                return;
            };
            server.handle_rtp(from, &packet, now);
            server.queue_audio(voice.clone());
            black_box(server.tick(now));
        })
    });
}

fn srtp(c: &mut Criterion) {
    bench_call(c, "media step: plain RTP (caller + server)", None, None);
    bench_call(
        c,
        "media step: SRTP (caller + server)",
        Some(keys(2, 1)),
        Some(keys(1, 2)),
    );
}

criterion_group!(benches, srtp);
criterion_main!(benches);
