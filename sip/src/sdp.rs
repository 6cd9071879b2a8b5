//! SDP (RFC 4566) parsing and the offer/answer choice (RFC 3264) for one audio stream.
//!
//! Owns: reading a peer's offer, choosing one audio codec by our configured preference order,
//! noticing telephone-event (RFC 4733), the stream direction, where the peer wants RTCP
//! (`a=rtcp`, RFC 3605, and `a=rtcp-mux`, RFC 5761), writing our answer, and for a late offer
//! (an INVITE without SDP) writing our offer and checking the answer that comes in the ACK.
//! Invariants: parsing never panics on any input; an answer always names exactly one audio codec
//! plus telephone-event when the peer offered it; an offer with no common codec is an error (488);
//! we answer `a=rtcp-mux` exactly when the offer had it (we then send RTCP on the RTP port and
//! already take it there); our SDP names our RTCP port with `a=rtcp` whenever it is not the RTP
//! port + 1; an answer to our offer must pick a codec we offered. Opus is answered (and offered)
//! with RFC 7587's `opus/48000/2` and an `a=fmtp` that asks for mono wideband
//! ([`OPUS_ANSWER_FMTP`]). SRTP with SDES keys (RFC 4568): an `RTP/SAVP` offer's first
//! `a=crypto` line with a suite we speak is answered with `RTP/SAVP` and our own key for that
//! suite and tag; an SRTP offer with no such line is refused ([`SdpError::NoCrypto`]). Our own
//! offer (a late offer) is plain RTP.

use std::fmt::Write as _;
use std::net::IpAddr;

/// An audio codec hotline can speak on a phone line: the media layer's one codec list.
pub use hotline_media::Codec;

/// The channel count written in rtpmap (`/2` for Opus, RFC 7587).
fn rtpmap_suffix(codec: Codec) -> String {
    codec
        .rtpmap_channels()
        .map(|n| format!("/{n}"))
        .unwrap_or_default()
}

/// Which way media flows, from the writer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction we answer with: the mirror of the offer's.
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the writer of this direction wants to hear us.
    pub fn peer_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The `a=fmtp` we answer Opus with (RFC 7587 §6.1): we play and capture at most 16 kHz, want
/// mono, and decode in-band FEC, so a sender can spend its bits on wideband speech.
pub const OPUS_ANSWER_FMTP: &str =
    "maxplaybackrate=16000;sprop-maxcapturerate=16000;stereo=0;sprop-stereo=0;useinbandfec=1";

/// Where the peer wants our RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpTarget {
    /// The RTP port + 1 on the RTP address (RFC 3550's default).
    NextPort,
    /// `a=rtcp:<port> [IN IP4 <address>]` (RFC 3605); without an address, the RTP address.
    Port { port: u16, address: Option<IpAddr> },
    /// `a=rtcp-mux` (RFC 5761): on the RTP port itself.
    Mux,
}

/// One payload type offered in an `m=audio` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    pub payload_type: u8,
    /// Encoding name as written (e.g. `PCMU`, `telephone-event`); empty when not given.
    pub encoding: String,
    pub clock_hz: u32,
}

/// An SDES crypto suite hotline speaks (RFC 4568 over RFC 3711's AES counter mode with an
/// HMAC-SHA1 tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`
    Aes128Sha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`
    Aes128Sha1_32,
}

impl SrtpSuite {
    /// A master key (16 bytes) and salt (14 bytes), as `inline:` carries them.
    pub const KEY_SALT_LEN: usize = 30;

    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::Aes128Sha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::Aes128Sha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [SrtpSuite::Aes128Sha1_80, SrtpSuite::Aes128Sha1_32]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One `a=crypto` line of an offer that hotline can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoOffer {
    pub tag: u32,
    pub suite: SrtpSuite,
    /// The master key and salt, [`SrtpSuite::KEY_SALT_LEN`] bytes.
    pub key_salt: Vec<u8>,
}

/// The SDES keys of an SRTP call.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: SrtpSuite,
    /// The `a=crypto` tag we answer.
    pub tag: u32,
    /// The peer's key and salt: what it encrypts with, and we decrypt with.
    pub remote: Vec<u8>,
    /// Our key and salt, sent in our answer: what we encrypt with. Empty from [`negotiate`];
    /// the session gives each call a random one.
    pub local: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// What we use from a session description: the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The connection address for audio (media-level `c=` over session-level).
    pub connection: IpAddr,
    /// The audio port; 0 means the stream is refused.
    pub audio_port: u16,
    /// Payload types in the peer's order.
    pub formats: Vec<PayloadFormat>,
    pub direction: Direction,
    /// `a=ptime`, when given.
    pub ptime_ms: Option<u32>,
    /// The audio stream's `a=rtcp` (port, optional address), when given.
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// Whether the audio stream offered `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// The audio stream is SRTP (`RTP/SAVP` or `RTP/SAVPF`).
    pub secure: bool,
    /// Its `a=crypto` lines hotline can use, in the peer's order (RFC 4568).
    pub crypto: Vec<CryptoOffer>,
}

