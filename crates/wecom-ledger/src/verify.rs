//! `verify`: re-reads a stream's archive and says whether it is complete and unaltered since it was
//! written: every manifest entry (its own hash, its place in the chain, strictly increasing seqs),
//! every segment in the requested range against its entry (size, sha256, items, seq range), every
//! checkpoint's signature and whether the chain still has the head it signed.
//!
//! What the checks prove, and what they cannot: the chain makes any change, removal or reordering of
//! entries visible at the next entry; a checkpoint makes the removal or replacement of the entries it
//! covers visible, as long as the checkpoint itself survives (keep checkpoints under Object Lock, or
//! copy them elsewhere). Entries after the newest checkpoint are reported as an unsigned tail. A
//! verifier that does not pin the key trusts the archive's own copy of it: someone able to rewrite the
//! whole archive could re-sign it with a key of their own; pinning the key rules that out.
//!
//! A missing or unreadable object is a break; only a store that cannot be listed or read at all makes
//! `verify` return an error (nothing can be said then).

use std::collections::HashSet;

use base64::Engine;
use futures::{StreamExt, TryStreamExt};

use crate::error::LedgerError;
use crate::layout::{self, file_name, parse_range, StreamKeys, SEGMENT_SUFFIX};
use crate::ledger::Ledger;
use crate::manifest::{
    parse_entry, Checkpoint, ManifestEntry, CHECKPOINT_SCHEMA, ENTRY_SCHEMA, GENESIS,
};
use crate::read::{check_segment, SegmentFault};
use crate::report::{Break, BreakKind, KeySource, Notice, NoticeKind, TrustedKey, VerifyReport};
use crate::signing::PublicKey;

/// Manifest entries fetched at once.
const ENTRY_FETCHES: usize = 16;
/// Segments read ahead of the one being checked (memory: this many segments plus one).
const SEGMENT_READ_AHEAD: usize = 2;

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Check checkpoints with these keys only. Empty: the keys published in the archive
    /// (`keys/<corp>/`), which the report then marks as not pinned.
    pub pinned_keys: Vec<PublicKey>,
}

impl Ledger {
    /// [`Ledger::verify_with`] with the keys published in the archive.
    pub async fn verify(
        &self,
        stream: &str,
        from_seq: Option<u64>,
        to_seq: Option<u64>,
    ) -> Result<VerifyReport, LedgerError> {
        self.verify_with(stream, from_seq, to_seq, &VerifyOptions::default())
            .await
    }

    /// Verifies one stream: the whole manifest and every checkpoint, and the segments holding seqs in
    /// `from_seq..=to_seq` (unbounded where `None`). See the module docs.
    pub async fn verify_with(
        &self,
        stream: &str,
        from_seq: Option<u64>,
        to_seq: Option<u64>,
        opts: &VerifyOptions,
    ) -> Result<VerifyReport, LedgerError> {
        let keys = StreamKeys::new(&self.inner.corp_enc, stream)?;
        let mut r = VerifyReport {
            corp_id: self.inner.corp_id.clone(),
            stream: stream.to_owned(),
            from_seq,
            to_seq,
            entries: 0,
            segments: 0,
            items: 0,
            first_seq: None,
            last_seq: None,
            checkpoints: 0,
            checkpoints_verified: 0,
            signed_entries: 0,
            signed_last_seq: None,
            keys: Vec::new(),
            breaks: Vec::new(),
            notices: Vec::new(),
        };
        let chain = self.check_chain(&keys, stream, &mut r).await?;
        self.check_segments(&chain, from_seq, to_seq, &mut r)
            .await?;
        self.find_orphans(&keys, &chain, &mut r).await?;
        self.check_checkpoints(&keys, stream, &chain, opts, &mut r)
            .await?;
        Ok(r)
    }

