//! One call's media: RTP in through the jitter buffer to PCM frames, PCM frames out as paced
//! RTP, DTMF from telephone-events or in-band tones, RTCP reports, and symmetric RTP.
//! The codecs, the jitter buffer, RTP/RTCP and the counters are `hotline-media`'s, shared with
//! the web phone; this module is the phone line's use of them: the SDP's payload types and
//! direction, latching, DTMF and the RTCP schedule.
//!
//! Two rates are kept apart: frames are 20 ms at the codec's PCM rate
//! ([`Codec::pcm_rate_hz`]: 8 kHz G.711, 16 kHz G.722 and Opus), while RTP timestamps advance by
//! the codec's RTP clock ([`Codec::rtp_clock_hz`]: 160 per frame for G.711 and G.722, 960 for
//! Opus). The jitter buffer maps one onto the other. RTCP goes where the offer asked
//! ([`RtcpTarget`]): RTP port + 1 by default, the `a=rtcp` port, or the RTP port when muxed.
//!
//! Owns: the sending SSRC, sequence number and timestamp (continuous for the whole call, across
//! bot prompts, silence and re-INVITEs), the latched remote address, and the receive side.
//! Sans-IO: the driver calls [`MediaSession::tick`] every 20 ms of a monotonic clock and passes
//! every datagram to [`MediaSession::handle_rtp`]; nothing here reads a clock or a socket.
//!
//! Each tick opens one slot of outgoing audio. A frame already queued fills it at the tick. Else
//! the slot waits for the application's frame, which is usually its answer to the caller frame
//! this tick gave: [`MediaSession::queue_audio`] returns the packet at once, to be sent as soon
//! as the application has made it, not a tick later. A slot still empty at the next tick goes
//! out as silence then, so the stream never stops and the timeline stays one slot a tick; the
//! application's late frames that follow catch up on its next silent frame, which is dropped.
//! Invariants: each tick yields exactly one caller frame; each tick's slot yields at most one
//! RTP packet (none while we do not send); garbage
//! datagrams are counted and dropped without touching the call; the counters
//! ([`MediaSession::counters`]) cover the whole call, across re-INVITEs and codec changes.

use std::collections::VecDeque;
use std::net::SocketAddr;

use hotline_media::codec::{CodecError, VoiceCodec};
use hotline_media::jitter::JitterStats;
use hotline_media::rtp::{self, RtpPacket, SendStats, Ssrc};
use hotline_media::{MediaCounters, Playout, ReceiveStream};

use crate::dtmf::{TelephoneEventReceiver, ToneDetector};
use crate::sdp::{Negotiated, RtcpTarget, SrtpKeys, SrtpSuite};

#[cfg(doc)]
use crate::sdp::Codec;

/// The SDP's codec is the media layer's codec under its SDP name. This bridge stands until
/// `sdp::Codec` becomes a re-export of [`hotline_media::Codec`] (one enum for both); the
/// compiler then flags this impl as overlapping, and it is simply deleted.
/// The packetisation interval we send and tick at.
pub const PTIME_MS: u32 = 20;

/// Something the caller's media did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF key, from a telephone-event or an in-band tone.
    Dtmf(char),
    /// No RTP arrived for the configured timeout while the caller should be sending.
    Timeout,
    /// The remote address changed (symmetric RTP latched onto the packets' source).
    Latched(SocketAddr),
}

/// One tick's result.
#[derive(Debug)]
pub struct TickOutput {
    /// The caller's next 20 ms at the codec's PCM rate.
    pub caller_pcm: Vec<i16>,
    pub playout: Playout,
    /// The RTP packet to send now, and where.
    pub rtp: Option<(SocketAddr, Vec<u8>)>,
}

/// Media could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("SRTP: {0}")]
    Srtp(String),
}

/// A call's SRTP: the SDES keys, the context that decrypts what the peer sends and the one
/// that encrypts what we send (each covers SRTP and SRTCP).
struct Srtp {
    keys: SrtpKeys,
    inbound: rtc_srtp::context::Context,
    outbound: rtc_srtp::context::Context,
}

