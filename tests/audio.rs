//! The audio core against real data: G.711 codecs (exhaustively), WAV files (the shared
//! telephone recordings in µ-law and A-law, every PCM width hound writes, corrupt files) and
//! resampling (lengths, alignment, sine frequency and amplitude, anti-aliasing, streaming).

mod common;

use std::f64::consts::PI;
use std::path::Path;

use hotline::audio::g711::{self, G711Law};
use hotline::audio::resample::{output_len, resample, StreamResampler, COMMON_RATES_HZ};
use hotline::audio::wav::{
    parse_wav, read_wav, read_wav_mono_16k, write_g711_wav, write_wav, Pcm, WavError,
};

use common::shared::shared_dir;

fn sine(freq_hz: f64, amplitude: f64, sample_rate_hz: u32, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            (amplitude * (2.0 * PI * freq_hz * n as f64 / sample_rate_hz as f64).sin()).round()
                as i16
        })
        .collect()
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Signal-to-noise ratio of `decoded` against `reference`, in dB.
fn snr_db(reference: &[i16], decoded: &[i16]) -> f64 {
    let signal: f64 = reference.iter().map(|&s| (s as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(decoded)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-9)).log10()
}

/// Estimates a tone's frequency from its zero crossings.
fn zero_crossing_hz(samples: &[i16], sample_rate_hz: u32) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / sample_rate_hz as f64)
}

// ---------------------------------------------------------------- G.711

#[test]
fn g711_code_words_round_trip() {
    for code in 0..=255u8 {
        let expected_ulaw = if code == 0x7F { 0xFF } else { code }; // µ-law's negative zero
        assert_eq!(
            g711::ulaw_encode(g711::ulaw_decode(code)),
            expected_ulaw,
            "µ-law code {code:#04x}"
        );
        assert_eq!(
            g711::alaw_encode(g711::alaw_decode(code)),
            code,
            "A-law code {code:#04x}"
        );
        assert_eq!(
            g711::ulaw_decode(code ^ 0x80),
            -g711::ulaw_decode(code),
            "µ-law symmetry {code:#04x}"
        );
        assert_eq!(
            g711::alaw_decode(code ^ 0x80),
            -g711::alaw_decode(code),
            "A-law symmetry {code:#04x}"
        );
    }
}

/// Every 16-bit sample decodes to one of the two quantizer levels around it (or the extreme
/// level when it is beyond the range), so the error is at most one local step.
#[test]
fn g711_error_is_within_one_step_for_every_sample() {
    for law in [G711Law::Ulaw, G711Law::Alaw] {
        let mut levels: Vec<i32> = (0..=255u8).map(|c| law.decode(c) as i32).collect();
        levels.sort_unstable();
        levels.dedup();
        let (lowest, highest) = (levels[0], levels[levels.len() - 1]);
        let mut worst_relative = 0.0f64;
        for x in i16::MIN..=i16::MAX {
            let x32 = x as i32;
            let y = law.decode(law.encode(x)) as i32;
            if x32 >= highest {
                assert_eq!(y, highest, "{law:?}: {x} beyond the top level");
                continue;
            }
            if x32 <= lowest {
                assert_eq!(y, lowest, "{law:?}: {x} beyond the bottom level");
                continue;
            }
            let above = levels.partition_point(|&l| l < x32);
            let (below_level, above_level) = (levels[above.saturating_sub(1)], levels[above]);
            assert!(
                y == below_level || y == above_level || y == x32,
                "{law:?}: {x} decoded to {y}, not a neighbouring level ({below_level}, {above_level})"
            );
            if x32.abs() > 1024 {
                worst_relative = worst_relative.max((y - x32).abs() as f64 / x32.abs() as f64);
            }
        }
        // Logarithmic companding keeps the relative error near 1/32 above the linear segment.
        assert!(
            worst_relative < 0.07,
            "{law:?}: worst relative error {worst_relative}"
        );
    }
}

#[test]
fn g711_sine_snr_is_telephone_quality() {
    let tone = sine(1_000.0, 16_000.0, 8_000, 8_000);
    for law in [G711Law::Ulaw, G711Law::Alaw] {
        let decoded = law.decode_slice(&law.encode_slice(&tone));
        let snr = snr_db(&tone, &decoded);
        assert!(snr > 35.0, "{law:?} SNR {snr:.1} dB");
        // A quiet tone keeps its SNR too (companding), unlike 8-bit linear.
        let quiet = sine(1_000.0, 300.0, 8_000, 8_000);
        let snr_quiet = snr_db(&quiet, &law.decode_slice(&law.encode_slice(&quiet)));
        assert!(snr_quiet > 25.0, "{law:?} quiet-tone SNR {snr_quiet:.1} dB");
    }
}

