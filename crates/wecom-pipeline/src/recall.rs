//! Recall linkage: a `revoke` record names the msgid it recalls (`pre_msgid`); this links the two.
//!
//! Every record's msgid goes into a small index in the stream directory (`recall-index.redb`: msgid →
//! seq and conversation), one transaction per page, before the page is written. A `revoke` record is given
//! `recalls: {msgid, seq, conversation_id}` from the index (or from an earlier record of the same page), and
//! a [`RecallEvent`] links both ways: appended to `recalls/recalls.ndjson` in the stream directory and
//! published to `topics.recalls`. The recalled record itself is never rewritten. An original the index does
//! not hold (older than the index, e.g. in a replay that started after it) gives `seq: null` and an event
//! with `found: false`: it says so rather than guessing.
//!
//! Indexing before the write is safe: a crash leaves entries for records of pages past the cursor, which
//! the restart fetches and writes again with the same seqs. The local event file is exactly once (events of
//! revoke seqs past the cursor already in the file are not appended again); the topic is at least once
//! (after a crash an event may be published again; de-duplicate by corp, stream and `revoke_seq`).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

/// The recall index's page cache: keeps the process's memory flat however many msgids the index holds.
const INDEX_CACHE_BYTES: usize = 16 << 20;
use wecom_model::record::{RecallEvent, RecallLink, RECALL_SCHEMA_ID};
use wecom_store::StreamLayout;

use crate::error::PipelineError;
use crate::process::Processed;

const TABLE: TableDefinition<&str, (u64, &str)> = TableDefinition::new("msgid");
const INDEX_FILE: &str = "recall-index.redb";
const EVENTS_DIR: &str = "recalls";
const EVENTS_FILE: &str = "recalls.ndjson";

/// The stream's recall index and event file. Cheap to clone; every method blocks (call it from a
/// blocking thread).
#[derive(Clone)]
pub(crate) struct Recalls {
    db: Arc<Database>,
    corp_id: String,
    stream: String,
    events: PathBuf,
    fsync: bool,
}

impl Recalls {
    /// Opens (or creates) the index of `layout`; returns it with the revoke seqs past `after_seq` whose
    /// events the local file already holds.
    pub fn open(
        layout: &StreamLayout,
        corp_id: &str,
        after_seq: u64,
        fsync: bool,
    ) -> Result<(Self, BTreeSet<u64>), PipelineError> {
        let err = |reason: String| PipelineError::Internal {
            corp_id: corp_id.to_string(),
            stream: layout.stream().to_string(),
            reason,
        };
        std::fs::create_dir_all(layout.dir())
            .map_err(|e| err(format!("{}: {e}", layout.dir().display())))?;
        let path = layout.dir().join(INDEX_FILE);
        // redb caches up to 1 GiB by default, which the process's memory would grow into as the index
        // grows; lookups touch one leaf each, so a small cache of the interior pages is enough.
        let db = Database::builder()
            .set_cache_size(INDEX_CACHE_BYTES)
            .create(&path)
            .map_err(|e| {
                err(format!(
                    "the recall index {}: {e} (it can be deleted: it is rebuilt from new records)",
                    path.display()
                ))
            })?;
        let events = layout.dir().join(EVENTS_DIR).join(EVENTS_FILE);
        cut_torn_tail(&events).map_err(|e| err(format!("repairing {}: {e}", events.display())))?;
        let present = events_after(&events, after_seq)
            .map_err(|e| err(format!("reading {}: {e}", events.display())))?;
        Ok((
            Recalls {
                db: Arc::new(db),
                corp_id: corp_id.to_string(),
                stream: layout.stream().to_string(),
                events,
                fsync,
            },
            present,
        ))
    }

