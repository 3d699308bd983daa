//! The JSON calls of the contract: one POST with a JSON body, one JSON answer within its size limit,
//! through the retry loop.

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{ArchiveClient, Inner};
use crate::consent::{AgreeInfo, RoomAgreeInfo};
use crate::endpoint;
use crate::error::ApiError;
use crate::wire::{self, ChatDataItem, RoomInfo};
use crate::Secret;

/// Largest page `get_chat_data` and `room_items` accept.
pub const MAX_LIMIT: u32 = 1000;

/// Most (member, external contact) pairs `check_single_agree` takes in one request; longer inputs are
/// split by [`ArchiveClient::check_single_agree`].
pub const MAX_AGREE_PAIRS: usize = 100;

const GET_CHAT_DATA_PATH: &str = "/cgi-bin/msgaudit/get_chat_data";
const GROUPCHAT_GET_PATH: &str = "/cgi-bin/msgaudit/groupchat/get";
const PERMIT_USERS_PATH: &str = "/cgi-bin/msgaudit/get_permit_user_list";
const CHECK_SINGLE_AGREE_PATH: &str = "/cgi-bin/msgaudit/check_single_agree";
const CHECK_ROOM_AGREE_PATH: &str = "/cgi-bin/msgaudit/check_room_agree";

/// One call: where it goes, what it sends, and how large its answer may be.
struct Call {
    ep: &'static str,
    path: &'static str,
    body: Bytes,
    limit: u64,
}

impl ArchiveClient {
    /// Items with a seq greater than `seq`, at most `limit` (1..=1000). An empty vector means caught up.
    /// A page with more than `limit` items is refused (`TooManyItems`, retriable).
    pub async fn get_chat_data(&self, seq: u64, limit: u32) -> Result<Vec<ChatDataItem>, ApiError> {
        check_limit(limit)?;
        let call = Call {
            ep: endpoint::GET_CHAT_DATA,
            path: GET_CHAT_DATA_PATH,
            body: json_body(&wire::ChatDataBody { seq, limit })?,
            limit: self.inner.page_body_limit,
        };
        self.inner.page(call, seq, limit).await
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
        let call = Call {
            ep: endpoint::GROUPCHAT_GET,
            path: GROUPCHAT_GET_PATH,
            body: json_body(&wire::RoomItemsBody { roomid, seq, limit })?,
            limit: self.inner.page_body_limit,
        };
        self.inner.page(call, seq, limit).await
    }

    /// A room's metadata (name, creator, members).
    pub async fn room_info(&self, roomid: &str) -> Result<RoomInfo, ApiError> {
        check_nonempty("roomid", roomid)?;
        let call = Call {
            ep: endpoint::GROUPCHAT_GET,
            path: GROUPCHAT_GET_PATH,
            body: json_body(&wire::RoomInfoBody { roomid })?,
            limit: self.inner.small_body_limit,
        };
        self.inner.post(call, |_| Ok(())).await
    }

    /// The userids that consented to archiving. One answer lists the whole corp, so it gets the
    /// page limit.
    pub async fn permit_users(&self) -> Result<Vec<String>, ApiError> {
        let call = Call {
            ep: endpoint::PERMIT_USERS,
            path: PERMIT_USERS_PATH,
            body: Bytes::from_static(b"{}"),
            limit: self.inner.page_body_limit,
        };
        let env: wire::PermitUsersEnvelope = self.inner.post(call, |_| Ok(())).await?;
        Ok(env.ids)
    }

    /// The consent of each `(userid, external openid)` pair. Inputs longer than
    /// [`MAX_AGREE_PAIRS`] are sent in several requests, one after the other; a pair the service has
    /// no answer for is absent from the result. An empty input sends nothing.
    pub async fn check_single_agree(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Vec<AgreeInfo>, ApiError> {
        for (userid, openid) in pairs {
            check_nonempty("userid", userid)?;
            check_nonempty("external openid", openid)?;
        }
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(MAX_AGREE_PAIRS) {
            let body = wire::CheckSingleAgreeBody {
                info: chunk
                    .iter()
                    .map(|(userid, openid)| wire::AgreePair {
                        userid,
                        exteranalopenid: openid,
                    })
                    .collect(),
            };
            let call = Call {
                ep: endpoint::CHECK_SINGLE_AGREE,
                path: CHECK_SINGLE_AGREE_PATH,
                body: json_body(&body)?,
                limit: self.inner.small_body_limit,
            };
            let env: wire::AgreeInfoEnvelope = self.inner.post(call, |_| Ok(())).await?;
            out.extend(env.agreeinfo);
        }
        Ok(out)
    }

    /// The consent of each external member of a room.
    pub async fn check_room_agree(&self, roomid: &str) -> Result<Vec<RoomAgreeInfo>, ApiError> {
        check_nonempty("roomid", roomid)?;
        let call = Call {
            ep: endpoint::CHECK_ROOM_AGREE,
            path: CHECK_ROOM_AGREE_PATH,
            body: json_body(&wire::CheckRoomAgreeBody { roomid })?,
            limit: self.inner.small_body_limit,
        };
        let env: wire::VoteInfoEnvelope = self.inner.post(call, |_| Ok(())).await?;
        Ok(env.voteinfo)
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
    /// A page of items, refused (retriably) when it holds more than the `limit` asked for: the
    /// caller must not move its cursor past items the server should not have sent.
    async fn page(
        &self,
        call: Call,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChatDataItem>, ApiError> {
        let ep = call.ep;
        let env: wire::ChatDataEnvelope = self
            .post(call, |env: &wire::ChatDataEnvelope| {
                // Repeats are not extra items: the service has been seen to serve again items at or
                // below the requested seq, and one seq twice; the fetcher drops both. What counts is
                // the distinct new seqs.
                let count = env
                    .chatdata
                    .iter()
                    .map(|i| i.seq)
                    .filter(|&s| s > after)
                    .collect::<std::collections::BTreeSet<u64>>()
                    .len();
                if count > limit as usize {
                    Err(ApiError::TooManyItems {
                        endpoint: ep,
                        limit,
                        count,
                    })
                } else {
                    Ok(())
                }
            })
            .await?;
        Ok(env.chatdata)
    }

    /// Sends `call` until an answer decodes and passes `check`, or the retry loop gives up.
    async fn post<T, C>(&self, call: Call, check: C) -> Result<T, ApiError>
    where
        T: DeserializeOwned,
        C: Fn(&T) -> Result<(), ApiError>,
    {
        let call = &call;
        let check = &check;
        self.with_retry(call.ep, |token| async move {
            let value = self.post_once(call, token).await?;
            check(&value)?;
            Ok(value)
        })
        .await
    }

    async fn post_once<T: DeserializeOwned>(
        &self,
        call: &Call,
        token: Secret,
    ) -> Result<T, ApiError> {
        self.stats.call(call.ep);
        let req = self
            .http
            .post(self.url(call.path))
            .query(&[("access_token", token.expose())])
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(call.body.clone());
        let resp = self.send(call.ep, req).await?;
        self.decode_response(call.ep, resp, call.limit, Some(&token))
            .await
    }
}
