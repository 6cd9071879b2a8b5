//! The `hotline` command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hotline::call::Engines;
use hotline::config::Config;

/// hotline: a voice call-center bot server (SIP and WebRTC callers, ASR, dialogue, TTS).
#[derive(Parser)]
#[command(name = "hotline", version, about)]
struct Cli {
    /// The config file (TOML). Without it, the embedded defaults are used.
    #[arg(long, short, global = true, env = "HOTLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the config and engines and answer calls.
    Serve,
    /// Run recorded caller WAVs through the real pipeline on a virtual clock.
    Replay {
        /// Caller turns, in order.
        #[arg(required = true)]
        wavs: Vec<PathBuf>,
        /// Where to write events.jsonl, recording.wav and transcript.txt.
        #[arg(long)]
        out: PathBuf,
        /// Print each turn's latency breakdown.
        #[arg(long)]
        report: bool,
    },
    /// Talk to the bot through this machine's microphone and speaker.
    Talk,
    /// Drive the dialogue engine in text (no audio): caller lines on stdin, replies on stdout.
    Chat {
        /// The flow to run (default: `dialogue.default_flow`).
        #[arg(long)]
        flow: Option<String>,
        /// Print the call's JSON event lines (as in events.jsonl) instead of plain replies.
        #[arg(long)]
        events: bool,
    },
    /// Manage whisper models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the official models with their sizes and checksums.
    List,
    /// Download an official model into models/, checking its sha256.
    Download {
        /// The file name, e.g. ggml-base.en-q5_1.bin (see `hotline models list`).
        name: String,
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
    /// Check a model file's size and sha256 against the official list.
    Verify { path: PathBuf },
    /// Write a synthetic-weight model (real shapes, random weights) for compute benchmarks.
    Synth {
        /// tiny.en, tiny, base.en or base.
        size: hotline::models::SyntheticSize,
        /// Where whisper.cpp's for-tests-ggml-*.bin models are (their vocabulary and mel filters are copied).
        #[arg(long, env = "HOTLINE_TEST_MODELS", default_value = "../shared/models")]
        test_models: PathBuf,
        #[arg(long, default_value = "models")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    match cli.command {
        Command::Serve => {
            let engines = Engines::load(config).context("starting the engines")?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(hotline::serve::serve(engines));
        }
        Command::Replay { wavs, out, report } => {
            let engines = Engines::load(config).context("starting the engines")?;
            let outcome = hotline::replay::replay(&engines, &wavs, &out)?;
            println!(
                "replayed {:.1} s of call in {:.1} s; record in {}",
                outcome.duration.as_secs_f32(),
                outcome.wall.as_secs_f32(),
                outcome.dir.display()
            );
            print!(
                "{}",
                std::fs::read_to_string(outcome.dir.join("transcript.txt"))?
            );
            if report {
                print!("{}", hotline::replay::latency_report(&outcome.events));
            }
        }
        Command::Talk => {
            let engines: Arc<Engines> = Engines::load(config).context("starting the engines")?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(hotline::talk::talk(engines))?;
        }
        Command::Chat { flow, events } => {
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            hotline::chat::run_chat(
                &config,
                flow.as_deref(),
                events,
                stdin.lock(),
                stdout.lock(),
            )?;
        }
        Command::Models { command } => match command {
            ModelsCommand::List => {
                for m in hotline::models::list() {
                    println!("{:<24} {:>10} bytes  sha256 {}", m.file, m.bytes, m.sha256);
                }
            }
            ModelsCommand::Download { name, dir } => {
                let path = hotline::models::download(&name, &dir)?;
                println!(
                    "{} is ready; set asr.model = \"{}\" in the config",
                    path.display(),
                    path.display()
                );
            }
            ModelsCommand::Verify { path } => {
                let info = hotline::models::verify(&path)?;
                println!(
                    "{}: matches the official {} ({} bytes)",
                    path.display(),
                    info.file,
                    info.bytes
                );
            }
            ModelsCommand::Synth {
                size,
                test_models,
                dir,
                seed,
            } => {
                let path =
                    hotline::models::generate_synthetic_into(size, &test_models, &dir, seed)?;
                println!("wrote {} (random weights: for compute benchmarks only, it transcribes nothing)", path.display());
            }
        },
    }
    Ok(())
}
