//! WAV files: reading recordings and prompts, writing call recordings and fixtures.
//!
//! Reading checks the RIFF structure itself first (chunk sizes against the file, the `fmt `
//! chunk's fields), then decodes integer and float PCM through hound and G.711 µ-law (format tag
//! 7) and A-law (tag 6), which hound does not read, with [`super::g711`]. Writing produces 16-bit
//! PCM through hound, or 8 kHz mono G.711 with a hand-written header (`fmt ` of 18 bytes plus the
//! `fact` chunk that non-PCM WAVs carry).
//!
//! Invariants: every error names the file and what is wrong with it; malformed, truncated or
//! unsupported files never panic, and a declared size is never trusted for an allocation before it
//! has been checked against the file's real length.

use std::io::Write;
use std::path::Path;

use super::g711::G711Law;

/// Decoded PCM of any rate and channel count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pcm {
    /// Sample rate.
    pub sample_rate_hz: u32,
    /// Channels; `samples` is interleaved.
    pub channels: u16,
    /// Interleaved 16-bit samples.
    pub samples: Vec<i16>,
}

impl Pcm {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / self.channels as usize
        }
    }

    /// The audio's duration.
    pub fn duration(&self) -> std::time::Duration {
        if self.sample_rate_hz == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(self.frames() as f64 / self.sample_rate_hz as f64)
    }

    /// The channels averaged into one.
    pub fn to_mono(&self) -> Vec<i16> {
        let channels = self.channels.max(1) as usize;
        if channels == 1 {
            return self.samples.clone();
        }
        self.samples
            .chunks_exact(channels)
            .map(|frame| {
                let sum: i32 = frame.iter().map(|&s| s as i32).sum();
                (sum / channels as i32) as i16
            })
            .collect()
    }
}

/// A WAV file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file does not start with a RIFF/WAVE header.
    #[error("{path}: not a RIFF/WAVE file")]
    NotWave { path: String },
    /// A chunk claims more bytes than the file holds.
    #[error("{path}: truncated {chunk} chunk ({declared} bytes declared, {available} present)")]
    Truncated {
        path: String,
        chunk: String,
        declared: u64,
        available: u64,
    },
    /// The audio encoding is not one hotline reads.
    #[error("{path}: unsupported format tag {tag} ({name})")]
    UnsupportedFormat {
        path: String,
        tag: u16,
        name: &'static str,
    },
    /// The header is inconsistent or a required chunk is missing.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// Converting to 16 kHz failed.
    #[error("{path}: {source}")]
    Resample {
        path: String,
        source: super::resample::ResampleError,
    },
}

/// Files above this size are refused rather than read into memory (about 3 hours of 48 kHz
/// stereo).
const MAX_FILE_BYTES: u64 = 2 << 30;

/// WAV format tags hotline knows by name.
const FORMAT_PCM: u16 = 0x0001;
const FORMAT_IEEE_FLOAT: u16 = 0x0003;
const FORMAT_ALAW: u16 = 0x0006;
const FORMAT_ULAW: u16 = 0x0007;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// A readable name for a format tag, for error messages.
fn format_name(tag: u16) -> &'static str {
    match tag {
        0x0000 => "unknown",
        FORMAT_PCM => "PCM",
        0x0002 => "Microsoft ADPCM",
        FORMAT_IEEE_FLOAT => "IEEE float",
        FORMAT_ALAW => "A-law",
        FORMAT_ULAW => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        0x0064 => "G.726 ADPCM",
        0x0065 => "G.722 ADPCM",
        0x0161..=0x0163 => "Windows Media Audio",
        0x1610 => "AAC",
        0x2000 => "AC-3",
        0x674F..=0x6751 | 0x676F..=0x6771 => "Vorbis",
        0xF1AC => "FLAC",
        FORMAT_EXTENSIBLE => "extensible",
        _ => "not a known WAV encoding",
    }
}

/// What the `fmt ` chunk says.
#[derive(Debug, Clone, Copy)]
struct FormatChunk {
    /// The effective tag (the sub-format's for WAVE_FORMAT_EXTENSIBLE).
    tag: u16,
    channels: u16,
    sample_rate_hz: u32,
    block_align: u16,
    bits_per_sample: u16,
}

