//! G.722 (ITU-T G.722, 64 kbit/s mode 1): 7 kHz wideband speech as sub-band ADPCM.
//!
//! Owns: one direction's codec state. [`G722Encoder`] splits 16 kHz PCM with the 24-tap
//! quadrature mirror filter (QMF) into a low band (0–4 kHz) and a high band (4–8 kHz) at 8 kHz
//! each, codes the low band with 6-bit and the high band with 2-bit adaptive differential PCM,
//! and packs both into one byte per pair of input samples (`ihigh << 6 | ilow`, RFC 3551 §4.5.2).
//! [`G722Decoder`] runs the inverse quantisers through the same adaptive predictors and
//! recombines the bands with the receive QMF.
//!
//! Invariants: the arithmetic is the fixed-point arithmetic of the ITU-T recommendation
//! (blocks 1L–6L, 1H–6H and the shared block 4), with every intermediate saturated to 16 bits
//! where the recommendation saturates, so encoder and decoder stay in lock-step with any other
//! conforming implementation (the test vectors below come from spandsp, which baresip, Asterisk
//! and FreeSWITCH use). Every byte decodes to two samples: there is no invalid input. Each
//! direction of a call owns its own state; [`G722Encoder::reset`] and [`G722Decoder::reset`]
//! return to the power-on state of the recommendation. The codec delay (QMF analysis plus
//! synthesis) is [`CODEC_DELAY_SAMPLES`].

/// The delay of an encode → decode round trip, in 16 kHz samples (the two 24-tap QMFs).
pub const CODEC_DELAY_SAMPLES: usize = 22;

/// QMF coefficients (G.722 table 11); the 24-tap filter is symmetric, so half is stored.
const QMF_COEFFS: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Low-band 6-bit quantiser decision levels (block 1L, QUANTL), in units of the scale factor.
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// Low-band codes for a negative difference, by decision interval.
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
/// Low-band codes for a positive difference, by decision interval.
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// Low-band log scale factor multipliers (block 3L, LOGSCL).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Maps a 4-bit low-band code to its WL index.
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// The inverse-log table of the scale factor adaptation (blocks 3L/3H, SCALEL/SCALEH).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Low-band 4-bit inverse quantiser (block 2L, INVQAL): the predictor's view of the signal.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Low-band 6-bit inverse quantiser (block 5L, INVQBL): the decoder's output at 64 kbit/s.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// High-band codes for a negative and a positive difference (block 1H, QUANTH).
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
/// High-band log scale factor multipliers (block 3H, LOGSCH).
const WH: [i32; 3] = [0, -214, 798];
/// Maps a 2-bit high-band code to its WH index.
const RH2: [i32; 4] = [2, 1, 2, 1];
/// High-band 2-bit inverse quantiser (block 2H, INVQAH).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];

/// The low band's log scale factor limit (block 3L) and the high band's (block 3H).
const NB_MAX_LOW: i32 = 18_432;
const NB_MAX_HIGH: i32 = 22_528;

