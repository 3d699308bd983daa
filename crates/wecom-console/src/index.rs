//! The console's index on disk: opening or creating it, its position in the record source (stored with
//! each commit, so the index and its position never disagree after a crash), and the writer.
//!
//! **Every record is indexed once.** The position of each source (file offsets per stream, Kafka offsets
//! per partition) is the commit's payload: after a crash, reading resumes exactly after what the last
//! commit holds. A message that reaches the console twice (a room's own stream repeats the corp stream's
//! messages; a Kafka topic may too) is recognized by its msgid and indexed once.
//!
//! **Ingest numbers are dense and in commit order**: record `n` of the index is visible in every snapshot
//! that holds record `n + 1`. The transcript cursor relies on it: paging by ingest number never misses nor
//! repeats a record, however many arrive meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tantivy::collector::Count;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Term, Value};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};
use tracing::{debug, info};

use crate::conversations::Conversations;
use crate::error::ConsoleError;
use crate::msg::Msg;
use crate::schema::{msgid_hash, Fields, SCHEMA_VERSION};

/// A read position in one stream's segment files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    /// Segment file name (`seg-….ndjson`).
    pub segment: String,
    /// Byte offset after the last line read.
    pub offset: u64,
}

/// What a commit records besides the documents: the index's identity and its source positions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexState {
    pub schema_version: u32,
    /// Random id of this index; cursors of another index are refused.
    pub epoch: String,
    pub corp_id: String,
    /// Ingest number of the next record.
    pub next_ingest: u64,
    /// Per stream directory name (`corp`, `room-<id>`): where the file tail stands.
    #[serde(default)]
    pub files: BTreeMap<String, FilePos>,
    /// The topic `kafka` refers to.
    #[serde(default)]
    pub kafka_topic: Option<String>,
    /// Per partition: the next offset to read.
    #[serde(default)]
    pub kafka: BTreeMap<i32, i64>,
}

/// How ingest is going, for `/api/status` and the page footer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestStatus {
    pub source: String,
    pub records: u64,
    pub duplicates_skipped: u64,
    pub unreadable_lines: u64,
    pub last_commit_unix_ms: Option<u64>,
    /// The last error of the source (cleared by the next successful read).
    pub last_error: Option<String>,
}

/// The read side, shared by every request: the index, its reader and the conversation list.
pub struct Archive {
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    pub(crate) epoch: String,
    pub(crate) corp_id: String,
    pub(crate) convs: RwLock<Conversations>,
    pub(crate) status: RwLock<IngestStatus>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("epoch", &self.epoch)
            .field("corp_id", &self.corp_id)
            .finish()
    }
}

