//! Request bodies and response envelopes of the archive contract, as this client sends and reads them.
//!
//! The item and room types are the model's (what callers get back); the envelopes around them are
//! private so the client decides alone how strictly it reads them.

use serde::{Deserialize, Serialize};

pub use wecom_model::api::{ChatDataItem, RoomInfo};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenBody {
    pub access_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatDataBody {
    pub seq: u64,
    pub limit: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct RoomItemsBody<'a> {
    pub roomid: &'a str,
    pub seq: u64,
    pub limit: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct RoomInfoBody<'a> {
    pub roomid: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatDataEnvelope {
    #[serde(default)]
    pub chatdata: Vec<ChatDataItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PermitUsersEnvelope {
    #[serde(default)]
    pub ids: Vec<String>,
}
