//! `wecom-archive verify`: re-reads the raw archive of the corp (every manifest entry and checkpoint, and
//! the segments in the asked range) and prints one report per stream; exits non-zero when anything is
//! broken. Needs no secret: the signing key is not loaded, checkpoints are checked with public keys.

use std::path::PathBuf;

use anyhow::Context;
use wecom_ledger::{Ledger, PublicKey, VerifyOptions, VerifyReport};
use wecom_pipeline::Config;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// One stream (`corp` or `room:<roomid>`); default: every stream of the corp in the archive.
    #[arg(long)]
    stream: Option<String>,
    /// Read the segments holding seqs from this one (the manifest chain is always checked whole).
    #[arg(long)]
    from: Option<u64>,
    /// Read the segments holding seqs up to this one.
    #[arg(long)]
    to: Option<u64>,
    /// Trust only checkpoints signed with this public key (PEM; repeat for rotated keys). Without it the
    /// keys published in the archive are used, and the report says they were not pinned.
    #[arg(long = "public-key")]
    public_keys: Vec<PathBuf>,
    /// Print the reports as JSON (one array).
    #[arg(long)]
    json: bool,
}

/// Ok(true) when every report is clean.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config {}", args.config.display()))?;
    let cfg = Config::parse(&text, &args.config)?;
    if !cfg.archive.enabled {
        anyhow::bail!(
            "{}: [archive] enabled = false: this corp keeps no raw archive to verify",
            args.config.display()
        );
    }
    let mut archive = cfg.archive.clone();
    archive.signing = None; // verifying needs public keys only
    let ledger = Ledger::open(&archive, &cfg.sink.data_dir, &cfg.corp.corp_id)?;
    let mut pinned_keys = Vec::new();
    for p in &args.public_keys {
        let pem = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read public key {}", p.display()))?;
        let key = PublicKey::from_pem(&pem)
            .map_err(|reason| anyhow::anyhow!("public key {}: {reason}", p.display()))?;
        pinned_keys.push(key);
    }
    let opts = VerifyOptions { pinned_keys };
    let streams = match &args.stream {
        Some(s) => vec![s.clone()],
        None => ledger.streams().await?,
    };
    if streams.is_empty() {
        anyhow::bail!(
            "corp {}: the raw archive holds no stream yet",
            cfg.corp.corp_id
        );
    }
    let mut reports: Vec<VerifyReport> = Vec::new();
    for s in &streams {
        reports.push(ledger.verify_with(s, args.from, args.to, &opts).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            println!("{r}");
        }
    }
    Ok(reports.iter().all(VerifyReport::is_clean))
}
