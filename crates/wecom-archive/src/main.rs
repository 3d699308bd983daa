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

mod check;
mod cluster_cmd;
mod consent_cmd;
mod replay_cmd;
mod serve_cmd;
mod status;
mod verify_cmd;

/// `0.1.0 (git 1a2b3c4d5e6f)`.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("WECOM_GIT_REV"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "wecom-archive",
    version = VERSION,
    about = "Ingest the WeCom session archive: fetch, decrypt, normalize, store.",
    after_help = "Example:\n  wecom-archive run --config config/demo.toml --until-caught-up\n\n\
                  Logs go to stderr; WECOM_LOG sets the level (e.g. WECOM_LOG=debug)."
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
    /// Serve the project's HTTP archive contract from Tencent's Finance SDK (run it on the whitelisted host).
    /// Items pass through still encrypted: the gateway holds the corp secret, never the private keys.
    #[command(
        after_help = "Example:\n  WECOM_GATEWAY_TOKEN=... wecom-archive gateway --config gateway.toml --listen 127.0.0.1:8700"
    )]
    Gateway {
        #[arg(long, short)]
        config: PathBuf,
        /// Address to listen on (loopback by default; put TLS in front before exposing it).
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: SocketAddr,
    },
    /// Run the pipeline: walk the stream from the committed cursor, write records, commit.
    #[command(
        after_help = "Examples:\n  wecom-archive run --config config/demo.toml --until-caught-up\n  \
                            wecom-archive run --config /etc/wecom-archive/production.toml      # tail the live stream\n  \
                            wecom-archive run --config production.toml --room wrAbCdEf          # one room's own stream"
    )]
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
    #[command(after_help = "Example:\n  wecom-archive redrive --config production.toml")]
    Redrive {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        room: Option<String>,
    },
    /// Replay a seq range (or rooms) from the service or the raw archive into an output and cursor of its
    /// own (<data_dir>/<corp>/replays/<name>/), beside the live run; the same --name resumes.
    #[command(
        after_help = "Examples:\n  wecom-archive replay --config production.toml --from-seq 0 --to-seq 50000 --name audit   # again: resumes\n  \
                            wecom-archive replay --config production.toml --from-seq 0 --from-archive --room wrAbCdEf"
    )]
    Replay(replay_cmd::ReplayArgs),
    /// Per stream: committed seq, newest seq known, lag, dead letters, media backlog, last error (read from
    /// the data dir).
    #[command(
        after_help = "Examples:\n  wecom-archive status --config production.toml\n  \
                            wecom-archive status --config production.toml --json | jq '.streams[].lag'"
    )]
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON (stable field names, see docs/metrics.md) instead of a table.
        #[arg(long)]
        json: bool,
        /// The config is a cluster config: per corp, the worker running it, its lag and last error (read
        /// from the status topic).
        #[arg(long)]
        cluster: bool,
    },
    /// Many corps on many machines: run a cluster worker (`--config cluster.toml`), or add, remove and
    /// list the corps of the control topic.
    #[command(
        after_help = "Examples:\n  wecom-archive cluster --config config/cluster.toml          # a worker; start as many as you like\n  \
                            wecom-archive cluster add --config config/cluster.toml --corp corps/wwcorp01.toml\n  \
                            wecom-archive cluster remove --config config/cluster.toml --corp-id wwcorp01\n  \
                            wecom-archive status --cluster --config config/cluster.toml"
    )]
    Cluster(cluster_cmd::ClusterArgs),
    /// Per external contact, the agreement history the pipeline saw (agree / disagree messages and
    /// consent lookups), from the stream's consent history.
    #[command(
        after_help = "Examples:\n  wecom-archive consent --config production.toml\n  \
                            wecom-archive consent --config production.toml --json | jq '.externals[] | select(.subjects[].status == \"Disagree\")'"
    )]
    Consent(consent_cmd::ConsentArgs),
    /// Validate a config: keyring (versions, sizes, file permissions), token, sink; exits non-zero on a failure.
    #[command(after_help = "Example:\n  wecom-archive check --config production.toml")]
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check the raw archive: every segment against its manifest entry, the hash chain, the signed
    /// checkpoints; exits non-zero if anything is missing or altered.
    #[command(
        after_help = "Examples:\n  wecom-archive verify --config production.toml\n  \
                            wecom-archive verify --config production.toml --stream corp --from 100000 --to 200000 \\\n      \
                            --public-key archive-signing.pub.pem --json"
    )]
    Verify(verify_cmd::VerifyArgs),
    /// Print a shell completion script to stdout.
    #[command(
        after_help = "Examples:\n  wecom-archive completions bash > /etc/bash_completion.d/wecom-archive\n  \
                            wecom-archive completions zsh > \"${fpath[1]}/_wecom-archive\""
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    #[command(
        after_help = "Example:\n  wecom-archive man > /usr/local/share/man/man1/wecom-archive.1"
    )]
    Man,
    /// Serve the review console and the transcript API over the archive (read-only; tokens from
    /// WECOM_CONSOLE_TOKENS or [console] users).
    #[command(
        after_help = "Example:\n  WECOM_CONSOLE_TOKENS='alice:reviewer:TOKEN' wecom-archive serve --config production.toml --listen 127.0.0.1:8800"
    )]
    Serve(serve_cmd::ServeArgs),
    /// Start the archive simulator (the project's HTTP archive contract over a generated corpus).
    #[cfg(feature = "sim")]
    #[command(
        after_help = "Example:\n  wecom-archive sim --listen 127.0.0.1:8700 --messages 20000"
    )]
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
    // An SDK worker child (started by the pipeline's worker pool): stdout belongs to its frame protocol, so
    // this must come before any logging or runtime is set up.
    if std::env::args().nth(1).as_deref() == Some(wecom_sdk::WORKER_SUBCOMMAND) {
        return wecom_sdk::worker::worker_main_with_args(std::env::args_os().skip(2));
    }
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
            let signals = shutdown_on_signals();
            if cfg.notify.is_some() && cfg.ops.listen.is_none() {
                anyhow::bail!(
                    "[notify] is configured but [ops] listen is not: the msgaudit_notify callback is \
                     received on the ops server; set [ops] listen (e.g. \"0.0.0.0:9108\")"
                );
            }
            if let Some(listen) = cfg.ops.listen {
                let callback = match &cfg.notify {
                    Some(n) => Some(n.receiver().context("[notify]")?),
                    None => None,
                };
                let endpoint = wecom_pipeline::notify::OpsEndpoint { listen, callback };
                wecom_pipeline::ops::serve(endpoint, signals.clone())
                    .await
                    .with_context(|| format!("ops server on {listen}"))?;
            }
            let source = Source::connect(&cfg).await?;
            let opts = RunOptions {
                stream: stream_sel(room),
                follow: !until_caught_up,
                progress: true,
            };
            // The media worker follows the record files: it starts once the run has recovered them.
            let recovered = std::sync::Arc::new(tokio::sync::Notify::new());
            let stop = signals.child_token();
            let (media, result) = {
                let mut run = std::pin::pin!(wecom_pipeline::run::run_notifying(
                    &cfg,
                    &source,
                    &opts,
                    stop.clone(),
                    recovered.clone(),
                ));
                tokio::select! {
                    () = recovered.notified() => {
                        match wecom_pipeline::media::start(&cfg, &source, &opts.stream).await {
                            Ok(media) => (Ok(media), run.await),
                            Err(e) => {
                                stop.cancel();
                                (Err(e), run.await)
                            }
                        }
                    }
                    r = &mut run => (Ok(None), r),
                }
            };
            let media = match media {
                Ok(m) => m,
                Err(e) => {
                    source.shutdown().await;
                    return Err(e.into());
                }
            };
            // A batch run drains the media still pending; a stopped live run leaves it for next time.
            let media = match media {
                Some(m) => Some(m.finish(until_caught_up && result.is_ok()).await),
                None => None,
            };
            source.shutdown().await;
            let summary = result?;
            if let Some(media) = media {
                let m = media?;
                info!(
                    stored = m.objects_stored_total,
                    failed = m.objects_failed_total,
                    already_stored = m.objects_skipped_total,
                    bytes = m.bytes_stored_total,
                    "media worker finished"
                );
            }
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
        Command::Replay(args) => replay_cmd::run(args, shutdown_on_signals()).await,
        Command::Status {
            config,
            json,
            cluster: true,
        } => cluster_cmd::status(&config, json).await,
        Command::Status { config, json, .. } => status::status(&config, json),
        Command::Cluster(args) => cluster_cmd::run(args, shutdown_on_signals()).await,
        Command::Consent(args) => consent_cmd::consent(&args),
        Command::Verify(args) => {
            if verify_cmd::verify(args).await? {
                Ok(())
            } else {
                anyhow::bail!("the raw archive is not intact (see the report above)")
            }
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "wecom-archive", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("writing the man page")
        }
        Command::Check { config } => check::check(&config).await,
        Command::Serve(args) => serve_cmd::run(args, shutdown_on_signals()).await,
        Command::Gateway { config, listen } => gateway(&config, listen).await,
        #[cfg(feature = "sim")]
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

