//! `wecom-archive cluster`: run a cluster worker, or add, remove and list the corps of the control topic;
//! `wecom-archive status --cluster`: which worker runs each corp, its lag and its last error.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use wecom_pipeline::cluster::{self, ClusterFile, CorpDef, CorpStatus};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClusterArgs {
    /// The cluster config (run config without [corp]/[source], plus [cluster]); runs a worker.
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Option<ClusterAction>,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Add a corp (or update its definition): a record on the control topic; a worker picks it up.
    Add {
        #[arg(long, short)]
        config: PathBuf,
        /// The corp definition (TOML: corp_id, [source], [[keys]], optional secret_file).
        #[arg(long)]
        corp: PathBuf,
    },
    /// Remove a corp: a tombstone on the control topic; its worker stops it (its data stays).
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        /// The corp id.
        #[arg(long)]
        corp_id: String,
    },
    /// List the corps of the control topic with their partitions.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: ClusterArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    match (args.action, args.config) {
        (None, Some(config)) => {
            let file = ClusterFile::load(&config)?;
            cluster::run_worker(file, shutdown).await?;
            Ok(())
        }
        (None, None) => anyhow::bail!(
            "give --config CLUSTER.toml to run a worker, or one of add, remove, list (see --help)"
        ),
        (Some(ClusterAction::Add { config, corp }), _) => {
            let file = ClusterFile::load(&config)?;
            let def = CorpDef::load(&corp)?;
            // refuse what no worker could run, before it reaches the topic (the secret may only exist on
            // the workers, so it is not required here)
            if let Err(e) = file.corp_config(&def) {
                let text = format!("{e:#}");
                if !text.contains("secret") {
                    return Err(e).with_context(|| format!("corp definition {}", corp.display()));
                }
            }
            let partition = cluster::add_corp(&file, &def).await?;
            println!(
                "corp {} added to {} partition {partition}",
                def.corp_id, file.cluster.control_topic
            );
            Ok(())
        }
        (Some(ClusterAction::Remove { config, corp_id }), _) => {
            let file = ClusterFile::load(&config)?;
            if !cluster::remove_corp(&file, &corp_id).await? {
                anyhow::bail!(
                    "corp {corp_id} is not in the control topic {}",
                    file.cluster.control_topic
                );
            }
            println!("corp {corp_id} removed (its worker stops it)");
            Ok(())
        }
        (Some(ClusterAction::List { config, json }), _) => {
            let file = ClusterFile::load(&config)?;
            let (corps, bad) = cluster::list_corps(&file).await?;
            if json {
                let list: Vec<_> = corps
                    .iter()
                    .map(|(p, d)| serde_json::json!({"partition": p, "corp": d}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for (p, d) in &corps {
                    println!("{:>4}  {}", p, d.corp_id);
                }
            }
            for b in bad {
                eprintln!("warning: control record that is not a corp definition: {b}");
            }
            Ok(())
        }
    }
}

/// `status --cluster`.
pub async fn status(config: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let file = ClusterFile::load(config)?;
    let all = cluster::read_cluster_status(&file.kafka, &file.cluster.status_topic).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "corps": all }))?
        );
    } else {
        print!("{}", table(&all));
    }
    Ok(())
}

fn table(all: &[CorpStatus]) -> String {
    if all.is_empty() {
        return "no corp has reported a status yet\n".into();
    }
    let now = now_ms();
    let mut out = format!(
        "{:<20} {:<28} {:<9} {:>6} {:>12} {:>8} {:>8} {:>6}  {}\n",
        "corp", "worker", "state", "epoch", "committed", "lag", "dead", "age_s", "last error"
    );
    for s in all {
        out.push_str(&format!(
            "{:<20} {:<28} {:<9} {:>6} {:>12} {:>8} {:>8} {:>6}  {}\n",
            s.corp_id,
            s.worker,
            serde_json::to_value(&s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            s.epoch,
            s.committed_seq,
            s.lag,
            s.dead_letters,
            now.saturating_sub(s.updated_ms) / 1000,
            s.last_error.as_deref().unwrap_or("-"),
        ));
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
