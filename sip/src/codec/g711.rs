//! G.711 µ-law and A-law (ITU-T G.711): one byte per sample at 8 kHz.
//!
//! Owns: the sample ↔ byte mappings. Every byte value decodes to a sample, so no payload can
//! make decoding fail; encoding never fails and clips rather than wraps.

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

/// G.711 µ-law encoding of one sample.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut value = sample as i32;
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(ULAW_CLIP) + ULAW_BIAS;
    let exponent = (7 - ((value as u32) << 17).leading_zeros().min(7)) as i32;
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

/// G.711 µ-law decoding of one byte.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = ((byte >> 4) & 0x07) as i32;
    let mantissa = (byte & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.711 A-law encoding of one sample.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let (mask, magnitude) = if sample >= 0 {
        (0xd5u8, sample as i32)
    } else {
        (0x55u8, -(sample as i32) - 1)
    };
    let magnitude = magnitude.min(32_767);
    let encoded = if magnitude < 256 {
        (magnitude >> 4) as u8
    } else {
        let exponent = (31 - (magnitude as u32).leading_zeros()) as i32 - 7;
        let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
        ((exponent << 4) | mantissa) as u8
    };
    encoded ^ mask
}

/// G.711 A-law decoding of one byte.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let exponent = ((byte >> 4) & 0x07) as i32;
    let mantissa = (byte & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if byte & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_round_trip_is_close() {
        for s in (-32_000i32..32_000).step_by(37) {
            let s = s as i16;
            let back = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let tolerance = (s as i32).abs() / 16 + 16;
            assert!((back - s as i32).abs() <= tolerance, "{s} -> {back}");
        }
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(ulaw_to_linear(0xff), 0);
    }

    #[test]
    fn alaw_round_trip_is_close() {
        for s in (-32_000i32..32_000).step_by(37) {
            let s = s as i16;
            let back = alaw_to_linear(linear_to_alaw(s)) as i32;
            let tolerance = (s as i32).abs() / 16 + 16;
            assert!((back - s as i32).abs() <= tolerance, "{s} -> {back}");
        }
        assert_eq!(linear_to_alaw(0), 0xd5);
    }

    #[test]
    fn every_byte_decodes() {
        for b in 0..=255u8 {
            let u = ulaw_to_linear(b);
            assert_eq!(
                linear_to_ulaw(u),
                if b == 0x7f { 0xff } else { b },
                "ulaw {b:#x}"
            );
            let a = alaw_to_linear(b);
            assert_eq!(linear_to_alaw(a), b, "alaw {b:#x}");
        }
    }
}
