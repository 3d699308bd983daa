//! The JSON calls of the contract: one POST with a JSON body, one JSON answer, through the retry loop.

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{ArchiveClient, Inner};
use crate::endpoint;
use crate::error::ApiError;
use crate::wire::{self, ChatDataItem, RoomInfo};
use crate::Secret;

/// Largest page `get_chat_data` and `room_items` accept.
pub const MAX_LIMIT: u32 = 1000;

impl ArchiveClient {
    /// Items with a seq greater than `seq`, at most `limit` (1..=1000). An empty vector means caught up.
    pub async fn get_chat_data(&self, seq: u64, limit: u32) -> Result<Vec<ChatDataItem>, ApiError> {
        check_limit(limit)?;
        let body = json_body(&wire::ChatDataBody { seq, limit })?;
        let env: wire::ChatDataEnvelope = self
            .inner
            .post_with_retry(
                endpoint::GET_CHAT_DATA,
                "/cgi-bin/msgaudit/get_chat_data",
                body,
            )
            .await?;
        Ok(env.chatdata)
    }

    /// One room's items with a per-room seq greater than `seq`, at most `limit` (1..=1000).
    pub async fn room_items(
        &self,
        roomid: &str,
        seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatDataItem>, ApiError> {
        check_limit(limit)?;
        check_nonempty("roomid", roomid)?;
        let body = json_body(&wire::RoomItemsBody { roomid, seq, limit })?;
        let env: wire::ChatDataEnvelope = self
            .inner
            .post_with_retry(
                endpoint::GROUPCHAT_GET,
                "/cgi-bin/msgaudit/groupchat/get",
                body,
            )
            .await?;
        Ok(env.chatdata)
    }

    /// A room's metadata (name, creator, members).
    pub async fn room_info(&self, roomid: &str) -> Result<RoomInfo, ApiError> {
        check_nonempty("roomid", roomid)?;
        let body = json_body(&wire::RoomInfoBody { roomid })?;
        self.inner
            .post_with_retry(
                endpoint::GROUPCHAT_GET,
                "/cgi-bin/msgaudit/groupchat/get",
                body,
            )
            .await
    }

    /// The userids that consented to archiving.
    pub async fn permit_users(&self) -> Result<Vec<String>, ApiError> {
        let env: wire::PermitUsersEnvelope = self
            .inner
            .post_with_retry(
                endpoint::PERMIT_USERS,
                "/cgi-bin/msgaudit/get_permit_user_list",
                Bytes::from_static(b"{}"),
            )
            .await?;
        Ok(env.ids)
    }
}

pub(crate) fn check_limit(limit: u32) -> Result<(), ApiError> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::InvalidArgument(format!(
            "limit must be within 1..={MAX_LIMIT}, got {limit}"
        )))
    }
}

pub(crate) fn check_nonempty(what: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        Err(ApiError::InvalidArgument(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

fn json_body(body: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ApiError::InvalidArgument(format!("request body: {e}")))
}

impl Inner {
    async fn post_with_retry<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        path: &'static str,
        body: Bytes,
    ) -> Result<T, ApiError> {
        self.with_retry(ep, |token| self.post_once(ep, path, token, body.clone()))
            .await
    }

    async fn post_once<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        path: &'static str,
        token: Secret,
        body: Bytes,
    ) -> Result<T, ApiError> {
        self.stats.call(ep);
        let resp = self
            .http
            .post(self.url(path))
            .query(&[("access_token", token.expose())])
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        self.decode(ep, status, &bytes, Some(&token))
    }
}
