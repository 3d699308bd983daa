//! Request bodies and response envelopes of the archive contract, as this client sends and reads them.
//!
//! The item and room types are the model's (what callers get back); the envelopes around them are
//! private so the client decides alone how strictly it reads them.

use serde::{Deserialize, Deserializer, Serialize};

pub use wecom_model::api::{ChatDataItem, RoomInfo};

use crate::consent::{AgreeInfo, RoomAgreeInfo};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenBody {
    pub access_token: String,
    #[serde(deserialize_with = "saturating_secs")]
    pub expires_in: u64,
}

/// Any non-negative JSON number of seconds, saturated to `u64::MAX` (a number beyond `u64` arrives as
/// a float); the token cache clamps the lifetime anyway.
fn saturating_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(secs) = n.as_u64() {
        return Ok(secs);
    }
    match n.as_f64() {
        // `as` saturates a float to the integer range.
        Some(f) if f >= 0.0 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "expires_in must be a non-negative number of seconds, got {n}"
        ))),
    }
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

#[derive(Debug, Serialize)]
pub(crate) struct CheckSingleAgreeBody<'a> {
    pub info: Vec<AgreePair<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AgreePair<'a> {
    pub userid: &'a str,
    /// Misspelled on purpose: the service's field name.
    pub exteranalopenid: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct CheckRoomAgreeBody<'a> {
    pub roomid: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AgreeInfoEnvelope {
    #[serde(default)]
    pub agreeinfo: Vec<AgreeInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VoteInfoEnvelope {
    #[serde(default)]
    pub voteinfo: Vec<RoomAgreeInfo>,
}