/// Why a session description was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP: body is not UTF-8")]
    NotText,
    #[error("SDP: line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("SDP: no connection address (c=)")]
    NoConnection,
    #[error("SDP: no audio stream (m=audio)")]
    NoAudio,
    #[error("SDP: no codec in common")]
    NoCommonCodec,
    #[error("SDP: SRTP without a crypto suite we speak (AES_CM_128_HMAC_SHA1_80 or _32)")]
    NoCrypto,
}

impl SessionDescription {
    /// Parses SDP text, keeping the first `m=audio` stream.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut session_connection: Option<IpAddr> = None;
        let mut media_connection: Option<IpAddr> = None;
        let mut audio: Option<(u16, Vec<u8>)> = None;
        let mut in_audio = false;
        let mut seen_audio = false;
        let mut rtpmaps: Vec<(u8, String, u32)> = Vec::new();
        let mut direction = Direction::SendRecv;
        let mut ptime_ms = None;
        let mut rtcp = None;
        let mut rtcp_mux = false;
        let mut secure = false;
        let mut crypto = Vec::new();
        let mut saw_version = false;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let malformed = |message: &str| SdpError::Malformed {
                line: line_no,
                message: message.to_string(),
            };
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' {
                return Err(malformed("expected `<type>=<value>`"));
            }
            let value = &line[2..];
            match bytes[0] {
                b'v' => {
                    if value.trim() != "0" {
                        return Err(malformed("unsupported version"));
                    }
                    saw_version = true;
                }
                b'c' => {
                    let address =
                        parse_connection(value).ok_or_else(|| malformed("bad c= line"))?;
                    if in_audio {
                        media_connection = Some(address);
                    } else if !seen_audio {
                        session_connection = Some(address);
                    }
                }
                b'm' => {
                    let mut parts = value.split_whitespace();
                    let media = parts.next().ok_or_else(|| malformed("empty m= line"))?;
                    let port_text = parts
                        .next()
                        .ok_or_else(|| malformed("m= line without port"))?;
                    let port_text = port_text.split('/').next().unwrap_or(port_text);
                    let port: u16 = port_text.parse().map_err(|_| malformed("bad m= port"))?;
                    let proto = parts
                        .next()
                        .ok_or_else(|| malformed("m= line without protocol"))?;
                    in_audio = false;
                    if media == "audio" && audio.is_none() {
                        if !proto.starts_with("RTP/") {
                            return Err(malformed("audio transport is not RTP"));
                        }
                        let mut pts = Vec::new();
                        for pt in parts {
                            let pt: u8 = pt.parse().map_err(|_| malformed("bad payload type"))?;
                            if pt > 127 {
                                return Err(malformed("payload type above 127"));
                            }
                            pts.push(pt);
                        }
                        if pts.is_empty() {
                            return Err(malformed("m=audio without payload types"));
                        }
                        audio = Some((port, pts));
                        secure = proto.eq_ignore_ascii_case("RTP/SAVP")
                            || proto.eq_ignore_ascii_case("RTP/SAVPF");
                        in_audio = true;
                        seen_audio = true;
                    } else {
                        seen_audio = seen_audio || media == "audio";
                    }
                }
                b'a' if in_audio || !seen_audio => {
                    if let Some(map) = value.strip_prefix("rtpmap:") {
                        if in_audio {
                            rtpmaps.push(parse_rtpmap(map).ok_or_else(|| malformed("bad rtpmap"))?);
                        }
                    } else if let Some(ptime) = value.strip_prefix("ptime:") {
                        ptime_ms = ptime.trim().parse().ok();
                    } else if let Some(attribute) = value.strip_prefix("rtcp:") {
                        if in_audio {
                            rtcp =
                                Some(parse_rtcp(attribute).ok_or_else(|| malformed("bad a=rtcp"))?);
                        }
                    } else if let Some(attribute) = value.strip_prefix("crypto:") {
                        if in_audio {
                            crypto.extend(parse_crypto(attribute));
                        }
                    } else if value.trim() == "rtcp-mux" {
                        rtcp_mux = rtcp_mux || in_audio;
                    } else {
                        match value.trim() {
                            "sendrecv" => direction = Direction::SendRecv,
                            "sendonly" => direction = Direction::SendOnly,
                            "recvonly" => direction = Direction::RecvOnly,
                            "inactive" => direction = Direction::Inactive,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SdpError::Malformed {
                line: 1,
                message: "missing v=0".into(),
            });
        }
        let (audio_port, pts) = audio.ok_or(SdpError::NoAudio)?;
        let connection = media_connection
            .or(session_connection)
            .ok_or(SdpError::NoConnection)?;
        // RFC 3264 hold: c=0.0.0.0 means the same as sendonly/inactive toward us.
        let direction = if connection.is_unspecified() && direction == Direction::SendRecv {
            Direction::SendOnly
        } else {
            direction
        };
        let formats = pts
            .into_iter()
            .map(|pt| match rtpmaps.iter().find(|(p, _, _)| *p == pt) {
                Some((_, name, clock)) => PayloadFormat {
                    payload_type: pt,
                    encoding: name.clone(),
                    clock_hz: *clock,
                },
                None => static_format(pt),
            })
            .collect();
        Ok(SessionDescription {
            connection,
            audio_port,
            formats,
            direction,
            ptime_ms,
            rtcp,
            rtcp_mux,
            secure,
            crypto,
        })
    }
}

