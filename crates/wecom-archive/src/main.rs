//! The `wecom-archive` command: the thin edge where configuration, signals and logging meet the pipeline.
//! Library crates return typed errors; only here do they become `anyhow` reports and exit codes.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::info;
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

#[derive(Parser)]
#[command(
    name = "wecom-archive",
    version,
    about = "Ingest the WeCom session archive: fetch, decrypt, normalize, store."
)]
struct Cli {
    /// Log as JSON lines instead of the human format.
    #[arg(long, global = true, env = "WECOM_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: walk the stream from the committed cursor, write records, commit.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Walk one room's own stream (groupchat/get) with its own cursor instead of the corp stream.
        #[arg(long)]
        room: Option<String>,
        /// Stop at the first empty page instead of tailing the live stream.
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Re-process dead letters (e.g. after adding a missing private key to the keyring).
    Redrive {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        room: Option<String>,
    },
    /// Start the archive simulator (the project's HTTP archive contract over a generated corpus).
    Sim {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: SocketAddr,
        /// Seed of the generated corpus (same seed, same bytes).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of items in the initial corpus.
        #[arg(long)]
        messages: Option<u64>,
        /// A TOML file with the simulator's settings (corpus, keys, faults); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WECOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Cancelled on Ctrl-C or SIGTERM: in-flight work finishes, the cursor commits, the process exits 0.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
        info!("shutdown requested: finishing in-flight work");
        t.cancel();
    });
    token
}

fn stream_sel(room: Option<String>) -> StreamSel {
    room.map_or(StreamSel::Corp, StreamSel::Room)
}

async fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run {
            config,
            room,
            until_caught_up,
        } => {
            let cfg = Config::load(&config)?;
            let source = Source::connect(&cfg).await?;
            let opts = RunOptions {
                stream: stream_sel(room),
                follow: !until_caught_up,
                progress: true,
            };
            let result = wecom_pipeline::run(&cfg, &source, &opts, shutdown_on_signals()).await;
            source.shutdown().await;
            let summary = result?;
            info!(
                stream = %summary.stream,
                committed_seq = summary.committed_seq,
                records = summary.records,
                dead_letters = summary.dead_letters,
                items_per_sec = format!("{:.0}", (summary.records + summary.dead_letters) as f64 / summary.elapsed_secs.max(0.001)),
                "run finished"
            );
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Redrive { config, room } => {
            let cfg = Config::load(&config)?;
            let summary = wecom_pipeline::redrive::redrive(&cfg, &stream_sel(room)).await?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Sim {
            listen,
            seed,
            messages,
            config,
        } => {
            let mut sim = match &config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read simulator config {}", path.display())
                    })?;
                    toml::from_str::<wecom_sim::SimConfig>(&text)
                        .with_context(|| format!("simulator config {}", path.display()))?
                }
                None => wecom_sim::SimConfig::default(),
            };
            if let Some(s) = seed {
                sim.seed = s;
            }
            if let Some(m) = messages {
                sim.messages = m;
            }
            let server = wecom_sim::start(sim, listen)
                .await
                .map_err(|e| anyhow::anyhow!("simulator on {listen}: {e}"))?;
            println!("simulator listening on {}", server.base_url());
            shutdown_on_signals().cancelled().await;
            server.shutdown().await;
            Ok(())
        }
    }
}
