//! Per-frame costs of `hotline-media`'s codecs, which both transports use: encode and decode of
//! one 20 ms frame for G.711 µ-law (the baseline), G.722 (our sub-band ADPCM) and Opus (libopus
//! at 16 kHz, 32 kbit/s, in-band FEC), plus one Opus loss concealment (PLC). Run with `cargo bench --bench codecs`.
//!
//! The frames come from a recording in the shared test data when it is there
//! (`$HOTLINE_SHARED`, else `../shared`), else from a synthetic vowel-like signal.

use std::f64::consts::PI;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline_media::{Codec, VoiceCodec};

fn synthetic(sample_rate_hz: u32, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            let t = n as f64 / sample_rate_hz as f64;
            (6_000.0 * (2.0 * PI * 220.0 * t).sin() + 3_000.0 * (2.0 * PI * 660.0 * t).sin()) as i16
        })
        .collect()
}

/// Speech at `rate_hz`: jfk.wav (16 kHz), decimated by two for 8 kHz.
fn speech(rate_hz: u32) -> Vec<i16> {
    let shared = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let samples = match hotline::audio::wav::read_wav_mono_16k(&shared.join("audio/en/jfk.wav")) {
        Ok(samples) => samples,
        Err(e) => {
            eprintln!("shared audio unavailable ({e}); benchmarking on a synthetic signal");
            synthetic(16_000, 16_000 * 11)
        }
    };
    if rate_hz == 8_000 {
        samples.iter().step_by(2).copied().collect()
    } else {
        samples
    }
}

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("phone_codec");
    group.throughput(Throughput::Elements(1));
    for codec in [Codec::Pcmu, Codec::G722, Codec::Opus] {
        let rate_hz = codec.pcm_rate_hz();
        let frame_samples = (rate_hz / 50) as usize;
        let pcm = speech(rate_hz);
        let frames: Vec<&[i16]> = pcm.chunks_exact(frame_samples).collect();
        let mut encoder = VoiceCodec::new(codec).expect("codec");
        let payloads: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut p = Vec::new();
                encoder.encode(f, &mut p).expect("encode");
                p
            })
            .collect();
        let mut i = 0;
        let mut payload = Vec::with_capacity(400);
        group.bench_function(format!("{}_encode_20ms", codec.name()), |b| {
            b.iter(|| {
                payload.clear();
                encoder
                    .encode(black_box(frames[i % frames.len()]), &mut payload)
                    .expect("encode");
                i += 1;
                black_box(payload.len())
            })
        });
        let mut decoder = VoiceCodec::new(codec).expect("codec");
        let mut out = Vec::with_capacity(frame_samples * 6);
        let mut j = 0;
        group.bench_function(format!("{}_decode_20ms", codec.name()), |b| {
            b.iter(|| {
                out.clear();
                decoder
                    .decode(black_box(&payloads[j % payloads.len()]), &mut out)
                    .expect("decode");
                j += 1;
                black_box(out.len())
            })
        });
        if codec == Codec::Opus {
            group.bench_function("opus_conceal_20ms", |b| {
                b.iter(|| {
                    out.clear();
                    // Decode one frame, then conceal the next as lost.
                    decoder
                        .decode(&payloads[j % payloads.len()], &mut out)
                        .expect("decode");
                    j += 1;
                    black_box(decoder.conceal(None, frame_samples, &mut out))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
