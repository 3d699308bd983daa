//! Redrive: re-process dead letters, e.g. after the missing private key was added to the keyring.
//!
//! The processor and the outputs are built exactly as a run builds them (`Processor::new`,
//! `Outputs::open`: the stream's lock, its cursor, every output recovered). Dead-letter lines are
//! immutable: an item that now decrypts is written as a normal record with its original seq, and its seq
//! is appended to the resolved list only after the record is durable; an item that still fails stays where
//! it is. Running redrive twice therefore never writes a record twice.

use std::collections::BTreeSet;

use wecom_model::record::DeadLetter;
use wecom_store::{LineKind, StreamLayout};

use crate::config::{CipherKind, Validated};
use crate::error::PipelineError;
use crate::outputs::Outputs;
use crate::process::Processor;
use crate::stream::StreamSel;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedriveSummary {
    pub stream: String,
    /// Dead letters not resolved before this redrive.
    pub examined: u64,
    /// Now records in the messages output.
    pub recovered: u64,
    /// Still failing (they stay dead letters).
    pub still_dead: u64,
}

pub async fn redrive(cfg: &Validated, stream: &StreamSel) -> Result<RedriveSummary, PipelineError> {
    let corp_id = cfg.corp_id.clone();
    let name = stream.name();
    let layout = stream.layout(&cfg.data_dir, &corp_id)?;
    let pool = if cfg.cipher == CipherKind::Sdk {
        crate::sdk::start_pool(cfg).await?
    } else {
        None
    };
    let result = async {
        // Redrive has no service to ask: recovered records carry no `room` (rooms.rs).
        let processor = Processor::new(cfg, &name, pool.as_ref(), None)?;
        let (mut outputs, _cursor) = Outputs::open(cfg, &layout).await?;
        let resolved = outputs.resolved_seqs().await?;
        let l = layout.clone();
        let (summary, lines) =
            tokio::task::spawn_blocking(move || reprocess(&l, &processor, &resolved))
                .await
                .map_err(|e| PipelineError::internal(&corp_id, &name, e))?
                .map_err(|e| e.in_stream(&corp_id, &name))?;
        outputs.write_redriven(lines).await?;
        Ok(summary)
    }
    .await;
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    result
}

/// Runs every unresolved dead letter of `layout` through `processor`; returns the summary and the lines
/// of the items that became records.
fn reprocess(
    layout: &StreamLayout,
    processor: &Processor,
    resolved: &BTreeSet<u64>,
) -> Result<(RedriveSummary, Vec<wecom_store::OutputLine>), PipelineError> {
    let mut summary = RedriveSummary {
        stream: layout.stream().to_string(),
        ..RedriveSummary::default()
    };
    let mut lines = Vec::new();
    let mut recovered = BTreeSet::new();
    let dir = layout.deadletter_dir();
    if !dir.is_dir() {
        return Ok((summary, lines));
    }
    for line in wecom_store::read_lines(&dir)? {
        let line = line?;
        let dl: DeadLetter =
            serde_json::from_slice(&line).map_err(|e| PipelineError::Internal {
                corp_id: processor.corp_id.to_string(),
                stream: processor.stream.to_string(),
                reason: format!("unreadable dead-letter line: {e}"),
            })?;
        if resolved.contains(&dl.seq) || recovered.contains(&dl.seq) {
            continue;
        }
        summary.examined += 1;
        let out = processor.process(&dl.item);
        if out.dead.is_none() && out.line.kind == LineKind::Record {
            recovered.insert(dl.seq);
            lines.push(out.line);
        } else {
            summary.still_dead += 1;
        }
    }
    summary.recovered = recovered.len() as u64;
    Ok((summary, lines))
}
