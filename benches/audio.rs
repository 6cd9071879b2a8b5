//! Per-frame costs of the audio core on the media path: VAD, resampling at the edges and G.711,
//! each on one 20 ms frame; and, off the media path, espeak-ng synthesis of one sentence (no
//! cache) in English and Mandarin. Run with `cargo bench --bench audio`.
//!
//! The VAD frames come from a recording in the shared test data when it is there
//! (`$HOTLINE_SHARED`, else `../shared`), else from a synthetic vowel-like signal.

use std::f64::consts::PI;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline::audio::g711;
use hotline::audio::resample::StreamResampler;
use hotline::audio::vad::Vad;
use hotline::audio::{frames_of, Frame, FRAME_MS};

fn tone(sample_rate_hz: u32, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            let t = n as f64 / sample_rate_hz as f64;
            (6_000.0 * (2.0 * PI * 220.0 * t).sin() + 3_000.0 * (2.0 * PI * 660.0 * t).sin()) as i16
        })
        .collect()
}

fn speech_frames() -> Vec<Frame> {
    let shared = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let jfk = shared.join("audio/en/jfk.wav");
    match hotline::audio::wav::read_wav_mono_16k(&jfk) {
        Ok(samples) => frames_of(&samples).collect(),
        Err(e) => {
            eprintln!("shared audio unavailable ({e}); benchmarking VAD on a synthetic signal");
            frames_of(&tone(16_000, 16_000 * 11)).collect()
        }
    }
}

fn vad(c: &mut Criterion) {
    let frames = speech_frames();
    let mut group = c.benchmark_group("vad");
    group.throughput(Throughput::Elements(1));
    let mut detector = Vad::new();
    let mut i = 0;
    group.bench_function("score_20ms_frame", |b| {
        b.iter(|| {
            let score = detector.score(black_box(&frames[i % frames.len()]));
            i += 1;
            score
        })
    });
    group.finish();
}

fn resampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_20ms_frame");
    for (from_hz, to_hz) in [
        (8_000u32, 16_000u32),
        (48_000, 16_000),
        (16_000, 48_000),
        (16_000, 8_000),
    ] {
        let frame = tone(from_hz, (from_hz * FRAME_MS / 1000) as usize);
        let mut stream = StreamResampler::new(from_hz, to_hz).expect("supported rates");
        group.bench_function(format!("{}k_to_{}k", from_hz / 1000, to_hz / 1000), |b| {
            b.iter(|| stream.process(black_box(&frame)))
        });
    }
    group.finish();
}

fn g711_codec(c: &mut Criterion) {
    let frame = tone(8_000, (8_000 * FRAME_MS / 1000) as usize); // 160 samples
    let ulaw = g711::ulaw_encode_slice(&frame);
    let alaw = g711::alaw_encode_slice(&frame);
    let mut group = c.benchmark_group("g711_20ms_frame");
    group.bench_function("ulaw_encode", |b| {
        b.iter(|| g711::ulaw_encode_slice(black_box(&frame)))
    });
    group.bench_function("ulaw_decode", |b| {
        b.iter(|| g711::ulaw_decode_slice(black_box(&ulaw)))
    });
    group.bench_function("alaw_encode", |b| {
        b.iter(|| g711::alaw_encode_slice(black_box(&frame)))
    });
    group.bench_function("alaw_decode", |b| {
        b.iter(|| g711::alaw_decode_slice(black_box(&alaw)))
    });
    group.finish();
}

fn synthesis(c: &mut Criterion) {
    use hotline::language::Language;
    use hotline::tts::{EspeakSynthesizer, Synthesizer};
    let mut espeak = match EspeakSynthesizer::new(&hotline::config::TtsConfig::default()) {
        Ok(espeak) => espeak,
        Err(e) => {
            eprintln!("espeak-ng unavailable ({e}); skipping the synthesis benchmark");
            return;
        }
    };
    let mut group = c.benchmark_group("tts_sentence");
    group.sample_size(20);
    for (name, text, language) in [
        (
            "en",
            "Thank you for calling, how can I help you today?",
            Language::En,
        ),
        (
            "zh",
            "您好，欢迎致电客服中心，请问有什么可以帮您？",
            Language::Zh,
        ),
    ] {
        let audio = espeak.synthesize(text, language).expect("synthesis");
        eprintln!(
            "tts_sentence/{name}: {:.2} s of audio",
            audio.len() as f64 / 16_000.0
        );
        group.bench_function(name, |b| {
            b.iter(|| espeak.synthesize(black_box(text), language))
        });
    }
    group.finish();
}

criterion_group!(benches, vad, resampling, g711_codec, synthesis);
criterion_main!(benches);