impl Srtp {
    fn new(keys: &SrtpKeys) -> Result<Self, MediaError> {
        let provider =
            rtc_srtp::crypto::default_provider().map_err(|e| MediaError::Srtp(e.to_string()))?;
        let profile = match keys.suite {
            SrtpSuite::Aes128Sha1_80 => {
                rtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80
            }
            SrtpSuite::Aes128Sha1_32 => {
                rtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_32
            }
        };
        let context = |key_salt: &[u8]| {
            if key_salt.len() != SrtpSuite::KEY_SALT_LEN {
                return Err(MediaError::Srtp("a key and salt must be 30 bytes".into()));
            }
            rtc_srtp::context::Context::new(
                &key_salt[..16],
                &key_salt[16..],
                profile,
                None,
                None,
                provider.crypto(),
            )
            .map_err(|e| MediaError::Srtp(e.to_string()))
        };
        Ok(Self {
            inbound: context(&keys.remote)?,
            outbound: context(&keys.local)?,
            keys: keys.clone(),
        })
    }
}

/// The sans-IO media state of one call.
pub struct MediaSession {
    negotiated: Negotiated,
    codec: VoiceCodec,
    receive: ReceiveStream,
    remote: SocketAddr,
    /// The RTP address the SDP named last (not `0.0.0.0`); a re-INVITE that names the same one
    /// keeps the latched address.
    offered: SocketAddr,
    latched: bool,
    ssrc: Ssrc,
    sequence: u16,
    timestamp: u32,
    first_packet: bool,
    sent: SendStats,
    telephone_events: TelephoneEventReceiver,
    tones: Option<ToneDetector>,
    outbound: VecDeque<Vec<i16>>,
    /// This tick's slot of outgoing audio waits for the application's frame.
    slot_open: bool,
    events: VecDeque<MediaEvent>,
    last_rtp_ms: u64,
    rtp_timeout_ms: u64,
    timed_out: bool,
    next_rtcp_ms: u64,
    cname: String,
    /// What only this session counts (packets out, RTCP, foreign and garbage datagrams); the
    /// receive side counts the rest.
    counters: MediaCounters,
    scratch: Vec<u8>,
    /// SRTP, when the call negotiated it.
    srtp: Option<Srtp>,
}

impl MediaSession {
    /// Starts media for a negotiated stream. `ssrc` and `initial_sequence`/`initial_timestamp`
    /// are the caller's random choices (RFC 3550 wants them random).
    pub fn new(
        negotiated: Negotiated,
        ssrc: Ssrc,
        initial_sequence: u16,
        initial_timestamp: u32,
        rtp_timeout_ms: u64,
        now_ms: u64,
    ) -> Result<Self, MediaError> {
        let codec = VoiceCodec::new(negotiated.codec)?;
        let srtp = negotiated.srtp.as_ref().map(Srtp::new).transpose()?;
        let tones = negotiated
            .telephone_event_pt
            .is_none()
            .then(|| ToneDetector::new(negotiated.codec.pcm_rate_hz()));
        let receive = ReceiveStream::new(negotiated.codec);
        Ok(Self {
            remote: SocketAddr::new(negotiated.remote_ip, negotiated.remote_port),
            offered: SocketAddr::new(negotiated.remote_ip, negotiated.remote_port),
            negotiated,
            codec,
            receive,
            latched: false,
            ssrc,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            first_packet: true,
            sent: SendStats::default(),
            telephone_events: TelephoneEventReceiver::default(),
            tones,
            outbound: VecDeque::new(),
            slot_open: false,
            events: VecDeque::new(),
            last_rtp_ms: now_ms,
            rtp_timeout_ms,
            timed_out: false,
            next_rtcp_ms: now_ms + 5_000,
            cname: format!("hotline-{:08x}", ssrc.0),
            srtp,
            counters: MediaCounters::default(),
            scratch: Vec::with_capacity(512),
        })
    }

    /// PCM samples in one 20 ms frame at the codec's rate.
    pub fn frame_samples(&self) -> usize {
        (self.negotiated.codec.pcm_rate_hz() * PTIME_MS / 1000) as usize
    }

    /// The negotiated stream.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Where RTP goes now.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The call's media counters so far.
    pub fn counters(&self) -> MediaCounters {
        let received = self.receive.counters();
        MediaCounters {
            packets_out: self.counters.packets_out,
            rtcp_in: self.counters.rtcp_in,
            dropped_malformed: received.dropped_malformed + self.counters.dropped_malformed,
            dropped_foreign: self.counters.dropped_foreign,
            encode_errors: self.counters.encode_errors,
            ..received
        }
    }

    /// The jitter buffer's detailed counters (depth skips, restarts, codec concealment).
    pub fn jitter_stats(&self) -> JitterStats {
        self.receive.jitter().stats()
    }

