//! `hotline bench`: a load generator that calls a running hotline over real SIP/UDP and RTP
//! and measures latency where a caller feels it, at the caller.
//!
//! Each call ([`call::BenchCall`], sans-IO, with its SIP dialog, `hotline_sip::uac`) dials the target
//! with a G.711 µ-law offer, listens to the greeting, replays recorded caller turns ([`turns`])
//! paced at 20 ms a packet with silence in between, and hangs up after the last answer. One
//! turn per call is spoken over the bot to measure barge-in. [`driver`] is the thin tokio IO
//! around the calls (three UDP sockets per call, a timer, N calls at a time, a progress bar);
//! [`server`] reads the server's CPU and memory from `/proc`; [`stats`] and [`report`] turn
//! the measurements into percentiles, histograms, JSON and a comparison of two runs.
//!
//! Invariants: everything measured is measured on the caller's clock from real packets (the
//! server's own `turn_latency` events are not used); a figure that was not measured is
//! reported as null, never as 0; a call that fails says why in words a user can act on.

pub mod call;
pub mod driver;
pub mod report;
pub mod server;
pub mod stats;
pub mod turns;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hotline_sip::sdp::SdpError;

use crate::audio::resample::ResampleError;
use crate::audio::wav::WavError;

pub use call::{BenchCall, CallOutcome, CallPlan};
pub use report::{compare, AsrModel, Report};

/// The SIP port when the target names none.
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// How long an INVITE may go without any response.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Bot silence that ends its greeting or answer.
pub const BOT_QUIET: Duration = Duration::from_millis(600);
/// The longest answer a caller listens to before speaking anyway.
pub const MAX_ANSWER: Duration = Duration::from_secs(60);

/// Why a bench run, or one of its calls, failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Call(#[from] hotline_sip::uac::UacError),
    #[error("{target} answered with SDP a G.711 caller cannot use: {source}")]
    Sdp { target: String, source: SdpError },
    #[error("{target} hung up early, during {stage}")]
    HungUp { target: String, stage: String },
    #[error("the call was abandoned before it ended")]
    Abandoned,
    #[error("no .wav files in {dir}")]
    NoTurns { dir: String },
    #[error("{path}: no speech (every 20 ms frame is near silence)")]
    SilentTurn { path: String },
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("{path}: {source}")]
    Resample { path: String, source: ResampleError },
    #[error("bad target {text:?}: {reason} (expected sip:HOST[:PORT] or sip:USER@HOST[:PORT])")]
    Target { text: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("/proc/{pid}/{file}: cannot read the server's CPU time or memory from it")]
    Proc { pid: u32, file: String },
    #[error("{path}: not a bench report: {message}")]
    Report { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Which turn is spoken over the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BargeInChoice {
    /// The last turn (the default).
    #[default]
    Last,
    /// This turn, counted from 1.
    Turn(usize),
    /// No barge-in.
    None,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `sip:HOST[:PORT]` or `sip:USER@HOST[:PORT]`.
    pub target: String,
    /// The folder of caller turns (WAV files).
    pub turns_dir: PathBuf,
    pub calls: usize,
    /// Calls at once.
    pub concurrency: usize,
    pub barge_in: BargeInChoice,
    /// How long after the bot's answer starts the barge-in turn starts.
    pub barge_in_after: Duration,
    /// How long to wait for the bot to start answering a turn.
    pub answer_timeout: Duration,
    /// The server process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// The server's ASR model as the user names it (`--asr-model`).
    pub asr_model: Option<String>,
    /// Call `k` starts `k × stagger` after the first, so that calls at once do not all speak
    /// in step (zero: all at once, the worst case for the recognizer).
    pub stagger: Duration,
    /// Calls placed one after another before the measured ones and left out of every figure:
    /// the server's first-use allocations (the recognizer's and the synthesizer's buffers,
    /// the allocator's per-thread arenas) then stay out of its RSS growth per call.
    pub warmup_calls: usize,
}

/// Where the calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As the user wrote it.
    pub text: String,
    pub addr: SocketAddr,
    /// The INVITE's Request-URI.
    pub request_uri: String,
}

/// The parts of a target: user (default `bot`), host and port.
pub fn split_target(text: &str) -> Result<(String, String, u16), BenchError> {
    let bad = |reason: &str| BenchError::Target {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = text.trim();
    let rest = match trimmed.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sip") => rest,
        Some((scheme, _))
            if scheme.eq_ignore_ascii_case("sips") || scheme.eq_ignore_ascii_case("tel") =>
        {
            return Err(bad("only sip: over UDP is supported"))
        }
        _ => trimmed,
    };
    let rest = rest.split([';', '?']).next().unwrap_or(rest);
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((user, host_port)) if !user.is_empty() => (user.to_string(), host_port),
        Some(_) => return Err(bad("empty user before @")),
        None => ("bot".to_string(), rest),
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(bad("junk after the IPv6 address")),
        };
        (host.to_string(), port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (host_port.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        None => DEFAULT_SIP_PORT,
    };
    Ok((user, host, port))
}