fn saturate(value: i32) -> i32 {
    value.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// One sub-band's adaptive predictor and scale factor (shared by encoder and decoder).
#[derive(Debug, Clone, Copy)]
struct Band {
    /// Predicted signal (`s`), pole part (`sp`) and zero part (`sz`).
    s: i32,
    sp: i32,
    sz: i32,
    /// Reconstructed signal history.
    r: [i32; 3],
    /// Pole predictor coefficients and their next values.
    a: [i32; 3],
    ap: [i32; 3],
    /// Partially reconstructed signal history.
    p: [i32; 3],
    /// Quantised difference history.
    d: [i32; 7],
    /// Zero predictor coefficients and their next values.
    b: [i32; 7],
    bp: [i32; 7],
    /// Log scale factor and the scale factor itself.
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            ap: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            bp: [0; 7],
            nb: 0,
            det,
        }
    }

    /// Blocks 3L/3H: log scale factor adaptation (LOGSCL/LOGSCH) and the scale factor
    /// (SCALEL/SCALEH). `shift` is 8 for the low band and 10 for the high band.
    fn adapt_scale(&mut self, weight: i32, nb_max: i32, shift: i32) {
        let nb = ((self.nb * 127) >> 7) + weight;
        self.nb = nb.clamp(0, nb_max);
        let index = ((self.nb >> 6) & 31) as usize;
        let exponent = shift - (self.nb >> 11);
        let scaled = if exponent < 0 {
            ILB[index] << -exponent
        } else {
            ILB[index] >> exponent
        };
        self.det = scaled << 2;
    }

    /// Block 4: reconstruction, pole and zero predictor adaptation, and the next prediction.
    fn predict(&mut self, dx: i32) {
        // RECONS and PARREC.
        self.d[0] = dx;
        self.r[0] = saturate(self.s + dx);
        self.p[0] = saturate(self.sz + dx);

        // UPPOL2: the second pole coefficient.
        let sg0 = self.p[0] >> 15;
        let sg1 = self.p[1] >> 15;
        let sg2 = self.p[2] >> 15;
        let wd1 = saturate(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32_767);
        let mut wd3 = (wd2 >> 7) + if sg0 == sg2 { 128 } else { -128 };
        wd3 += (self.a[2] * 32_512) >> 15;
        self.ap[2] = wd3.clamp(-12_288, 12_288);

        // UPPOL1: the first pole coefficient, bounded by the second.
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let wd2 = (self.a[1] * 32_640) >> 15;
        let limit = saturate(15_360 - self.ap[2]);
        self.ap[1] = saturate(wd1 + wd2).clamp(-limit, limit);

        // UPZERO: the six zero coefficients.
        let step = if dx == 0 { 0 } else { 128 };
        let sg_dx = dx >> 15;
        for i in 1..7 {
            let sg = self.d[i] >> 15;
            let wd2 = if sg == sg_dx { step } else { -step };
            let wd3 = (self.b[i] * 32_640) >> 15;
            self.bp[i] = saturate(wd2 + wd3);
        }

        // DELAYA: shift the histories.
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }

        // FILTEP: the pole section's prediction.
        let wd1 = (self.a[1] * saturate(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * saturate(self.r[2] + self.r[2])) >> 15;
        self.sp = saturate(wd1 + wd2);

        // FILTEZ: the zero section's prediction.
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * saturate(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = saturate(sz);

        // PREDIC.
        self.s = saturate(self.sp + self.sz);
    }
}

/// The power-on scale factors of the low and high bands.
const LOW_DET_INIT: i32 = 32;
const HIGH_DET_INIT: i32 = 8;

