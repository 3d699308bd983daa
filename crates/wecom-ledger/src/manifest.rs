//! Manifest entries and checkpoints, and the canonical bytes that are hashed and signed.
//!
//! Each stream's manifest is a hash chain: an entry records its segment's sha256, size and item count,
//! and the hash of the entry before it (`prev`; the first entry has 64 zeros). Changing, removing or
//! reordering an entry breaks the link to the next one. A checkpoint signs the chain's head (the hash of
//! the newest entry) with the number of entries, the seq range and the item count, so dropping the newest
//! entries is detected too.
//!
//! The canonical bytes are plain text, one `name value` line per field, each ending in `\n`, in the order
//! below, with decimal integers, lower-case hex hashes and the corp and stream as they appear in object
//! keys ([`wecom_store::encode_component`], never containing a space or a newline). They can be rebuilt
//! with `printf` and checked with `sha256sum` or `openssl pkeyutl -verify -rawin`:
//!
//! ```text
//! wecom-archive.raw-manifest.v2            wecom-archive.raw-checkpoint.v1
//! corp <corp>                              corp <corp>
//! stream <stream>                          stream <stream>
//! index <n, from 0>                        entries <number of entries covered>
//! key <segment key>                        head <hash of entry entries-1>
//! first_seq <n>                            first_seq <first seq of the stream>
//! last_seq <n>                             last_seq <last seq of entry entries-1>
//! items <n>                                items <items in entries 0..entries>
//! items_total <items in entries 0..=index> signed_at_ms <unix ms>
//! bytes <segment size>                     key_id <sha256 hex of the raw 32-byte public key>
//! sha256 <segment sha256 hex>
//! written_at_ms <unix ms>
//! prev <hash of entry index-1, or 64 zeros>
//! ```
//!
//! An entry's hash is the sha256 (hex) of its canonical bytes; a checkpoint's signature is Ed25519 over
//! its canonical bytes (base64 in the JSON object).

use serde::{Deserialize, Serialize};
use wecom_store::encode_component;

/// Schema id of a manifest entry.
pub const ENTRY_SCHEMA: &str = "wecom-archive.raw-manifest.v2";
/// Schema id of a checkpoint.
pub const CHECKPOINT_SCHEMA: &str = "wecom-archive.raw-checkpoint.v1";
/// `prev` of a stream's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One manifest entry: what a segment holds, how to check it, and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub schema: String,
    pub corp_id: String,
    pub stream: String,
    /// Position in the stream's chain, from 0.
    pub index: u64,
    /// Object key of the segment (relative to the store's prefix).
    pub key: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Items in the segment.
    pub items: u64,
    /// Items in this entry and every one before it.
    pub items_total: u64,
    /// Size of the segment object.
    pub bytes: u64,
    /// sha256 (hex) of the segment object.
    pub sha256: String,
    pub written_at_ms: u64,
    /// Hash of the previous entry ([`GENESIS`] for the first).
    pub prev: String,
    /// This entry's hash (sha256 hex of [`ManifestEntry::canonical_bytes`]); not part of what is hashed.
    pub hash: String,
}

impl ManifestEntry {
    /// The bytes [`ManifestEntry::hash`] is computed over (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        format!(
            "{ENTRY_SCHEMA}\ncorp {}\nstream {}\nindex {}\nkey {}\nfirst_seq {}\nlast_seq {}\nitems {}\n\
             items_total {}\nbytes {}\nsha256 {}\nwritten_at_ms {}\nprev {}\n",
            enc(&self.corp_id),
            enc(&self.stream),
            self.index,
            self.key,
            self.first_seq,
            self.last_seq,
            self.items,
            self.items_total,
            self.bytes,
            self.sha256,
            self.written_at_ms,
            self.prev,
        )
        .into_bytes()
    }

    /// The hash this entry should carry.
    pub fn compute_hash(&self) -> String {
        sha256_hex(&self.canonical_bytes())
    }
}

/// A signed statement of a stream's chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub schema: String,
    pub corp_id: String,
    pub stream: String,
    /// Number of entries covered (the head is entry `entries - 1`).
    pub entries: u64,
    /// Hash of the newest covered entry.
    pub head: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub items: u64,
    pub signed_at_ms: u64,
    /// Which key signed it: sha256 (hex) of the raw Ed25519 public key.
    pub key_id: String,
    /// Ed25519 signature (base64) of [`Checkpoint::canonical_bytes`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        format!(
            "{CHECKPOINT_SCHEMA}\ncorp {}\nstream {}\nentries {}\nhead {}\nfirst_seq {}\nlast_seq {}\n\
             items {}\nsigned_at_ms {}\nkey_id {}\n",
            enc(&self.corp_id),
            enc(&self.stream),
            self.entries,
            self.head,
            self.first_seq,
            self.last_seq,
            self.items,
            self.signed_at_ms,
            self.key_id,
        )
        .into_bytes()
    }
}