    /// Reads every entry in seq order and checks each against itself and the one before it. Returns
    /// the readable entries, in seq order.
    async fn check_chain(
        &self,
        keys: &StreamKeys,
        stream: &str,
        r: &mut VerifyReport,
    ) -> Result<Vec<(String, ManifestEntry)>, LedgerError> {
        let store = &self.inner.store;
        let mut named = Vec::new();
        for key in store.list(&keys.manifest_dir()).await? {
            match parse_range(file_name(&key), ".json") {
                Some((a, b)) => named.push((a, b, key)),
                None => brk(
                    r,
                    BreakKind::EntryUnreadable,
                    &key,
                    None,
                    "an object in manifest/ that is not a manifest entry",
                ),
            }
        }
        named.sort();
        let fetched: Vec<_> = futures::stream::iter(named)
            .map(|(a, b, key)| async move {
                let bytes = store.get(&key).await?;
                Ok::<_, LedgerError>((a, b, key, bytes))
            })
            .buffered(ENTRY_FETCHES)
            .try_collect()
            .await?;

        let mut parsed = Vec::with_capacity(fetched.len());
        for (first, last, key, bytes) in fetched {
            r.entries += 1;
            let range = Some((first, last));
            let Some(bytes) = bytes else {
                brk(
                    r,
                    BreakKind::EntryUnreadable,
                    &key,
                    range,
                    "listed but gone",
                );
                continue;
            };
            match parse_entry(&bytes) {
                Ok(e) if e.schema == ENTRY_SCHEMA => parsed.push((first, last, key, e)),
                Ok(e) => {
                    let detail = format!("schema {:?}, expected {ENTRY_SCHEMA:?}", e.schema);
                    brk(r, BreakKind::EntryUnreadable, &key, range, &detail);
                }
                Err(detail) => brk(r, BreakKind::EntryUnreadable, &key, range, &detail),
            }
        }
        // When every chain position is present, entries off their position were reordered. When some
        // are missing, every later entry is off its position: only a position going backwards is then
        // a reordering (the gap itself shows as a broken link).
        let mut indices: Vec<u64> = parsed.iter().map(|(_, _, _, e)| e.index).collect();
        indices.sort_unstable();
        let permutation = indices.iter().enumerate().all(|(i, x)| *x == i as u64);

        let mut chain: Vec<(String, ManifestEntry)> = Vec::with_capacity(parsed.len());
        let mut prev_hash = GENESIS.to_owned();
        let mut prev: Option<(String, u64, u64)> = None; // key, last seq and index of the entry before
        let mut items_total = 0;
        for (first, last, key, entry) in parsed {
            let range = Some((first, last));
            if (entry.first_seq, entry.last_seq) != (first, last)
                || entry.corp_id != self.inner.corp_id
                || entry.stream != stream
            {
                let detail = format!(
                    "describes seqs {}-{} of corp {} stream {}, not what its key says",
                    entry.first_seq, entry.last_seq, entry.corp_id, entry.stream
                );
                brk(r, BreakKind::EntryMisplaced, &key, range, &detail);
            }
            if entry.compute_hash() != entry.hash {
                brk(
                    r,
                    BreakKind::EntryAltered,
                    &key,
                    range,
                    "does not match its own hash: edited after it was written",
                );
            }
            let pos = chain.len() as u64;
            let out_of_order = if permutation {
                entry.index != pos
            } else {
                prev.as_ref().is_some_and(|(_, _, i)| entry.index <= *i)
            };
            if out_of_order {
                let detail = format!(
                    "is chain position {} but comes at position {pos} in seq order: entries were reordered",
                    entry.index
                );
                brk(r, BreakKind::OutOfOrder, &key, range, &detail);
            }
            if entry.prev != prev_hash {
                let detail = match &prev {
                    Some((k, _, i)) if entry.index > i + 1 => format!(
                        "its prev is not the hash of the entry before it ({k}), and chain positions {}-{} are missing: entries were removed",
                        i + 1,
                        entry.index - 1
                    ),
                    Some((k, _, _)) => format!(
                        "its prev is not the hash of the entry before it ({k}): that entry or this one was replaced, or entries between them were removed"
                    ),
                    None => "is the first entry but its prev is not the genesis hash: earlier entries were removed".to_owned(),
                };
                brk(r, BreakKind::ChainBroken, &key, range, &detail);
            }
            if let Some((k, prev_last, _)) = &prev {
                if entry.first_seq <= *prev_last {
                    let detail = format!(
                        "starts at seq {}, not after the previous entry's last seq {prev_last} ({k})",
                        entry.first_seq
                    );
                    brk(r, BreakKind::Overlap, &key, range, &detail);
                }
            }
            if entry.first_seq > entry.last_seq {
                brk(
                    r,
                    BreakKind::Overlap,
                    &key,
                    range,
                    "its first seq is after its last",
                );
            }
            if entry.items_total != items_total + entry.items {
                let detail = format!(
                    "running item count {} is not {} + {}",
                    entry.items_total, items_total, entry.items
                );
                brk(r, BreakKind::CountMismatch, &key, range, &detail);
            }
            prev_hash = entry.hash.clone();
            prev = Some((key.clone(), entry.last_seq, entry.index));
            items_total = entry.items_total;
            chain.push((key, entry));
        }
        Ok(chain)
    }