/// One direction's G.722 encoder: 16 kHz PCM in, one byte per two samples out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    /// The transmit QMF's delay line.
    qmf: [i32; 24],
    low: Band,
    high: Band,
    /// An odd sample left over from the last call, paired with the next call's first.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        Self {
            qmf: [0; 24],
            low: Band::new(LOW_DET_INIT),
            high: Band::new(HIGH_DET_INIT),
            pending: None,
        }
    }

    /// Back to the power-on state (a new stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Encodes 16 kHz samples, appending one byte per pair. An odd trailing sample waits for the
    /// next call, so a stream cut into odd-sized pieces encodes the same as one piece.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len().div_ceil(2));
        let mut samples = pcm.iter().copied();
        if let Some(first) = self.pending.take() {
            match samples.next() {
                Some(second) => out.push(self.encode_pair(first, second)),
                None => {
                    self.pending = Some(first);
                    return;
                }
            }
        }
        loop {
            match (samples.next(), samples.next()) {
                (Some(a), Some(b)) => out.push(self.encode_pair(a, b)),
                (Some(a), None) => {
                    self.pending = Some(a);
                    return;
                }
                _ => return,
            }
        }
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // The transmit QMF: two input samples give one low-band and one high-band sample.
        self.qmf.copy_within(2.., 0);
        self.qmf[22] = first as i32;
        self.qmf[23] = second as i32;
        let mut sum_odd = 0i32;
        let mut sum_even = 0i32;
        for i in 0..12 {
            sum_odd += self.qmf[2 * i] * QMF_COEFFS[i];
            sum_even += self.qmf[2 * i + 1] * QMF_COEFFS[11 - i];
        }
        let xlow = (sum_even + sum_odd) >> 14;
        let xhigh = (sum_even - sum_odd) >> 14;

        // Low band. Block 1L: SUBTRA and QUANTL.
        let el = saturate(xlow - self.low.s);
        let magnitude = if el >= 0 { el } else { -(el + 1) };
        let mut interval = 1;
        while interval < 30 {
            if magnitude < (Q6[interval] * self.low.det) >> 12 {
                break;
            }
            interval += 1;
        }
        let ilow = if el < 0 { ILN[interval] } else { ILP[interval] };
        // Block 2L: INVQAL, the 4-bit difference the predictor sees.
        let ril = (ilow >> 2) as usize;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        // Blocks 3L and 4.
        self.low.adapt_scale(WL[RL42[ril] as usize], NB_MAX_LOW, 8);
        self.low.predict(dlow);

        // High band. Block 1H: SUBTRA and QUANTH.
        let eh = saturate(xhigh - self.high.s);
        let magnitude = if eh >= 0 { eh } else { -(eh + 1) };
        let level = if magnitude >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ihigh = if eh < 0 { IHN[level] } else { IHP[level] };
        // Block 2H: INVQAH; blocks 3H and 4.
        let dhigh = (self.high.det * QM2[ihigh as usize]) >> 15;
        self.high
            .adapt_scale(WH[RH2[ihigh as usize] as usize], NB_MAX_HIGH, 10);
        self.high.predict(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

/// One direction's G.722 decoder: one byte in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    /// The receive QMF's delay line.
    qmf: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        Self {
            qmf: [0; 24],
            low: Band::new(LOW_DET_INIT),
            high: Band::new(HIGH_DET_INIT),
        }
    }

    /// Back to the power-on state (a new stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Decodes bytes, appending two 16 kHz samples per byte.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &code in payload {
            let (first, second) = self.decode_byte(code);
            out.push(first);
            out.push(second);
        }
    }

    fn decode_byte(&mut self, code: u8) -> (i16, i16) {
        let ilow = (code & 0x3f) as usize;
        let ihigh = ((code >> 6) & 0x03) as usize;

        // Low band. Block 5L: INVQBL and RECONS; block 6L: LIMIT.
        let wd2 = (self.low.det * QM6[ilow]) >> 15;
        let rlow = (self.low.s + wd2).clamp(-16_384, 16_383);
        // Block 2L: INVQAL; blocks 3L and 4.
        let ril = ilow >> 2;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.adapt_scale(WL[RL42[ril] as usize], NB_MAX_LOW, 8);
        self.low.predict(dlow);

        // High band. Block 2H: INVQAH; block 5H: RECONS; block 6H: LIMIT.
        let dhigh = (self.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.high.s).clamp(-16_384, 16_383);
        // Blocks 3H and 4.
        self.high
            .adapt_scale(WH[RH2[ihigh] as usize], NB_MAX_HIGH, 10);
        self.high.predict(dhigh);

        // The receive QMF: the two bands give two output samples.
        self.qmf.copy_within(2.., 0);
        self.qmf[22] = rlow + rhigh;
        self.qmf[23] = rlow - rhigh;
        let mut out_first = 0i32;
        let mut out_second = 0i32;
        for i in 0..12 {
            out_second += self.qmf[2 * i] * QMF_COEFFS[i];
            out_first += self.qmf[2 * i + 1] * QMF_COEFFS[11 - i];
        }
        (
            saturate(out_first >> 11) as i16,
            saturate(out_second >> 11) as i16,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq_hz: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * freq_hz * n as f64 / 16_000.0).sin())
                    as i16
            })
            .collect()
    }

    /// A deterministic test signal: a 100 Hz → 7.9 kHz chirp with noise and a few clipped
    /// bursts near full scale, so both bands and the scale factor limits are exercised.
    pub(crate) fn conformance_signal() -> Vec<i16> {
        let mut state = 0x2545_f491u32;
        (0..16_000)
            .map(|n| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let t = n as f64 / 16_000.0;
                let phase = 2.0 * std::f64::consts::PI * (100.0 * t + 3_900.0 * t * t);
                let burst = if (n / 1_000) % 5 == 4 { 2.5 } else { 1.0 };
                let x = burst * 10_000.0 * phase.sin() + (state % 2_001) as f64 - 1_000.0;
                x.clamp(i16::MIN as f64, i16::MAX as f64) as i16
            })
            .collect()
    }

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        let mut bytes = Vec::new();
        // 20 ms packets, as on the wire.
        let mut out = Vec::new();
        for frame in pcm.chunks(320) {
            bytes.clear();
            encoder.encode(frame, &mut bytes);
            decoder.decode(&bytes, &mut out);
        }
        out
    }

    /// SNR in dB of `decoded` against `original`, after the codec delay.
    pub(crate) fn snr_db(original: &[i16], decoded: &[i16], delay: usize) -> f64 {
        let mut signal = 0.0f64;
        let mut noise = 0.0f64;
        for (i, &o) in original.iter().enumerate() {
            let Some(&d) = decoded.get(i + delay) else {
                break;
            };
            signal += (o as f64).powi(2);
            noise += (o as f64 - d as f64).powi(2);
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    /// The delay that best aligns the decoded signal, searched around the nominal one.
    fn best_delay(original: &[i16], decoded: &[i16]) -> (usize, f64) {
        (0..64)
            .map(|d| (d, snr_db(original, decoded, d)))
            .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best })
    }

    fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Bit-exact with spandsp 0.0.6 (the G.722 of baresip, Asterisk and FreeSWITCH): the
    /// digests are of spandsp's `g722_encode` output for [`conformance_signal`] at 64 kbit/s,
    /// and of its `g722_decode` of those bytes (16-bit little-endian). spandsp wraps where a
    /// decoded sample overflows and we saturate; this signal stays inside the range.
    #[test]
    fn encoder_and_decoder_match_the_spandsp_reference() {
        let pcm = conformance_signal();
        let mut bytes = Vec::new();
        G722Encoder::new().encode(&pcm, &mut bytes);
        assert_eq!(bytes.len(), 8_000);
        assert_eq!(fnv1a(bytes.iter().copied()), 0x7ba5_a466_e9f1_efcd);
        let mut decoded = Vec::new();
        G722Decoder::new().decode(&bytes, &mut decoded);
        assert_eq!(
            fnv1a(decoded.iter().flat_map(|s| s.to_le_bytes())),
            0xd4d8_9bfa_56c9_9522
        );
    }

    #[test]
    fn the_codec_delay_is_the_two_qmfs() {
        // A chirp has a single alignment, unlike a periodic tone.
        let pcm = conformance_signal();
        let decoded = round_trip(&pcm);
        let (delay, snr) = best_delay(&pcm[800..], &decoded[800..]);
        assert_eq!(delay, CODEC_DELAY_SAMPLES, "SNR there {snr:.1} dB");
    }

    #[test]
    fn a_sine_survives_with_high_snr_at_the_codec_delay() {
        for (freq, amplitude) in [(440.0, 8_000.0), (1_000.0, 12_000.0), (3_000.0, 4_000.0)] {
            let tone = sine(freq, amplitude, 16_000);
            let decoded = round_trip(&tone);
            assert_eq!(decoded.len(), tone.len());
            // Skip the first 50 ms while the adaptive quantisers settle.
            let snr = snr_db(&tone[800..], &decoded[800..], CODEC_DELAY_SAMPLES);
            assert!(snr > 30.0, "{freq} Hz: SNR {snr:.1} dB");
        }
    }

    fn shared() -> std::path::PathBuf {
        let dir = std::env::var_os("HOTLINE_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
            });
        assert!(
            dir.join("audio").is_dir(),
            "shared test data not found at {} (set HOTLINE_SHARED)",
            dir.display()
        );
        dir
    }

    /// Real recorded speech (16 kHz) through encode → decode in 20 ms packets keeps its SNR
    /// (measured: 37.9 dB on jfk.wav, 23.7 dB on the CMU ARCTIC clip, whose hiss above 7 kHz
    /// the codec's band limit removes).
    #[test]
    fn recorded_speech_keeps_its_snr() {
        for clip in ["audio/en/jfk.wav", "audio/en/cmu_arctic_us_aew_a0001.wav"] {
            let path = shared().join(clip);
            let mut reader =
                hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let spec = reader.spec();
            assert_eq!((spec.sample_rate, spec.channels), (16_000, 1), "{clip}");
            let speech: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
            let decoded = round_trip(&speech);
            let snr = snr_db(&speech, &decoded, CODEC_DELAY_SAMPLES);
            assert!(snr > 20.0, "{clip}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn the_high_band_carries_audio_above_4_khz() {
        let tone = sine(6_000.0, 6_000.0, 16_000);
        let decoded = round_trip(&tone);
        let energy = |s: &[i16]| s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        let ratio = energy(&decoded[800..]) / energy(&tone[800..]);
        assert!(ratio > 0.5 && ratio < 2.0, "6 kHz energy ratio {ratio:.2}");
    }

    #[test]
    fn every_byte_sequence_decodes_without_panic() {
        let mut decoder = G722Decoder::new();
        let mut out = Vec::new();
        // All byte values in many orders, and runs of extremes that drive the scale factors
        // to their limits.
        for stride in [1u32, 7, 31, 101, 255] {
            let bytes: Vec<u8> = (0..4096u32).map(|i| (i * stride % 256) as u8).collect();
            decoder.decode(&bytes, &mut out);
        }
        for byte in [0x00u8, 0xff, 0x3f, 0xc0, 0x80, 0x7f] {
            decoder.decode(&[byte; 5000], &mut out);
        }
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..50_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        decoder.decode(&noise, &mut out);
        assert_eq!(out.len(), 2 * (5 * 4096 + 6 * 5000 + 50_000));
        // A full-scale square wave must not wrap around in the encoder either.
        let mut encoder = G722Encoder::new();
        let square: Vec<i16> = (0..16_000)
            .map(|i| if i / 20 % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let mut bytes = Vec::new();
        encoder.encode(&square, &mut bytes);
        assert_eq!(bytes.len(), 8_000);
    }

    #[test]
    fn reset_returns_to_the_power_on_state() {
        let tone = sine(700.0, 9_000.0, 3_200);
        let mut fresh = Vec::new();
        G722Encoder::new().encode(&tone, &mut fresh);

        let mut encoder = G722Encoder::new();
        let mut scratch = Vec::new();
        encoder.encode(&sine(2_500.0, 20_000.0, 1_601), &mut scratch);
        encoder.reset();
        let mut again = Vec::new();
        encoder.encode(&tone, &mut again);
        assert_eq!(again, fresh, "a reset encoder encodes as a new one");

        let mut decoder = G722Decoder::new();
        let mut first = Vec::new();
        decoder.decode(&fresh, &mut first);
        let mut other = Vec::new();
        decoder.decode(&scratch, &mut other);
        decoder.reset();
        let mut second = Vec::new();
        decoder.decode(&fresh, &mut second);
        assert_eq!(first, second, "a reset decoder decodes as a new one");
    }

    #[test]
    fn odd_sized_pieces_encode_like_one_stream() {
        let tone = sine(900.0, 7_000.0, 960);
        let mut whole = Vec::new();
        G722Encoder::new().encode(&tone, &mut whole);
        let mut encoder = G722Encoder::new();
        let mut pieces = Vec::new();
        for piece in tone.chunks(77) {
            encoder.encode(piece, &mut pieces);
        }
        assert_eq!(pieces, whole);
    }
}
