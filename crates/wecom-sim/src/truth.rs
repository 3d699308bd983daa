//! Ground truth and counters: what the simulator knows about every item it can serve, so tests can
//! check that the pipeline kept everything exactly once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What decrypting an item must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Decrypts to valid message JSON (after escaping raw control characters).
    Ok,
    /// `encrypt_chat_msg` is damaged: decryption fails for good.
    CorruptCiphertext,
    /// Encrypted with the late key (publickey_ver of `late_key`), which a normal keyring lacks.
    UnknownKeyVersion,
}

/// One media file referenced by an item (also those nested in chatrecord / mixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthMedia {
    pub sdkfileid: String,
    /// md5 (lowercase hex) of the bytes served for this file.
    pub md5: String,
    pub size: u64,
    /// The message carries this md5 as `md5sum`. False when its `md5sum` is the empty string (rare, as
    /// in real data) or the type has no md5 field (`meeting_voice_call`); `md5` is still the real one.
    pub md5_in_message: bool,
}

/// One archive item as the simulator generated it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthItem {
    /// Corp-wide seq.
    pub seq: u64,
    pub msgid: String,
    /// `None` for `switch` items.
    pub msgtype: Option<String>,
    /// `send`, `recall` or `switch`.
    pub action: String,
    /// `None` for 1:1 chats and types without a room.
    pub roomid: Option<String>,
    /// Seq in the room's own stream (`groupchat/get` with seq), when the item is in a room.
    pub room_seq: Option<u64>,
    /// Message time in unix ms (`time` for `switch`).
    pub msgtime_ms: i64,
    /// The item's `publickey_ver`.
    pub key_version: u32,
    pub fate: Fate,
    /// The plaintext carries raw control characters inside a JSON string.
    pub control_chars: bool,
    pub media: Vec<TruthMedia>,
    /// An oversized item of `[big_messages]`.
    #[serde(default)]
    pub oversized: bool,
    /// A text item whose content carries the stand-in SDK's abort marker (`faults.sdk_crash_marker`).
    #[serde(default)]
    pub sdk_crash: bool,
}

/// An agreement status, spelled as `check_single_agree` / `check_room_agree` answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgreeStatus {
    Agree,
    Disagree,
    #[serde(rename = "Default_Agree")]
    DefaultAgree,
}

impl AgreeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgreeStatus::Agree => "Agree",
            AgreeStatus::Disagree => "Disagree",
            AgreeStatus::DefaultAgree => "Default_Agree",
        }
    }
}

/// One change of an agreement status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChange {
    pub status: AgreeStatus,
    /// When it changed, unix ms (the APIs answer it in seconds as `status_change_time`).
    pub time_ms: i64,
    /// Corp seq of the `agree` / `disagree` item that records it; `None` for `Default_Agree`, which
    /// predates the corpus and has no message.
    pub seq: Option<u64>,
}

/// The status at `at_ms`: the last change at or before it (`None`: no answer yet).
pub fn status_at(changes: &[ConsentChange], at_ms: i64) -> Option<ConsentChange> {
    changes.iter().rev().find(|c| c.time_ms <= at_ms).copied()
}

/// The agreement history of an external contact with one internal user (1:1 chats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairConsent {
    pub userid: String,
    pub external: String,
    /// Oldest first. Empty: this external never answers (absent from `check_single_agree`).
    pub changes: Vec<ConsentChange>,
}

/// The agreement history of an external member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConsent {
    pub roomid: String,
    pub external: String,
    /// Oldest first. Empty: this member never answers (absent from `check_room_agree`).
    pub changes: Vec<ConsentChange>,
}

/// Every agreement history, up to the visible end of the corpus (`/_sim/truth/consent`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTruth {
    pub pairs: Vec<PairConsent>,
    pub rooms: Vec<RoomConsent>,
}

/// Request and fault counters, and where the corpus ends now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests per endpoint: `gettoken`, `get_chat_data`, `groupchat_info`, `groupchat_items`,
    /// `media_get`, `get_permit_user_list`, `check_single_agree`, `check_room_agree`.
    pub requests: BTreeMap<String, u64>,
    /// Injected faults by name (the `FaultConfig` field names).
    pub faults: BTreeMap<String, u64>,
    /// Non-zero errcodes answered, by errcode.
    pub errcodes: BTreeMap<String, u64>,
    /// Items put into successful chat-data and room pages (duplicates included).
    pub items_served: u64,
    /// Media bytes the server set out to send (a reset or truncated body counts what was planned).
    pub media_bytes: u64,
    /// Items servable now (initial corpus plus live items so far).
    #[serde(default)]
    pub visible_items: u64,
    /// Corp seq of the newest servable item (0 when there is none).
    #[serde(default)]
    pub newest_seq: u64,
    /// `msgtime` of the newest servable item, unix ms (for a live item: when it became servable).
    #[serde(default)]
    pub newest_msgtime_ms: i64,
    /// The simulator's wall clock when these stats were taken, unix ms.
    #[serde(default)]
    pub now_ms: i64,
    /// `msgaudit_notify` callbacks answered with HTTP 200.
    #[serde(default)]
    pub notify_sent: u64,
    /// Callbacks that failed (refused, timed out, non-200); each is retried at the next interval.
    #[serde(default)]
    pub notify_failed: u64,
}
