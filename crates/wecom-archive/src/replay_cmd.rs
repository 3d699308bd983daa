//! `wecom-archive replay`: re-walk a stream from a saved seq into an output of its own.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::info;
use wecom_pipeline::replay::{replay, ReplayRequest};
use wecom_pipeline::{Config, Source};

/// Where replayed records go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplaySink {
    /// Segment files under the replay's directory.
    #[default]
    Local,
    /// A Kafka topic of the replay's own (`--topic`), on the brokers of `[kafka]`.
    Kafka,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// First seq to replay (inclusive). Corp seqs; with --room and a source that pages rooms, the room's own seq.
    #[arg(long)]
    from_seq: u64,
    /// Last seq to replay (inclusive); default: until caught up.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Replay one room (repeat for several, run in parallel): through the room's own stream when the source
    /// pages rooms (`[rooms] paging`), else by filtering the corp stream or the archive by roomid.
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// Read the raw archive instead of calling the service (history older than its 5-day retention; items
    /// are decrypted again with the current keyring, so a key added later recovers old dead letters).
    #[arg(long)]
    from_archive: bool,
    /// Name of the replay: its directory and cursor. The same name resumes. Default: from the range.
    #[arg(long)]
    name: Option<String>,
    /// Output directory instead of <data_dir>/<corp>/replays/<name>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where records go: `local` segment files, or `kafka` (with --topic).
    #[arg(long, value_enum, default_value_t = ReplaySink::Local)]
    sink: ReplaySink,
    /// The Kafka topic of this replay (with --sink kafka); dead letters go to `<topic>.deadletter`.
    #[arg(long)]
    topic: Option<String>,
}

pub async fn run(args: ReplayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    let kafka_topic = match (args.sink, args.topic) {
        (ReplaySink::Local, None) => None,
        (ReplaySink::Kafka, Some(t)) => Some(t),
        (ReplaySink::Kafka, None) => anyhow::bail!("--sink kafka needs --topic TOPIC"),
        (ReplaySink::Local, Some(_)) => anyhow::bail!("--topic goes with --sink kafka"),
    };
    let req = ReplayRequest {
        kafka_topic,
        from_seq: args.from_seq,
        to_seq: args.to_seq,
        rooms: args.rooms,
        from_archive: args.from_archive,
        name: args.name,
        out_dir: args.out,
        progress: true,
    };
    let source = Source::connect(&cfg).await?;
    let result = replay(&cfg, &source, &req, shutdown).await;
    source.shutdown().await;
    let summary = result?;
    if let Some(w) = &summary.retention_warning {
        eprintln!("warning: {w}");
    }
    info!(name = %summary.name, mode = %summary.mode, records = summary.records, dead_letters = summary.dead_letters, dir = %summary.dir.display(), "replay finished");
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
