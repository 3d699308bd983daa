//! The calls the gateway forwards to Tencent's HTTP API (`upstream.rs`): room metadata, the
//! permit-user list and the consent checks.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::upstream::UpstreamError;
use super::{envelope, json_response, Gw, ERR_BUSY, ERR_INVALID_PARAM, ERR_NOT_SERVED, Q, S};

/// Relays `body` to the same path upstream; upstream's answer goes back unchanged.
async fn relay(s: &Gw, path: &str, body: Bytes) -> Response {
    match s.upstream.forward(path, body).await {
        Ok(answer) => json_response(answer),
        Err(UpstreamError::Unavailable(reason)) => {
            tracing::warn!(path, %reason, "sdk gateway: upstream call failed");
            envelope(ERR_BUSY, &format!("upstream unavailable: {reason}"))
        }
        Err(UpstreamError::Token { errcode, errmsg }) => {
            tracing::warn!(errcode, %errmsg, "sdk gateway: upstream gettoken refused the corp secret");
            envelope(
                errcode,
                &format!("upstream gettoken failed: {errmsg}; check the gateway's corp secret"),
            )
        }
    }
}

/// `groupchat/get` `{roomid}`: room metadata, forwarded. With `seq`/`limit` (a room's items): not
/// served, the SDK has no per-room paging.
pub(super) async fn groupchat_get(
    State(s): S,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(resp) = s.authorize(&headers, &q) {
        return resp;
    }
    let Some(parsed) = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(Value::is_object)
    else {
        return envelope(ERR_INVALID_PARAM, "invalid json body");
    };
    if parsed.get("seq").is_some() || parsed.get("limit").is_some() {
        return envelope(
            ERR_NOT_SERVED,
            "not served by the sdk gateway: the sdk has no per-room paging (use the corp stream)",
        );
    }
    if parsed
        .get("roomid")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return envelope(ERR_INVALID_PARAM, "invalid roomid");
    }
    relay(&s, uri.path(), body).await
}

/// The permit list and the consent checks, forwarded as they are.
pub(super) async fn forward(
    State(s): S,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(resp) = s.authorize(&headers, &q) {
        return resp;
    }
    relay(&s, uri.path(), body).await
}
