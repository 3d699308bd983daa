//! The sink stage's outputs: local segment files, Kafka, or both, plus the cursor that moves only after every
//! configured output has acknowledged a page.
//!
//! Exactly once per output: on open, each output reports which seqs past the committed cursor it already
//! holds (the local sink from its segment tails, Kafka from the topics themselves), and a page's line is
//! skipped for an output that already has it. Dead letters are always written locally too (redrive reads them
//! there), and also published when Kafka is configured.
//!
//! A line too big for the Kafka topic is published slim, its full body in object storage first
//! (`oversize.rs`); a redrive writes to every output exactly once through an intent (`intent.rs`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tracing::info;
use wecom_kafka::{KafkaSink, PublishLine};
use wecom_store::{CursorStore, LocalSink, SinkOptions, StreamLayout};

use crate::config::{SinkKind, Validated};
use crate::error::PipelineError;
use crate::lock::StreamLock;
use crate::oversize::Oversize;
use crate::process::Processed;
use crate::recall::Recalls;

/// What a redrive's write did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedriveWritten {
    /// Lines an earlier, interrupted redrive had already written (found through its intent).
    pub already_written: u64,
    /// Lines published to Kafka slim.
    pub slimmed: u64,
}

/// What one page did to the outputs.
#[derive(Debug, Default, Clone, Copy)]
pub struct PageOutcome {
    pub records: u64,
    pub dead_letters: u64,
    /// Lines every output already held (written before a crash, after the last commit).
    pub skipped: u64,
    /// Lines published to Kafka slim (too big for the topic; their full body is in object storage).
    pub slimmed: u64,
    /// Recall events of the page.
    pub recalls: u64,
    /// Dead letters an earlier attempt at the page wrote, resolved now by their records.
    pub resolved: u64,
}

struct KafkaOut {
    sink: KafkaSink,
    /// What the topics already hold past the cursor: records and dead letters apart, so a seq that was
    /// dead-lettered before a crash and decrypts now (the key was added) is still published as a record.
    present: wecom_kafka::Recovered,
    oversize: Oversize,
}

pub struct Outputs {
    corp_id: String,
    stream: String,
    layout: StreamLayout,
    /// Whether records go to the local segment files (dead letters always do).
    local_records: bool,
    local: Arc<Mutex<LocalSink>>,
    /// What the local files already hold past the cursor: records and dead letters apart.
    local_present: LocalPresent,
    kafka: Option<KafkaOut>,
    recalls: Recalls,
    /// Revoke seqs past the cursor whose recall events the local file already holds.
    recalls_present: BTreeSet<u64>,
    cursors: Arc<CursorStore>,
    /// Cluster mode: the cursor lives in the cursor topic and every publish is fenced by the owner epoch.
    owner: Option<Arc<crate::cluster::Ownership>>,
    _lock: StreamLock,
}

/// The seqs past the cursor that the local files held when the stream was opened.
#[derive(Debug, Default)]
struct LocalPresent {
    records: BTreeSet<u64>,
    dead_letters: BTreeSet<u64>,
}