/// Reads a WAV file: 8/16/24/32-bit integer PCM, 32-bit float, µ-law or A-law.
pub fn read_wav(path: &Path) -> Result<Pcm, WavError> {
    let origin = path.display().to_string();
    let io_error = |source| WavError::Io {
        path: origin.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(WavError::Invalid {
            path: origin,
            message: format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"),
        });
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    parse_wav(&bytes, &origin)
}

/// Decodes a WAV file held in memory; `origin` names it in errors.
pub fn parse_wav(bytes: &[u8], origin: &str) -> Result<Pcm, WavError> {
    let (format, data) = parse_riff(bytes, origin)?;
    let invalid = |message: String| WavError::Invalid {
        path: origin.to_string(),
        message,
    };
    if format.channels == 0 {
        return Err(invalid("fmt chunk declares 0 channels".into()));
    }
    if format.sample_rate_hz == 0 {
        return Err(invalid("fmt chunk declares a sample rate of 0 Hz".into()));
    }
    match format.tag {
        FORMAT_ULAW | FORMAT_ALAW => {
            if format.bits_per_sample != 8 {
                return Err(invalid(format!(
                    "G.711 data must have 8 bits per sample, not {}",
                    format.bits_per_sample
                )));
            }
            let law = if format.tag == FORMAT_ULAW {
                G711Law::Ulaw
            } else {
                G711Law::Alaw
            };
            // Drop a trailing partial frame rather than misalign the channels.
            let whole = data.len() - data.len() % format.channels as usize;
            Ok(Pcm {
                sample_rate_hz: format.sample_rate_hz,
                channels: format.channels,
                samples: law.decode_slice(&data[..whole]),
            })
        }
        FORMAT_PCM | FORMAT_IEEE_FLOAT => read_with_hound(bytes, origin, format),
        tag => Err(WavError::UnsupportedFormat {
            path: origin.to_string(),
            tag,
            name: format_name(tag),
        }),
    }
}

/// Reads a WAV file as 16 kHz mono: channels are averaged and the rate converted.
pub fn read_wav_mono_16k(path: &Path) -> Result<Vec<i16>, WavError> {
    let pcm = read_wav(path)?;
    let mono = pcm.to_mono();
    super::resample::resample(&mono, pcm.sample_rate_hz, super::SAMPLE_RATE_HZ).map_err(|source| {
        WavError::Resample {
            path: path.display().to_string(),
            source,
        }
    })
}

/// Writes 16-bit PCM.
pub fn write_wav(path: &Path, pcm: &Pcm) -> Result<(), WavError> {
    let origin = path.display().to_string();
    let invalid = |message: String| WavError::Invalid {
        path: origin.clone(),
        message,
    };
    if pcm.channels == 0 {
        return Err(invalid("cannot write 0 channels".into()));
    }
    if pcm.sample_rate_hz == 0 {
        return Err(invalid("cannot write a sample rate of 0 Hz".into()));
    }
    if pcm.samples.len() % pcm.channels as usize != 0 {
        return Err(invalid(format!(
            "{} samples do not divide into {} channels",
            pcm.samples.len(),
            pcm.channels
        )));
    }
    let spec = hound::WavSpec {
        channels: pcm.channels,
        sample_rate: pcm.sample_rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let hound_error = |e: hound::Error| hound_to_wav_error(e, &origin);
    let mut writer = hound::WavWriter::create(path, spec).map_err(hound_error)?;
    {
        let mut samples = writer.get_i16_writer(pcm.samples.len() as u32);
        for &s in &pcm.samples {
            samples.write_sample(s);
        }
        samples.flush().map_err(hound_error)?;
    }
    writer.finalize().map_err(hound_error)
}

/// Writes 8 kHz mono G.711 (`law`) from 16-bit samples at 8 kHz.
pub fn write_g711_wav(path: &Path, samples: &[i16], law: G711Law) -> Result<(), WavError> {
    let origin = path.display().to_string();
    let codes = law.encode_slice(samples);
    let data_len = u32::try_from(codes.len())
        .ok()
        .filter(|&n| n <= u32::MAX - 64)
        .ok_or_else(|| WavError::Invalid {
            path: origin.clone(),
            message: "too many samples for a WAV file".into(),
        })?;
    let pad = data_len & 1;
    let tag = match law {
        G711Law::Ulaw => FORMAT_ULAW,
        G711Law::Alaw => FORMAT_ALAW,
    };
    let sample_rate_hz: u32 = 8_000;
    let riff_len = 4 + (8 + 18) + (8 + 4) + 8 + data_len + pad;
    let mut out = Vec::with_capacity(riff_len as usize + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_len.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // channels
    out.extend_from_slice(&sample_rate_hz.to_le_bytes());
    out.extend_from_slice(&sample_rate_hz.to_le_bytes()); // bytes per second
    out.extend_from_slice(&1u16.to_le_bytes()); // block align
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(&0u16.to_le_bytes()); // no extra format bytes
    out.extend_from_slice(b"fact");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes()); // samples per channel
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&codes);
    if pad == 1 {
        out.push(0);
    }
    let io_error = |source| WavError::Io {
        path: origin.clone(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io_error)?;
    file.write_all(&out).map_err(io_error)?;
    file.flush().map_err(io_error)
}

/// Walks the RIFF chunks; returns the format and the data chunk's bytes.
fn parse_riff<'a>(bytes: &'a [u8], origin: &str) -> Result<(FormatChunk, &'a [u8]), WavError> {
    let path = || origin.to_string();
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave { path: path() });
    }
    let mut format: Option<FormatChunk> = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 12usize;
    while bytes.len() - pos >= 8 {
        let id = &bytes[pos..pos + 4];
        let declared = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as u64;
        let body_start = pos + 8;
        let available = (bytes.len() - body_start) as u64;
        let chunk_name = || String::from_utf8_lossy(id).trim_end().to_string();
        if declared > available {
            // A damaged chunk after the audio (metadata at the end) does not spoil the audio.
            if format.is_some() && data.is_some() {
                break;
            }
            return Err(WavError::Truncated {
                path: path(),
                chunk: chunk_name(),
                declared,
                available,
            });
        }
        let body = &bytes[body_start..body_start + declared as usize];
        match id {
            b"fmt " => format = Some(parse_format(body, origin)?),
            b"data" => data = Some(body),
            _ => {}
        }
        // Chunks are padded to an even length.
        let next = body_start as u64 + declared + (declared & 1);
        if next >= bytes.len() as u64 {
            break;
        }
        pos = next as usize;
    }
    let format = format.ok_or_else(|| WavError::Invalid {
        path: path(),
        message: "missing fmt chunk".into(),
    })?;
    let data = data.ok_or_else(|| WavError::Invalid {
        path: path(),
        message: "missing data chunk".into(),
    })?;
    Ok((format, data))
}

