//! DTMF from the caller, in all three forms a phone line carries them.
//!
//! Owns: RFC 4733 telephone-event decoding (deduplicated by RTP timestamp, never by the marker
//! bit, which carriers omit), SIP INFO bodies (`application/dtmf-relay` and `application/dtmf`),
//! and an in-band Goertzel tone detector used when no telephone-event was negotiated.
//! Invariants: each key press is reported once; malformed input reports nothing.

/// The digit for an RFC 4733 event code (0–15); flash and others are `None`.
pub fn event_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// RFC 4733 receiver for one stream.
#[derive(Debug, Default)]
pub struct TelephoneEventReceiver {
    /// The RTP timestamp of the last event reported: all packets of one press share it.
    last_event_ts: Option<u32>,
}

impl TelephoneEventReceiver {
    /// Reads one telephone-event payload with its RTP timestamp; returns the digit when this
    /// packet begins a new press.
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        if payload.len() < 4 {
            return None;
        }
        let digit = event_digit(payload[0])?;
        if self.last_event_ts == Some(rtp_timestamp) {
            return None;
        }
        self.last_event_ts = Some(rtp_timestamp);
        Some(digit)
    }
}

/// Reads a SIP INFO DTMF body of the given content type.
pub fn info_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let content_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let signal = match content_type.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim().to_string())
        })?,
        "application/dtmf" => text.trim().to_string(),
        _ => return None,
    };
    let mut chars = signal.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        // A numeric event code such as "10" for '*'.
        return signal.parse::<u8>().ok().and_then(event_digit);
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

const ROWS_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// In-band DTMF detector over blocks of PCM (one 20 ms frame per call).
#[derive(Debug)]
pub struct ToneDetector {
    sample_rate_hz: u32,
    /// The candidate key in the previous block.
    previous: Option<char>,
    /// The key already reported for the current tone.
    reported: Option<char>,
}

impl ToneDetector {
    pub fn new(sample_rate_hz: u32) -> Self {
        Self {
            sample_rate_hz,
            previous: None,
            reported: None,
        }
    }

    /// The power of each of the eight DTMF tones in `samples` (rows, then columns): the eight
    /// Goertzel filters run side by side in one pass, so they vectorize.
    fn tone_powers(&self, samples: &[i16]) -> [f32; 8] {
        let mut k = [0.0f32; 8];
        for (k, &f) in k.iter_mut().zip(ROWS_HZ.iter().chain(&COLS_HZ)) {
            *k = 2.0 * (2.0 * std::f32::consts::PI * f / self.sample_rate_hz as f32).cos();
        }
        let (mut s1, mut s2) = ([0.0f32; 8], [0.0f32; 8]);
        for &x in samples {
            let x = f32::from(x);
            for j in 0..8 {
                let s0 = x + k[j] * s1[j] - s2[j];
                s2[j] = s1[j];
                s1[j] = s0;
            }
        }
        let mut power = [0.0f32; 8];
        for j in 0..8 {
            power[j] = s1[j] * s1[j] + s2[j] * s2[j] - k[j] * s1[j] * s2[j];
        }
        power
    }

