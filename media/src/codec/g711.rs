//! G.711 µ-law and A-law (ITU-T G.711), sample by sample and for slices: the one G.711 codec of
//! hotline, for RTP payloads (PCMU, PCMA) and G.711 WAV files alike.
//!
//! Phones send 8 kHz G.711; this module converts between its 8-bit code words and 16-bit linear
//! PCM. It owns no state. Encoding follows the ITU reference algorithm (µ-law on the top 14 bits
//! with a bias of 33, A-law on the top 13 bits with even-bit inversion `0x55`), evaluated at
//! compile time into lookup tables (16 Ki and 8 Ki entries, indexed by those top bits);
//! decoding is a lookup in 256-entry tables built the same way.
//!
//! Invariants: every code word decodes (no panics, no errors), `encode(decode(c)) == c` for every
//! code word except µ-law's negative zero `0x7F` (which decodes to 0 and re-encodes as `0xFF`),
//! and decoding is odd-symmetric: `decode(c ^ 0x80) == -decode(c)`.

/// Which G.711 companding law a stream or file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law (PCMU, RTP payload type 0; WAV format tag 7). North America and Japan.
    Ulaw,
    /// A-law (PCMA, RTP payload type 8; WAV format tag 6). Europe and most of the world.
    Alaw,
}

impl G711Law {
    /// Encodes one linear sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            G711Law::Ulaw => ulaw_encode(sample),
            G711Law::Alaw => alaw_encode(sample),
        }
    }

    /// Decodes one code word.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            G711Law::Ulaw => ulaw_decode(code),
            G711Law::Alaw => alaw_decode(code),
        }
    }

    /// Encodes a slice of linear samples.
    pub fn encode_slice(self, samples: &[i16]) -> Vec<u8> {
        match self {
            G711Law::Ulaw => ulaw_encode_slice(samples),
            G711Law::Alaw => alaw_encode_slice(samples),
        }
    }

    /// Decodes a slice of code words.
    pub fn decode_slice(self, codes: &[u8]) -> Vec<i16> {
        match self {
            G711Law::Ulaw => ulaw_decode_slice(codes),
            G711Law::Alaw => alaw_decode_slice(codes),
        }
    }
}

/// µ-law bias, in 14-bit units (0x84 in 16-bit units).
const ULAW_BIAS_14: i32 = 33;
/// µ-law clip level, in 14-bit units.
const ULAW_CLIP_14: i32 = 8159;

/// Encodes one 16-bit linear sample as a µ-law code word.
pub fn ulaw_encode(sample: i16) -> u8 {
    // The code depends only on the top 14 bits.
    ULAW_ENCODE[((sample >> 2) as i32 + 8192) as usize]
}

/// The ITU reference µ-law encoder, on a sample's top 14 bits (`-8192..=8191`).
const fn ulaw_encode_formula(top14: i32) -> u8 {
    let mut magnitude = top14;
    let mask: u8 = if magnitude < 0 {
        magnitude = -magnitude;
        0x7F
    } else {
        0xFF
    };
    let clipped = if magnitude > ULAW_CLIP_14 {
        ULAW_CLIP_14
    } else {
        magnitude
    };
    let biased = clipped + ULAW_BIAS_14;
    // `biased` is in 33..=8192; its segment is the position of its top bit above bit 5.
    let top_bit = 31 - (biased as u32).leading_zeros() as i32; // 5..=13
    let segment = top_bit - 5;
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = (biased >> (segment + 1)) & 0x0F;
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

/// Decodes one µ-law code word to 16-bit linear PCM.
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample as an A-law code word.
pub fn alaw_encode(sample: i16) -> u8 {
    // The code depends only on the top 13 bits.
    ALAW_ENCODE[((sample >> 3) as i32 + 4096) as usize]
}

/// The ITU reference A-law encoder, on a sample's top 13 bits (`-4096..=4095`).
const fn alaw_encode_formula(top13: i32) -> u8 {
    let mut magnitude = top13;
    let mask: u8 = if magnitude >= 0 {
        0xD5
    } else {
        magnitude = -magnitude - 1;
        0x55
    };
    // `magnitude` is in 0..=4095; segment 0 covers 0..=31, then one segment per doubling.
    let segment = if magnitude < 32 {
        0
    } else {
        (31 - (magnitude as u32).leading_zeros() as i32) - 4
    };
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

/// Decodes one A-law code word to 16-bit linear PCM.
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Encodes a slice of linear samples as µ-law.
pub fn ulaw_encode_slice(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| ulaw_encode(s)).collect()
}

/// Decodes a slice of µ-law code words.
pub fn ulaw_decode_slice(codes: &[u8]) -> Vec<i16> {
    codes.iter().map(|&c| ULAW_DECODE[c as usize]).collect()
}

/// Encodes a slice of linear samples as A-law.
pub fn alaw_encode_slice(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| alaw_encode(s)).collect()
}

/// Decodes a slice of A-law code words.
pub fn alaw_decode_slice(codes: &[u8]) -> Vec<i16> {
    codes.iter().map(|&c| ALAW_DECODE[c as usize]).collect()
}

/// µ-law encoding table, indexed by a sample's top 14 bits plus 8192.
static ULAW_ENCODE: [u8; 16_384] = build_ulaw_encode_table();
/// A-law encoding table, indexed by a sample's top 13 bits plus 4096.
static ALAW_ENCODE: [u8; 8_192] = build_alaw_encode_table();
/// µ-law decoding table, built at compile time from the ITU definition.
static ULAW_DECODE: [i16; 256] = build_ulaw_table();
/// A-law decoding table, built at compile time from the ITU definition.
static ALAW_DECODE: [i16; 256] = build_alaw_table();

const fn ulaw_decode_formula(code: u8) -> i16 {
    let inverted = !code;
    let bias = 0x84;
    let mut t = (((inverted & 0x0F) as i32) << 3) + bias;
    t <<= ((inverted & 0x70) >> 4) as i32;
    if inverted & 0x80 != 0 {
        (bias - t) as i16
    } else {
        (t - bias) as i16
    }
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let value = code ^ 0x55;
    let mut t = ((value & 0x0F) as i32) << 4;
    let segment = ((value & 0x70) >> 4) as i32;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= segment - 1;
        }
    }
    if value & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_ulaw_encode_table() -> [u8; 16_384] {
    let mut table = [0u8; 16_384];
    let mut i = 0;
    while i < 16_384 {
        table[i] = ulaw_encode_formula(i as i32 - 8192);
        i += 1;
    }
    table
}

const fn build_alaw_encode_table() -> [u8; 8_192] {
    let mut table = [0u8; 8_192];
    let mut i = 0;
    while i < 8_192 {
        table[i] = alaw_encode_formula(i as i32 - 4096);
        i += 1;
    }
    table
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_formula(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_formula(i as u8);
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn round_trips_are_close() {
        for s in (-32_000i32..32_000).step_by(37) {
            let s = s as i16;
            let tolerance = (s as i32).abs() / 16 + 16;
            for law in [G711Law::Ulaw, G711Law::Alaw] {
                let back = law.decode(law.encode(s)) as i32;
                assert!(
                    (back - s as i32).abs() <= tolerance,
                    "{law:?} {s} -> {back}"
                );
            }
        }
    }

    #[test]
    fn every_code_word_decodes_and_re_encodes() {
        for code in 0..=255u8 {
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected, "ulaw {code:#x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "alaw {code:#x}");
        }
    }
}