/// `wecom-archive gateway`: the SDK pool behind the HTTP contract, guarded by a bearer token.
async fn gateway(config: &std::path::Path, listen: SocketAddr) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let sdk = cfg.sdk.as_ref().with_context(|| {
        format!(
            "{}: the gateway needs an [sdk] section with the library path",
            config.display()
        )
    })?;
    let token = std::env::var(ENV_GATEWAY_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .with_context(|| format!("set {ENV_GATEWAY_TOKEN}: the bearer token clients must present (their corp secret)"))?;
    let pool_cfg = sdk
        .pool_config(&cfg.corp_id, &cfg.corp_secret)
        .with_context(|| format!("corp {}: sdk worker pool", cfg.corp_id))?;
    let pool = wecom_sdk::SdkPool::start(pool_cfg)
        .await
        .map_err(|e| anyhow::anyhow!("corp {}: starting sdk workers: {e}", cfg.corp_id))?;
    let mut gw = wecom_sdk::GatewayConfig::new(cfg.corp_id.clone(), wecom_sdk::Secret::new(token));
    gw.listen = listen;
    info!(%listen, corp = %cfg.corp_id, "sdk gateway listening");
    let stop = shutdown_on_signals();
    let served =
        wecom_sdk::serve_gateway(pool.clone(), gw, async move { stop.cancelled().await }).await;
    pool.shutdown().await;
    served.map_err(|e| anyhow::anyhow!("gateway on {listen}: {e}"))?;
    Ok(())
}

/// The gateway's bearer token (clients use it as their corp secret).
const ENV_GATEWAY_TOKEN: &str = "WECOM_GATEWAY_TOKEN";
