//! The JSON API (`/api/*`, both roles): status, conversations, transcripts for language models, search.
//! Documented in `/api/openapi.json` ([`super::openapi`]).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::cursor::{Cursor, CursorError};
use super::http::{blocking, AppError, Params};
use super::timefmt::Clock;
use super::Shared;
use crate::conversations::{ConvSummary, KindFilter};
use crate::highlight;
use crate::msg::Msg;
use crate::query::{self, Filters};
use crate::view::{Anchor, TimeKey};

/// Messages per transcript call, by default and at most.
const TRANSCRIPT_DEFAULT: usize = 200;
const TRANSCRIPT_MAX: usize = 1000;
/// Search results per call, at most.
const SEARCH_MAX: usize = 200;

/// The search filters of a request (shared with the search page).
pub(crate) fn filters(p: &Params, clock: &Clock) -> Result<Filters, AppError> {
    let instant = |key: &str, end: bool| -> Result<Option<u64>, AppError> {
        match p.get(key) {
            None => Ok(None),
            Some(v) => {
                let parsed = if end {
                    clock.parse_end(v)
                } else {
                    clock.parse_instant(v)
                };
                parsed.map(Some).ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "{key} must be a date (YYYY-MM-DD), an RFC 3339 time or Unix milliseconds"
                    ))
                })
            }
        }
    };
    Ok(Filters {
        sender: p.get("sender").map(|s| s.trim().to_owned()),
        conversation: p
            .get("conversation")
            .or_else(|| p.get("conv"))
            .map(|s| s.trim().to_owned()),
        room: p.get("room").map(|s| s.trim().to_owned()),
        from_ms: instant("from", false)?,
        until_ms: instant("until", true)?.or(instant("to", true)?),
        msgtypes: p.all("msgtype"),
        has_media: p.bool("has_media")?,
        external: p.bool("external")?,
    })
}

fn conv_json(c: &ConvSummary, clock: &Clock) -> Value {
    json!({
        "id": c.id,
        "kind": c.kind.as_str(),
        "title": c.title(),
        "name": c.name,
        "member_count": c.member_count,
        "participants": c.participants,
        "messages": c.messages,
        "media_messages": c.media_messages,
        "external": c.external,
        "first_time": (c.first_time_ms != u64::MAX).then(|| clock.rfc3339(c.first_time_ms)),
        "last_time": c.last.as_ref().map(|l| clock.rfc3339(l.time_ms)),
        "last_message": c.last.as_ref().map(|l| json!({
            "msgid": l.msgid, "speaker": l.speaker, "msgtype": l.msgtype, "text": l.text,
        })),
    })
}

/// A message as the API returns it.
#[derive(Debug, Serialize)]
pub(crate) struct ApiMessage {
    pub msgid: String,
    pub conversation_id: String,
    pub stream: String,
    pub seq: u64,
    pub time: Option<String>,
    pub speaker: String,
    pub msgtype: String,
    /// The one-line text rendering, media as `[marker](object_key)`.
    pub text: String,
    pub media: Vec<Value>,
    pub external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalls: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalled_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<Value>,
}

pub(crate) fn api_message(
    m: &Msg,
    clock: &Clock,
    recalled: &std::collections::HashMap<String, String>,
) -> ApiMessage {
    let r = &m.record;
    ApiMessage {
        msgid: r.msgid.clone(),
        conversation_id: r.conversation_id.clone(),
        stream: r.stream.clone(),
        seq: r.seq,
        time: r.msgtime_ms.map(|t| clock.rfc3339(t)),
        speaker: m.speaker().to_owned(),
        msgtype: m.msgtype().to_owned(),
        text: m.line_text(),
        media: r
            .media
            .iter()
            .map(|x| json!({"kind": x.kind, "object_key": x.object_key, "size": x.size}))
            .collect(),
        external: r.external,
        recalls: m.recalled_msgid().map(str::to_owned),
        recalled_by: recalled.get(&r.msgid).cloned(),
        consent: m
            .consent
            .as_ref()
            .map(|c| json!({"status": c.status, "checked_at": c.checked_at})),
    }
}

