//! What `verify` found: counts, the signed extent, and every break with its location. `Display` is
//! for people, serde (`--json`) for scripts; field and kind names are stable.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The result of [`crate::Ledger::verify`] for one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub corp_id: String,
    pub stream: String,
    /// The seq range whose segments were read (`None`: unbounded).
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    /// Manifest entries read (always the whole stream: the chain needs them all).
    pub entries: u64,
    /// Segments read and checked (those overlapping the range).
    pub segments: u64,
    /// Items in the checked segments.
    pub items: u64,
    /// First and last seq of the checked segments.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Checkpoints found, and those whose signature and chain head both check out.
    pub checkpoints: u64,
    pub checkpoints_verified: u64,
    /// Entries covered by the newest verified checkpoint, and its last seq.
    pub signed_entries: u64,
    pub signed_last_seq: Option<u64>,
    /// The keys checkpoints were checked with.
    pub keys: Vec<TrustedKey>,
    pub breaks: Vec<Break>,
    pub notices: Vec<Notice>,
}

/// A key checkpoints were verified with, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub key_id: String,
    /// `pinned`: given by the verifier; `published`: read from the archive's `keys/` objects.
    pub source: KeySource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Pinned,
    Published,
}

/// Something that shows the archive is not complete or not as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Break {
    pub kind: BreakKind,
    /// The object where it shows (a manifest entry, a segment or a checkpoint key).
    pub key: String,
    /// The seq range concerned, when known.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub detail: String,
}

/// The kinds of break, each with what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A manifest entry cannot be read or parsed, or an unexpected object sits in `manifest/`.
    EntryUnreadable,
    /// An entry's content does not match its object key, corp or stream (moved or copied).
    EntryMisplaced,
    /// An entry does not match its own hash: edited after it was written.
    EntryAltered,
    /// An entry's chain position is not its place in seq order (entries reordered, or one removed).
    OutOfOrder,
    /// An entry's `prev` is not the hash of the entry before it: that one or this one was replaced,
    /// or entries in between were removed.
    ChainBroken,
    /// Seqs do not strictly increase from one entry to the next (overlapping segments).
    Overlap,
    /// An entry's running item count does not add up.
    CountMismatch,
    /// A segment listed in the manifest is gone.
    SegmentMissing,
    /// A segment's size or sha256 differs from its entry: its bytes were changed.
    SegmentAltered,
    /// A segment matches its hash but its items do not match the entry (count, seq range, order,
    /// unreadable): the entry was forged together with the segment.
    SegmentContent,
    /// A checkpoint object cannot be read or parsed, or belongs to another stream.
    CheckpointUnreadable,
    /// A checkpoint is signed by a key the verifier does not trust (not pinned, not published).
    CheckpointUntrusted,
    /// A checkpoint's signature is invalid: it was altered or forged.
    CheckpointSignature,
    /// A validly signed checkpoint does not match the manifest at its position (head hash, seqs or
    /// item count): the entries it covers were replaced.
    CheckpointMismatch,
    /// A validly signed checkpoint covers more entries than the manifest holds: the newest entries
    /// were removed.
    Truncated,
}

/// Worth knowing, not a break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub key: Option<String>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A segment without a manifest entry: a write interrupted by a crash (its items were archived
    /// again by the next run). Not part of the archive.
    OrphanSegment,
    /// Entries after the newest verified checkpoint: their removal could not be detected.
    UnsignedTail,
    /// Checkpoints were verified with keys read from the archive itself; pin the key to rule out an
    /// archive re-signed by whoever could write to it.
    KeysNotPinned,
}

impl VerifyReport {
    /// No break (notices allowed).
    pub fn is_clean(&self) -> bool {
        self.breaks.is_empty()
    }
}

fn range(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(f), Some(l)) if f == l => format!(" (seq {f})"),
        (Some(f), Some(l)) => format!(" (seqs {f}-{l})"),
        _ => String::new(),
    }
}

fn kind_name<T: Serialize>(kind: &T) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_clean() {
            "CLEAN".to_owned()
        } else {
            format!(
                "{} BREAK{}",
                self.breaks.len(),
                if self.breaks.len() == 1 { "" } else { "S" }
            )
        };
        writeln!(f, "corp {} stream {}: {verdict}", self.corp_id, self.stream)?;
        let bound = |b: Option<u64>, open: &str| b.map_or(open.to_owned(), |s| s.to_string());
        writeln!(
            f,
            "  range        seqs {} to {}",
            bound(self.from_seq, "start"),
            bound(self.to_seq, "end")
        )?;
        writeln!(f, "  manifest     {} entries", self.entries)?;
        writeln!(
            f,
            "  segments     {} checked, {} items{}",
            self.segments,
            self.items,
            range(self.first_seq, self.last_seq)
        )?;
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                format!(
                    "{} {}",
                    k.key_id.get(..16).unwrap_or(&k.key_id),
                    kind_name(&k.source)
                )
            })
            .collect();
        writeln!(
            f,
            "  checkpoints  {} found, {} verified (keys: {})",
            self.checkpoints,
            self.checkpoints_verified,
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        )?;
        match self.signed_last_seq {
            Some(seq) => writeln!(
                f,
                "  signed       up to entry {} (seq {seq})",
                self.signed_entries
            )?,
            None => writeln!(f, "  signed       nothing")?,
        }
        for b in &self.breaks {
            writeln!(
                f,
                "  BREAK {} {}{}: {}",
                kind_name(&b.kind),
                b.key,
                range(b.first_seq, b.last_seq),
                b.detail
            )?;
        }
        for n in &self.notices {
            writeln!(
                f,
                "  notice {} {}{}: {}",
                kind_name(&n.kind),
                n.key.as_deref().unwrap_or("-"),
                range(n.first_seq, n.last_seq),
                n.detail
            )?;
        }
        Ok(())
    }
}
