//! The admin endpoints under `/_sim/`: stats, ground truth, fault rates, retention floor.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{parse_body, ERR_INVALID_PARAM, S};
use crate::config::FaultConfig;

pub(super) async fn admin_stats(State(s): S) -> Response {
    Json(s.stats()).into_response()
}

pub(super) async fn admin_truth(State(s): S) -> Response {
    let s2 = s.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for item in s2.corpus.truth() {
            if serde_json::to_writer(&mut out, &item).is_ok() {
                out.push(b'\n');
            }
        }
        out
    })
    .await
    .unwrap_or_default();
    let mut resp = Response::new(Body::from(lines));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

pub(super) async fn admin_consent(State(s): S) -> Response {
    Json(s.corpus.consent_truth()).into_response()
}

pub(super) async fn admin_faults(State(s): S, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(f) => {
            s.set_faults(f);
            Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"errcode": ERR_INVALID_PARAM, "errmsg": format!("bad fault config: {e}")})),
        )
            .into_response(),
    }
}

pub(super) async fn admin_retention(State(s): S, body: Bytes) -> Response {
    match parse_body(&body).and_then(|b| b.get("floor_seq").and_then(Value::as_u64)) {
        Some(floor) => {
            s.set_floor(floor);
            Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"errcode": ERR_INVALID_PARAM, "errmsg": "body must be {\"floor_seq\": N}"}),
            ),
        )
            .into_response(),
    }
}