/// `a=crypto:<tag> <suite> inline:<base64 key||salt>[|lifetime][|MKI:length]` (RFC 4568 9.1);
/// `None` for a suite we do not speak, session parameters, or a key of the wrong length.
fn parse_crypto(value: &str) -> Option<CryptoOffer> {
    use base64::Engine;
    let mut parts = value.split_whitespace();
    let tag: u32 = parts.next()?.parse().ok()?;
    let suite = SrtpSuite::from_name(parts.next()?)?;
    let key_params = parts.next()?;
    if parts.next().is_some() {
        // Session parameters (UNENCRYPTED_SRTP, KDR, ...) change the protection: not used.
        return None;
    }
    let inline = key_params.split(';').next()?.strip_prefix("inline:")?;
    let encoded = inline.split('|').next()?;
    let key_salt = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    (key_salt.len() == SrtpSuite::KEY_SALT_LEN).then_some(CryptoOffer {
        tag,
        suite,
        key_salt,
    })
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605 §2.1).
fn parse_rtcp(value: &str) -> Option<(u16, Option<IpAddr>)> {
    let value = value.trim();
    let (port, rest) = match value.split_once(char::is_whitespace) {
        Some((port, rest)) => (port, Some(rest)),
        None => (value, None),
    };
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let address = match rest {
        Some(rest) => Some(parse_connection(rest)?),
        None => None,
    };
    Some((port, address))
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split_whitespace();
    if parts.next()? != "IN" {
        return None;
    }
    let family = parts.next()?;
    let address = parts.next()?;
    let address = address.split('/').next()?;
    let ip: IpAddr = address.parse().ok()?;
    match (family, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

fn parse_rtpmap(value: &str) -> Option<(u8, String, u32)> {
    let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
    let pt: u8 = pt.parse().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.to_string();
    let clock: u32 = parts.next()?.parse().ok()?;
    if name.is_empty() || clock == 0 {
        return None;
    }
    Some((pt, name, clock))
}

fn static_format(pt: u8) -> PayloadFormat {
    let (encoding, clock_hz) = match pt {
        0 => ("PCMU", 8_000),
        8 => ("PCMA", 8_000),
        9 => ("G722", 8_000),
        _ => ("", 0),
    };
    PayloadFormat {
        payload_type: pt,
        encoding: encoding.to_string(),
        clock_hz,
    }
}

/// The outcome of offer/answer: what both sides will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type the peer uses for the codec.
    pub payload_type: u8,
    /// The telephone-event payload type, when the peer offered one at 8 kHz (or the codec clock).
    pub telephone_event_pt: Option<u8>,
    /// Our direction in the answer.
    pub direction: Direction,
    /// The peer's RTP address from the offer.
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    /// Where our RTCP goes (and whether we answer `a=rtcp-mux`).
    pub rtcp: RtcpTarget,
    /// SRTP with SDES keys, when the offer was `RTP/SAVP`.
    pub srtp: Option<SrtpKeys>,
}

/// Chooses a codec: the first in `preference` that the peer offered; for an SRTP offer, also
/// the first of its crypto suites that we speak (our own key is left for the session to fill).
pub fn negotiate(offer: &SessionDescription, preference: &[Codec]) -> Result<Negotiated, SdpError> {
    if offer.audio_port == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    let srtp = match offer.secure {
        false => None,
        true => {
            let chosen = offer.crypto.first().ok_or(SdpError::NoCrypto)?;
            Some(SrtpKeys {
                suite: chosen.suite,
                tag: chosen.tag,
                remote: chosen.key_salt.clone(),
                local: Vec::new(),
            })
        }
    };
    for codec in preference {
        let found = offer.formats.iter().find(|f| {
            if f.encoding.is_empty() {
                Some(f.payload_type) == codec.static_payload_type()
            } else {
                f.encoding.eq_ignore_ascii_case(codec.name()) && f.clock_hz == codec.rtp_clock_hz()
            }
        });
        if let Some(format) = found {
            let clock = codec.rtp_clock_hz();
            let telephone_event_pt = offer
                .formats
                .iter()
                .find(|f| f.encoding.eq_ignore_ascii_case("telephone-event") && f.clock_hz == clock)
                .map(|f| f.payload_type);
            return Ok(Negotiated {
                codec: *codec,
                payload_type: format.payload_type,
                telephone_event_pt,
                direction: offer.direction.answer_to(),
                remote_ip: offer.connection,
                remote_port: offer.audio_port,
                rtcp: if offer.rtcp_mux {
                    RtcpTarget::Mux
                } else if let Some((port, address)) = offer.rtcp {
                    RtcpTarget::Port { port, address }
                } else {
                    RtcpTarget::NextPort
                },
                srtp,
            });
        }
    }
    Err(SdpError::NoCommonCodec)
}

/// Our media sockets' ports, as written in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPorts {
    pub rtp: u16,
    /// Where we take RTCP. Written as `a=rtcp` (RFC 3605) unless it is `rtp + 1`, the port a
    /// peer assumes without it (RFC 3550 §11).
    pub rtcp: u16,
}