/// One transcript line: `[2026-11-22 16:15:02] zhangsan: text`.
pub(crate) fn transcript_line(
    m: &Msg,
    clock: &Clock,
    recalled: &std::collections::HashMap<String, String>,
) -> String {
    let time = m
        .record
        .msgtime_ms
        .map_or_else(|| "—".to_owned(), |t| clock.datetime(t));
    let mark = if recalled.contains_key(&m.record.msgid) {
        " (recalled)"
    } else {
        ""
    };
    format!("[{time}] {}: {}{mark}", m.speaker(), m.line_text())
}

pub(crate) async fn status(State(st): State<Shared>) -> Result<Response, AppError> {
    let s = st.archive.status();
    let conversations = st.archive.convs.read().map(|c| c.len()).unwrap_or(0);
    Ok(Json(json!({
        "corp_id": st.archive.corp_id(),
        "source": s.source,
        "records": s.records,
        "conversations": conversations,
        "duplicates_skipped": s.duplicates_skipped,
        "unreadable_lines": s.unreadable_lines,
        "last_commit": s.last_commit_unix_ms.map(|t| st.clock.rfc3339(t)),
        "last_error": s.last_error,
        "timezone": st.clock.offset_label(),
    }))
    .into_response())
}

pub(crate) async fn conversations(
    State(st): State<Shared>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let kind = match p.get("kind") {
        None | Some("all") => KindFilter::All,
        Some("room") | Some("rooms") => KindFilter::Rooms,
        Some("single") => KindFilter::Single,
        Some(_) => {
            return Err(AppError::BadRequest(
                "kind must be all, room or single".into(),
            ))
        }
    };
    let limit = p.usize_in("limit", 100, 1000)?;
    let offset = p.offset("offset")?;
    let (page, total) = st
        .archive
        .convs
        .read()
        .map(|c| c.list(kind, p.get("q"), offset, limit))
        .unwrap_or_default();
    Ok(Json(json!({
        "total": total,
        "offset": offset,
        "conversations": page.iter().map(|c| conv_json(c, &st.clock)).collect::<Vec<_>>(),
    }))
    .into_response())
}