impl Archive {
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn corp_id(&self) -> &str {
        &self.corp_id
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    pub fn conversation_count(&self) -> usize {
        self.convs.read().map(|c| c.len()).unwrap_or(0)
    }

    pub fn status(&self) -> IngestStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn set_status(&self, f: impl FnOnce(&mut IngestStatus)) {
        if let Ok(mut s) = self.status.write() {
            f(&mut s);
        }
    }

    /// The current snapshot: everything committed when it was taken.
    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// Reads the message of a document.
    pub fn load(
        &self,
        searcher: &tantivy::Searcher,
        addr: DocAddress,
    ) -> Result<Msg, ConsoleError> {
        let doc: TantivyDocument = searcher.doc(addr).map_err(ConsoleError::index)?;
        let line = doc
            .get_first(self.fields.record)
            .and_then(|v| v.as_str())
            .ok_or_else(|| ConsoleError::Corrupt("a document without its record".into()))?;
        let mut m = Msg::parse(line.as_bytes())
            .map_err(|e| ConsoleError::Corrupt(format!("a stored record does not parse: {e}")))?;
        m.ingest = doc
            .get_first(self.fields.ingest)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Ok(m)
    }
}

/// Opens the index in `dir` (creating or rebuilding it as needed) and returns the shared read side, the
/// writer, and the committed state.
pub fn open(
    dir: &Path,
    corp_id: &str,
    memory_mb: usize,
    threads: usize,
) -> Result<(Arc<Archive>, Indexer), ConsoleError> {
    std::fs::create_dir_all(dir).map_err(ConsoleError::io(dir))?;
    let (schema, fields) = Fields::schema();
    let existing = dir.join("meta.json").is_file();
    let mut index_and_state = None;
    if existing {
        let index = Index::open_in_dir(dir).map_err(ConsoleError::index)?;
        let state: Option<IndexState> = index
            .load_metas()
            .map_err(ConsoleError::index)?
            .payload
            .and_then(|p| serde_json::from_str(&p).ok());
        match state {
            Some(s)
                if s.schema_version == SCHEMA_VERSION
                    && s.corp_id == corp_id
                    && index.schema() == schema =>
            {
                index_and_state = Some((index, s));
            }
            _ => {
                info!(dir = %dir.display(), "console index is of another version or corp: rebuilding it");
                drop(index);
                clear_dir(dir)?;
            }
        }
    }
    let fresh = index_and_state.is_none();
    let (index, mut state) = match index_and_state {
        Some(x) => x,
        None => {
            let index = Index::create_in_dir(dir, schema).map_err(ConsoleError::index)?;
            let state = IndexState {
                schema_version: SCHEMA_VERSION,
                epoch: new_epoch(),
                corp_id: corp_id.to_owned(),
                next_ingest: 1,
                ..IndexState::default()
            };
            (index, state)
        }
    };
    Fields::register_tokenizer(&index);
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(ConsoleError::index)?;
    let threads = threads.max(1);
    let writer: IndexWriter<TantivyDocument> = index
        .writer_with_num_threads(threads, memory_mb.max(15 * threads) * 1024 * 1024)
        .map_err(ConsoleError::index)?;
    let archive = Arc::new(Archive {
        reader,
        fields,
        epoch: state.epoch.clone(),
        corp_id: corp_id.to_owned(),
        convs: RwLock::new(Conversations::default()),
        status: RwLock::new(IngestStatus::default()),
    });
    let mut indexer = Indexer {
        archive: archive.clone(),
        writer,
        state: state.clone(),
        seen: HashSet::new(),
        pending: Vec::new(),
        pending_msgids: HashSet::new(),
        dir: dir.to_path_buf(),
    };
    if fresh {
        // Commit the identity at once so a restart before the first record keeps the epoch.
        state.files.clear();
        indexer.commit_state()?;
    } else {
        let started = Instant::now();
        let (convs, seen, records) = scan(&archive)?;
        info!(
            records,
            conversations = convs.len(),
            ms = started.elapsed().as_millis() as u64,
            "console index opened"
        );
        indexer.seen = seen;
        if let Ok(mut c) = archive.convs.write() {
            *c = convs;
        }
        archive.set_status(|s| s.records = records);
    }
    Ok((archive, indexer))
}

fn new_epoch() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn clear_dir(dir: &Path) -> Result<(), ConsoleError> {
    for entry in std::fs::read_dir(dir).map_err(ConsoleError::io(dir))? {
        let entry = entry.map_err(ConsoleError::io(dir))?;
        let p = entry.path();
        let res = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        res.map_err(ConsoleError::io(&p))?;
    }
    Ok(())
}

/// Rebuilds the conversation list and the msgid hashes from the committed documents: fast fields for
/// every document, the stored record only for each conversation's last message.
fn scan(archive: &Archive) -> Result<(Conversations, HashSet<u64>, u64), ConsoleError> {
    let searcher = archive.searcher();
    let mut convs = Conversations::default();
    let mut seen = HashSet::new();
    let mut last: HashMap<String, ((u64, u64), DocAddress)> = HashMap::new();
    let mut records = 0u64;
    for (seg_ord, seg) in searcher.segment_readers().iter().enumerate() {
        let ff = seg.fast_fields();
        let time = ff.u64("time").map_err(ConsoleError::index)?;
        let ingest = ff.u64("ingest").map_err(ConsoleError::index)?;
        let hash = ff.u64("msgid_hash").map_err(ConsoleError::index)?;
        let media = ff.bool("has_media").map_err(ConsoleError::index)?;
        let external = ff.bool("external").map_err(ConsoleError::index)?;
        let conv_col = ff.str("conv").map_err(ConsoleError::index)?;
        let sender_col = ff.str("sender").map_err(ConsoleError::index)?;
        let mut conv_names: HashMap<u64, String> = HashMap::new();
        let mut sender_names: HashMap<u64, String> = HashMap::new();
        let name = |col: &Option<tantivy::columnar::StrColumn>,
                    cache: &mut HashMap<u64, String>,
                    doc: u32|
         -> Option<String> {
            let col = col.as_ref()?;
            let ord = col.term_ords(doc).next()?;
            if let Some(s) = cache.get(&ord) {
                return Some(s.clone());
            }
            let mut s = String::new();
            col.ord_to_str(ord, &mut s).ok()?;
            cache.insert(ord, s.clone());
            Some(s)
        };
        for doc in seg.doc_ids_alive() {
            records += 1;
            if let Some(h) = hash.first(doc) {
                seen.insert(h);
            }
            let Some(conv) = name(&conv_col, &mut conv_names, doc) else {
                continue;
            };
            let t = time.first(doc).unwrap_or(0);
            let i = ingest.first(doc).unwrap_or(0);
            let sender = name(&sender_col, &mut sender_names, doc);
            convs.entry(&conv).count(
                sender.as_deref(),
                t,
                media.first(doc).unwrap_or(false),
                external.first(doc).unwrap_or(false),
            );
            let addr = DocAddress::new(seg_ord as u32, doc);
            match last.get_mut(&conv) {
                Some(cur) if cur.0 >= (t, i) => {}
                Some(cur) => *cur = ((t, i), addr),
                None => {
                    last.insert(conv, ((t, i), addr));
                }
            }
        }
    }
    for (conv, (_, addr)) in last {
        let m = archive.load(&searcher, addr)?;
        convs.entry(&conv).consider_last(&m);
    }
    Ok((convs, seen, records))
}

/// The writing side: owned by the ingest thread.
pub struct Indexer {
    archive: Arc<Archive>,
    writer: IndexWriter<TantivyDocument>,
    state: IndexState,
    /// msgid hashes of every committed and pending record.
    seen: HashSet<u64>,
    /// Records added since the last commit (their conversation summaries are updated at commit).
    pending: Vec<Msg>,
    pending_msgids: HashSet<String>,
    dir: PathBuf,
}

impl Indexer {
    pub fn archive(&self) -> &Arc<Archive> {
        &self.archive
    }

