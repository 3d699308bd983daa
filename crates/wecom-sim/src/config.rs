//! The simulator's configuration: corpus shape, keys, media sizes and fault rates.
//!
//! Everything has a default so `SimConfig::default()` is a working 2000-item corpus encrypted with the
//! repository's test keys (`config/sim-keys/v1..v3.pem`, late key `v4.pem`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The repository root when the crate is built from this repository (its keys are in
/// `config/sim-keys/`).
pub const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// One archive key version: items from `from_fraction` of the initial corpus on are encrypted with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimKey {
    /// The `publickey_ver` items encrypted with this key carry.
    pub version: u32,
    /// Private key PEM (PKCS#1 or PKCS#8); the simulator derives the public key from it.
    pub pem_path: PathBuf,
    /// Position in the initial corpus (0.0..1.0) from which this key is the newest.
    pub from_fraction: f64,
}

/// Media sizes. Served media never exceeds `max_bytes` except the explicit `huge_media` entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Upper bound of a generated media file (default 4 MiB).
    pub max_bytes: u64,
    /// About one media file in `big_every` is big (between `max_bytes / 2` and `max_bytes`); 0 = never.
    pub big_every: u64,
    /// Extra sizes (e.g. 1 GiB for benches), each attached to a video message at a fixed index.
    pub huge_media: Vec<u64>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024,
            big_every: 100,
            huge_media: Vec::new(),
        }
    }
}

/// Fault rates, probabilities in `0..=1`.
///
/// Per-request faults (`token_expire_early` .. `media_md5_mismatch`, `duplicate_items`) are drawn from
/// a ChaCha RNG seeded by the corpus seed, so a given request order sees the same faults. Per-item
/// faults (`corrupt_ciphertext`, `unknown_key_version`, `seq_gaps`, `control_chars`) are a pure
/// function of (seed, item index) and are **fixed when the server starts**: `set_faults` changes only
/// the per-request ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// A live token is invalidated: this call answers 42001 and the client must fetch a new token.
    pub token_expire_early: f64,
    /// errcode 45009 (HTTP 200).
    pub rate_limit_45009: f64,
    /// errcode -1 (HTTP 200).
    pub system_busy: f64,
    /// HTTP 500/502/503 with a plain text body.
    pub http_5xx: f64,
    /// The response body is aborted half-way (the connection is dropped).
    pub connection_reset: f64,
    /// The response is delayed by `slow_ms`.
    pub slow_response: f64,
    /// Delay of a slow response, in milliseconds.
    pub slow_ms: u64,
    /// Media: the body is cut short and terminated cleanly (chunked, no Content-Length): only the
    /// size / md5 check catches it.
    pub media_truncate: f64,
    /// Media: the body stream is aborted mid-way (Content-Length announced, connection dropped).
    pub media_reset: f64,
    /// Media: HTTP 5xx.
    pub media_5xx: f64,
    /// Media: wrong bytes (right length) for a whole attempt; the next attempt of that file is correct.
    pub media_md5_mismatch: f64,
    /// Per item: `encrypt_chat_msg` is damaged and cannot be decrypted.
    pub corrupt_ciphertext: f64,
    /// Per item: encrypted with the late key (`late_key`, publickey_ver 4).
    pub unknown_key_version: f64,
    /// Per page: the page also repeats up to 3 items at or below the requested seq.
    pub duplicate_items: f64,
    /// Per item: the seq skips 1..=5 numbers before this item (corp and room streams).
    pub seq_gaps: f64,
    /// Per text item: raw control characters (0x01..0x1f) inside the JSON string, as the real SDK emits.
    pub control_chars: f64,
}

impl FaultConfig {
    fn check(&self) -> Result<(), SimError> {
        let rates = [
            ("token_expire_early", self.token_expire_early),
            ("rate_limit_45009", self.rate_limit_45009),
            ("system_busy", self.system_busy),
            ("http_5xx", self.http_5xx),
            ("connection_reset", self.connection_reset),
            ("slow_response", self.slow_response),
            ("media_truncate", self.media_truncate),
            ("media_reset", self.media_reset),
            ("media_5xx", self.media_5xx),
            ("media_md5_mismatch", self.media_md5_mismatch),
            ("corrupt_ciphertext", self.corrupt_ciphertext),
            ("unknown_key_version", self.unknown_key_version),
            ("duplicate_items", self.duplicate_items),
            ("seq_gaps", self.seq_gaps),
            ("control_chars", self.control_chars),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::Config(format!(
                    "fault rate {name} = {rate} is not within 0..=1"
                )));
            }
        }
        Ok(())
    }
}

