//! The simulator's configuration: corpus shape, keys, media sizes, fault rates, oversized items and
//! `msgaudit_notify` callbacks.
//!
//! Everything has a default so `SimConfig::default()` is a working 2000-item corpus encrypted with the
//! repository's test keys (`config/sim-keys/v1..v3.pem`, late key `v4.pem`). Every option is documented
//! on its field below; in TOML the sections are `[media]`, `[faults]`, `[big_messages]` and `[notify]`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
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
///
/// Images (`image`, and pictures inside `chatrecord` / `mixed`) are a small JPEG followed by padding up
/// to their size, emotions a small GIF (`type` 1) or PNG (`type` 2) likewise, voice is AMR-NB whose
/// size is a whole number of 32-byte frames; video and files are opaque bytes. A `max_bytes` below a
/// picture's length (about 1.5 KiB) serves only the picture's first bytes.
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
/// faults (`corrupt_ciphertext`, `unknown_key_version`, `seq_gaps`, `control_chars`,
/// `sdk_crash_marker`) are a pure
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
    /// Per text item: the content contains [`SDK_CRASH_MARKER`], on which the test-only stand-in SDK
    /// library aborts its process when asked to decrypt the item (to test crash isolation). With the
    /// simulator's own cipher these are ordinary text items; the truth marks them (`sdk_crash`).
    pub sdk_crash_marker: f64,
}

/// The string the stand-in SDK library aborts on (see [`FaultConfig::sdk_crash_marker`]).
pub const SDK_CRASH_MARKER: &str = "WECOM-STANDIN-ABORT";

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
            ("sdk_crash_marker", self.sdk_crash_marker),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::Config(format!(
                    "faults.{name} = {rate} is not within 0..=1"
                )));
            }
        }
        Ok(())
    }
}

const MIB: u64 = 1024 * 1024;
/// Upper bound of an oversized item's size option: bodies are built in memory per request.
const BIG_MESSAGE_LIMIT: u64 = 64 * MIB;

/// Oversized items (`[big_messages]`), to test limits such as a Kafka broker's 1 MB message size.
///
/// When `every` > 0, about one item in `every` (never one of the slots that keep every msgtype present,
/// nor a `huge_media` item) becomes oversized, cycling through: a `text` whose content is about
/// `text_bytes`; a `chatrecord` whose items nest further chatrecords (as JSON inside strings, as the
/// real service does) until its plaintext exceeds `chatrecord_bytes`, with a picture in the innermost
/// level; and, when `markdown_bytes` > 0, a `markdown` whose content is about that long. They stay
/// valid, decryptable items; the truth marks them (`oversized`). Default: off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BigMessagesConfig {
    /// About one item in `every` is oversized; 0 = none (the default).
    pub every: u64,
    /// Length in bytes of an oversized text's content (default 5 MiB).
    pub text_bytes: u64,
    /// An oversized chatrecord's plaintext is at least this long (default 1.5 MiB).
    pub chatrecord_bytes: u64,
    /// Length of an oversized markdown's content; 0 leaves markdown out (default 2 MiB).
    pub markdown_bytes: u64,
}

impl Default for BigMessagesConfig {
    fn default() -> Self {
        Self {
            every: 0,
            text_bytes: 5 * MIB,
            chatrecord_bytes: 3 * MIB / 2,
            markdown_bytes: 2 * MIB,
        }
    }
}

impl BigMessagesConfig {
    fn check(&self) -> Result<(), SimError> {
        for (name, value) in [
            ("text_bytes", self.text_bytes),
            ("chatrecord_bytes", self.chatrecord_bytes),
            ("markdown_bytes", self.markdown_bytes),
        ] {
            if value > BIG_MESSAGE_LIMIT {
                return Err(SimError::Config(format!(
                    "big_messages.{name} = {value} is above the limit of {BIG_MESSAGE_LIMIT} bytes"
                )));
            }
        }
        if self.every > 0 && (self.text_bytes == 0 || self.chatrecord_bytes == 0) {
            return Err(SimError::Config(
                "big_messages.text_bytes and big_messages.chatrecord_bytes must be positive when big_messages.every is set".to_owned(),
            ));
        }
        Ok(())
    }
}