    /// The key whose two tones dominate this block, if any.
    fn classify(&self, samples: &[i16]) -> Option<char> {
        let n = samples.len() as f32;
        let energy: f32 = samples.iter().map(|&s| (s as f32) * (s as f32)).sum();
        // Below about -40 dBm0 there is no tone worth hearing.
        if energy / n < 100.0 * 100.0 {
            return None;
        }
        // A pure tone of amplitude A gives power (A n / 2)^2 and energy n A^2 / 2.
        let scale = energy * n / 2.0;
        let power = self.tone_powers(samples).map(|p| p / scale);
        let (rows, cols) = power.split_at(4);
        let best = |v: &[f32]| {
            let mut idx = 0;
            for i in 1..v.len() {
                if v[i] > v[idx] {
                    idx = i;
                }
            }
            let second = v
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != idx)
                .map(|(_, &p)| p)
                .fold(0.0, f32::max);
            (idx, v[idx], second)
        };
        let (r, row_power, row_second) = best(rows);
        let (c, col_power, col_second) = best(cols);
        let tonal = row_power + col_power;
        let twist_ok = row_power < col_power * 8.0 && col_power < row_power * 8.0;
        if row_power > 0.15
            && col_power > 0.15
            && tonal > 0.7
            && twist_ok
            && row_second * 6.0 < row_power
            && col_second * 6.0 < col_power
        {
            Some(KEYS[r][c])
        } else {
            None
        }
    }

    /// Feeds one block (10–40 ms); returns a key once per tone, after two agreeing blocks.
    pub fn on_block(&mut self, samples: &[i16]) -> Option<char> {
        let key = self.classify(samples);
        let confirmed = key.is_some() && key == self.previous;
        self.previous = key;
        if key.is_none() {
            self.reported = None;
            return None;
        }
        if confirmed && self.reported != key {
            self.reported = key;
            return key;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(key: char, rate: u32, ms: u32, amplitude: f32) -> Vec<i16> {
        let (r, c) = (0..4)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .find(|&(r, c)| KEYS[r][c] == key)
            .unwrap();
        let n = (rate * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let v = amplitude
                    * ((2.0 * std::f32::consts::PI * ROWS_HZ[r] * t).sin()
                        + (2.0 * std::f32::consts::PI * COLS_HZ[c] * t).sin());
                v as i16
            })
            .collect()
    }

    #[test]
    fn rfc4733_without_marker_is_deduplicated_by_timestamp() {
        let mut rx = TelephoneEventReceiver::default();
        // Three packets of '5' (the last three are end packets), then '5' again at a new timestamp.
        let mut digits = Vec::new();
        for (ts, payload) in [
            (800, [5u8, 10, 0, 160]),
            (800, [5, 10, 1, 64]),
            (800, [5, 0x80 | 10, 3, 32]),
            (800, [5, 0x80 | 10, 3, 32]),
            (800, [5, 0x80 | 10, 3, 32]),
            (2400, [5, 10, 0, 160]),
            (2400, [5, 0x80 | 10, 3, 32]),
            (4000, [11, 10, 0, 160]),
        ] {
            digits.extend(rx.on_packet(ts, &payload));
        }
        assert_eq!(digits, vec!['5', '5', '#']);
        assert_eq!(rx.on_packet(9, &[1, 2]), None);
        assert_eq!(
            rx.on_packet(10, &[16, 0, 0, 0]),
            None,
            "flash is not a digit"
        );
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            info_digit("Application/DTMF-Relay", b"Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=10\r\n"),
            Some('*')
        );
        assert_eq!(info_digit("application/dtmf", b"7"), Some('7'));
        assert_eq!(
            info_digit("application/dtmf-relay", b"Duration=160\r\n"),
            None
        );
        assert_eq!(info_digit("application/dtmf-relay", b"Signal=x\r\n"), None);
        assert_eq!(info_digit("text/plain", b"Signal=5"), None);
        assert_eq!(info_digit("application/dtmf-relay", b"\xff\xfe"), None);
    }

    #[test]
    fn goertzel_finds_every_key_once() {
        for rate in [8_000u32, 16_000] {
            let block = (rate / 50) as usize;
            for key in "0123456789*#ABCD".chars() {
                let mut detector = ToneDetector::new(rate);
                let mut audio = tone(key, rate, 100, 6_000.0);
                audio.extend(vec![0i16; block * 2]);
                audio.extend(tone(key, rate, 100, 3_000.0));
                let found: Vec<char> = audio
                    .chunks(block)
                    .filter_map(|b| detector.on_block(b))
                    .collect();
                assert_eq!(found, vec![key, key], "rate {rate}");
            }
        }
    }

    #[test]
    fn goertzel_ignores_single_tones_and_noise() {
        let rate = 8_000;
        let mut detector = ToneDetector::new(rate);
        let single: Vec<i16> = (0..1600)
            .map(|i| {
                (8_000.0 * (2.0 * std::f32::consts::PI * 697.0 * i as f32 / 8_000.0).sin()) as i16
            })
            .collect();
        assert!(single.chunks(160).all(|b| detector.on_block(b).is_none()));
        let mut seed = 12345u32;
        let noise: Vec<i16> = (0..1600)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((seed >> 16) as i16) / 4
            })
            .collect();
        assert!(noise.chunks(160).all(|b| detector.on_block(b).is_none()));
    }
}