/// Parses a manifest entry; the reason when it is not one of this schema.
pub(crate) fn parse_entry(bytes: &[u8]) -> Result<ManifestEntry, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        let schema = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("schema")?.as_str().map(str::to_owned));
        match schema.as_deref() {
            Some("wecom-archive.raw-manifest.v1") => "an entry of the first archive format, \
                 which has no hash chain: point [archive.store] at a new root or prefix and keep \
                 the old archive as it is"
                .to_owned(),
            _ => format!("not a manifest entry: {e}"),
        }
    })
}

/// A name as it appears in object keys; an empty name (refused everywhere else) stays empty here.
fn enc(name: &str) -> String {
    encode_component(name).unwrap_or_default()
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ManifestEntry {
        ManifestEntry {
            schema: ENTRY_SCHEMA.into(),
            corp_id: "wwc".into(),
            stream: "room:wr1".into(),
            index: 0,
            key: "raw/wwc/room%3Awr1/00000000000000000001-00000000000000000002.ndjson.gz".into(),
            first_seq: 1,
            last_seq: 2,
            items: 2,
            items_total: 2,
            bytes: 10,
            sha256: sha256_hex(b"x"),
            written_at_ms: 1_700_000_000_000,
            prev: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_entry_is_the_documented_text() {
        let e = entry();
        let text = String::from_utf8(e.canonical_bytes()).expect("utf-8");
        assert_eq!(
            text,
            format!(
                "wecom-archive.raw-manifest.v2\ncorp wwc\nstream room%3Awr1\nindex 0\n\
                 key raw/wwc/room%3Awr1/00000000000000000001-00000000000000000002.ndjson.gz\n\
                 first_seq 1\nlast_seq 2\nitems 2\nitems_total 2\nbytes 10\nsha256 {}\n\
                 written_at_ms 1700000000000\nprev {GENESIS}\n",
                sha256_hex(b"x")
            )
        );
        assert_eq!(e.compute_hash(), sha256_hex(text.as_bytes()));
    }

    #[test]
    fn every_field_but_the_hash_changes_the_hash() {
        let base = entry();
        let h = base.compute_hash();
        let changed: Vec<ManifestEntry> = vec![
            ManifestEntry {
                index: 1,
                ..base.clone()
            },
            ManifestEntry {
                first_seq: 0,
                ..base.clone()
            },
            ManifestEntry {
                last_seq: 3,
                ..base.clone()
            },
            ManifestEntry {
                items: 3,
                ..base.clone()
            },
            ManifestEntry {
                items_total: 3,
                ..base.clone()
            },
            ManifestEntry {
                bytes: 11,
                ..base.clone()
            },
            ManifestEntry {
                sha256: sha256_hex(b"y"),
                ..base.clone()
            },
            ManifestEntry {
                written_at_ms: 1,
                ..base.clone()
            },
            ManifestEntry {
                prev: sha256_hex(b"p"),
                ..base.clone()
            },
            ManifestEntry {
                key: "raw/other".into(),
                ..base.clone()
            },
            ManifestEntry {
                stream: "corp".into(),
                ..base.clone()
            },
            ManifestEntry {
                corp_id: "wwd".into(),
                ..base.clone()
            },
        ];
        for c in changed {
            assert_ne!(c.compute_hash(), h, "{c:?}");
        }
        let same = ManifestEntry {
            hash: "anything".into(),
            ..base
        };
        assert_eq!(same.compute_hash(), h);
    }

    #[test]
    fn entries_of_the_first_format_are_named() {
        let v1 = br#"{"schema":"wecom-archive.raw-manifest.v1","key":"raw/c/corp/x.ndjson.gz","first_seq":1,"last_seq":2,"items":2,"bytes":9,"md5":"00"}"#;
        let err = parse_entry(v1).expect_err("v1");
        assert!(err.contains("first archive format"), "{err}");
        let mut e = entry();
        e.hash = e.compute_hash();
        let json = serde_json::to_vec(&e).expect("json");
        assert_eq!(parse_entry(&json), Ok(e));
        assert!(parse_entry(b"{}")
            .expect_err("empty")
            .starts_with("not a manifest entry"));
    }
}