impl MediaPorts {
    /// The RFC 3550 pair: RTCP on the RTP port + 1.
    pub fn pair(rtp: u16) -> Self {
        Self {
            rtp,
            rtcp: rtp.wrapping_add(1),
        }
    }
}

impl From<u16> for MediaPorts {
    /// An RTP port with RTCP on the port above it.
    fn from(rtp: u16) -> Self {
        Self::pair(rtp)
    }
}

/// Who we are in an SDP body: address, ports and the `o=` session id and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSdp {
    pub ip: IpAddr,
    pub ports: MediaPorts,
    pub session_id: u64,
    pub session_version: u64,
}

/// The payload type we offer Opus on (dynamic, RFC 3551 §3; 111 is what most stacks use).
pub const OPUS_OFFER_PT: u8 = 111;
/// The payload type we offer telephone-event/8000 on (RFC 4733).
pub const TELEPHONE_EVENT_OFFER_PT: u8 = 101;

/// One codec line of an `m=audio` stream we write.
struct WrittenFormat {
    payload_type: u8,
    codec: Codec,
}

/// Writes an SDP body for one audio stream: `formats` in order, then telephone-event at
/// `telephone_event` (payload type, clock) when given. Shared by the answer and the offer.
fn write_audio_sdp(
    local: &LocalSdp,
    formats: &[WrittenFormat],
    telephone_event: Option<(u8, u32)>,
    rtcp_mux: bool,
    direction: Direction,
    srtp: Option<&SrtpKeys>,
) -> String {
    let LocalSdp {
        ip,
        ports,
        session_id,
        session_version,
    } = *local;
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts: Vec<String> = formats.iter().map(|f| f.payload_type.to_string()).collect();
    if let Some((te, _)) = telephone_event {
        pts.push(te.to_string());
    }
    let mut sdp = String::with_capacity(384);
    let profile = if srtp.is_some() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let _ = write!(
        sdp,
        "v=0\r\no=hotline {session_id} {session_version} IN {family} {ip}\r\ns=hotline\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {} {profile} {}\r\n",
        ports.rtp,
        pts.join(" ")
    );
    for format in formats {
        let codec = format.codec;
        let _ = write!(
            sdp,
            "a=rtpmap:{} {}/{}{}\r\n",
            format.payload_type,
            codec.name(),
            codec.rtp_clock_hz(),
            rtpmap_suffix(codec)
        );
        if codec == Codec::Opus {
            let _ = write!(sdp, "a=fmtp:{} {OPUS_ANSWER_FMTP}\r\n", format.payload_type);
        }
    }
    if let Some((te, clock_hz)) = telephone_event {
        let _ = write!(
            sdp,
            "a=rtpmap:{te} telephone-event/{clock_hz}\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    if rtcp_mux {
        sdp.push_str("a=rtcp-mux\r\n");
    } else if ports.rtcp != ports.rtp.wrapping_add(1) {
        let _ = write!(sdp, "a=rtcp:{}\r\n", ports.rtcp);
    }
    if let Some(keys) = srtp {
        use base64::Engine;
        let _ = write!(
            sdp,
            "a=crypto:{} {} inline:{}\r\n",
            keys.tag,
            keys.suite.name(),
            base64::engine::general_purpose::STANDARD.encode(&keys.local)
        );
    }
    let _ = write!(sdp, "a=ptime:20\r\na={}\r\n", direction.attribute());
    sdp
}

/// Writes our answer: the one codec chosen, telephone-event when the offer had it, and
/// `a=rtcp-mux` when the offer asked for it (else `a=rtcp` when our RTCP port is not RTP + 1).
pub fn write_answer(negotiated: &Negotiated, local: &LocalSdp) -> String {
    let codec = negotiated.codec;
    write_audio_sdp(
        local,
        &[WrittenFormat {
            payload_type: negotiated.payload_type,
            codec,
        }],
        negotiated
            .telephone_event_pt
            .map(|te| (te, codec.rtp_clock_hz())),
        negotiated.rtcp == RtcpTarget::Mux,
        negotiated.direction,
        negotiated.srtp.as_ref(),
    )
}

/// The payload type we offer a codec on: its static one, or [`OPUS_OFFER_PT`].
pub fn offer_payload_type(codec: Codec) -> u8 {
    codec.static_payload_type().unwrap_or(OPUS_OFFER_PT)
}

/// Writes our offer (RFC 3264 §5) for a late-offer INVITE: every codec in preference order on
/// its payload type ([`offer_payload_type`]), telephone-event/8000 on
/// [`TELEPHONE_EVENT_OFFER_PT`], `sendrecv`, 20 ms packets.
pub fn write_offer(codecs: &[Codec], local: &LocalSdp) -> String {
    let formats: Vec<WrittenFormat> = codecs
        .iter()
        .map(|&codec| WrittenFormat {
            payload_type: offer_payload_type(codec),
            codec,
        })
        .collect();
    write_audio_sdp(
        local,
        &formats,
        Some((TELEPHONE_EVENT_OFFER_PT, 8_000)),
        false,
        Direction::SendRecv,
        None,
    )
}

/// Reads the answer to our offer ([`write_offer`] with `offered`): it must keep the audio
/// stream and pick at least one codec we offered; the first of those (in the answer's order,
/// RFC 3264 §6.1) is used. RTCP multiplexing is ignored because we did not offer it.
pub fn accept_answer(
    answer: &SessionDescription,
    offered: &[Codec],
) -> Result<Negotiated, SdpError> {
    if answer.secure {
        // We offered plain RTP (a late offer); an SRTP answer does not answer it.
        return Err(SdpError::NoCommonCodec);
    }
    let chosen: Vec<Codec> = answer
        .formats
        .iter()
        .filter_map(|f| {
            offered.iter().copied().find(|c| {
                if f.encoding.is_empty() {
                    Some(f.payload_type) == c.static_payload_type()
                } else {
                    f.encoding.eq_ignore_ascii_case(c.name()) && f.clock_hz == c.rtp_clock_hz()
                }
            })
        })
        .collect();
    let mut negotiated = negotiate(answer, &chosen)?;
    if negotiated.rtcp == RtcpTarget::Mux {
        negotiated.rtcp = match answer.rtcp {
            Some((port, address)) => RtcpTarget::Port { port, address },
            None => RtcpTarget::NextPort,
        };
    }
    Ok(negotiated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

    fn local(rtp: u16) -> LocalSdp {
        LocalSdp {
            ip: "127.0.0.1".parse().unwrap(),
            ports: MediaPorts::pair(rtp),
            session_id: 1,
            session_version: 1,
        }
    }

    #[test]
    fn preference_order_chooses_the_codec() {
        let offer = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let n = negotiate(&offer, &[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.payload_type, 0);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_port, 4000);
        let n = negotiate(&offer, &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
    }

    #[test]
    fn no_common_codec_is_refused() {
        let offer = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(
            negotiate(&offer, &[Codec::Pcmu]),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn dynamic_opus_is_found_by_name() {
        let offer = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 111 0\r\na=rtpmap:111 opus/48000/2\r\n",
        )
        .unwrap();
        let n = negotiate(&offer, &[Codec::Opus, Codec::Pcmu]).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Opus, 111));
        let answer = write_answer(&n, &local(7000));
        assert!(answer.contains("a=rtpmap:111 opus/48000/2\r\n"), "{answer}");
    }

    #[test]
    fn g722_is_found_by_its_static_payload_type_or_name() {
        for body in [
            &b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9 0\r\n"[..],
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9 0\r\na=rtpmap:9 G722/8000\r\n",
        ] {
            let offer = SessionDescription::parse(body).unwrap();
            let n = negotiate(&offer, &[Codec::G722, Codec::Pcmu]).unwrap();
            assert_eq!((n.codec, n.payload_type), (Codec::G722, 9));
            let answer = write_answer(&n, &local(7000));
            assert!(answer.contains("m=audio 7000 RTP/AVP 9\r\n"), "{answer}");
            assert!(answer.contains("a=rtpmap:9 G722/8000\r\n"), "{answer}");
        }
        // A G722 rtpmap at the wrong clock is not G.722 as RFC 3551 defines it.
        let offer = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9\r\na=rtpmap:9 G722/16000\r\n",
        )
        .unwrap();
        assert_eq!(
            negotiate(&offer, &[Codec::G722]),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn opus_is_answered_with_its_fmtp_and_a_48_khz_telephone_event() {
        let offer = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 96 101 102\r\n\
              a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n\
              a=rtpmap:101 telephone-event/8000\r\na=rtpmap:102 telephone-event/48000\r\n",
        )
        .unwrap();
        let n = negotiate(&offer, &[Codec::Pcmu, Codec::Opus]).unwrap();
        assert_eq!(
            (n.codec, n.payload_type, n.telephone_event_pt),
            (Codec::Opus, 96, Some(102))
        );
        let answer = write_answer(&n, &local(7000));
        assert!(
            answer.contains("m=audio 7000 RTP/AVP 96 102\r\n"),
            "{answer}"
        );
        assert!(answer.contains("a=rtpmap:96 opus/48000/2\r\n"), "{answer}");
        assert!(
            answer.contains(&format!("a=fmtp:96 {OPUS_ANSWER_FMTP}\r\n")),
            "{answer}"
        );
        assert!(answer.contains("a=rtpmap:102 telephone-event/48000\r\n"));
        assert!(!answer.contains("rtcp-mux"));
        // Our answer parses back to the same choice.
        let back = SessionDescription::parse(answer.as_bytes()).unwrap();
        assert_eq!(negotiate(&back, &[Codec::Opus]).unwrap().payload_type, 96);
    }

    #[test]
    fn rtcp_port_and_mux_are_read_from_the_offer() {
        let base = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
        let rtcp = |extra: &str| {
            let offer = SessionDescription::parse(format!("{base}{extra}").as_bytes()).unwrap();
            negotiate(&offer, &[Codec::Pcmu]).unwrap().rtcp
        };
        assert_eq!(rtcp(""), RtcpTarget::NextPort);
        assert_eq!(
            rtcp("a=rtcp:4010\r\n"),
            RtcpTarget::Port {
                port: 4010,
                address: None
            }
        );
        assert_eq!(
            rtcp("a=rtcp:53020 IN IP4 126.16.64.4\r\n"),
            RtcpTarget::Port {
                port: 53020,
                address: Some("126.16.64.4".parse().unwrap())
            }
        );
        assert_eq!(
            rtcp("a=rtcp:4001 IN IP6 2001:db8::1\r\n"),
            RtcpTarget::Port {
                port: 4001,
                address: Some("2001:db8::1".parse().unwrap())
            }
        );
        // rtcp-mux wins over a=rtcp (RFC 5761 §5.1.3 offers both for fallback).
        assert_eq!(rtcp("a=rtcp:4001\r\na=rtcp-mux\r\n"), RtcpTarget::Mux);
        let offer = SessionDescription::parse(format!("{base}a=rtcp-mux\r\n").as_bytes()).unwrap();
        let answer = write_answer(&negotiate(&offer, &[Codec::Pcmu]).unwrap(), &local(7000));
        assert!(answer.contains("a=rtcp-mux\r\n"), "{answer}");
        // Session-level or other streams' attributes do not count for audio.
        let offer = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\nm=video 7 RTP/AVP 96\r\n\
              a=rtcp:9\r\na=rtcp-mux\r\n",
        )
        .unwrap();
        assert_eq!((offer.rtcp, offer.rtcp_mux), (None, false));
        for bad in [
            "a=rtcp:\r\n",
            "a=rtcp:0\r\n",
            "a=rtcp:70000\r\n",
            "a=rtcp:9 IN IP4 x\r\n",
        ] {
            assert!(
                SessionDescription::parse(format!("{base}{bad}").as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_offer_lists_every_codec_in_order_with_telephone_event() {
        let offer = write_offer(
            &[Codec::G722, Codec::Opus, Codec::Pcmu, Codec::Pcma],
            &local(7000),
        );
        assert!(
            offer.contains("m=audio 7000 RTP/AVP 9 111 0 8 101\r\n"),
            "{offer}"
        );
        for line in [
            "a=rtpmap:9 G722/8000\r\n",
            "a=rtpmap:111 opus/48000/2\r\n",
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:8 PCMA/8000\r\n",
            "a=rtpmap:101 telephone-event/8000\r\n",
            "a=ptime:20\r\n",
            "a=sendrecv\r\n",
        ] {
            assert!(offer.contains(line), "{line} in {offer}");
        }
        assert!(offer.contains(&format!("a=fmtp:111 {OPUS_ANSWER_FMTP}\r\n")));
        assert!(!offer.contains("a=rtcp"), "RTCP on RTP + 1 needs no a=rtcp");
        // Our own offer parses, and each codec in it can be chosen from it.
        let parsed = SessionDescription::parse(offer.as_bytes()).unwrap();
        for codec in [Codec::G722, Codec::Opus, Codec::Pcmu, Codec::Pcma] {
            let n = negotiate(&parsed, &[codec]).unwrap();
            assert_eq!(n.payload_type, offer_payload_type(codec));
        }
    }

    #[test]
    fn an_answer_must_pick_a_codec_we_offered() {
        let offered = [Codec::Opus, Codec::Pcmu];
        let answer = |body: &str| {
            SessionDescription::parse(
                format!("v=0\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n{body}").as_bytes(),
            )
            .unwrap()
        };
        let n = accept_answer(
            &answer("m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"),
            &offered,
        )
        .unwrap();
        assert_eq!(
            (n.codec, n.payload_type, n.telephone_event_pt),
            (Codec::Pcmu, 0, Some(101))
        );
        assert_eq!((n.remote_port, n.direction), (4000, Direction::SendRecv));
        // The answer's order counts, not ours.
        let n = accept_answer(
            &answer("m=audio 4000 RTP/AVP 0 111\r\na=rtpmap:111 opus/48000/2\r\n"),
            &offered,
        )
        .unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        // PCMA was not offered; a refused stream (port 0) is no answer either.
        for body in [
            "m=audio 4000 RTP/AVP 8\r\n",
            "m=audio 0 RTP/AVP 0\r\n",
            "m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        ] {
            assert_eq!(
                accept_answer(&answer(body), &offered),
                Err(SdpError::NoCommonCodec),
                "{body}"
            );
        }
        // We did not offer rtcp-mux, so an answer cannot turn it on.
        let n = accept_answer(
            &answer("m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\n"),
            &offered,
        )
        .unwrap();
        assert_eq!(n.rtcp, RtcpTarget::NextPort);
    }

    #[test]
    fn an_rtcp_port_off_the_pair_is_advertised() {
        let offer = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let n = negotiate(&offer, &[Codec::Pcmu]).unwrap();
        let mut at = local(7000);
        assert!(!write_answer(&n, &at).contains("a=rtcp"));
        at.ports = MediaPorts {
            rtp: 7000,
            rtcp: 40123,
        };
        let answer = write_answer(&n, &at);
        assert!(answer.contains("a=rtcp:40123\r\n"), "{answer}");
        assert!(write_offer(&[Codec::Pcmu], &at).contains("a=rtcp:40123\r\n"));
        // What we write is what a peer reads (RFC 3605).
        let back = SessionDescription::parse(answer.as_bytes()).unwrap();
        assert_eq!(back.rtcp, Some((40123, None)));
        // With rtcp-mux RTCP shares the RTP port; a=rtcp would contradict it.
        let muxed = Negotiated {
            srtp: None,
            rtcp: RtcpTarget::Mux,
            ..n
        };
        let answer = write_answer(&muxed, &at);
        assert!(answer.contains("a=rtcp-mux\r\n") && !answer.contains("a=rtcp:"));
    }

    #[test]
    fn hold_is_seen_from_direction_and_zero_address() {
        let held = SessionDescription::parse(b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 5 RTP/AVP 0\r\n")
            .unwrap();
        assert_eq!(held.direction, Direction::SendOnly);
        assert_eq!(held.direction.answer_to(), Direction::RecvOnly);
        let held = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\na=inactive\r\n",
        )
        .unwrap();
        assert_eq!(held.direction, Direction::Inactive);
    }

    #[test]
    fn bad_sdp_gets_an_error_not_a_panic() {
        for body in [
            &b""[..],
            b"garbage",
            b"v=0\r\nm=audio 5 RTP/AVP 0\r\n",
            b"v=0\r\nc=IN IP4 1.1.1.1\r\n",
            b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 300\r\n",
            b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP\r\n",
            b"v=0\r\nc=IN IP4 999.1.1.1\r\nm=audio 5 RTP/AVP 0\r\n",
            b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5 RTP/AVP 0\r\na=rtpmap:0 PCMU/0\r\n",
            b"\xff\xfe",
        ] {
            assert!(
                SessionDescription::parse(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_srtp_offer_gets_an_srtp_answer_with_our_key_for_its_suite() {
        use base64::Engine;
        let key: Vec<u8> = (0..30).collect();
        let inline = base64::engine::general_purpose::STANDARD.encode(&key);
        let offer = format!(
            "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n\
             a=crypto:1 AES_CM_256_HMAC_SHA1_80 inline:{inline}{inline}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{inline}|2^20|1:4\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\n"
        );
        let offer = SessionDescription::parse(offer.as_bytes()).unwrap();
        assert!(offer.secure);
        assert_eq!(offer.crypto.len(), 2, "the AES-256 line is not ours");
        let mut negotiated = negotiate(&offer, &[Codec::Pcmu]).unwrap();
        let keys = negotiated.srtp.as_mut().unwrap();
        assert_eq!((keys.tag, keys.suite), (2, SrtpSuite::Aes128Sha1_32));
        assert_eq!(keys.remote, key);
        keys.local = vec![7; 30];
        let answer = write_answer(&negotiated, &local(7000));
        assert!(answer.contains("m=audio 7000 RTP/SAVP 0\r\n"), "{answer}");
        let ours = base64::engine::general_purpose::STANDARD.encode([7u8; 30]);
        assert!(
            answer.contains(&format!(
                "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{ours}\r\n"
            )),
            "{answer}"
        );
        // An SRTP offer with nothing we speak is refused; a plain one stays plain.
        let bare = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n",
        )
        .unwrap();
        assert_eq!(negotiate(&bare, &[Codec::Pcmu]), Err(SdpError::NoCrypto));
        let plain = SessionDescription::parse(
            b"v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert!(negotiate(&plain, &[Codec::Pcmu]).unwrap().srtp.is_none());
    }
}