#[test]
fn g711_slices_match_samples() {
    let samples: Vec<i16> = (i16::MIN..=i16::MAX).step_by(97).collect();
    let ulaw = g711::ulaw_encode_slice(&samples);
    let alaw = g711::alaw_encode_slice(&samples);
    for (i, &s) in samples.iter().enumerate() {
        assert_eq!(ulaw[i], g711::ulaw_encode(s));
        assert_eq!(alaw[i], g711::alaw_encode(s));
    }
    assert_eq!(
        g711::ulaw_decode_slice(&ulaw),
        ulaw.iter()
            .map(|&c| g711::ulaw_decode(c))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        g711::alaw_decode_slice(&alaw),
        alaw.iter()
            .map(|&c| g711::alaw_decode(c))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------- WAV

#[test]
fn shared_telephone_g711_files_read_and_round_trip() {
    let dir = shared_dir().join("audio/telephone");
    let mut seen = [0usize; 2]; // µ-law, A-law files
    let tmp = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(&dir).expect("telephone folder") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wav") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let law = if name.contains("mulaw") {
            G711Law::Ulaw
        } else if name.contains("alaw") {
            G711Law::Alaw
        } else {
            continue;
        };
        seen[law as usize] += 1;
        let pcm = read_wav(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pcm.sample_rate_hz, 8_000, "{name}");
        assert_eq!(pcm.channels, 1, "{name}");
        assert!(
            pcm.duration().as_secs_f64() > 1.0,
            "{name}: {:?}",
            pcm.duration()
        );
        let level = rms(&pcm.samples);
        assert!(level > 300.0, "{name}: rms {level:.0}, expected speech");
        // Every sample is a G.711 level of this law.
        assert!(
            pcm.samples.iter().all(|&s| law.decode(law.encode(s)) == s),
            "{name}: not {law:?} levels"
        );

        let copy = tmp.path().join(&name);
        write_g711_wav(&copy, &pcm.samples, law).unwrap_or_else(|e| panic!("{e}"));
        let again = read_wav(&copy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, pcm, "{name}: G.711 write and re-read");
        assert_eq!(
            std::fs::metadata(&copy).expect("copy").len() as usize % 2,
            0,
            "RIFF chunks are padded"
        );

        let at_16k = read_wav_mono_16k(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            at_16k.len(),
            pcm.samples.len() * 2,
            "{name}: 8 kHz to 16 kHz doubles the length"
        );
    }
    assert!(
        seen[0] >= 1 && seen[1] >= 1,
        "expected µ-law and A-law files in {}, saw {seen:?}",
        dir.display()
    );
}

#[test]
fn pcm16_round_trip_mono_and_stereo() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let left = sine(440.0, 12_000.0, 44_100, 4_410);
    let right = sine(660.0, 8_000.0, 44_100, 4_410);
    let stereo: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    for pcm in [
        Pcm {
            sample_rate_hz: 44_100,
            channels: 2,
            samples: stereo,
        },
        Pcm {
            sample_rate_hz: 8_000,
            channels: 1,
            samples: vec![i16::MIN, -1, 0, 1, i16::MAX],
        },
        Pcm {
            sample_rate_hz: 16_000,
            channels: 1,
            samples: vec![],
        },
    ] {
        let path = tmp
            .path()
            .join(format!("{}_{}.wav", pcm.sample_rate_hz, pcm.channels));
        write_wav(&path, &pcm).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_wav(&path).unwrap_or_else(|e| panic!("{e}")), pcm);
    }
    // Samples that do not divide into the channels are refused, not written.
    let odd = Pcm {
        sample_rate_hz: 8_000,
        channels: 2,
        samples: vec![1, 2, 3],
    };
    assert!(write_wav(&tmp.path().join("odd.wav"), &odd).is_err());
}

