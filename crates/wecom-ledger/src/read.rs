//! Reading the archive back: what a replay from the archive needs. The manifest after a seq, in
//! ascending order, and its segments read one at a time, each checked against its entry (size, sha256,
//! item count and seq range) and each entry against the one before it (the chain link), so a replay
//! never feeds altered items onward. Memory: the list of entry keys plus one segment.

use std::collections::VecDeque;

use futures::stream::{self, BoxStream, StreamExt};
use wecom_model::api::ChatDataItem;
use wecom_store::decode_component;

use crate::error::LedgerError;
use crate::layout::{self, file_name, parse_range, StreamKeys};
use crate::ledger::{sha256_blocking, Ledger};
use crate::manifest::{parse_entry, ManifestEntry};

/// One segment read back: its entry and its items after the requested seq.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedPage {
    pub entry: ManifestEntry,
    pub items: Vec<ChatDataItem>,
}

impl Ledger {
    /// The streams that have an archive (decoded names: `corp`, `room:<roomid>`), sorted.
    pub async fn streams(&self) -> Result<Vec<String>, LedgerError> {
        let (_, dirs) = self
            .inner
            .store
            .list_dir(&layout::streams_dir(&self.inner.corp_enc))
            .await?;
        let mut out: Vec<String> = dirs
            .iter()
            .filter_map(|d| decode_component(file_name(d.trim_end_matches('/'))))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Keys of the stream's manifest entries whose range ends after `after_seq`, ascending.
    pub(crate) async fn entry_keys(
        &self,
        keys: &StreamKeys,
        after_seq: u64,
    ) -> Result<Vec<(u64, u64, String)>, LedgerError> {
        let mut out: Vec<(u64, u64, String)> = self
            .inner
            .store
            .list(&keys.manifest_dir())
            .await?
            .into_iter()
            .filter_map(|k| parse_range(file_name(&k), ".json").map(|(a, b)| (a, b, k)))
            .filter(|(_, last, _)| *last > after_seq)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Reads one entry and checks that it matches its own hash and its key.
    pub(crate) async fn read_entry(
        &self,
        key: &str,
        range: (u64, u64),
    ) -> Result<ManifestEntry, LedgerError> {
        let store = &self.inner.store;
        let bytes = store.get(key).await?.ok_or_else(|| {
            LedgerError::corrupt(store.location(key), "listed but cannot be read")
        })?;
        let entry = parse_entry(&bytes)
            .map_err(|reason| LedgerError::corrupt(store.location(key), reason))?;
        if entry.compute_hash() != entry.hash {
            return Err(LedgerError::corrupt(
                store.location(key),
                "the manifest entry does not match its own hash",
            ));
        }
        if (entry.first_seq, entry.last_seq) != range {
            return Err(LedgerError::corrupt(
                store.location(key),
                format!(
                    "the manifest entry describes seqs {}-{}, not the range of its name",
                    entry.first_seq, entry.last_seq
                ),
            ));
        }
        Ok(entry)
    }

    /// The manifest of a stream from the first entry holding a seq after `after_seq`, ascending.
    pub async fn entries_after(
        &self,
        stream: &str,
        after_seq: u64,
    ) -> Result<Vec<ManifestEntry>, LedgerError> {
        let keys = StreamKeys::new(&self.inner.corp_enc, stream)?;
        let listed = self.entry_keys(&keys, after_seq).await?;
        let mut out = Vec::with_capacity(listed.len());
        for (first, last, key) in listed {
            out.push(self.read_entry(&key, (first, last)).await?);
        }
        Ok(out)
    }

    /// Reads one segment, checked against its entry: size, sha256, item count, seqs ascending from
    /// the entry's first to its last.
    pub async fn read_segment(
        &self,
        entry: &ManifestEntry,
    ) -> Result<Vec<ChatDataItem>, LedgerError> {
        let store = &self.inner.store;
        let location = store.location(&entry.key);
        let bytes = store
            .get(&entry.key)
            .await?
            .ok_or_else(|| LedgerError::corrupt(&location, "segment missing"))?;
        check_segment(entry, bytes)
            .await?
            .map_err(|fault| LedgerError::corrupt(location, fault.to_string()))
    }

    /// The stream's items after `after_seq` as pages, one segment at a time, each checked as in
    /// [`Ledger::read_segment`] and linked to the previous entry. Ends after the newest entry.
    pub fn pages(
        &self,
        stream: &str,
        after_seq: u64,
    ) -> BoxStream<'static, Result<ArchivedPage, LedgerError>> {
        let keys = match StreamKeys::new(&self.inner.corp_enc, stream) {
            Ok(k) => k,
            Err(e) => return stream::once(async { Err(e) }).boxed(),
        };
        let start = (self.clone(), keys, Walk::Start);
        stream::try_unfold(start, move |(ledger, keys, walk)| async move {
            let (mut queue, prev) = match walk {
                Walk::Start => (ledger.entry_keys(&keys, after_seq).await?.into(), None),
                Walk::Next { queue, prev } => (queue, Some(prev)),
            };
            let Some((first, last, key)) = queue.pop_front() else {
                return Ok(None);
            };
            let entry = ledger.read_entry(&key, (first, last)).await?;
            if prev.is_some_and(|p| p != entry.prev) {
                return Err(LedgerError::corrupt(
                    ledger.inner.store.location(&key),
                    "the manifest chain is broken before this entry (its prev is not the hash of the entry before it)",
                ));
            }
            let mut items = ledger.read_segment(&entry).await?;
            items.retain(|i| i.seq > after_seq);
            let walk = Walk::Next {
                queue,
                prev: entry.hash.clone(),
            };
            Ok(Some((ArchivedPage { entry, items }, (ledger, keys, walk))))
        })
        .boxed()
    }
}

/// Where [`Ledger::pages`] is: not started, or the entry keys still to read and the last entry's hash.
enum Walk {
    Start,
    Next {
        queue: VecDeque<(u64, u64, String)>,
        prev: String,
    },
}

/// Why a segment does not match its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentFault {
    /// Size or sha256 differ: the bytes were changed.
    Altered(String),
    /// The bytes match, but the items do not match the entry (or cannot be read).
    Content(String),
}

