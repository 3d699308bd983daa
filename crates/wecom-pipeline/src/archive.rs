//! The raw archive: every page of encrypted items the live fetcher receives, kept unchanged in object
//! storage, so history outlives the service's 5-day retention and a key added later can still recover
//! items that were dead letters.
//!
//! Layout (object keys, the same on local disk and in a bucket):
//!
//! ```text
//! raw/<corp>/<stream>/<first_seq:020>-<last_seq:020>.ndjson.gz            one page: the items as received, one JSON per line
//! raw/<corp>/<stream>/manifest/<first_seq:020>-<last_seq:020>.json        its manifest entry: range, item count, size, md5
//! ```
//!
//! Segments and manifest entries are immutable (written with `PutMode::Create`; an existing object is
//! left alone, which is what a restarted run that re-fetches the same page wants). The manifest is the
//! set of entry objects under `manifest/`: append-only by construction, on local disk and on S3 alike.
//! A segment is written before its entry, and both before the page goes to the decrypt stage, so the
//! archive is never behind the committed cursor. After a crash, page boundaries may differ between runs:
//! segments can overlap, and the reader keeps each seq once.
//!
//! ```toml
//! [archive]
//! enabled = true              # the default
//! [archive.store]
//! kind = "local"              # the only kind for now
//! root = "/var/lib/wecom/raw" # default: the sink's data_dir (objects then land in <data_dir>/raw/…)
//! ```

use std::io::{Read, Write};
use std::sync::Arc;

use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tracing::debug;
use wecom_model::api::ChatDataItem;

use crate::config::{ArchiveConfig, ArchiveStoreConfig};
use crate::error::PipelineError;

/// Schema id of a manifest entry.
pub const MANIFEST_SCHEMA_ID: &str = "wecom-archive.raw-manifest.v1";

/// One manifest entry: what a segment holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub schema: String,
    pub key: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub items: u64,
    /// Size of the compressed object.
    pub bytes: u64,
    /// md5 (hex) of the compressed object.
    pub md5: String,
}

/// The raw archive of one corp.
#[derive(Clone)]
pub struct RawArchive {
    store: Arc<dyn ObjectStore>,
    corp_id: String,
    /// Shown in errors (a directory or a bucket), never a credential.
    location: String,
}

impl std::fmt::Debug for RawArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawArchive")
            .field("corp_id", &self.corp_id)
            .field("location", &self.location)
            .finish()
    }
}

