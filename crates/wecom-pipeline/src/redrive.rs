//! Redrive: re-process dead letters, e.g. after the missing private key was added to the keyring.
//!
//! The processor and the outputs are built exactly as a run builds them (`Processor::new`,
//! `Outputs::open`: the stream's lock, its cursor, every output recovered). Dead-letter lines are
//! immutable: an item that now decrypts is written as a normal record with its original seq to every
//! configured output (the record files, the Kafka messages topic with the `redriven` header), and its seq
//! is appended to the resolved list only after every output acknowledged; an item that still fails stays
//! where it is. Running redrive twice, or again after a crash, never writes a record twice (the intent of
//! `intent.rs`). Recovered records get `consent` from the stream's consent history (consent.rs), never
//! from the service. For a Kafka consumer: a dead letter for seq S may later be followed by the record for S.

use std::collections::BTreeSet;
use std::sync::Arc;

use wecom_model::api::ChatDataItem;
use wecom_model::record::DeadLetter;
use wecom_store::{LineKind, StreamLayout};

use crate::config::{CipherKind, Validated};
use crate::error::PipelineError;
use crate::outputs::Outputs;
use crate::process::{Processed, Processor};
use crate::stream::StreamSel;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedriveSummary {
    pub stream: String,
    /// Dead letters not resolved before this redrive.
    pub examined: u64,
    /// Now records in the messages output.
    pub recovered: u64,
    /// Of those, already written by an earlier redrive that was interrupted.
    pub already_written: u64,
    /// Of those, published to Kafka slim (too big for the topic).
    pub slimmed: u64,
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
        // Redrive has no service to ask: recovered records get `room` from the archive's room history
        // (room_history.rs), or none without the archive.
        let rooms = if cfg.rooms.enrich && cfg.archive.enabled {
            let ledger = crate::room_history::open_ledger(cfg)?;
            crate::rooms::RoomLookup::history(Arc::new(crate::room_history::RoomHistory::new(
                ledger,
                cfg.rooms.max_entries,
            )))
        } else {
            None
        };
        let processor = Processor::new(cfg, &name, pool.as_ref(), rooms)?;
        let (mut outputs, _cursor) = Outputs::open(cfg, &layout, None).await?;
        let resolved = outputs.resolved_seqs().await?;
        let l = layout.clone();
        let (summary, lines) =
            tokio::task::spawn_blocking(move || reprocess(&l, &processor, &resolved))
                .await
                .map_err(|e| PipelineError::internal(&corp_id, &name, e))?
                .map_err(|e| e.in_stream(&corp_id, &name))?;
        // Nor for consent: recovered records get what the stream's consent history says at their seq.
        let mut lines = lines;
        if let Some(source) = crate::consent::source_for_run(cfg, None, Some(&layout))? {
            crate::consent::ConsentStage::open(source, &layout, &cfg.corp_id, &cfg.consent)?
                .enrich(&mut lines)
                .await?;
        }
        let written = outputs.write_redriven(lines).await?;
        Ok(RedriveSummary {
            already_written: written.already_written,
            slimmed: written.slimmed,
            ..summary
        })
    }
    .await;
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    result
}

/// Runs every unresolved dead letter of `layout` through `processor`; returns the summary and the items
/// that became records.
fn reprocess(
    layout: &StreamLayout,
    processor: &Processor,
    resolved: &BTreeSet<u64>,
) -> Result<(RedriveSummary, Vec<Processed>), PipelineError> {
    const CHUNK: usize = 256;
    let mut summary = RedriveSummary {
        stream: layout.stream().to_string(),
        ..RedriveSummary::default()
    };
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    let dir = layout.deadletter_dir();
    if !dir.is_dir() {
        return Ok((summary, lines));
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut flush = |chunk: &mut Vec<ChatDataItem>, summary: &mut RedriveSummary| {
        for out in processor.process_chunk(chunk)? {
            if out.dead.is_none() && out.line.kind == LineKind::Record {
                lines.push(out);
            } else {
                summary.still_dead += 1;
            }
        }
        chunk.clear();
        Ok::<_, PipelineError>(())
    };
    for line in wecom_store::read_lines(&dir)? {
        let line = line?;
        let dl: DeadLetter =
            serde_json::from_slice(&line).map_err(|e| PipelineError::Internal {
                corp_id: processor.corp_id.to_string(),
                stream: processor.stream.to_string(),
                reason: format!("unreadable dead-letter line: {e}"),
            })?;
        if resolved.contains(&dl.seq) || !seen.insert(dl.seq) {
            continue;
        }
        summary.examined += 1;
        chunk.push(dl.item);
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut summary)?;
        }
    }
    flush(&mut chunk, &mut summary)?;
    summary.recovered = lines.len() as u64;
    Ok((summary, lines))
}