impl std::fmt::Display for SegmentFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentFault::Altered(r) | SegmentFault::Content(r) => f.write_str(r),
        }
    }
}

/// Checks a segment's bytes against its entry. Hashing and decoding run on a blocking thread.
pub(crate) async fn check_segment(
    entry: &ManifestEntry,
    bytes: bytes::Bytes,
) -> Result<Result<Vec<ChatDataItem>, SegmentFault>, LedgerError> {
    if bytes.len() as u64 != entry.bytes {
        return Ok(Err(SegmentFault::Altered(format!(
            "size {} differs from the manifest entry's {}",
            bytes.len(),
            entry.bytes
        ))));
    }
    let sha = sha256_blocking(bytes.clone()).await?;
    if sha != entry.sha256 {
        return Ok(Err(SegmentFault::Altered(format!(
            "sha256 {sha} differs from the manifest entry's {}",
            entry.sha256
        ))));
    }
    let items = tokio::task::spawn_blocking(move || crate::segment::decode(&bytes))
        .await
        .map_err(|source| LedgerError::Blocking { source })?;
    Ok(items
        .and_then(|items| check_items(entry, &items).map(|()| items))
        .map_err(SegmentFault::Content))
}

/// The items of a segment against its entry's count and seq range.
fn check_items(entry: &ManifestEntry, items: &[ChatDataItem]) -> Result<(), String> {
    if items.len() as u64 != entry.items {
        return Err(format!(
            "holds {} items, the manifest entry says {}",
            items.len(),
            entry.items
        ));
    }
    if let Some(w) = items.windows(2).find(|w| w[1].seq <= w[0].seq) {
        return Err(format!(
            "seqs do not ascend: seq {} follows seq {}",
            w[1].seq, w[0].seq
        ));
    }
    match (items.first(), items.last()) {
        (Some(f), Some(l)) if (f.seq, l.seq) == (entry.first_seq, entry.last_seq) => Ok(()),
        (Some(f), Some(l)) => Err(format!(
            "holds seqs {}-{}, the manifest entry says {}-{}",
            f.seq, l.seq, entry.first_seq, entry.last_seq
        )),
        _ => Err("holds no items".to_owned()),
    }
}