    /// Applies a re-INVITE's outcome. The SSRC, sequence and timestamp carry on; a codec change
    /// resets the receive side.
    pub fn update(&mut self, negotiated: Negotiated) -> Result<(), MediaError> {
        let address = SocketAddr::new(negotiated.remote_ip, negotiated.remote_port);
        // New keys (or none) start new contexts; the same keys keep their replay state.
        if negotiated.srtp.as_ref() != self.srtp.as_ref().map(|s| &s.keys) {
            self.srtp = negotiated.srtp.as_ref().map(Srtp::new).transpose()?;
        }
        if negotiated.codec != self.negotiated.codec {
            self.codec = VoiceCodec::new(negotiated.codec)?;
            self.receive.set_codec(negotiated.codec);
            self.outbound.clear();
        }
        self.tones = negotiated
            .telephone_event_pt
            .is_none()
            .then(|| ToneDetector::new(negotiated.codec.pcm_rate_hz()));
        // Only a new SDP address moves RTP; the same one again (hold, unhold, session refresh)
        // keeps the address symmetric RTP latched onto, which may be a NAT's.
        if address != self.offered && !address.ip().is_unspecified() {
            self.offered = address;
            self.remote = address;
            self.latched = false;
        }
        self.negotiated = negotiated;
        Ok(())
    }

    /// Queues one frame of outbound PCM (at the codec's rate). When this tick's slot waits
    /// for it, the frame leaves now: the packet to send at once, and where. A silent frame
    /// that would wait for a later tick is dropped: the application answers one frame a tick,
    /// so a frame that finds no slot open means it fell behind (a tick it missed went out as
    /// silence, and its late answers come two in one tick), and dropping silence catches up
    /// without cutting a word; else every later frame would leave a tick late.
    pub fn queue_audio(&mut self, pcm: Vec<i16>) -> Option<(SocketAddr, Vec<u8>)> {
        if !self.slot_open && pcm.iter().all(|&s| s == 0) {
            return None;
        }
        // Keep at most a second queued: a stalled producer must not grow memory.
        if self.outbound.len() >= 50 {
            self.outbound.pop_front();
        }
        self.outbound.push_back(pcm);
        if !self.slot_open {
            return None;
        }
        self.slot_open = false;
        self.fill_slot()
    }

    /// Drops queued outbound audio (a barge-in flush).
    pub fn flush_audio(&mut self) {
        self.outbound.clear();
    }