/// Reads and resolves a target.
pub fn resolve_target(text: &str) -> Result<Target, BenchError> {
    let (user, host, port) = split_target(text)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| BenchError::Target {
            text: text.to_string(),
            reason: format!("cannot resolve {host}: {e}"),
        })?
        .min_by_key(|a| a.is_ipv6())
        .ok_or_else(|| BenchError::Target {
            text: text.to_string(),
            reason: format!("{host} has no address"),
        })?;
    let host_text = match addr.ip() {
        IpAddr::V6(_) if host.contains(':') => format!("[{host}]"),
        _ => host,
    };
    Ok(Target {
        text: text.trim().to_string(),
        addr,
        request_uri: format!("sip:{user}@{host_text}:{port}"),
    })
}

/// A run ready to start: the turns read and the target resolved.
#[derive(Debug)]
pub struct Bench {
    pub options: BenchOptions,
    pub target: Target,
    pub plan: Arc<CallPlan>,
}

impl Bench {
    /// Reads the turns, resolves the target and checks the options.
    pub fn prepare(options: BenchOptions) -> Result<Self, BenchError> {
        if options.calls == 0 {
            return Err(BenchError::Invalid("--calls must be at least 1".into()));
        }
        if options.concurrency == 0 {
            return Err(BenchError::Invalid(
                "--concurrency must be at least 1".into(),
            ));
        }
        let target = resolve_target(&options.target)?;
        let turns = turns::load_turns(&options.turns_dir)?;
        let barge_in_turn = match options.barge_in {
            BargeInChoice::Last => Some(turns.len() - 1),
            BargeInChoice::None => None,
            BargeInChoice::Turn(n) if (1..=turns.len()).contains(&n) => Some(n - 1),
            BargeInChoice::Turn(n) => {
                return Err(BenchError::Invalid(format!(
                    "--barge-in {n}: the turns are numbered 1 to {} (0 for no barge-in)",
                    turns.len()
                )))
            }
        };
        let plan = Arc::new(CallPlan {
            turns: Arc::new(turns),
            barge_in_turn,
            barge_in_after: options.barge_in_after,
            bot_quiet: BOT_QUIET,
            answer_timeout: options.answer_timeout,
            max_answer: MAX_ANSWER,
        });
        Ok(Self {
            options,
            target,
            plan,
        })
    }

    /// One line per turn: its file, length and where its voice is.
    pub fn describe_turns(&self) -> String {
        let mut text = format!(
            "{} caller turns from {}:\n",
            self.plan.turns.len(),
            self.options.turns_dir.display()
        );
        for (i, turn) in self.plan.turns.iter().enumerate() {
            let barge = if self.plan.barge_in_turn == Some(i) {
                format!(
                    ", spoken over the bot {} ms into its answer",
                    self.options.barge_in_after.as_millis()
                )
            } else {
                String::new()
            };
            text.push_str(&format!(
                "  {}. {} ({:.2} s, voice {:.2}–{:.2} s{barge})\n",
                i + 1,
                turn.name,
                turn.duration_ms() as f64 / 1000.0,
                turn.first_voiced as f64 * 0.02,
                (turn.last_voiced + 1) as f64 * 0.02,
            ));
        }
        text
    }

    /// Places the calls and puts the report together.
    pub async fn run(&self) -> Result<Report, BenchError> {
        driver::run(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, String, u16) {
        split_target(text).expect("a target")
    }

    #[test]
    fn targets_are_read_like_sip_uris() {
        assert_eq!(
            parts("sip:127.0.0.1:5060"),
            ("bot".into(), "127.0.0.1".into(), 5060)
        );
        assert_eq!(
            parts("sip:support@10.0.0.2"),
            ("support".into(), "10.0.0.2".into(), 5060)
        );
        assert_eq!(
            parts("127.0.0.1:5070;transport=udp"),
            ("bot".into(), "127.0.0.1".into(), 5070)
        );
        assert_eq!(parts("sip:[::1]:5062"), ("bot".into(), "::1".into(), 5062));
    }

    #[test]
    fn bad_targets_say_why() {
        for (text, reason) in [
            ("sip:127.0.0.1:http", "the port is not a number"),
            ("sips:127.0.0.1", "only sip: over UDP"),
            ("sip:@127.0.0.1", "empty user"),
            ("sip:", "no host"),
        ] {
            let error = split_target(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn resolved_targets_carry_a_request_uri() {
        let target = resolve_target("sip:127.0.0.1:5070").expect("resolves");
        assert_eq!(
            target.addr,
            "127.0.0.1:5070".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(target.request_uri, "sip:bot@127.0.0.1:5070");
    }
}
