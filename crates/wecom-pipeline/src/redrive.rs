//! Redrive: re-process dead letters, e.g. after the missing private key was added to the keyring.
//!
//! Dead-letter lines are immutable. An item that now decrypts is written to the messages output as a normal
//! record (with its original seq), and its seq is appended to the dead-letter directory's resolved list in
//! the same blocking job, after the record is fsynced; an item that still fails stays where it is. Running
//! redrive twice therefore never writes a record twice.

use std::sync::Arc;

use wecom_model::record::DeadLetter;
use wecom_store::{LineKind, LocalSink, SinkOptions};

use crate::config::Validated;
use crate::error::PipelineError;
use crate::lock::StreamLock;
use crate::process::Processor;
use crate::run::{load_keyring, stream_dir, StreamSel};

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
    let pool = if cfg.cipher == crate::config::CipherKind::Sdk {
        crate::sdk::start_pool(cfg).await?
    } else {
        None
    };
    let processor = Processor {
        corp_id: corp_id.clone().into(),
        stream: name.clone().into(),
        keyring: Arc::new(load_keyring(cfg)?),
        cipher: crate::sdk::cipher(cfg, pool.as_ref())?,
        // Redrive has no service to ask: recovered records carry no `room` (rooms.rs).
        rooms: None,
    };
    let dir = stream_dir(&cfg.data_dir, &corp_id, stream);
    let seg = cfg.segment_max_bytes;
    let job = tokio::task::spawn_blocking(move || -> Result<RedriveSummary, PipelineError> {
        let _lock = StreamLock::acquire(&dir)?;
        let mut sink = LocalSink::open(
            &dir,
            SinkOptions {
                segment_max_bytes: seg,
                ..SinkOptions::default()
            },
        )?;
        // The sink writes only after recovering its tails from the committed cursor.
        let cursor = wecom_store::CursorStore::open(&dir)?
            .load(&processor.stream)?
            .map_or(0, |c| c.seq);
        sink.recover(cursor)?;
        let resolved = sink.resolved_seqs()?;
        let mut summary = RedriveSummary {
            stream: processor.stream.to_string(),
            ..RedriveSummary::default()
        };
        let mut lines = Vec::new();
        let mut recovered = std::collections::BTreeSet::new();
        for line in wecom_store::read_lines(sink.deadletter_dir())? {
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
        if !lines.is_empty() {
            sink.write_batch(&lines)?;
            sink.append_resolved(&recovered.iter().copied().collect::<Vec<_>>())?;
        }
        summary.recovered = recovered.len() as u64;
        Ok(summary)
    });
    let result = job
        .await
        .map_err(|e| PipelineError::internal(&corp_id, &name, e))?
        .map_err(|e| e.in_stream(&corp_id, &name));
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    result
}