    /// Takes the next media event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// A received packet as plain RTP (or RTCP): decrypted and authenticated on an SRTP call.
    /// `None` (counted as malformed) when it is not authentic, or a replay.
    fn unprotect<'a>(&mut self, data: &'a [u8], rtcp: bool) -> Option<std::borrow::Cow<'a, [u8]>> {
        let Some(srtp) = self.srtp.as_mut() else {
            return Some(std::borrow::Cow::Borrowed(data));
        };
        let plain = if rtcp {
            srtp.inbound.decrypt_rtcp(data)
        } else {
            srtp.inbound.decrypt_rtp(data)
        };
        match plain {
            Ok(plain) => Some(std::borrow::Cow::Owned(plain.to_vec())),
            Err(_) => {
                self.counters.dropped_malformed += 1;
                None
            }
        }
    }

    /// Handles one datagram from the RTP port.
    pub fn handle_rtp(&mut self, from: SocketAddr, data: &[u8], now_ms: u64) {
        if rtp::is_rtcp(data) {
            self.handle_rtcp(data, now_ms);
            return;
        }
        let Some(data) = self.unprotect(data, false) else {
            return;
        };
        let Ok(packet) = RtpPacket::parse(&data) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let is_audio = packet.payload_type == self.negotiated.payload_type;
        let is_event = Some(packet.payload_type) == self.negotiated.telephone_event_pt;
        if !is_audio && !is_event {
            self.counters.dropped_malformed += 1;
            return;
        }
        // Symmetric RTP: answer to where the caller's media comes from.
        if from != self.remote {
            if self.latched && now_ms.saturating_sub(self.last_rtp_ms) < 2_000 {
                self.counters.dropped_foreign += 1;
                return;
            }
            self.remote = from;
            self.events.push_back(MediaEvent::Latched(from));
        }
        self.latched = true;
        self.last_rtp_ms = now_ms;
        self.timed_out = false;
        if is_event {
            // Telephone-events share the stream's sequence numbers: count them for loss.
            self.receive.count(&packet, now_ms);
            if let Some(digit) = self
                .telephone_events
                .on_packet(packet.timestamp, packet.payload)
            {
                self.events.push_back(MediaEvent::Dtmf(digit));
            }
            return;
        }
        // Decoded when its turn to play comes, so the decoder sees the timeline in order; a
        // payload whose duration is unknown is counted as malformed there.
        self.receive.receive(&packet, now_ms, &self.codec);
    }

    /// Handles one RTCP datagram (from the RTCP port or muxed on the RTP port).
    pub fn handle_rtcp(&mut self, data: &[u8], now_ms: u64) {
        let Some(data) = self.unprotect(data, true) else {
            return;
        };
        let summary = rtp::read_rtcp(&data);
        if summary == rtp::RtcpSummary::default() {
            self.counters.dropped_malformed += 1;
            return;
        }
        self.counters.rtcp_in += 1;
        if let Some(ntp) = summary.sender_report_ntp_middle {
            self.receive.rtcp_stats_mut().on_sender_report(ntp, now_ms);
        }
    }

    /// One 20 ms step: the caller's next frame out, and a packet of ours: the last tick's slot
    /// as silence when no frame came for it, else this tick's when a frame waits (see the
    /// module docs).
    pub fn tick(&mut self, now_ms: u64) -> TickOutput {
        // The application missed the last slot (it goes out as silence: a queued frame would
        // have filled it, and this tick's slot waits as well), or a frame waits for this one.
        let rtp = if self.slot_open || !self.outbound.is_empty() {
            self.fill_slot()
        } else {
            self.slot_open = true;
            None
        };
        let n = self.frame_samples();
        let mut caller_pcm = vec![0i16; n];
        let playout = self.receive.pop(&mut caller_pcm, &mut self.codec);
        if let Some(detector) = self.tones.as_mut() {
            if let Some(digit) = detector.on_block(&caller_pcm) {
                self.events.push_back(MediaEvent::Dtmf(digit));
            }
        }
        let caller_sends = matches!(
            self.negotiated.direction,
            crate::sdp::Direction::SendRecv | crate::sdp::Direction::RecvOnly
        );
        if caller_sends
            && !self.timed_out
            && now_ms.saturating_sub(self.last_rtp_ms) > self.rtp_timeout_ms
        {
            self.timed_out = true;
            self.events.push_back(MediaEvent::Timeout);
        }
        TickOutput {
            caller_pcm,
            playout,
            rtp,
        }
    }

    /// Fills one slot of outgoing audio with the oldest queued frame (silence when none) and
    /// advances the timeline: the packet, unless we do not send.
    fn fill_slot(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let n = self.frame_samples();
        let mut pcm = self.outbound.pop_front().unwrap_or_default();
        pcm.resize(n, 0);
        let mut payload = Vec::new();
        let sending = self.negotiated.direction.peer_receives_from_us();
        if sending {
            payload.reserve(n);
            if self.codec.encode(&pcm, &mut payload).is_err() {
                self.counters.encode_errors += 1;
            }
        }
        let rtp = (sending && !payload.is_empty()).then(|| {
            let packet = RtpPacket {
                marker: self.first_packet,
                payload_type: self.negotiated.payload_type,
                sequence: self.sequence,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
                payload: &payload,
            };
            let mut out = Vec::with_capacity(12 + payload.len());
            packet.write(&mut out);
            if let Some(srtp) = self.srtp.as_mut() {
                match srtp.outbound.encrypt_rtp(&out) {
                    Ok(protected) => out = protected.to_vec(),
                    Err(_) => self.counters.encode_errors += 1,
                }
            }
            self.first_packet = false;
            self.sequence = self.sequence.wrapping_add(1);
            self.sent.packets = self.sent.packets.wrapping_add(1);
            self.sent.octets = self.sent.octets.wrapping_add(payload.len() as u32);
            self.sent.last_rtp_timestamp = self.timestamp;
            self.counters.packets_out += 1;
            (self.remote, out)
        });
        // The timeline advances whether or not we send (hold keeps continuity too).
        self.timestamp = self
            .timestamp
            .wrapping_add(self.negotiated.codec.rtp_clock_hz() * PTIME_MS / 1000);
        rtp
    }

    /// An RTCP report when one is due (every 5 s); `ntp` is the wall-clock NTP timestamp.
    pub fn poll_rtcp(&mut self, now_ms: u64, ntp: u64) -> Option<(SocketAddr, Vec<u8>)> {
        if now_ms < self.next_rtcp_ms {
            return None;
        }
        self.next_rtcp_ms = now_ms + 5_000;
        rtp::write_report(
            self.ssrc,
            &self.sent,
            self.receive.rtcp_stats_mut(),
            ntp,
            now_ms,
            &self.cname,
            &mut self.scratch,
        );
        let report = match self.srtp.as_mut() {
            None => self.scratch.clone(),
            Some(srtp) => srtp.outbound.encrypt_rtcp(&self.scratch).ok()?.to_vec(),
        };
        Some((self.rtcp_destination(), report))
    }

    /// Where RTCP goes: the offer's `a=rtcp` port (on its address, else the RTP peer's), the
    /// RTP address itself when muxed, else the RTP port + 1. Follows a latched RTP address.
    pub fn rtcp_destination(&self) -> SocketAddr {
        match self.negotiated.rtcp {
            RtcpTarget::Mux => self.remote,
            RtcpTarget::Port { port, address } => {
                SocketAddr::new(address.unwrap_or(self.remote.ip()), port)
            }
            RtcpTarget::NextPort => {
                SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
            }
        }
    }

    /// Whether RTCP shares the RTP port (`a=rtcp-mux`): send it from the RTP socket.
    pub fn rtcp_muxed(&self) -> bool {
        self.negotiated.rtcp == RtcpTarget::Mux
    }
}