/// The whole simulator configuration (TOML or JSON via serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of everything: corpus, encryption padding, media bytes, per-request faults.
    pub seed: u64,
    pub corp_id: String,
    pub corp_secret: String,
    /// Size of the initial corpus.
    pub messages: u64,
    /// Number of internal users (`zhangsan`-style ids).
    pub users: u32,
    /// Number of external contacts (`wm…` / `wo…`).
    pub external_contacts: u32,
    /// Number of group chats (`wr…`).
    pub rooms: u32,
    /// Archive key versions, oldest first.
    pub keys: Vec<SimKey>,
    /// The key used for items hit by `unknown_key_version` (publickey_ver 4 by default).
    pub late_key: Option<SimKey>,
    /// Corpus end time in unix milliseconds. Default: the wall clock at start. Set it when two servers
    /// must serve byte-identical corpora.
    pub anchor_unix_ms: Option<i64>,
    /// The initial corpus's msgtimes spread over `[anchor - history_secs, anchor]`.
    pub history_secs: u64,
    /// Items older than `now - retention_secs` are below the retention floor (not served).
    pub retention_secs: u64,
    /// Items beyond `messages` become visible at this rate (per second); 0 = no live traffic.
    pub live_rate_per_sec: f64,
    /// Lifetime of an access token.
    pub token_ttl_secs: u64,
    pub media: MediaConfig,
    pub faults: FaultConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::with_repo_keys(REPO_ROOT)
    }
}

impl SimConfig {
    /// The default configuration with keys taken from `<repo_root>/config/sim-keys/v{1,2,3,4}.pem`
    /// (v1 from 0.0, v2 from 0.4, v3 from 0.7; v4 is the late key).
    pub fn with_repo_keys(repo_root: impl AsRef<Path>) -> Self {
        let dir = repo_root.as_ref().join("config").join("sim-keys");
        let key = |version: u32, from_fraction: f64| SimKey {
            version,
            pem_path: dir.join(format!("v{version}.pem")),
            from_fraction,
        };
        Self {
            seed: 1,
            corp_id: "wwsimcorp0001".to_owned(),
            corp_secret: "sim-secret".to_owned(),
            messages: 2000,
            users: 20,
            external_contacts: 12,
            rooms: 8,
            keys: vec![key(1, 0.0), key(2, 0.4), key(3, 0.7)],
            late_key: Some(key(4, 1.0)),
            anchor_unix_ms: None,
            history_secs: 3 * 86_400,
            retention_secs: 5 * 86_400,
            live_rate_per_sec: 0.0,
            token_ttl_secs: 7200,
            media: MediaConfig::default(),
            faults: FaultConfig::default(),
        }
    }

    /// Checks ranges and relations; `start` calls it.
    pub fn validate(&self) -> Result<(), SimError> {
        self.faults.check()?;
        if self.keys.is_empty() {
            return Err(SimError::Config("keys is empty".to_owned()));
        }
        if self.keys[0].from_fraction > 0.0 {
            return Err(SimError::Config(
                "the first key must start at from_fraction 0.0".to_owned(),
            ));
        }
        if self
            .keys
            .windows(2)
            .any(|w| w[1].from_fraction < w[0].from_fraction || w[1].version <= w[0].version)
        {
            return Err(SimError::Config(
                "keys must be ordered by version and from_fraction".to_owned(),
            ));
        }
        if let Some(late) = &self.late_key {
            if self.keys.iter().any(|k| k.version == late.version) {
                return Err(SimError::Config(format!(
                    "late_key version {} is also in keys",
                    late.version
                )));
            }
        }
        if self.users < 2 {
            return Err(SimError::Config("users must be at least 2".to_owned()));
        }
        if self.external_contacts == 0 || self.rooms == 0 {
            return Err(SimError::Config(
                "external_contacts and rooms must be at least 1".to_owned(),
            ));
        }
        if self.media.max_bytes == 0 {
            return Err(SimError::Config(
                "media.max_bytes must be positive".to_owned(),
            ));
        }
        if !(self.live_rate_per_sec >= 0.0 && self.live_rate_per_sec.is_finite()) {
            return Err(SimError::Config(
                "live_rate_per_sec must be a finite non-negative number".to_owned(),
            ));
        }
        if self.messages > u64::from(u32::MAX) {
            return Err(SimError::Config("messages must fit in u32".to_owned()));
        }
        Ok(())
    }

    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        toml::from_str(text).map_err(|e| SimError::Config(format!("bad simulator config: {e}")))
    }
}