impl RawArchive {
    /// Builds the store of `[archive.store]`; a local root is created if missing.
    pub fn open(
        cfg: &ArchiveConfig,
        data_dir: &std::path::Path,
        corp_id: &str,
    ) -> Result<Self, PipelineError> {
        match &cfg.store {
            ArchiveStoreConfig::Local { root } => {
                let root = root.clone().unwrap_or_else(|| data_dir.to_path_buf());
                std::fs::create_dir_all(&root).map_err(|e| archive_err(corp_id, &root, e))?;
                let fs = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| archive_err(corp_id, &root, e))?
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                Ok(Self::with_store(
                    Arc::new(fs),
                    corp_id,
                    root.display().to_string(),
                ))
            }
        }
    }

    /// An archive over any object store (tests use `InMemory`).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        corp_id: &str,
        location: impl Into<String>,
    ) -> Self {
        Self {
            store,
            corp_id: corp_id.to_string(),
            location: location.into(),
        }
    }

    fn stream_prefix(&self, stream: &str) -> String {
        format!("raw/{}/{}", path_part(&self.corp_id), path_part(stream))
    }

    fn err(&self, what: impl std::fmt::Display) -> PipelineError {
        PipelineError::Archive {
            corp_id: self.corp_id.clone(),
            reason: format!("{} ({})", what, self.location),
        }
    }

    /// Writes one page (ascending, deduplicated items) as a segment, then its manifest entry.
    /// Idempotent: a segment or entry that already exists is kept as it is.
    pub async fn write_page(
        &self,
        stream: &str,
        items: &[ChatDataItem],
    ) -> Result<ManifestEntry, PipelineError> {
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Err(self.err("refusing to archive an empty page"));
        };
        let (first_seq, last_seq) = (first.seq, last.seq);
        let prefix = self.stream_prefix(stream);
        let key = format!("{prefix}/{first_seq:020}-{last_seq:020}.ndjson.gz");
        let entry_key = format!("{prefix}/manifest/{first_seq:020}-{last_seq:020}.json");
        let lines = items
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(format!("serialize item: {e}")))?;
        let gz = tokio::task::spawn_blocking(move || gzip_lines(&lines))
            .await
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(format!("compress: {e}")))?;
        let entry = ManifestEntry {
            schema: MANIFEST_SCHEMA_ID.to_string(),
            key: key.clone(),
            first_seq,
            last_seq,
            items: items.len() as u64,
            bytes: gz.len() as u64,
            md5: hex::encode(Md5::digest(&gz)),
        };
        self.put_once(&key, gz).await?;
        let json = serde_json::to_vec(&entry).map_err(|e| self.err(e))?;
        self.put_once(&entry_key, json).await?;
        debug!(corp = %self.corp_id, stream, first_seq, last_seq, "raw page archived");
        Ok(entry)
    }

    async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<(), PipelineError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&ObjPath::from(key), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("put {key}: {e}"))),
        }
    }

    /// The manifest of a stream, ascending by first seq.
    pub async fn manifest(&self, stream: &str) -> Result<Vec<ManifestEntry>, PipelineError> {
        let prefix = ObjPath::from(format!("{}/manifest", self.stream_prefix(stream)));
        let mut listed = self.store.list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| self.err(format!("list {prefix}: {e}")))?;
            keys.push(meta.location);
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let bytes = self.get(&k).await?;
            let e: ManifestEntry = serde_json::from_slice(&bytes)
                .map_err(|e| self.err(format!("manifest entry {k}: {e}")))?;
            out.push(e);
        }
        out.sort_by_key(|e| (e.first_seq, e.last_seq));
        Ok(out)
    }

    async fn get(&self, key: &ObjPath) -> Result<bytes::Bytes, PipelineError> {
        let got = self
            .store
            .get(key)
            .await
            .map_err(|e| self.err(format!("get {key}: {e}")))?;
        got.bytes()
            .await
            .map_err(|e| self.err(format!("read {key}: {e}")))
    }

    /// Reads one segment, checking its size and md5 against the manifest entry.
    pub async fn read_segment(
        &self,
        entry: &ManifestEntry,
    ) -> Result<Vec<ChatDataItem>, PipelineError> {
        let bytes = self.get(&ObjPath::from(entry.key.as_str())).await?;
        let md5 = hex::encode(Md5::digest(&bytes));
        if bytes.len() as u64 != entry.bytes || md5 != entry.md5 {
            return Err(self.err(format!(
                "segment {} does not match its manifest entry (size {} vs {}, md5 {md5} vs {})",
                entry.key,
                bytes.len(),
                entry.bytes,
                entry.md5
            )));
        }
        let key = entry.key.clone();
        tokio::task::spawn_blocking(move || gunzip_items(&bytes))
            .await
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(format!("segment {key}: {e}")))
    }
}

fn archive_err(corp_id: &str, root: &std::path::Path, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Archive {
        corp_id: corp_id.to_string(),
        reason: format!("local store {}: {e}", root.display()),
    }
}

/// A stream name as one path segment (`room:wr1` → `room-wr1`).
fn path_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn gzip_lines(lines: &[Vec<u8>]) -> std::io::Result<Vec<u8>> {
    // A fixed header (mtime 0) and level: the same page always gives the same bytes.
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
    for l in lines {
        enc.write_all(l)?;
        enc.write_all(b"\n")?;
    }
    enc.finish()
}

fn gunzip_items(bytes: &[u8]) -> Result<Vec<ChatDataItem>, String> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut text)
        .map_err(|e| format!("gunzip: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let item: ChatDataItem =
            serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64) -> ChatDataItem {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "msgid": format!("m{seq}"), "publickey_ver": 1,
            "encrypt_random_key": "k", "encrypt_chat_msg": "c", "extra_field": {"kept": true}
        }))
        .expect("item json")
    }

    #[tokio::test]
    async fn pages_round_trip_with_extra_fields_and_rewrites_are_idempotent() {
        let a = RawArchive::with_store(
            Arc::new(object_store::memory::InMemory::new()),
            "wwc",
            "memory",
        );
        let p1: Vec<_> = (1..=3).map(item).collect();
        let p2: Vec<_> = (4..=6).map(item).collect();
        let e1 = a.write_page("corp", &p1).await.expect("write");
        a.write_page("corp", &p2).await.expect("write");
        let again = a.write_page("corp", &p1).await.expect("rewrite");
        assert_eq!(e1, again, "same page, same bytes");
        assert_eq!(
            e1.key,
            "raw/wwc/corp/00000000000000000001-00000000000000000003.ndjson.gz"
        );
        let m = a.manifest("corp").await.expect("manifest");
        assert_eq!(m.len(), 2);
        let back = a.read_segment(&m[0]).await.expect("read");
        assert_eq!(back, p1);
        assert_eq!(
            serde_json::to_value(&back[0]).expect("json")["extra_field"]["kept"],
            true
        );
        assert!(a.manifest("room:wr1").await.expect("empty").is_empty());
    }
}