impl crate::sdp::Direction {
    /// Whether we send media in this (our) direction.
    pub fn peer_receives_from_us(self) -> bool {
        matches!(
            self,
            crate::sdp::Direction::SendRecv | crate::sdp::Direction::SendOnly
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::{Codec, Direction};
    use hotline_media::codec::g711::ulaw_encode as linear_to_ulaw;

    fn negotiated(te: Option<u8>) -> Negotiated {
        Negotiated {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: te,
            direction: Direction::SendRecv,
            remote_ip: "127.0.0.1".parse().unwrap(),
            remote_port: 4000,
            rtcp: RtcpTarget::NextPort,
            srtp: None,
        }
    }

    fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        RtpPacket {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(77),
            payload,
        }
        .write(&mut out);
        out
    }

    #[test]
    fn audio_flows_both_ways_with_continuous_timestamps() {
        let mut media =
            MediaSession::new(negotiated(Some(101)), Ssrc(1), 100, 1000, 30_000, 0).unwrap();
        let caller: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let voice = vec![linear_to_ulaw(5000); 160];
        for i in 0..5u16 {
            media.handle_rtp(caller, &packet(0, i, i as u32 * 160, &voice), i as u64 * 20);
        }
        assert_eq!(media.poll_event(), Some(MediaEvent::Latched(caller)));
        media.queue_audio(vec![3000; 160]);
        let mut stamps = Vec::new();
        let mut heard = 0;
        for i in 0..6u64 {
            let out = media.tick(100 + i * 20);
            if out.playout == Playout::Audio {
                heard += 1;
                assert!(out.caller_pcm.iter().all(|&s| s > 4000));
            }
            // The queued frame leaves at the first tick; then the application answers each
            // tick with silence, which leaves at once.
            let (to, bytes) = out.rtp.or_else(|| media.queue_audio(vec![0; 160])).unwrap();
            assert_eq!(to, caller, "symmetric RTP");
            let p = RtpPacket::parse(&bytes).unwrap();
            assert_eq!(p.ssrc, Ssrc(1));
            assert_eq!(p.sequence, 100 + i as u16);
            stamps.push(p.timestamp);
            if i == 0 {
                assert!(p.marker);
                assert!(p.payload.iter().all(|&b| b == linear_to_ulaw(3000)));
            } else {
                assert!(p.payload.iter().all(|&b| b == 0xff), "comfort silence");
            }
        }
        assert!(heard >= 4);
        assert_eq!(stamps, (0..6).map(|i| 1000 + i * 160).collect::<Vec<u32>>());
    }

    #[test]
    fn srtp_carries_audio_between_two_ends_and_drops_what_is_not_authentic() {
        let a_key: Vec<u8> = (0..30).collect();
        let b_key: Vec<u8> = (100..130).collect();
        let keys = |remote: &[u8], local: &[u8]| crate::sdp::SrtpKeys {
            suite: SrtpSuite::Aes128Sha1_80,
            tag: 1,
            remote: remote.to_vec(),
            local: local.to_vec(),
        };
        let secure = |k| Negotiated {
            srtp: Some(k),
            ..negotiated(None)
        };
        let mut a =
            MediaSession::new(secure(keys(&b_key, &a_key)), Ssrc(1), 1, 1, 30_000, 0).unwrap();
        let mut b =
            MediaSession::new(secure(keys(&a_key, &b_key)), Ssrc(2), 1, 1, 30_000, 0).unwrap();
        let from: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let mut heard = 0;
        for i in 0..10u64 {
            a.queue_audio(vec![6000; 160]);
            let (_, bytes) = a.tick(i * 20).rtp.unwrap();
            let plain = RtpPacket::parse(&bytes).unwrap();
            assert!(
                plain.payload.iter().any(|&b| b != linear_to_ulaw(6000)),
                "the payload is encrypted"
            );
            assert_eq!(plain.payload.len(), 160 + 10, "with the 80-bit tag");
            b.handle_rtp(from, &bytes, i * 20);
            if b.tick(i * 20 + 10).caller_pcm.iter().all(|&s| s > 5000) {
                heard += 1;
            }
        }
        assert!(
            heard >= 5,
            "the other end decrypts the audio ({heard} frames)"
        );
        assert_eq!(b.counters().dropped_malformed, 0);
        // A packet with a flipped bit, or a plain one, is not authentic.
        a.queue_audio(vec![6000; 160]);
        let (_, mut bytes) = a.tick(400).rtp.unwrap();
        bytes[20] ^= 1;
        b.handle_rtp(from, &bytes, 400);
        b.handle_rtp(from, &packet(0, 50, 50 * 160, &[0xff; 160]), 420);
        assert_eq!(b.counters().dropped_malformed, 2);
        // SRTCP both ways.
        let (_, report) = a.poll_rtcp(6_000, 0).unwrap();
        b.handle_rtcp(&report, 6_000);
        assert_eq!(b.counters().rtcp_in, 1);
    }

    #[test]
    fn garbage_and_foreign_packets_are_dropped() {
        let mut media = MediaSession::new(negotiated(None), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        let caller: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let intruder: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        media.handle_rtp(caller, &packet(0, 1, 160, &[0xff; 160]), 0);
        for junk in [
            &b"hello"[..],
            &[0u8; 40],
            &[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1],
            &[0xbf; 12],
        ] {
            media.handle_rtp(caller, junk, 10);
        }
        media.handle_rtp(intruder, &packet(0, 2, 320, &[0; 160]), 20);
        let stats = media.counters();
        assert_eq!(stats.packets_in, 1);
        assert_eq!(stats.dropped_malformed, 4);
        assert_eq!(stats.dropped_foreign, 1);
        assert_eq!(media.remote(), caller);
    }

    #[test]
    fn telephone_events_become_dtmf_and_inband_is_off() {
        let mut media = MediaSession::new(negotiated(Some(101)), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        let caller: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        for (seq, end) in [(1u16, 0u8), (2, 0), (3, 0x80), (4, 0x80), (5, 0x80)] {
            media.handle_rtp(
                caller,
                &packet(101, seq, 8000, &[9, end | 10, 0, 160]),
                seq as u64 * 20,
            );
        }
        let digits: Vec<MediaEvent> = std::iter::from_fn(|| media.poll_event())
            .filter(|e| matches!(e, MediaEvent::Dtmf(_)))
            .collect();
        assert_eq!(digits, vec![MediaEvent::Dtmf('9')]);
    }

    #[test]
    fn silence_from_the_caller_times_out_once() {
        let mut media = MediaSession::new(negotiated(Some(101)), Ssrc(1), 0, 0, 1_000, 0).unwrap();
        for i in 0..100u64 {
            media.tick(i * 20);
        }
        let timeouts = std::iter::from_fn(|| media.poll_event())
            .filter(|e| *e == MediaEvent::Timeout)
            .count();
        assert_eq!(timeouts, 1);
    }

    #[test]
    fn hold_stops_sending_but_keeps_the_timeline() {
        let mut media = MediaSession::new(negotiated(None), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        assert!(media.tick(0).rtp.is_none(), "the slot waits for our frame");
        assert!(media.queue_audio(vec![0; 160]).is_some());
        let mut held = negotiated(None);
        held.direction = Direction::Inactive;
        media.update(held).unwrap();
        assert!(media.tick(20).rtp.is_none());
        assert!(media.queue_audio(vec![0; 160]).is_none(), "held: not sent");
        media.update(negotiated(None)).unwrap();
        assert!(media.tick(40).rtp.is_none());
        let (_, bytes) = media.queue_audio(vec![0; 160]).unwrap();
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!((p.sequence, p.timestamp), (1, 320));
    }

    /// Our frame for a tick leaves the moment the application makes it, not at the next tick;
    /// a tick the application misses goes out as silence at the next one, and the stream
    /// keeps one packet a tick on a continuous timeline.
    #[test]
    fn a_frame_leaves_as_soon_as_it_comes_and_a_missed_tick_is_silence() {
        let mut media = MediaSession::new(negotiated(None), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        let parse = |rtp: Option<(SocketAddr, Vec<u8>)>| {
            let (_, bytes) = rtp.expect("a packet");
            let p = RtpPacket::parse(&bytes).unwrap();
            (p.sequence, p.timestamp, p.payload[0])
        };
        let voice = linear_to_ulaw(3000);
        assert!(media.tick(0).rtp.is_none());
        assert_eq!(parse(media.queue_audio(vec![3000; 160])), (0, 0, voice));
        // The application misses the tick at 20 ms: its slot goes out as silence at 40 ms.
        assert!(media.tick(20).rtp.is_none());
        assert_eq!(parse(media.tick(40).rtp), (1, 160, 0xff));
        // The frame for 20 ms comes late: it fills the slot of 40 ms at once.
        assert_eq!(parse(media.queue_audio(vec![3000; 160])), (2, 320, voice));
        // Its frame for 40 ms comes in the same tick: it waits for the tick of 60 ms.
        assert!(media.queue_audio(vec![3000; 160]).is_none());
        assert_eq!(parse(media.tick(60).rtp), (3, 480, voice));
        // Still one behind: the frame for 60 ms waits too, until a silent frame is dropped
        // in its place.
        assert!(media.queue_audio(vec![3000; 160]).is_none());
        assert_eq!(parse(media.tick(80).rtp), (4, 640, voice));
        assert!(media.queue_audio(vec![0; 160]).is_none(), "silence dropped");
        // Caught up: the next frame leaves as it comes.
        assert!(media.tick(100).rtp.is_none());
        assert_eq!(parse(media.queue_audio(vec![0; 160])), (5, 800, 0xff));
    }

    #[test]
    fn rtcp_reports_are_sent_every_five_seconds() {
        let mut media = MediaSession::new(negotiated(None), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        assert!(media.poll_rtcp(1_000, 0).is_none());
        media.tick(0);
        assert!(media.queue_audio(vec![0; 160]).is_some());
        let (to, report) = media.poll_rtcp(5_000, 1).unwrap();
        assert_eq!(to.port(), 4001);
        assert_eq!(report[1], 200, "a sender report once we have sent");
        assert!(media.poll_rtcp(6_000, 1).is_none());
    }

    fn wideband(codec: Codec, payload_type: u8) -> Negotiated {
        Negotiated {
            codec,
            payload_type,
            ..negotiated(Some(101))
        }
    }

    fn voice_16k(samples: usize, offset: usize) -> Vec<i16> {
        (offset..offset + samples)
            .map(|n| {
                let t = n as f64 / 16_000.0;
                (6_000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                    + 3_000.0 * (2.0 * std::f64::consts::PI * 5_000.0 * t).sin())
                    as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    /// G.722 and Opus: 20 ms frames at 16 kHz both ways, RTP timestamps on the codec's clock
    /// (160 per packet for G.722, 960 for Opus), and two sessions understand each other.
    #[test]
    fn wideband_codecs_carry_16_khz_frames_on_their_rtp_clocks() {
        for (codec, pt, ts_step, max_bytes) in [
            (Codec::G722, 9u8, 160u32, 160usize),
            (Codec::Opus, 111, 960, 400),
        ] {
            let mut caller =
                MediaSession::new(wideband(codec, pt), Ssrc(7), 0, 0, 30_000, 0).unwrap();
            let mut bot = MediaSession::new(wideband(codec, pt), Ssrc(1), 0, 5, 30_000, 0).unwrap();
            assert_eq!(bot.frame_samples(), 320, "{codec:?}");
            let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
            let mut stamps = Vec::new();
            let mut heard = Vec::new();
            for i in 0..50u64 {
                caller.queue_audio(voice_16k(320, i as usize * 320));
                let (_, bytes) = caller.tick(i * 20).rtp.unwrap();
                let p = RtpPacket::parse(&bytes).unwrap();
                assert_eq!(p.payload_type, pt);
                assert!(
                    p.payload.len() <= max_bytes,
                    "{codec:?}: {}",
                    p.payload.len()
                );
                stamps.push(p.timestamp);
                bot.handle_rtp(from, &bytes, i * 20);
                let out = bot.tick(i * 20 + 10);
                assert_eq!(out.caller_pcm.len(), 320);
                let (_, ours) = out.rtp.or_else(|| bot.queue_audio(vec![0; 320])).unwrap();
                assert_eq!(
                    RtpPacket::parse(&ours).unwrap().timestamp,
                    5 + i as u32 * ts_step
                );
                if out.playout == Playout::Audio {
                    heard.extend(out.caller_pcm);
                }
            }
            assert_eq!(stamps, (0..50).map(|i| i * ts_step).collect::<Vec<u32>>());
            assert!(
                heard.len() >= 40 * 320,
                "{codec:?}: {} samples",
                heard.len()
            );
            let level = rms(&heard[3_200..]) / rms(&voice_16k(16_000, 0));
            assert!(
                level > 0.7 && level < 1.3,
                "{codec:?}: level ratio {level:.2}"
            );
            assert_eq!(bot.counters().dropped_malformed, 0);
        }
    }

    #[test]
    fn a_malformed_opus_payload_is_garbage_not_a_panic() {
        let mut media =
            MediaSession::new(wideband(Codec::Opus, 111), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        let caller: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        // TOC code 3 with a frame count of zero cannot be placed on the timeline.
        media.handle_rtp(caller, &packet(111, 1, 960, &[0x03, 0x00]), 0);
        media.handle_rtp(caller, &packet(111, 2, 1920, &[]), 0);
        assert_eq!(media.counters().dropped_malformed, 2);
        for i in 0..10 {
            assert_eq!(media.tick(i * 20).caller_pcm.len(), 320);
        }
    }

    #[test]
    fn rtcp_goes_where_the_offer_asked() {
        let mut asked = negotiated(None);
        asked.rtcp = RtcpTarget::Port {
            port: 4010,
            address: None,
        };
        let mut media = MediaSession::new(asked.clone(), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        media.tick(0);
        let (to, _) = media.poll_rtcp(5_000, 1).unwrap();
        assert_eq!(to, "127.0.0.1:4010".parse::<SocketAddr>().unwrap());
        assert!(!media.rtcp_muxed());
        // The port follows a latched RTP address; an explicit address does not move.
        let nat: SocketAddr = "192.0.2.9:7000".parse().unwrap();
        media.handle_rtp(nat, &packet(0, 1, 160, &[0xff; 160]), 5_100);
        assert_eq!(media.rtcp_destination(), "192.0.2.9:4010".parse().unwrap());
        asked.rtcp = RtcpTarget::Port {
            port: 9,
            address: Some("198.51.100.1".parse().unwrap()),
        };
        media.update(asked).unwrap();
        assert_eq!(media.rtcp_destination(), "198.51.100.1:9".parse().unwrap());

        let mut muxed = negotiated(None);
        muxed.rtcp = RtcpTarget::Mux;
        let mut media = MediaSession::new(muxed, Ssrc(1), 0, 0, 30_000, 0).unwrap();
        media.tick(0);
        let (to, report) = media.poll_rtcp(5_000, 1).unwrap();
        assert_eq!(to, "127.0.0.1:4000".parse::<SocketAddr>().unwrap());
        assert!(media.rtcp_muxed());
        assert!(
            rtp::is_rtcp(&report),
            "a muxed report is told apart from RTP"
        );
    }

    #[test]
    fn a_reinvite_naming_the_same_address_keeps_the_latched_one() {
        let mut media = MediaSession::new(negotiated(None), Ssrc(1), 0, 0, 30_000, 0).unwrap();
        let nat: SocketAddr = "192.0.2.9:7000".parse().unwrap();
        media.handle_rtp(nat, &packet(0, 1, 160, &[0xff; 160]), 0);
        assert_eq!(media.remote(), nat);
        // Hold (sendonly from the caller, same address), then unhold.
        let mut held = negotiated(None);
        held.direction = Direction::RecvOnly;
        media.update(held).unwrap();
        assert_eq!(media.remote(), nat, "hold keeps the latched address");
        media.update(negotiated(None)).unwrap();
        media.tick(20);
        let (to, _) = media.queue_audio(vec![0; 160]).unwrap();
        assert_eq!(to, nat, "unhold sends to the latched address at once");
        // A re-INVITE that names a new address moves RTP there.
        let mut moved = negotiated(None);
        moved.remote_port = 4100;
        media.update(moved).unwrap();
        assert_eq!(media.remote(), "127.0.0.1:4100".parse().unwrap());
    }
}
