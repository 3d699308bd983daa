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
}

/// Request and fault counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests per endpoint: `gettoken`, `get_chat_data`, `groupchat_info`, `groupchat_items`,
    /// `media_get`, `get_permit_user_list`.
    pub requests: BTreeMap<String, u64>,
    /// Injected faults by name (the `FaultConfig` field names).
    pub faults: BTreeMap<String, u64>,
    /// Non-zero errcodes answered, by errcode.
    pub errcodes: BTreeMap<String, u64>,
    /// Items put into successful chat-data and room pages (duplicates included).
    pub items_served: u64,
    /// Media bytes the server set out to send (a reset or truncated body counts what was planned).
    pub media_bytes: u64,
}