impl Outputs {
    /// Takes the stream's lock, loads its cursor and recovers every output. Returns the committed seq.
    /// With an `owner` (cluster mode) the cursor is the owner's, from the cursor topic, and the local
    /// directory is scratch.
    pub async fn open(
        cfg: &Validated,
        layout: &StreamLayout,
        owner: Option<Arc<crate::cluster::Ownership>>,
    ) -> Result<(Self, u64), PipelineError> {
        let owned_start = match &owner {
            Some(o) => Some(o.load_cursor().await?),
            None => None,
        };
        let corp_id = cfg.corp_id.clone();
        let stream = layout.stream().to_string();
        let seg = cfg.segment_max_bytes;
        let l = layout.clone();
        let corp = corp_id.clone();
        let (lock, cursors, start, local, local_present, (recalls, recalls_present)) =
            tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
                let lock = StreamLock::acquire(&l)?;
                let cursors = CursorStore::open(l.dir())?;
                let start = match owned_start {
                    Some(seq) => seq,
                    None => cursors.load(l.stream())?.map_or(0, |c| c.seq),
                };
                let mut sink = LocalSink::open(
                    l.dir(),
                    SinkOptions {
                        segment_max_bytes: seg,
                        ..SinkOptions::default()
                    },
                )?;
                let report = sink.recover(start)?;
                let recalls = Recalls::open(&l, &corp, start, true)?;
                let present = LocalPresent {
                    records: report.records,
                    dead_letters: report.dead_letters,
                };
                Ok((lock, cursors, start, sink, present, recalls))
            })
            .await
            .map_err(|e| PipelineError::internal(&corp_id, &stream, e))?
            .map_err(|e| e.in_stream(&corp_id, &stream))?;

        let kafka = match (&cfg.sink_kind, &cfg.kafka) {
            (SinkKind::Kafka | SinkKind::Both, Some(kcfg)) => {
                let sink = KafkaSink::connect(kcfg)
                    .await
                    .map_err(|e| kafka_err(&corp_id, &stream, e))?;
                let present = sink
                    .recover(&corp_id, &stream, start)
                    .await
                    .map_err(|e| kafka_err(&corp_id, &stream, e))?;
                info!(corp = %corp_id, stream = %stream, after_seq = start, records_in_kafka = present.records.len(), dead_letters_in_kafka = present.dead_letters.len(), "kafka sink recovered");
                let oversize = Oversize::open(cfg, &stream)?;
                Some(KafkaOut {
                    sink,
                    present,
                    oversize,
                })
            }
            _ => None,
        };
        info!(corp = %corp_id, stream = %stream, after_seq = start, records_in_local_sink = local_present.records.len(), dead_letters_in_local_sink = local_present.dead_letters.len(), dir = %layout.dir().display(), "resuming");
        Ok((
            Self {
                corp_id,
                stream,
                layout: layout.clone(),
                local_records: cfg.sink_kind != SinkKind::Kafka,
                local: Arc::new(Mutex::new(local)),
                local_present,
                kafka,
                recalls,
                recalls_present,
                cursors: Arc::new(cursors),
                owner,
                _lock: lock,
            },
            start,
        ))
    }

    /// Writes one page to every output, waits for every acknowledgement, then commits `cursor_after`.
    /// On error nothing is committed: the page is fetched again after a restart, and the outputs' recovery
    /// skips whatever part of it did land.
    pub async fn write_page(
        &mut self,
        batch: Vec<Processed>,
        cursor_after: u64,
    ) -> Result<PageOutcome, PipelineError> {
        let recalls = self.recalls.clone();
        let (batch, events) = tokio::task::spawn_blocking(move || {
            let mut batch = batch;
            recalls.link(&mut batch).map(|events| (batch, events))
        })
        .await
        .map_err(|e| PipelineError::internal(&self.corp_id, &self.stream, e))??;
        let mut outcome = PageOutcome::default();
        let mut local_lines = Vec::new();
        let mut kafka_lines = Vec::new();
        let mut keys = std::collections::HashMap::new();
        for p in &batch {
            if p.dead.is_none() {
                keys.insert(p.line.seq, p.key.clone());
            }
        }
        // Items that are records now but whose dead letters an earlier attempt at this page wrote
        // (the key was added before the restart): resolved once their records are written, so that a
        // later redrive does not write them a second time.
        let mut resolve = Vec::new();
        for p in batch {
            let dead = p.dead.is_some();
            if !dead {
                let seq = p.line.seq;
                let dead_in_local = self.local_present.dead_letters.remove(&seq);
                let dead_in_kafka = self
                    .kafka
                    .as_mut()
                    .is_some_and(|k| k.present.dead_letters.remove(&seq));
                if dead_in_local || dead_in_kafka {
                    resolve.push(seq);
                }
            }
            let in_local = if dead {
                self.local_present.dead_letters.remove(&p.line.seq)
            } else {
                self.local_present.records.remove(&p.line.seq)
            };
            let in_kafka = match &mut self.kafka {
                Some(k) if dead => k.present.dead_letters.remove(&p.line.seq),
                Some(k) => k.present.records.remove(&p.line.seq),
                None => true,
            };
            let local_wants = dead || self.local_records;
            if (in_local || !local_wants) && in_kafka {
                outcome.skipped += 1;
                continue;
            }
            if dead {
                outcome.dead_letters += 1;
            } else {
                outcome.records += 1;
            }
            if !in_kafka {
                kafka_lines.push(PublishLine {
                    kind: if dead {
                        wecom_kafka::LineKind::DeadLetter
                    } else {
                        wecom_kafka::LineKind::Record
                    },
                    seq: p.line.seq,
                    key: p.key.clone(),
                    headers: self.headers(&p),
                    payload: p.line.json.clone(),
                });
            }
            if local_wants && !in_local {
                local_lines.push(p.line);
            }
        }

        // Kafka first: its acknowledgement takes longest, and a fatal broker error then leaves the local
        // files untouched for this page too.
        let mut local_events = Vec::new();
        for e in &events {
            let json = serde_json::to_vec(e).map_err(|e| PipelineError::Internal {
                corp_id: self.corp_id.clone(),
                stream: self.stream.clone(),
                reason: format!("serialize a recall event: {e}"),
            })?;
            if self.kafka.is_some() {
                kafka_lines.push(PublishLine {
                    kind: wecom_kafka::LineKind::Recall,
                    seq: e.revoke_seq,
                    key: keys.get(&e.revoke_seq).cloned().unwrap_or_default(),
                    headers: vec![
                        ("corp_id".to_string(), self.corp_id.clone()),
                        ("stream".to_string(), self.stream.clone()),
                        (
                            "schema".to_string(),
                            wecom_model::record::RECALL_SCHEMA_ID.to_string(),
                        ),
                    ],
                    payload: json.clone(),
                });
            }
            if !self.recalls_present.remove(&e.revoke_seq) {
                local_events.push(json);
            }
        }
        outcome.recalls = events.len() as u64;
        outcome.resolved = resolve.len() as u64;
        outcome.slimmed = self.publish(kafka_lines).await?;
        let local = self.local.clone();
        let cursors = self.cursors.clone();
        let stream = self.stream.clone();
        let recalls = self.recalls.clone();
        tokio::task::spawn_blocking(move || -> Result<(), wecom_store::StoreError> {
            let mut sink = local.lock().unwrap_or_else(|p| p.into_inner());
            if !local_lines.is_empty() {
                sink.write_batch(&local_lines)?;
            }
            sink.append_resolved(&resolve)?;
            recalls
                .append_local(&local_events)
                .map_err(|source| wecom_store::StoreError::Io {
                    path: recalls.events_path().to_path_buf(),
                    source,
                })?;
            cursors.commit(&stream, cursor_after)
        })
        .await
        .map_err(|e| PipelineError::internal(&self.corp_id, &self.stream, e))?
        .map_err(|source| self.store_err(source))?;
        if let Some(o) = &self.owner {
            o.commit(cursor_after).await?;
        }
        if outcome.resolved > 0 {
            info!(corp = %self.corp_id, stream = %self.stream, count = outcome.resolved, "dead letters written before a restart are records now (their key was added); marked resolved");
        }
        Ok(outcome)
    }

    /// The seqs of dead letters a redrive already turned into records.
    pub async fn resolved_seqs(&self) -> Result<BTreeSet<u64>, PipelineError> {
        let local = self.local.clone();
        tokio::task::spawn_blocking(move || {
            local
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .resolved_seqs()
        })
        .await
        .map_err(|e| PipelineError::internal(&self.corp_id, &self.stream, e))?
        .map_err(|source| self.store_err(source))
    }

    /// Publishes `lines` to Kafka in order, each line too big for the topic slim (its full body stored
    /// first). Returns how many went slim.
    async fn publish(&self, mut lines: Vec<PublishLine>) -> Result<u64, PipelineError> {
        let Some(k) = &self.kafka else {
            return Ok(0);
        };
        let mut slimmed = 0;
        let mut is_slim = vec![false; lines.len()];
        let mut from = 0;
        while from < lines.len() {
            let limit = k.sink.max_record_bytes();
            for (line, slim) in lines[from..].iter_mut().zip(&mut is_slim[from..]) {
                if !*slim && line.record_bytes() > limit {
                    *line = k.oversize.slim(line, limit).await?;
                    *slim = true;
                    slimmed += 1;
                    info!(corp = %self.corp_id, stream = %self.stream, seq = line.seq, limit, "a line too big for the kafka topic is published slim; its full body is in the archive store");
                }
            }
            let sent = match &self.owner {
                None => k.sink.publish_slice(&lines[from..]).await,
                Some(o) => {
                    // fenced: a newer owner exists; else the lease is fresh for this round
                    o.ensure().await?;
                    k.sink
                        .publish_guarded(&lines[from..], &|| o.lease_holds())
                        .await
                }
            };
            match sent {
                Ok(()) => break,
                // the lease ran out mid-page (a pause): the lines before are acknowledged; check
                // ownership again and go on from there
                Err(wecom_kafka::KafkaError::LeaseExpired { published, .. }) => {
                    from += published;
                }
                // The lines before `published` are acknowledged and none after was sent; the sink lowered
                // its limit below the refused line, which is slimmed on the next round.
                Err(wecom_kafka::KafkaError::RecordTooLarge { published, .. })
                    if !is_slim.get(from + published).copied().unwrap_or(true) =>
                {
                    from += published;
                }
                Err(e) => return Err(kafka_err(&self.corp_id, &self.stream, e)),
            }
        }
        Ok(slimmed)
    }

    /// Redrive: writes records recovered from dead letters (their original seqs, at or below the cursor)
    /// to every output — the record files unless `sink.kind = "kafka"`, the messages topic with the
    /// `redriven` header — exactly once (see `intent.rs`), then marks their dead letters resolved.
    pub async fn write_redriven(
        &mut self,
        lines: Vec<Processed>,
    ) -> Result<RedriveWritten, PipelineError> {
        let mut written = RedriveWritten::default();
        let seqs: BTreeSet<u64> = lines.iter().map(|p| p.line.seq).collect();
        let layout = self.layout.clone();
        let prev = self.blocking(move || crate::intent::load(&layout)).await?;
        if lines.is_empty() && prev.is_none() {
            return Ok(written);
        }
        // A leftover intent keeps its (earlier) positions: everything since is read back below.
        let intent = match prev.clone() {
            Some(mut p) => {
                p.seqs.extend(seqs.iter().copied());
                p
            }
            None => crate::intent::Intent {
                seqs: seqs.clone(),
                local_end: {
                    let dir = self.layout.messages_dir();
                    self.blocking(move || crate::intent::local_end(&dir))
                        .await?
                },
                kafka_end: match &self.kafka {
                    Some(k) => Some(
                        k.sink
                            .end_offsets(wecom_kafka::LineKind::Record)
                            .await
                            .map_err(|e| kafka_err(&self.corp_id, &self.stream, e))?,
                    ),
                    None => None,
                },
            },
        };
        let (layout, stored) = (self.layout.clone(), intent.clone());
        self.blocking(move || crate::intent::store(&layout, &stored))
            .await?;
        let (mut in_local, mut in_kafka) = (BTreeSet::new(), BTreeSet::new());
        if prev.is_some() {
            let (dir, end, cands) = (self.layout.messages_dir(), intent.local_end, seqs.clone());
            in_local = self
                .blocking(move || crate::intent::local_since(&dir, end, &cands))
                .await?;
            if let (Some(k), Some(end)) = (&self.kafka, &intent.kafka_end) {
                in_kafka = k
                    .sink
                    .published_since(end, &self.corp_id, &self.stream, &seqs)
                    .await
                    .map_err(|e| kafka_err(&self.corp_id, &self.stream, e))?;
            }
            written.already_written = in_local.len().max(in_kafka.len()) as u64;
        }

        let mut kafka_lines = Vec::new();
        let mut local_lines = Vec::new();
        for p in lines {
            if self.kafka.is_some() && !in_kafka.contains(&p.line.seq) {
                let mut headers = self.headers(&p);
                headers.push((wecom_kafka::HEADER_REDRIVEN.to_string(), "true".to_string()));
                kafka_lines.push(PublishLine {
                    kind: wecom_kafka::LineKind::Record,
                    seq: p.line.seq,
                    key: p.key.clone(),
                    headers,
                    payload: p.line.json.clone(),
                });
            }
            if self.local_records && !in_local.contains(&p.line.seq) {
                local_lines.push(p.line);
            }
        }
        written.slimmed = self.publish(kafka_lines).await?;
        let local = self.local.clone();
        let layout = self.layout.clone();
        let resolve: Vec<u64> = seqs.iter().copied().collect();
        self.blocking(move || {
            let mut sink = local.lock().unwrap_or_else(|p| p.into_inner());
            if !local_lines.is_empty() {
                sink.write_batch(&local_lines)?;
            }
            sink.append_resolved(&resolve)?;
            crate::intent::remove(&layout)
        })
        .await?;
        Ok(written)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, wecom_store::StoreError> + Send + 'static,
    ) -> Result<T, PipelineError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| PipelineError::internal(&self.corp_id, &self.stream, e))?
            .map_err(|source| self.store_err(source))
    }

    fn store_err(&self, source: wecom_store::StoreError) -> PipelineError {
        PipelineError::Store {
            corp_id: self.corp_id.clone(),
            stream: self.stream.clone(),
            source,
        }
    }

    fn headers(&self, p: &Processed) -> Vec<(String, String)> {
        let mut h = vec![
            ("corp_id".to_string(), self.corp_id.clone()),
            ("stream".to_string(), self.stream.clone()),
            ("seq".to_string(), p.line.seq.to_string()),
            ("msgid".to_string(), p.msgid.clone()),
            (
                "schema".to_string(),
                if p.dead.is_some() {
                    wecom_model::record::DEADLETTER_SCHEMA_ID
                } else {
                    wecom_model::record::MESSAGE_SCHEMA_ID
                }
                .to_string(),
            ),
        ];
        if let Some(t) = &p.msgtype {
            h.push(("msgtype".to_string(), t.clone()));
        }
        if let Some(o) = &self.owner {
            h.extend(o.headers());
        }
        h
    }
}

fn kafka_err(corp_id: &str, stream: &str, source: wecom_kafka::KafkaError) -> PipelineError {
    PipelineError::Kafka {
        corp_id: corp_id.to_string(),
        stream: stream.to_string(),
        source: Box::new(source),
    }
}