    /// Reads the segments overlapping the range (a few at a time, in order) against their entries.
    async fn check_segments(
        &self,
        chain: &[(String, ManifestEntry)],
        from_seq: Option<u64>,
        to_seq: Option<u64>,
        r: &mut VerifyReport,
    ) -> Result<(), LedgerError> {
        let store = &self.inner.store;
        let in_range = chain.iter().map(|(_, e)| e).filter(|e| {
            from_seq.is_none_or(|f| e.last_seq >= f) && to_seq.is_none_or(|t| e.first_seq <= t)
        });
        let mut checked = futures::stream::iter(in_range)
            .map(|entry| async move {
                let outcome = match store.get(&entry.key).await? {
                    None => None,
                    Some(bytes) => Some(check_segment(entry, bytes).await?),
                };
                Ok::<_, LedgerError>((entry, outcome))
            })
            .buffered(SEGMENT_READ_AHEAD);
        while let Some(next) = checked.next().await {
            let (entry, outcome) = next?;
            let range = Some((entry.first_seq, entry.last_seq));
            r.segments += 1;
            r.first_seq = Some(
                r.first_seq
                    .map_or(entry.first_seq, |s| s.min(entry.first_seq)),
            );
            r.last_seq = Some(r.last_seq.map_or(entry.last_seq, |s| s.max(entry.last_seq)));
            match outcome {
                None => brk(
                    r,
                    BreakKind::SegmentMissing,
                    &entry.key,
                    range,
                    "the segment of this manifest entry is gone",
                ),
                Some(Ok(items)) => r.items += items.len() as u64,
                Some(Err(SegmentFault::Altered(d))) => {
                    brk(r, BreakKind::SegmentAltered, &entry.key, range, &d);
                }
                Some(Err(SegmentFault::Content(d))) => {
                    brk(r, BreakKind::SegmentContent, &entry.key, range, &d);
                }
            }
        }
        Ok(())
    }

    /// Segments that no entry names: writes interrupted by a crash.
    async fn find_orphans(
        &self,
        keys: &StreamKeys,
        chain: &[(String, ManifestEntry)],
        r: &mut VerifyReport,
    ) -> Result<(), LedgerError> {
        let named: HashSet<&str> = chain.iter().map(|(_, e)| e.key.as_str()).collect();
        let (objects, _) = self.inner.store.list_dir(keys.dir()).await?;
        for key in objects {
            if !key.ends_with(SEGMENT_SUFFIX) || named.contains(key.as_str()) {
                continue;
            }
            let range = layout::parse_pair(file_name(&key));
            r.notices.push(Notice {
                kind: NoticeKind::OrphanSegment,
                key: Some(key.clone()),
                first_seq: range.map(|(a, _, _)| a),
                last_seq: range.map(|(_, b, _)| b),
                detail: "a segment without a manifest entry (a write interrupted by a crash; its items were archived again by the next write); not part of the archive".to_owned(),
            });
        }
        Ok(())
    }

