//! The `hotline` command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
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
            print!("{}", std::fs::read_to_string(outcome.dir.join("transcript.txt"))?);
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
            hotline::chat::run_chat(&config, flow.as_deref(), events, stdin.lock(), stdout.lock())?;
        }
        Command::Models { command } => match command {
            ModelsCommand::List => bail!("not available yet"),
        },
    }
    Ok(())
}