    /// The committed state (positions are only ever taken from here).
    pub fn state(&self) -> &IndexState {
        &self.state
    }

    /// Records added since the last commit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds a record unless its msgid is already indexed; returns whether it was added. `line` is the
    /// record as read, stored verbatim.
    pub fn add(&mut self, mut m: Msg, line: &str) -> Result<bool, ConsoleError> {
        let h = msgid_hash(&m.record.corp_id, &m.record.msgid);
        if !self.seen.insert(h) && self.is_duplicate(&m.record.msgid)? {
            self.archive.set_status(|s| s.duplicates_skipped += 1);
            debug!(msgid = %m.record.msgid, "message already indexed: skipped");
            return Ok(false);
        }
        m.ingest = self.state.next_ingest;
        self.state.next_ingest += 1;
        let doc = self.archive.fields.document(&m, line, m.ingest);
        self.writer.add_document(doc).map_err(ConsoleError::index)?;
        self.pending_msgids.insert(m.record.msgid.clone());
        self.pending.push(m);
        Ok(true)
    }

    /// A hash collision or a real repeat: look the msgid up.
    fn is_duplicate(&self, msgid: &str) -> Result<bool, ConsoleError> {
        if self.pending_msgids.contains(msgid) {
            return Ok(true);
        }
        let searcher = self.archive.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.archive.fields.msgid, msgid),
            IndexRecordOption::Basic,
        );
        Ok(searcher.search(&q, &Count).map_err(ConsoleError::index)? > 0)
    }

    /// Commits the added records with `positions` applied to the state, makes them visible, and
    /// updates the conversation list. Blocking (fsync).
    pub fn commit(&mut self, positions: impl FnOnce(&mut IndexState)) -> Result<(), ConsoleError> {
        positions(&mut self.state);
        self.commit_state()?;
        self.archive.reader.reload().map_err(ConsoleError::index)?;
        let added = self.pending.len() as u64;
        if let Ok(mut convs) = self.archive.convs.write() {
            for m in &self.pending {
                convs.observe(m);
            }
        }
        self.pending.clear();
        self.pending_msgids.clear();
        let now = wecom_store::now_unix_ms();
        self.archive.set_status(|s| {
            s.records += added;
            s.last_commit_unix_ms = Some(now);
        });
        Ok(())
    }

    fn commit_state(&mut self) -> Result<(), ConsoleError> {
        let payload = serde_json::to_string(&self.state)
            .map_err(|e| ConsoleError::Corrupt(format!("index state: {e}")))?;
        let mut prepared = self.writer.prepare_commit().map_err(ConsoleError::index)?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(ConsoleError::index)?;
        debug!(dir = %self.dir.display(), next_ingest = self.state.next_ingest, "console index committed");
        Ok(())
    }

    /// Waits for background merges (on shutdown).
    pub fn close(self) -> Result<(), ConsoleError> {
        self.writer
            .wait_merging_threads()
            .map_err(ConsoleError::index)
    }
}