    /// Indexes the page's records and links its revoke records (their JSON gains `recalls`); returns the
    /// page's recall events, in seq order.
    pub fn link(&self, lines: &mut [Processed]) -> Result<Vec<RecallEvent>, PipelineError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut events = Vec::new();
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.err(e))?;
            let mut page: HashMap<String, (u64, String)> = HashMap::new();
            for p in lines.iter_mut() {
                if p.dead.is_some() {
                    continue;
                }
                if p.msgtype.as_deref() == Some("revoke") {
                    if let Some(event) = self.link_one(p, &page, &table)? {
                        events.push(event);
                    }
                }
                if !p.msgid.is_empty() {
                    table
                        .insert(p.msgid.as_str(), (p.line.seq, p.key.as_str()))
                        .map_err(|e| self.err(e))?;
                    page.insert(p.msgid.clone(), (p.line.seq, p.key.clone()));
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(events)
    }

    fn link_one(
        &self,
        p: &mut Processed,
        page: &HashMap<String, (u64, String)>,
        table: &redb::Table<&str, (u64, &str)>,
    ) -> Result<Option<RecallEvent>, PipelineError> {
        let Ok(mut record) = serde_json::from_slice::<serde_json::Value>(&p.line.json) else {
            return Ok(None);
        };
        let pre = record["content"]["data"]["pre_msgid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if pre.is_empty() {
            return Ok(None);
        }
        let original = match page.get(&pre) {
            Some((seq, conv)) => Some((*seq, conv.clone())),
            None => table.get(pre.as_str()).map_err(|e| self.err(e))?.map(|v| {
                let (seq, conv) = v.value();
                (seq, conv.to_string())
            }),
        };
        let link = RecallLink {
            msgid: pre.clone(),
            seq: original.as_ref().map(|(s, _)| *s),
            conversation_id: original.as_ref().map(|(_, c)| c.clone()),
        };
        if let Some(obj) = record.as_object_mut() {
            obj.insert(
                "recalls".into(),
                serde_json::to_value(&link).unwrap_or(serde_json::Value::Null),
            );
        }
        if let Ok(json) = serde_json::to_vec(&record) {
            p.line.json = json;
        }
        Ok(Some(RecallEvent {
            schema: RECALL_SCHEMA_ID.to_string(),
            corp_id: self.corp_id.clone(),
            stream: self.stream.clone(),
            revoke_seq: p.line.seq,
            revoke_msgid: p.msgid.clone(),
            recalled_at_ms: p.msgtime_ms,
            original_msgid: pre,
            found: original.is_some(),
            original_seq: link.seq,
            original_conversation_id: link.conversation_id,
        }))
    }

    /// Appends `events` (serialized) to the local event file, durably when configured.
    pub fn append_local(&self, events: &[Vec<u8>]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.events.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut buf = Vec::new();
        for e in events {
            buf.extend_from_slice(e);
            buf.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.events)?;
        f.write_all(&buf)?;
        if self.fsync {
            f.sync_data()?;
        }
        Ok(())
    }

    pub fn events_path(&self) -> &Path {
        &self.events
    }

    fn err(&self, e: impl std::fmt::Display) -> PipelineError {
        PipelineError::Internal {
            corp_id: self.corp_id.clone(),
            stream: self.stream.clone(),
            reason: format!("recall index: {e}"),
        }
    }
}

/// Cuts what a crash left after the last complete line.
pub(crate) fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(keep as u64)?;
        f.sync_data()?;
    }
    Ok(())
}

/// The revoke seqs past `after_seq` of the events in `path` (complete lines only).
fn events_after(path: &Path, after_seq: u64) -> std::io::Result<BTreeSet<u64>> {
    #[derive(serde::Deserialize)]
    struct Seq {
        revoke_seq: u64,
    }
    let mut out = BTreeSet::new();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).split(b'\n') {
        if let Ok(s) = serde_json::from_slice::<Seq>(&line?) {
            if s.revoke_seq > after_seq {
                out.insert(s.revoke_seq);
            }
        }
    }
    Ok(out)
}
