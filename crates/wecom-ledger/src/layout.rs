//! The object keys of the archive, in one place. Keys are relative to the store's prefix and the same
//! on local disk and in a bucket; names from outside (corp, stream, room id) are encoded with
//! [`wecom_store::encode_component`], so they never contain `/` and two names never share a key.
//!
//! ```text
//! raw/<corp>/<stream>/<first:020>-<last:020>.ndjson.gz               a segment: one page of items as received
//! raw/<corp>/<stream>/<first:020>-<last:020>-<sha:16>.ndjson.gz      the same range, other bytes (after a crash)
//! raw/<corp>/<stream>/manifest/<first:020>-<last:020>.json           its manifest entry (hash-chained)
//! raw/<corp>/<stream>/checkpoints/<entries:020>-<signed_at_ms:020>.json   a signed checkpoint
//! keys/<corp>/ed25519-<key_id>.pem                                   a published checkpoint key (public half)
//! rooms/<corp>/<roomid>/<taken_at_ms:020>-<sha:16>.json              a room metadata snapshot
//! ```
//!
//! Zero-padded numbers make the lexical order of a listing the numeric order.

use wecom_store::encode_component;

use crate::error::LedgerError;

pub(crate) const SEGMENT_SUFFIX: &str = ".ndjson.gz";

/// The keys of one stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamKeys {
    base: String,
}

pub(crate) fn component(what: &str, name: &str) -> Result<String, LedgerError> {
    encode_component(name).map_err(|_| LedgerError::Config {
        key: what.to_owned(),
        reason: "must not be empty".to_owned(),
    })
}

impl StreamKeys {
    pub(crate) fn new(corp_enc: &str, stream: &str) -> Result<Self, LedgerError> {
        Ok(StreamKeys {
            base: format!("raw/{corp_enc}/{}", component("stream", stream)?),
        })
    }

    /// The directory of the stream's segments (and of its `manifest/` and `checkpoints/`).
    pub(crate) fn dir(&self) -> &str {
        &self.base
    }

    pub(crate) fn segment(&self, first: u64, last: u64) -> String {
        format!("{}/{first:020}-{last:020}{SEGMENT_SUFFIX}", self.base)
    }

    /// The key of a segment whose plain key already holds other bytes (a crash left an orphan).
    pub(crate) fn segment_alt(&self, first: u64, last: u64, sha256: &str) -> String {
        let short = sha256.get(..16).unwrap_or(sha256);
        format!(
            "{}/{first:020}-{last:020}-{short}{SEGMENT_SUFFIX}",
            self.base
        )
    }

    pub(crate) fn manifest_dir(&self) -> String {
        format!("{}/manifest", self.base)
    }

    pub(crate) fn entry(&self, first: u64, last: u64) -> String {
        format!("{}/manifest/{first:020}-{last:020}.json", self.base)
    }

    pub(crate) fn checkpoints_dir(&self) -> String {
        format!("{}/checkpoints", self.base)
    }

    pub(crate) fn checkpoint(&self, entries: u64, signed_at_ms: u64) -> String {
        format!(
            "{}/checkpoints/{entries:020}-{signed_at_ms:020}.json",
            self.base
        )
    }
}

pub(crate) fn streams_dir(corp_enc: &str) -> String {
    format!("raw/{corp_enc}")
}

pub(crate) fn keys_dir(corp_enc: &str) -> String {
    format!("keys/{corp_enc}")
}

pub(crate) fn key_object(corp_enc: &str, key_id: &str) -> String {
    format!("keys/{corp_enc}/ed25519-{key_id}.pem")
}

pub(crate) fn rooms_dir(corp_enc: &str, roomid: &str) -> Result<String, LedgerError> {
    Ok(format!("rooms/{corp_enc}/{}", component("roomid", roomid)?))
}

pub(crate) fn room_snapshot(dir: &str, taken_at_ms: u64, sha256: &str) -> String {
    let short = sha256.get(..16).unwrap_or(sha256);
    format!("{dir}/{taken_at_ms:020}-{short}.json")
}

/// The last component of a key.
pub(crate) fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// `<a:020>-<b:020><rest>` → (a, b, rest).
pub(crate) fn parse_pair(name: &str) -> Option<(u64, u64, &str)> {
    let a = name.get(..20)?;
    if name.as_bytes().get(20) != Some(&b'-') {
        return None;
    }
    let b = name.get(21..41)?;
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?, &name[41..]))
}

/// The seq range of a manifest entry's or a plain segment's file name.
pub(crate) fn parse_range(name: &str, suffix: &str) -> Option<(u64, u64)> {
    match parse_pair(name)? {
        (a, b, rest) if rest == suffix => Some((a, b)),
        _ => None,
    }
}

/// The taken-at time and short hash of a room snapshot's file name.
pub(crate) fn parse_snapshot(name: &str) -> Option<(u64, &str)> {
    let at = name.get(..20)?;
    if !at.bytes().all(|c| c.is_ascii_digit()) || name.as_bytes().get(20) != Some(&b'-') {
        return None;
    }
    let short = name.get(21..)?.strip_suffix(".json")?;
    if short.len() != 16 || !short.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((at.parse().ok()?, short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_their_parsers_agree() {
        let k = StreamKeys::new("wwc", "room:wr1").expect("keys");
        assert_eq!(
            k.segment(1, 30),
            "raw/wwc/room%3Awr1/00000000000000000001-00000000000000000030.ndjson.gz"
        );
        assert_eq!(
            parse_range(file_name(&k.entry(7, 9)), ".json"),
            Some((7, 9))
        );
        assert_eq!(
            parse_range(file_name(&k.segment(7, 9)), SEGMENT_SUFFIX),
            Some((7, 9))
        );
        assert_eq!(
            parse_range(
                file_name(&k.segment_alt(7, 9, "abcdef0123456789ff")),
                SEGMENT_SUFFIX
            ),
            None
        );
        let cp = k.checkpoint(12, 1_700_000_000_000);
        let (entries, at, rest) = parse_pair(file_name(&cp)).expect("checkpoint name");
        assert_eq!((entries, at, rest), (12, 1_700_000_000_000, ".json"));
        let snap = room_snapshot("rooms/wwc/wr1", 5, "0123456789abcdef0000");
        assert_eq!(
            parse_snapshot(file_name(&snap)),
            Some((5, "0123456789abcdef"))
        );
        assert_eq!(parse_snapshot("00000000000000000005-xyz.json"), None);
        assert_eq!(parse_range("1-2.json", ".json"), None);
        assert!(StreamKeys::new("wwc", "").is_err());
    }
}