    async fn trusted_keys(
        &self,
        opts: &VerifyOptions,
    ) -> Result<Vec<(PublicKey, KeySource)>, LedgerError> {
        if !opts.pinned_keys.is_empty() {
            return Ok(opts
                .pinned_keys
                .iter()
                .map(|k| (k.clone(), KeySource::Pinned))
                .collect());
        }
        let store = &self.inner.store;
        let mut out = Vec::new();
        for key in store.list(&layout::keys_dir(&self.inner.corp_enc)).await? {
            let Some(bytes) = store.get(&key).await? else {
                continue;
            };
            let parsed = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| PublicKey::from_pem(t).ok());
            // Only a key stored under its own id counts; anything else cannot verify a checkpoint.
            if let Some(k) =
                parsed.filter(|k| key == layout::key_object(&self.inner.corp_enc, &k.key_id()))
            {
                out.push((k, KeySource::Published));
            }
        }
        Ok(out)
    }

    async fn check_checkpoints(
        &self,
        keys: &StreamKeys,
        stream: &str,
        chain: &[(String, ManifestEntry)],
        opts: &VerifyOptions,
        r: &mut VerifyReport,
    ) -> Result<(), LedgerError> {
        let store = &self.inner.store;
        let trusted = self.trusted_keys(opts).await?;
        r.keys = trusted
            .iter()
            .map(|(k, source)| TrustedKey {
                key_id: k.key_id(),
                source: *source,
            })
            .collect();
        let mut signed: Option<(u64, u64)> = None;
        for key in store.list(&keys.checkpoints_dir()).await? {
            r.checkpoints += 1;
            let cp: Checkpoint = match store.get(&key).await? {
                None => {
                    brk(
                        r,
                        BreakKind::CheckpointUnreadable,
                        &key,
                        None,
                        "listed but gone",
                    );
                    continue;
                }
                Some(bytes) => match serde_json::from_slice(&bytes) {
                    Ok(cp) => cp,
                    Err(e) => {
                        let detail = format!("not a checkpoint: {e}");
                        brk(r, BreakKind::CheckpointUnreadable, &key, None, &detail);
                        continue;
                    }
                },
            };
            let range = Some((cp.first_seq, cp.last_seq));
            if cp.schema != CHECKPOINT_SCHEMA
                || cp.corp_id != self.inner.corp_id
                || cp.stream != stream
            {
                let detail = format!(
                    "schema {:?} for corp {} stream {}: not a checkpoint of this stream",
                    cp.schema, cp.corp_id, cp.stream
                );
                brk(r, BreakKind::CheckpointUnreadable, &key, range, &detail);
                continue;
            }
            let Some((public, _)) = trusted.iter().find(|(k, _)| k.key_id() == cp.key_id) else {
                let detail = format!(
                    "signed by key {} which is not {}",
                    cp.key_id,
                    if opts.pinned_keys.is_empty() {
                        "published in the archive"
                    } else {
                        "pinned"
                    }
                );
                brk(r, BreakKind::CheckpointUntrusted, &key, range, &detail);
                continue;
            };
            let sig = base64::engine::general_purpose::STANDARD
                .decode(cp.signature.as_bytes())
                .unwrap_or_default();
            if !public.verify(&cp.canonical_bytes(), &sig) {
                brk(
                    r,
                    BreakKind::CheckpointSignature,
                    &key,
                    range,
                    "the signature does not verify: the checkpoint was altered or forged",
                );
                continue;
            }
            if let Err((kind, at, detail)) = matches_chain(&cp, chain) {
                brk(r, kind, at.unwrap_or(&key), range, &detail);
                continue;
            }
            r.checkpoints_verified += 1;
            if signed.is_none_or(|(entries, _)| cp.entries > entries) {
                signed = Some((cp.entries, cp.last_seq));
            }
        }
        if let Some((entries, last)) = signed {
            r.signed_entries = entries;
            r.signed_last_seq = Some(last);
        }
        let covered = usize::try_from(r.signed_entries).unwrap_or(usize::MAX);
        if let (Some((_, first)), Some((_, last))) = (chain.get(covered), chain.last()) {
            r.notices.push(Notice {
                kind: NoticeKind::UnsignedTail,
                key: None,
                first_seq: Some(first.first_seq),
                last_seq: Some(last.last_seq),
                detail: format!(
                    "{} entries after the newest verified checkpoint: their removal could not be detected",
                    chain.len() - covered
                ),
            });
        }
        if r.checkpoints > 0 && opts.pinned_keys.is_empty() {
            r.notices.push(Notice {
                kind: NoticeKind::KeysNotPinned,
                key: None,
                first_seq: None,
                last_seq: None,
                detail: "checkpoints were verified with the keys published in the archive itself; pin the key to rule out a re-signed archive".to_owned(),
            });
        }
        Ok(())
    }
}

/// Whether the chain still has the head `cp` signed, at the position it signed; otherwise the break
/// kind, the entry it concerns (if any) and what is wrong.
fn matches_chain<'a>(
    cp: &Checkpoint,
    chain: &'a [(String, ManifestEntry)],
) -> Result<(), (BreakKind, Option<&'a str>, String)> {
    let Some(pos) = chain.iter().position(|(_, e)| e.hash == cp.head) else {
        return Err(match chain.iter().find(|(_, e)| e.last_seq == cp.last_seq) {
            Some((k, _)) => (
                BreakKind::CheckpointMismatch,
                Some(k.as_str()),
                format!(
                    "this entry is not the one a checkpoint signed as entry {} (head {}): it was replaced",
                    cp.entries, cp.head
                ),
            ),
            None => (
                BreakKind::Truncated,
                None,
                format!(
                    "signed {} entries up to seq {}, but no manifest entry ends at seq {} (the manifest holds {} entries up to seq {}): entries were removed",
                    cp.entries,
                    cp.last_seq,
                    cp.last_seq,
                    chain.len(),
                    chain.last().map_or(0, |(_, e)| e.last_seq)
                ),
            ),
        });
    };
    let (key, e) = &chain[pos];
    let first = chain.first().map_or(0, |(_, e)| e.first_seq);
    if pos as u64 + 1 != cp.entries
        || e.last_seq != cp.last_seq
        || e.items_total != cp.items
        || first != cp.first_seq
    {
        return Err((
            BreakKind::CheckpointMismatch,
            Some(key.as_str()),
            format!(
                "the signed head is manifest entry {} of {}, seqs {first}-{}, {} items; the checkpoint signed entry {} of seqs {}-{}, {} items",
                pos + 1,
                chain.len(),
                e.last_seq,
                e.items_total,
                cp.entries,
                cp.first_seq,
                cp.last_seq,
                cp.items
            ),
        ));
    }
    Ok(())
}

fn brk(r: &mut VerifyReport, kind: BreakKind, key: &str, range: Option<(u64, u64)>, detail: &str) {
    r.breaks.push(Break {
        kind,
        key: key.to_owned(),
        first_seq: range.map(|(a, _)| a),
        last_seq: range.map(|(_, b)| b),
        detail: detail.to_owned(),
    });
}
