//! RTP (RFC 3550) packets and RTCP sender/receiver reports, on plain UDP (the phone line) or
//! as fields a WebRTC stack hands over (the web phone uses only [`Ssrc`], [`RtpPacket`] and
//! [`ReceiveStats`]: its stack does SRTP and RTCP itself).
//!
//! Owns: parsing and writing RTP headers, the receive statistics that RTCP reports carry
//! (RFC 3550 appendix A.3 loss and A.8 jitter), and SR/RR packets.
//! Invariants: parsing checks every length before reading, so any datagram either parses or is
//! refused with an error; sequence numbers are extended to 64 bits for ordering.

/// A synchronisation source identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// Why a datagram is not an RTP or RTCP packet we accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP: packet too short ({0} bytes)")]
    TooShort(usize),
    #[error("RTP: version {0} is not 2")]
    BadVersion(u8),
    #[error("RTP: header extends past the packet")]
    BadLength,
}

/// One parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP packet (CSRCs, extension and padding are skipped).
    pub fn parse(data: &'a [u8]) -> Result<Self, RtpError> {
        if data.len() < 12 {
            return Err(RtpError::TooShort(data.len()));
        }
        let version = data[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = data[0] & 0x20 != 0;
        let extension = data[0] & 0x10 != 0;
        let csrc_count = (data[0] & 0x0f) as usize;
        let mut start = 12 + 4 * csrc_count;
        if extension {
            if data.len() < start + 4 {
                return Err(RtpError::BadLength);
            }
            let words = u16::from_be_bytes([data[start + 2], data[start + 3]]) as usize;
            start += 4 + 4 * words;
        }
        let mut end = data.len();
        if padding {
            let pad = *data.last().ok_or(RtpError::BadLength)? as usize;
            if pad == 0 || pad > end {
                return Err(RtpError::BadLength);
            }
            end -= pad;
        }
        if start > end {
            return Err(RtpError::BadLength);
        }
        Ok(RtpPacket {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: Ssrc(u32::from_be_bytes([data[8], data[9], data[10], data[11]])),
            payload: &data[start..end],
        })
    }

    /// Writes the packet into `out` (cleared first).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(((self.marker as u8) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// Whether a datagram on an RTP port looks like RTCP (RFC 5761 payload-type ranges).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (200..=204).contains(&data[1])
}

/// Where a source's first sequence number lands on our extended (64-bit) sequence line: one
/// cycle up, so packets reordered before the first one still have a place.
const SEQUENCE_ORIGIN: u64 = 1 << 16;

/// Receive statistics for one remote source, for RTCP reception report blocks.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    ssrc: Option<Ssrc>,
    base_sequence: u64,
    max_sequence: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in RTP clock units, times 16 (RFC 3550 A.8).
    jitter_x16: u64,
    last_transit: Option<i64>,
    /// Middle 32 bits of the last SR's NTP time and when it arrived (ms, our clock).
    last_sr: Option<(u32, u64)>,
}

impl ReceiveStats {
    /// Counts one packet with its 16-bit RTP sequence number, unwrapped here against the
    /// highest seen (RFC 3550 A.1); `arrival_rtp` is the arrival time in RTP clock units.
    pub fn on_packet(&mut self, ssrc: Ssrc, sequence: u16, rtp_timestamp: u32, arrival_rtp: u64) {
        if self.ssrc != Some(ssrc) {
            let first = SEQUENCE_ORIGIN + sequence as u64;
            *self = ReceiveStats {
                ssrc: Some(ssrc),
                base_sequence: first,
                max_sequence: first,
                ..Default::default()
            };
        }
        let delta = sequence.wrapping_sub(self.max_sequence as u16) as i16 as i64;
        let extended_sequence = (self.max_sequence as i64 + delta).max(0) as u64;
        self.received += 1;
        self.max_sequence = self.max_sequence.max(extended_sequence);
        let transit = arrival_rtp as i64 - rtp_timestamp as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Notes a sender report from the peer (for LSR/DLSR in our next report).
    pub fn on_sender_report(&mut self, ntp_middle: u32, now_ms: u64) {
        self.last_sr = Some((ntp_middle, now_ms));
    }

    /// Interarrival jitter in RTP clock units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_x16 >> 4) as u32
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the sequence range seen.
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_some() {
            self.max_sequence - self.base_sequence + 1
        } else {
            0
        }
    }