#[test]
fn reads_every_width_hound_writes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let reference = sine(500.0, 20_000.0, 16_000, 1_600);
    let cases: [(u16, hound::SampleFormat); 5] = [
        (8, hound::SampleFormat::Int),
        (16, hound::SampleFormat::Int),
        (24, hound::SampleFormat::Int),
        (32, hound::SampleFormat::Int),
        (32, hound::SampleFormat::Float),
    ];
    for (bits, format) in cases {
        let path = tmp.path().join(format!("{bits}_{format:?}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut writer = hound::WavWriter::create(&path, spec).expect("create");
        for &s in &reference {
            match (format, bits) {
                (hound::SampleFormat::Float, _) => {
                    writer.write_sample(s as f32 / 32_768.0).expect("write")
                }
                (_, 8) => writer.write_sample((s >> 8) as i8).expect("write"),
                (_, 16) => writer.write_sample(s).expect("write"),
                (_, 24) => writer.write_sample((s as i32) << 8).expect("write"),
                _ => writer.write_sample((s as i32) << 16).expect("write"),
            }
        }
        writer.finalize().expect("finalize");
        let pcm = read_wav(&path).unwrap_or_else(|e| panic!("{bits}-bit {format:?}: {e}"));
        assert_eq!(pcm.sample_rate_hz, 16_000);
        assert_eq!(pcm.samples.len(), reference.len());
        let tolerance = if bits == 8 { 256 } else { 1 };
        for (i, (&got, &want)) in pcm.samples.iter().zip(&reference).enumerate() {
            assert!(
                (got as i32 - want as i32).abs() <= tolerance,
                "{bits}-bit {format:?} sample {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn mono_16k_downmixes_and_resamples() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let left = sine(1_000.0, 10_000.0, 48_000, 48_000);
    let stereo: Vec<i16> = left.iter().flat_map(|&l| [l, 0]).collect();
    let path = tmp.path().join("stereo48k.wav");
    write_wav(
        &path,
        &Pcm {
            sample_rate_hz: 48_000,
            channels: 2,
            samples: stereo,
        },
    )
    .expect("write");
    let mono = read_wav_mono_16k(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mono.len(), 16_000);
    let interior = &mono[800..15_200];
    let amplitude = rms(interior) * 2f64.sqrt();
    assert!(
        (amplitude - 5_000.0).abs() < 150.0,
        "half of a 10000 tone after the downmix, got {amplitude:.0}"
    );
    let freq = zero_crossing_hz(interior, 16_000);
    assert!((freq - 1_000.0).abs() < 5.0, "frequency {freq:.1}");

    // A real 16 kHz recording comes back unchanged.
    let jfk = shared_dir().join("audio/en/jfk.wav");
    let direct: Vec<i16> = hound::WavReader::open(&jfk)
        .expect("jfk")
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    assert_eq!(
        read_wav_mono_16k(&jfk).unwrap_or_else(|e| panic!("{e}")),
        direct
    );
}

// ---------------------------------------------------------------- corrupt WAVs

fn valid_pcm_wav() -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer =
            hound::WavWriter::new(std::io::Cursor::new(&mut bytes), spec).expect("writer");
        for s in sine(300.0, 5_000.0, 8_000, 400) {
            writer.write_sample(s).expect("write");
        }
        writer.finalize().expect("finalize");
    }
    bytes
}

/// A WAV with a chosen fmt chunk and data.
fn wav_with_format(
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: &[u8],
    data_declared: Option<u32>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + 24 + 8 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    let block_align = channels * bits.div_ceil(8);
    out.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_declared.unwrap_or(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn read_bytes(tmp: &Path, name: &str, bytes: &[u8]) -> Result<Pcm, WavError> {
    let path = tmp.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    read_wav(&path)
}

#[test]
fn corrupt_files_give_clear_errors() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let tmp = tmp.path();
    let valid = valid_pcm_wav();
    assert!(read_bytes(tmp, "valid.wav", &valid).is_ok());

    let expect_err = |name: &str, bytes: &[u8], needle: &str| {
        let err = read_bytes(tmp, name, bytes).expect_err(name).to_string();
        assert!(
            err.contains(name),
            "{name}: error does not name the file: {err}"
        );
        assert!(
            err.contains(needle),
            "{name}: expected {needle:?} in {err:?}"
        );
    };
    expect_err("empty.wav", &[], "not a RIFF/WAVE file");
    expect_err(
        "garbage.wav",
        b"this is plainly not audio at all, just text",
        "not a RIFF/WAVE file",
    );
    expect_err(
        "riff-not-wave.wav",
        b"RIFF\x10\x00\x00\x00AVI LIST\x00\x00\x00\x00",
        "not a RIFF/WAVE file",
    );
    expect_err("header-only.wav", &valid[..20], "truncated fmt chunk");
    expect_err(
        "cut-in-data.wav",
        &valid[..valid.len() - 100],
        "truncated data chunk",
    );
    let huge = wav_with_format(1, 1, 8_000, 16, &[0; 64], Some(0xFFFF_FFF0));
    expect_err("huge-size.wav", &huge, "truncated data chunk");
    let mp3 = wav_with_format(0x55, 1, 8_000, 0, &[0xFF; 64], None);
    expect_err("mp3.wav", &mp3, "unsupported format tag 85 (MP3)");
    let adpcm = wav_with_format(0x11, 1, 8_000, 4, &[0; 64], None);
    expect_err("adpcm.wav", &adpcm, "unsupported format tag 17 (IMA ADPCM)");
    let no_channels = wav_with_format(1, 0, 8_000, 16, &[0; 64], None);
    expect_err("no-channels.wav", &no_channels, "0 channels");
    let no_rate = wav_with_format(7, 1, 0, 8, &[0; 64], None);
    expect_err("no-rate.wav", &no_rate, "0 Hz");
    let wide_ulaw = wav_with_format(7, 1, 8_000, 16, &[0; 64], None);
    expect_err("wide-ulaw.wav", &wide_ulaw, "8 bits per sample");
    let mut no_data = valid[..36].to_vec();
    no_data[4..8].copy_from_slice(&28u32.to_le_bytes());
    expect_err("no-data.wav", &no_data, "missing data chunk");

    let missing = tmp.join("does-not-exist.wav");
    let err = read_wav(&missing).expect_err("missing file").to_string();
    assert!(err.contains("does-not-exist.wav"), "{err}");
}

/// Every truncation of a valid file and many random corruptions are answered without a panic.
#[test]
fn damaged_files_never_panic() {
    let mut files = vec![valid_pcm_wav()];
    let ulaw: Vec<u8> = g711::ulaw_encode_slice(&sine(300.0, 5_000.0, 8_000, 300));
    files.push(wav_with_format(7, 1, 8_000, 8, &ulaw, None));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15; // fixed seed: the same cases every run
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut outcomes = [0usize; 2];
    for file in &files {
        for len in 0..file.len() {
            let result = parse_wav(&file[..len], "cut.wav");
            outcomes[result.is_ok() as usize] += 1;
        }
        for _ in 0..3_000 {
            let mut damaged = file.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % 64) as usize % damaged.len();
                damaged[at] = next() as u8;
            }
            let result = parse_wav(&damaged, "damaged.wav");
            outcomes[result.is_ok() as usize] += 1;
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both failures and survivable damage expected: {outcomes:?}"
    );
}

// ---------------------------------------------------------------- resampling

#[test]
fn resample_lengths_for_every_pair() {
    for &from in &COMMON_RATES_HZ {
        for &to in &COMMON_RATES_HZ {
            for len in [0usize, 1, 7, 159, 160, 441, 1_000, 22_050, 48_001] {
                let input = vec![100i16; len];
                let out =
                    resample(&input, from, to).unwrap_or_else(|e| panic!("{from}->{to}: {e}"));
                assert_eq!(
                    out.len(),
                    output_len(len, from, to),
                    "{from}->{to}, {len} samples"
                );
                assert_eq!(
                    out.len(),
                    (len as u64 * to as u64).div_ceil(from as u64) as usize
                );
            }
        }
    }
    let input = sine(700.0, 9_000.0, 22_050, 1_234);
    assert_eq!(
        resample(&input, 22_050, 22_050).expect("identity"),
        input,
        "identity is an exact copy"
    );
}

/// A tone below both Nyquist limits comes out at the same frequency and amplitude and in phase
/// (the filter delay is removed), for every pair of rates.
#[test]
fn resample_keeps_sine_frequency_amplitude_and_phase_for_every_pair() {
    let freq_hz = 1_000.0;
    let amplitude = 10_000.0;
    for &from in &COMMON_RATES_HZ {
        for &to in &COMMON_RATES_HZ {
            let input = sine(freq_hz, amplitude, from, from as usize); // 1 s
            let out = resample(&input, from, to).unwrap_or_else(|e| panic!("{from}->{to}: {e}"));
            let ideal = sine(freq_hz, amplitude, to, out.len());
            // Skip 50 ms at each end, where the input itself starts and stops abruptly.
            let edge = to as usize / 20;
            let interior = &out[edge..out.len() - edge];
            let got_amplitude = rms(interior) * 2f64.sqrt();
            assert!(
                (got_amplitude - amplitude).abs() < 0.02 * amplitude,
                "{from}->{to}: amplitude {got_amplitude:.0}"
            );
            let got_freq = zero_crossing_hz(interior, to);
            assert!(
                (got_freq - freq_hz).abs() < 3.0,
                "{from}->{to}: frequency {got_freq:.1}"
            );
            let worst = interior
                .iter()
                .zip(&ideal[edge..])
                .map(|(&a, &b)| (a as i32 - b as i32).abs())
                .max()
                .unwrap_or(0);
            assert!(
                worst < 200,
                "{from}->{to}: differs from the ideal tone by up to {worst}"
            );
        }
    }
}

#[test]
fn resample_chain_through_the_edges_keeps_the_tone() {
    let original = sine(440.0, 12_000.0, 8_000, 16_000); // 2 s at 8 kHz
    let mut signal = original.clone();
    let mut rate = 8_000;
    for next in [
        16_000, 48_000, 16_000, 8_000, 22_050, 16_000, 44_100, 24_000, 8_000,
    ] {
        signal = resample(&signal, rate, next).unwrap_or_else(|e| panic!("{rate}->{next}: {e}"));
        rate = next;
    }
    assert_eq!(signal.len(), original.len());
    let interior = 800..original.len() - 800;
    let snr = snr_db(&original[interior.clone()], &signal[interior]);
    assert!(
        snr > 30.0,
        "after nine conversions the 440 Hz tone has an SNR of {snr:.1} dB"
    );
}

#[test]
fn downsampling_filters_out_what_the_new_rate_cannot_hold() {
    // 6 kHz cannot exist at 8 kHz (Nyquist 4 kHz): without a filter it would alias to 2 kHz.
    let high = sine(6_000.0, 10_000.0, 48_000, 48_000);
    let out = resample(&high, 48_000, 8_000).expect("resample");
    let level = rms(&out[400..7_600]);
    assert!(level < 0.01 * rms(&high), "aliased energy {level:.0}");
    // 14 kHz at 48 kHz is above 16 kHz's Nyquist too.
    let high = sine(14_000.0, 10_000.0, 48_000, 48_000);
    let out = resample(&high, 48_000, 16_000).expect("resample");
    assert!(rms(&out[800..15_200]) < 0.01 * rms(&high));
}

/// The edges feed one 20 ms frame at a time: every frame gives exactly one 20 ms frame out, the
/// delay is short, and the stream equals the tone shifted by that delay.
#[test]
fn stream_resampler_on_20ms_frames() {
    for (from, to) in [
        (8_000u32, 16_000u32),
        (16_000, 8_000),
        (48_000, 16_000),
        (16_000, 48_000),
        (22_050, 16_000),
    ] {
        let mut stream =
            StreamResampler::new(from, to).unwrap_or_else(|e| panic!("{from}->{to}: {e}"));
        let delay = stream.delay_samples();
        let max_delay_ms = if from == 22_050 { 20 } else { 5 };
        assert!(
            delay as u32 * 1000 / to <= max_delay_ms,
            "{from}->{to}: delay {delay} samples"
        );
        let frame_in = from as usize / 50;
        let frame_out = to as usize / 50;
        let tone = sine(500.0, 8_000.0, from, frame_in * 100); // 2 s
        let mut out = Vec::new();
        for (i, frame) in tone.chunks(frame_in).enumerate() {
            let produced = stream.process(frame);
            if from != 22_050 {
                assert_eq!(produced.len(), frame_out, "{from}->{to}: frame {i}");
            }
            out.extend(produced);
        }
        out.extend(stream.flush());
        assert_eq!(
            out.len(),
            delay + output_len(tone.len(), from, to),
            "{from}->{to}: all input comes out"
        );
        let aligned = &out[delay..];
        let ideal = sine(500.0, 8_000.0, to, aligned.len());
        let edge = to as usize / 20;
        let worst = aligned[edge..aligned.len() - edge]
            .iter()
            .zip(&ideal[edge..])
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap_or(0);
        assert!(
            worst < 250,
            "{from}->{to}: stream differs from the ideal tone by up to {worst}"
        );
    }
    let mut identity = StreamResampler::new(16_000, 16_000).expect("identity");
    assert_eq!(identity.process(&[1, 2, 3]), vec![1, 2, 3]);
    assert_eq!(identity.delay_samples(), 0);
}

#[test]
fn bad_rates_are_errors() {
    assert!(resample(&[1, 2, 3], 0, 16_000).is_err());
    assert!(resample(&[1, 2, 3], 16_000, 44_101).is_err());
    assert!(StreamResampler::new(8_000, 0).is_err());
    let err = StreamResampler::new(7, 16_000)
        .expect_err("7 Hz")
        .to_string();
    assert!(err.contains("7 Hz"), "{err}");
}