pub(crate) async fn transcript(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let summary = st
        .archive
        .convs
        .read()
        .ok()
        .and_then(|c| c.get(&id).cloned());
    let Some(summary) = summary else {
        return Err(AppError::NotFound(format!("no conversation {id:?}")));
    };
    let markdown = match p.get("format") {
        Some("markdown") | Some("md") => true,
        Some("json") => false,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/markdown")),
        Some(_) => {
            return Err(AppError::BadRequest(
                "format must be json or markdown".into(),
            ))
        }
    };
    let limit = p.usize_in("limit", TRANSCRIPT_DEFAULT, TRANSCRIPT_MAX)?;
    let epoch = st.archive.epoch().to_owned();
    let (after, from_ms) = match p.get("since") {
        None => (0, None),
        Some(s) if Cursor::looks_like(s) => match Cursor::decode(s, &epoch, &id) {
            Ok(c) => (c.after_ingest, c.from_ms),
            Err(CursorError::OtherIndex) => {
                return Err(AppError::Gone(
                    "the cursor belongs to an index that was rebuilt: start again with since=<time>"
                        .into(),
                ))
            }
            Err(CursorError::OtherConversation) => {
                return Err(AppError::BadRequest(
                    "the cursor belongs to another conversation".into(),
                ))
            }
            Err(CursorError::Malformed) => {
                return Err(AppError::BadRequest("since: malformed cursor".into()))
            }
        },
        Some(s) => match st.clock.parse_instant(s) {
            Some(t) => (0, Some(t)),
            None => {
                return Err(AppError::BadRequest(
                    "since must be a cursor from a previous call, a date (YYYY-MM-DD), an RFC 3339 time or Unix milliseconds"
                        .into(),
                ))
            }
        },
    };
    let until_ms = match p.get("until") {
        None => None,
        Some(s) => Some(st.clock.parse_end(s).ok_or_else(|| {
            AppError::BadRequest(
                "until must be a date (YYYY-MM-DD), an RFC 3339 time or Unix milliseconds".into(),
            )
        })?),
    };
    let st2 = st.clone();
    let conv = id.clone();
    let (msgs, more, snapshot_max, recalled) = blocking(&st, move || {
        let (msgs, more, snapshot_max) = st2
            .archive
            .transcript(&conv, after, from_ms, until_ms, limit)?;
        let ids: Vec<&str> = msgs.iter().map(|m| m.record.msgid.as_str()).collect();
        let recalled = st2.archive.recalled(&ids)?;
        Ok((msgs, more, snapshot_max, recalled))
    })
    .await?;
    // Past the last message returned; when this page is the end (and no `until` cut it short), past
    // everything the snapshot holds, so an idle conversation's cursor does not rescan the index.
    let next_after = match (more || until_ms.is_some(), msgs.last()) {
        (true, Some(last)) => last.ingest,
        (true, None) => after,
        (false, _) => snapshot_max.max(after),
    };
    let next = Cursor {
        epoch,
        conversation: id.clone(),
        after_ingest: next_after,
        from_ms,
    }
    .encode();
    let mut resp = if markdown {
        let mut body = format!("# {} ({})\n\n", summary.title(), st.clock.offset_label());
        for m in &msgs {
            body.push_str(&transcript_line(m, &st.clock, &recalled));
            body.push('\n');
        }
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            body,
        )
            .into_response()
    } else {
        Json(json!({
            "conversation": conv_json(&summary, &st.clock),
            "messages": msgs.iter().map(|m| api_message(m, &st.clock, &recalled)).collect::<Vec<_>>(),
            "next_cursor": next,
            "has_more": more,
        }))
        .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&next) {
        h.insert("x-next-cursor", v);
    }
    h.insert(
        "x-has-more",
        HeaderValue::from_static(if more { "true" } else { "false" }),
    );
    Ok(resp)
}

pub(crate) async fn search(
    State(st): State<Shared>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let q =
        query::parse(p.get("q").unwrap_or("")).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let f = filters(&p, &st.clock)?;
    if q.is_empty() && f.is_empty() {
        return Err(AppError::BadRequest("give q or at least one filter".into()));
    }
    let limit = p.usize_in("limit", 50, SEARCH_MAX)?;
    let anchor = match p.get("before") {
        None => Anchor::Newest,
        Some(b) => Anchor::Before(
            TimeKey::decode(b)
                .ok_or_else(|| AppError::BadRequest("before: malformed page key".into()))?,
        ),
    };
    let st2 = st.clone();
    let q2 = q.clone();
    let (page, recalled) = blocking(&st, move || {
        let page = st2.archive.search(&q2, &f, anchor, limit)?;
        let ids: Vec<&str> = page.msgs.iter().map(|m| m.record.msgid.as_str()).collect();
        let recalled = st2.archive.recalled(&ids)?;
        Ok((page, recalled))
    })
    .await?;
    let results: Vec<Value> = page
        .msgs
        .iter()
        .map(|m| {
            let spans = highlight::spans(&m.record.text, &q);
            let mut v =
                serde_json::to_value(api_message(m, &st.clock, &recalled)).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("full_text".into(), json!(m.record.text));
                o.insert(
                    "highlights".into(),
                    json!(highlight::char_spans(&m.record.text, &spans)),
                );
            }
            v
        })
        .collect();
    let next = page
        .has_older
        .then(|| page.msgs.last().map(|m| TimeKey::of(m).encode()))
        .flatten();
    Ok(Json(json!({
        "total": page.total,
        "results": results,
        "next_before": next,
    }))
    .into_response())
}

pub(crate) async fn openapi() -> Response {
    Json(super::openapi::openapi_document()).into_response()
}
