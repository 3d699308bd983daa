//! `wecom-archive serve`: the review console and transcript API over the archive (read-only).
//!
//! It reads the pipeline's own config file: `[corp]`, `[sink]`, `[kafka]`, `[media.store]` and
//! `[console]`, ignoring the rest. [`settings`] is the one place that does so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use wecom_console::config::TOKENS_ENV;
use wecom_console::{ConsoleConfig, ConsoleSource, ServeSettings, SourceSpec};
use wecom_kafka::KafkaConfig;
use wecom_store::ObjectStoreConfig;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Address to listen on; default `[console] listen` (loopback). Put TLS in front before exposing it.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// The parts of the config file the console needs.
#[derive(Deserialize)]
struct ServeFile {
    corp: CorpPart,
    sink: SinkPart,
    #[serde(default)]
    kafka: Option<KafkaConfig>,
    #[serde(default)]
    media: Option<MediaPart>,
    #[serde(default)]
    console: ConsoleConfig,
}

#[derive(Deserialize)]
struct CorpPart {
    corp_id: String,
}

#[derive(Deserialize)]
struct SinkPart {
    #[serde(default)]
    kind: SinkKind,
    data_dir: PathBuf,
}

#[derive(Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum SinkKind {
    #[default]
    Local,
    Kafka,
    Both,
}

#[derive(Deserialize)]
struct MediaPart {
    #[serde(default)]
    store: ObjectStoreConfig,
}

/// Everything `serve` runs with, from the config file at `path` and the environment (tokens).
pub fn settings(path: &Path) -> anyhow::Result<ServeSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let file: ServeFile =
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
    let origin = || format!("config {}", path.display());
    file.console.validate().with_context(origin)?;
    let users = file
        .console
        .resolve_users(std::env::var(TOKENS_ENV).ok().as_deref())
        .with_context(origin)?;
    let kafka_source = match file.console.source {
        ConsoleSource::Kafka => true,
        ConsoleSource::Local => false,
        ConsoleSource::Auto => file.sink.kind == SinkKind::Kafka,
    };
    let source = if kafka_source {
        let kafka = file.kafka.clone().with_context(|| {
            format!(
                "{}: the console reads the messages topic (console.source, or sink.kind = \"kafka\") and needs a [kafka] section",
                path.display()
            )
        })?;
        kafka
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: [kafka]: {e}", path.display()))?;
        SourceSpec::Kafka {
            kafka: Box::new(kafka),
            group_id: file.console.kafka_group_id.clone(),
        }
    } else {
        SourceSpec::Local {
            data_dir: file.sink.data_dir.clone(),
        }
    };
    let store = file.media.map(|m| m.store).unwrap_or_default();
    let objects = store
        .build("media.store", &file.sink.data_dir.join("objects"), false)
        .with_context(origin)?;
    Ok(ServeSettings {
        corp_id: file.corp.corp_id,
        data_dir: file.sink.data_dir,
        source,
        objects,
        console: file.console,
        users,
    })
}

pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = settings(&args.config)?;
    let listen = args.listen.unwrap_or(settings.console.listen);
    let console = wecom_console::Console::start(settings, listen)
        .await
        .with_context(|| format!("console on {listen}"))?;
    // Tests and scripts read the bound address (with --listen 127.0.0.1:0) from this line.
    println!("console listening on http://{}", console.local_addr());
    console.run(shutdown).await.context("console")?;
    Ok(())
}
