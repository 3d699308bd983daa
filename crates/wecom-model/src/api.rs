//! Request and response bodies of the archive HTTP contract (reference §1, §2 and §5).
//!
//! These are the wire shapes only: the client that sends them lives in `wecom-api`, the simulator builds its
//! own JSON. Responses are read leniently (a missing field takes its default) because every endpoint answers
//! failures with just `errcode`/`errmsg`, and the caller must be able to read that from any response type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GET /cgi-bin/gettoken` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenResponse {
    pub errcode: i64,
    pub errmsg: String,
    pub access_token: String,
    /// Lifetime of the token in seconds (7200 in practice).
    pub expires_in: u64,
}

/// Body of `POST /cgi-bin/msgaudit/get_chat_data`: items with a seq strictly greater than `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatDataRequest {
    /// The largest seq already received (0 on the first call), never that plus one.
    pub seq: u64,
    /// 1..=1000.
    pub limit: u32,
}

/// Response of `get_chat_data` (and, with the same shape, of a room's item listing).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatDataResponse {
    pub errcode: i64,
    pub errmsg: String,
    pub chatdata: Vec<ChatDataItem>,
}

/// One encrypted archive item, as served. Unknown fields are kept in `extra` so the item round-trips
/// byte-for-byte into the raw archive and the dead-letter output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ChatDataItem {
    pub seq: u64,
    // Only `seq` is required: an item missing anything else must still reach the dead-letter output rather
    // than fail the whole page.
    #[serde(default)]
    pub msgid: String,
    /// Version of the corp's archive key pair the random key was wrapped with.
    #[serde(default)]
    pub publickey_ver: u32,
    /// Base64 of the RSA (PKCS#1 v1.5) encrypted per-message random key.
    #[serde(default)]
    pub encrypt_random_key: String,
    #[serde(default)]
    pub encrypt_chat_msg: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Body of `POST /cgi-bin/msgaudit/groupchat/get` asking for a room's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoomInfoRequest {
    pub roomid: String,
}

/// Body of `POST /cgi-bin/msgaudit/groupchat/get` asking for a room's items (a per-room seq).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoomItemsRequest {
    pub roomid: String,
    pub seq: u64,
    pub limit: u32,
}

/// Room metadata (`msgaudit/groupchat/get` with only a roomid). Internal groups only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomInfo {
    pub errcode: i64,
    pub errmsg: String,
    pub roomname: String,
    pub creator: String,
    /// Unix time in seconds.
    pub room_create_time: i64,
    pub notice: String,
    pub members: Vec<RoomMember>,
}

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomMember {
    pub memberid: String,
    /// Unix time in seconds.
    pub jointime: i64,
}

/// A room's items: the same shape as [`ChatDataResponse`].
pub type RoomItemsResponse = ChatDataResponse;

/// `msgaudit/get_permit_user_list` response: the users who consented to archiving.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PermitUserListResponse {
    pub errcode: i64,
    pub errmsg: String,
    pub ids: Vec<String>,
}

/// The envelope every response carries; on failure it is the whole body. `errcode` 0 means success.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorEnvelope {
    pub errcode: i64,
    pub errmsg: String,
}

impl ErrorEnvelope {
    /// Whether the call succeeded (`errcode == 0`).
    pub fn is_ok(&self) -> bool {
        self.errcode == 0
    }
}