    /// Writes one report block (24 bytes) and moves the "prior" interval forward.
    fn report_block(&mut self, now_ms: u64, out: &mut Vec<u8>) {
        let Some(ssrc) = self.ssrc else { return };
        let expected = self.expected();
        let lost_total = expected.saturating_sub(self.received).min(0x7f_ffff) as u32;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u32);
        out.extend_from_slice(&ssrc.0.to_be_bytes());
        out.extend_from_slice(&((fraction << 24) | lost_total).to_be_bytes());
        // The extended highest sequence number: cycles since the first packet, and the number.
        let cycles = (self.max_sequence - SEQUENCE_ORIGIN) & !0xffff;
        let highest = cycles | (self.max_sequence & 0xffff);
        out.extend_from_slice(&(highest as u32).to_be_bytes());
        out.extend_from_slice(&self.jitter().to_be_bytes());
        let (lsr, dlsr) = match self.last_sr {
            Some((ntp, at_ms)) => (ntp, ((now_ms.saturating_sub(at_ms)) * 65_536 / 1000) as u32),
            None => (0, 0),
        };
        out.extend_from_slice(&lsr.to_be_bytes());
        out.extend_from_slice(&dlsr.to_be_bytes());
    }
}

/// What we have sent, for sender reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendStats {
    pub packets: u32,
    pub octets: u32,
    pub last_rtp_timestamp: u32,
}

/// Writes an RTCP compound packet: SR when we have sent media (else RR), plus SDES CNAME.
/// `ntp` is the 64-bit NTP time of `now`.
pub fn write_report(
    our_ssrc: Ssrc,
    sent: &SendStats,
    received: &mut ReceiveStats,
    ntp: u64,
    now_ms: u64,
    cname: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    let blocks = u8::from(received.ssrc.is_some());
    if sent.packets > 0 {
        let words = 6 + 6 * blocks as u16; // length in 32-bit words minus one
        out.push(0x80 | blocks);
        out.push(200);
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&our_ssrc.0.to_be_bytes());
        out.extend_from_slice(&ntp.to_be_bytes());
        out.extend_from_slice(&sent.last_rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&sent.packets.to_be_bytes());
        out.extend_from_slice(&sent.octets.to_be_bytes());
    } else {
        let words = 1 + 6 * blocks as u16;
        out.push(0x80 | blocks);
        out.push(201);
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&our_ssrc.0.to_be_bytes());
    }
    received.report_block(now_ms, out);
    // SDES with one CNAME item, padded to a word boundary.
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let item_len = 4 + 2 + cname.len() + 1;
    let padded = item_len.div_ceil(4) * 4;
    out.push(0x81);
    out.push(202);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&our_ssrc.0.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + (padded - item_len) + 1, 0);
}

/// The facts we use from a received RTCP compound packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtcpSummary {
    /// Middle 32 bits of the NTP time of a sender report, when one was present.
    pub sender_report_ntp_middle: Option<u32>,
    /// The count of report blocks seen.
    pub report_blocks: usize,
    /// Whether a BYE was present.
    pub bye: bool,
}

