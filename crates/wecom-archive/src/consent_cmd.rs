//! `wecom-archive consent`: per external contact, the agreement history the pipeline saw — the agree /
//! disagree messages of the stream and the consent lookups it made — read from the stream's consent
//! history (`consent/consent.ndjson` in the stream directory, see `wecom_pipeline::consent`). Read-only;
//! needs no secret (the config is parsed, not validated).

use std::path::{Path, PathBuf};

use anyhow::Context;
use wecom_pipeline::consent::{history, ConsentReport};
use wecom_pipeline::{Config, StreamSel};

#[derive(clap::Args, Debug)]
pub struct ConsentArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// One room's own stream (as `run --room` walks it) instead of the corp stream.
    #[arg(long)]
    room: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn consent(args: &ConsentArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let report = build(&args.config, args.room.clone())?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        report.to_string()
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // The reader stopped early (`| head`): not an error of this command.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the report to stdout"),
    }
}

fn build(config: &Path, room: Option<String>) -> anyhow::Result<ConsentReport> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read config {}", config.display()))?;
    let cfg = Config::parse(&text, config)?;
    let sel = room.map_or(StreamSel::Corp, StreamSel::Room);
    let stream = sel.name();
    let layout = sel.layout(&cfg.sink.data_dir, &cfg.corp.corp_id)?;
    let path = history::path(&layout);
    let entries = history::read(&path)
        .with_context(|| format!("cannot read the consent history {}", path.display()))?;
    if entries.is_empty() {
        let why = if cfg.consent.enabled {
            "no record of a conversation with an external contact has been written yet (run the pipeline first)"
        } else {
            "[consent] enabled = false in this config, so the pipeline records none"
        };
        anyhow::bail!(
            "config {}: stream {stream} of corp {} has no consent history at {}: {why}",
            config.display(),
            cfg.corp.corp_id,
            path.display()
        );
    }
    Ok(ConsentReport::build(
        &cfg.corp.corp_id,
        &stream,
        &path,
        &entries,
    ))
}