fn parse_format(body: &[u8], origin: &str) -> Result<FormatChunk, WavError> {
    if body.len() < 16 {
        return Err(WavError::Invalid {
            path: origin.to_string(),
            message: format!("fmt chunk is {} bytes; at least 16 are needed", body.len()),
        });
    }
    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let mut tag = u16_at(0);
    if tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the sub-format GUID, whose first two bytes
        // are the real tag.
        if body.len() < 40 {
            return Err(WavError::Invalid {
                path: origin.to_string(),
                message: format!(
                    "extensible fmt chunk is {} bytes; 40 are needed",
                    body.len()
                ),
            });
        }
        tag = u16_at(24);
    }
    Ok(FormatChunk {
        tag,
        channels: u16_at(2),
        sample_rate_hz: u32_at(4),
        block_align: u16_at(12),
        bits_per_sample: u16_at(14),
    })
}

/// Decodes integer or float PCM through hound (the RIFF structure has been checked already).
fn read_with_hound(bytes: &[u8], origin: &str, format: FormatChunk) -> Result<Pcm, WavError> {
    let hound_error = |e: hound::Error| hound_to_wav_error(e, origin);
    if format.block_align == 0 {
        return Err(WavError::Invalid {
            path: origin.to_string(),
            message: "fmt chunk declares a block align of 0".into(),
        });
    }
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(hound_error)?;
    let spec = reader.spec();
    let samples: Vec<i16> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample as u32;
            if bits == 0 || bits > 32 {
                return Err(WavError::Invalid {
                    path: origin.to_string(),
                    message: format!("{bits} bits per sample is not supported"),
                });
            }
            reader
                .samples::<i32>()
                .map(|s| {
                    s.map(|v| {
                        if bits <= 16 {
                            (v << (16 - bits)) as i16
                        } else {
                            (v >> (bits - 16)) as i16
                        }
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(hound_error)?
        }
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .map(|s| s.map(|v| (v.clamp(-1.0, 1.0) * 32_767.0).round() as i16))
            .collect::<Result<_, _>>()
            .map_err(hound_error)?,
    };
    Ok(Pcm {
        sample_rate_hz: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

fn hound_to_wav_error(e: hound::Error, origin: &str) -> WavError {
    let path = origin.to_string();
    match e {
        hound::Error::IoError(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            WavError::Invalid {
                path,
                message: "truncated data chunk".into(),
            }
        }
        hound::Error::IoError(source) => WavError::Io { path, source },
        hound::Error::FormatError(what) => WavError::Invalid {
            path,
            message: what.to_string(),
        },
        hound::Error::Unsupported => WavError::Invalid {
            path,
            message: "unsupported sample layout (bits per sample or channels)".into(),
        },
        other => WavError::Invalid {
            path,
            message: other.to_string(),
        },
    }
}