/// Reads an RTCP compound packet; malformed parts end the walk without error.
pub fn read_rtcp(data: &[u8]) -> RtcpSummary {
    let mut summary = RtcpSummary::default();
    let mut at = 0;
    while at + 4 <= data.len() {
        let header = &data[at..];
        if header[0] >> 6 != 2 {
            break;
        }
        let count = (header[0] & 0x1f) as usize;
        let length = (u16::from_be_bytes([header[2], header[3]]) as usize + 1) * 4;
        if at + length > data.len() {
            break;
        }
        match header[1] {
            200 if length >= 28 => {
                summary.sender_report_ntp_middle = Some(u32::from_be_bytes([
                    header[10], header[11], header[12], header[13],
                ]));
                summary.report_blocks += count;
            }
            201 => summary.report_blocks += count,
            203 => summary.bye = true,
            _ => {}
        }
        at += length;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_round_trip() {
        let packet = RtpPacket {
            marker: true,
            payload_type: 8,
            sequence: 65_535,
            timestamp: 160,
            ssrc: Ssrc(7),
            payload: &[1, 2, 3],
        };
        let mut out = Vec::new();
        packet.write(&mut out);
        assert_eq!(RtpPacket::parse(&out).unwrap(), packet);
        assert!(!is_rtcp(&out));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(RtpPacket::parse(&[0u8; 20]), Err(RtpError::BadVersion(0)));
        // 15 CSRCs claimed in a 12-byte packet.
        assert_eq!(
            RtpPacket::parse(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::BadLength)
        );
        // Padding longer than the packet.
        let mut p = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200];
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::BadLength));
        p[12] = 0;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::BadLength));
        // Extension header past the end.
        assert_eq!(
            RtpPacket::parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::BadLength)
        );
    }

    #[test]
    fn reports_count_loss_and_parse_back() {
        let mut stats = ReceiveStats::default();
        for seq in [10u16, 11, 13, 14] {
            stats.on_packet(Ssrc(5), seq, seq as u32 * 160, seq as u64 * 160);
        }
        assert_eq!(stats.expected(), 5);
        assert_eq!(stats.received(), 4);
        assert_eq!(stats.jitter(), 0);
        let sent = SendStats {
            packets: 3,
            octets: 480,
            last_rtp_timestamp: 480,
        };
        let mut out = Vec::new();
        write_report(
            Ssrc(9),
            &sent,
            &mut stats,
            0x0102_0304_0506_0708,
            0,
            "hotline",
            &mut out,
        );
        assert_eq!(out.len() % 4, 0);
        assert!(is_rtcp(&out));
        let summary = read_rtcp(&out);
        assert_eq!(summary.sender_report_ntp_middle, Some(0x0304_0506));
        assert_eq!(summary.report_blocks, 1);
        // fraction lost = 1/5 * 256 = 51
        assert_eq!(out[28 + 4], 51);
        let mut rr = Vec::new();
        write_report(
            Ssrc(9),
            &SendStats::default(),
            &mut stats,
            0,
            0,
            "h",
            &mut rr,
        );
        assert_eq!(rr[1], 201);
        assert_eq!(read_rtcp(&rr).report_blocks, 1);
    }

    #[test]
    fn rtcp_garbage_is_harmless() {
        assert_eq!(
            read_rtcp(&[0x81, 200, 0xff, 0xff, 0, 0, 0, 0]),
            RtcpSummary::default()
        );
        assert_eq!(read_rtcp(&[]), RtcpSummary::default());
    }

    /// Sequence numbers unwrap on their own: no loss is counted across the 16-bit wrap, nor
    /// for a reordered packet, and the report's extended highest number counts the cycle.
    #[test]
    fn sequence_numbers_unwrap_across_the_wrap() {
        let mut stats = ReceiveStats::default();
        let mut seq = 65_530u16;
        for i in 0..20u32 {
            stats.on_packet(Ssrc(5), seq, i * 160, i as u64 * 160);
            seq = seq.wrapping_add(1);
        }
        // One late packet from before the wrap.
        stats.on_packet(Ssrc(5), 65_535, 5 * 160, 21 * 160);
        assert_eq!(stats.expected(), 20);
        assert_eq!(stats.received(), 21);
        let mut block = Vec::new();
        stats.report_block(0, &mut block);
        let lost = u32::from_be_bytes([0, block[5], block[6], block[7]]);
        assert_eq!(lost, 0);
        let highest = u32::from_be_bytes([block[8], block[9], block[10], block[11]]);
        assert_eq!(highest, (1 << 16) | 13, "one cycle, then sequence 13");
    }
}
