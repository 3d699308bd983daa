//! `check_single_agree` and `check_room_agree`: the agreement status of external contacts as of now.

use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{parse_body, ERR_INVALID_PARAM, Q, S};

/// At most this many (userid, external) pairs per `check_single_agree` call; more is answered with
/// [`ERR_INVALID_PARAM`] (40058), the errcode the simulator uses for every invalid parameter.
pub(crate) const MAX_AGREE_PAIRS: usize = 100;

/// The (userid, exteranalopenid) pairs of a `check_single_agree` body (the field is misspelled
/// officially); `Err` is the errmsg to answer with 40058.
fn agree_pairs(body: &Value) -> Result<Vec<(String, String)>, &'static str> {
    let info = body
        .get("info")
        .and_then(Value::as_array)
        .ok_or("info missing")?;
    if info.is_empty() {
        return Err("info is empty");
    }
    if info.len() > MAX_AGREE_PAIRS {
        return Err("info has more than 100 pairs");
    }
    info.iter()
        .map(|entry| {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            match (field("userid"), field("exteranalopenid")) {
                (Some(u), Some(e)) => Ok((u, e)),
                _ => Err("each info entry needs userid and exteranalopenid"),
            }
        })
        .collect()
}

pub(super) async fn check_single_agree(State(s): S, Query(q): Q, body: Bytes) -> Response {
    let d = s.draw();
    if let Some(resp) = s.preflight("check_single_agree", &q, &d, true).await {
        return resp;
    }
    let Some(body) = parse_body(&body) else {
        return s.envelope(ERR_INVALID_PARAM, "invalid json body");
    };
    let pairs = match agree_pairs(&body) {
        Ok(p) => p,
        Err(msg) => return s.envelope(ERR_INVALID_PARAM, msg),
    };
    let info: Vec<Value> = s
        .corpus
        .single_agree(&pairs)
        .into_iter()
        .map(|(userid, external, status, at)| {
            json!({"status_change_time": at, "userid": userid, "exteranalopenid": external, "agree_status": status.as_str()})
        })
        .collect();
    s.finish_json(
        &d,
        &json!({"errcode": 0, "errmsg": "ok", "agreeinfo": info}),
    )
}

pub(super) async fn check_room_agree(State(s): S, Query(q): Q, body: Bytes) -> Response {
    let d = s.draw();
    if let Some(resp) = s.preflight("check_room_agree", &q, &d, true).await {
        return resp;
    }
    let Some(body) = parse_body(&body) else {
        return s.envelope(ERR_INVALID_PARAM, "invalid json body");
    };
    let Some(room) = body
        .get("roomid")
        .and_then(Value::as_str)
        .and_then(|r| s.corpus.room_index(r))
    else {
        return s.envelope(ERR_INVALID_PARAM, "invalid roomid");
    };
    let votes: Vec<Value> = s
        .corpus
        .room_agree(room)
        .into_iter()
        .map(|(external, status, at)| {
            json!({"status_change_time": at, "exteranalopenid": external, "agree_status": status.as_str()})
        })
        .collect();
    s.finish_json(
        &d,
        &json!({"errcode": 0, "errmsg": "ok", "voteinfo": votes}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_pairs_are_checked() {
        let pair = json!({"userid": "zhangsan", "exteranalopenid": "wmX"});
        assert_eq!(
            agree_pairs(&json!({"info": [pair]})),
            Ok(vec![("zhangsan".to_owned(), "wmX".to_owned())])
        );
        assert_eq!(agree_pairs(&json!({})), Err("info missing"));
        assert_eq!(agree_pairs(&json!({"info": []})), Err("info is empty"));
        let many: Vec<Value> = (0..101).map(|_| pair.clone()).collect();
        assert_eq!(
            agree_pairs(&json!({"info": many})),
            Err("info has more than 100 pairs")
        );
        // The correctly spelled field is not the API's.
        assert!(agree_pairs(&json!({"info": [{"userid": "a", "externalopenid": "wmX"}]})).is_err());
    }
}