/// WeCom-style `msgaudit_notify` callbacks (`[notify]`): while new live items appear, the simulator
/// POSTs an encrypted, signed event to `url`, at most once per `min_interval_ms`.
///
/// The request is `POST url?msg_signature=S&timestamp=T&nonce=N` with body
/// `<xml><ToUserName>corp_id</ToUserName><Encrypt>E</Encrypt><AgentID>agent_id</AgentID></xml>`
/// (values in CDATA). `E` is base64 of AES-256-CBC (key = base64 of `encoding_aes_key` + "=", IV = its
/// first 16 bytes, PKCS#7 padded to a multiple of 32 bytes) over `random(16) ‖ len (u32 BE) ‖ msg ‖
/// corp_id`, where `msg` is the `msgaudit_notify` event XML; `S` = lowercase hex of
/// sha1(concat(sort([token, T, N, E]))). A failed callback (refused, timeout, non-200) is logged at DEBUG
/// and retried at the next interval; `/_sim/stats` counts `notify_sent` and `notify_failed`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The receiver, `http://` or `https://`.
    pub url: String,
    /// The callback token (a secret: never logged).
    pub token: String,
    /// The 43-character EncodingAESKey (a secret: never logged).
    pub encoding_aes_key: String,
    /// The archive application's agent id (default "2000004").
    #[serde(default = "default_agent_id")]
    pub agent_id: String,
    /// Minimum time between two callbacks, in milliseconds (default 15000, as the real service).
    #[serde(default = "default_min_interval_ms")]
    pub min_interval_ms: u64,
}

fn default_agent_id() -> String {
    "2000004".to_owned()
}

fn default_min_interval_ms() -> u64 {
    15_000
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("encoding_aes_key", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .field("min_interval_ms", &self.min_interval_ms)
            .finish()
    }
}

impl NotifyConfig {
    /// The AES key: base64 of `encoding_aes_key` + "=" (trailing bits tolerated, as WeCom's own
    /// libraries do), 32 bytes.
    pub(crate) fn aes_key(&self) -> Result<[u8; 32], SimError> {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bad = || {
            SimError::Config(
                "notify.encoding_aes_key must be the 43-character base64 EncodingAESKey".to_owned(),
            )
        };
        if self.encoding_aes_key.len() != 43 {
            return Err(bad());
        }
        let raw = engine
            .decode(format!("{}=", self.encoding_aes_key))
            .map_err(|_| bad())?;
        raw.try_into().map_err(|_| bad())
    }

    fn check(&self) -> Result<(), SimError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(SimError::Config(format!(
                "notify.url {:?} must start with http:// or https://",
                self.url
            )));
        }
        if self.token.is_empty() {
            return Err(SimError::Config("notify.token is empty".to_owned()));
        }
        self.aes_key()?;
        if self.min_interval_ms == 0 {
            return Err(SimError::Config(
                "notify.min_interval_ms must be positive".to_owned(),
            ));
        }
        Ok(())
    }
}

/// The whole simulator configuration (TOML or JSON via serde).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// Items beyond `messages` become visible at this rate (per second); 0 = no live traffic. Live item
    /// `k` (1-based) becomes servable `k / rate` seconds after start, one at a time, and its `msgtime`
    /// is the wall-clock millisecond at which it became servable (unless the initial corpus's last
    /// `msgtime` lies later, e.g. an `anchor_unix_ms` in the future: msgtimes never go backwards).
    pub live_rate_per_sec: f64,
    /// Lifetime of an access token.
    pub token_ttl_secs: u64,
    pub media: MediaConfig,
    pub faults: FaultConfig,
    /// Oversized items (off by default).
    pub big_messages: BigMessagesConfig,
    /// `msgaudit_notify` callbacks (none by default).
    pub notify: Option<NotifyConfig>,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("corp_id", &self.corp_id)
            .field("corp_secret", &"<redacted>")
            .field("messages", &self.messages)
            .field("users", &self.users)
            .field("external_contacts", &self.external_contacts)
            .field("rooms", &self.rooms)
            .field("keys", &self.keys)
            .field("late_key", &self.late_key)
            .field("anchor_unix_ms", &self.anchor_unix_ms)
            .field("history_secs", &self.history_secs)
            .field("retention_secs", &self.retention_secs)
            .field("live_rate_per_sec", &self.live_rate_per_sec)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("media", &self.media)
            .field("faults", &self.faults)
            .field("big_messages", &self.big_messages)
            .field("notify", &self.notify)
            .finish()
    }
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
            big_messages: BigMessagesConfig::default(),
            notify: None,
        }
    }

    /// Checks ranges and relations; `start` calls it.
    pub fn validate(&self) -> Result<(), SimError> {
        self.faults.check()?;
        self.big_messages.check()?;
        if let Some(notify) = &self.notify {
            notify.check()?;
        }
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
