//! The reviewer's pages: sign-in, conversations, a conversation's timeline, one message, search.
//! Server-rendered HTML (no build step, no CDN); `/static/console.js` adds keyboard navigation only.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::auth::{session_cookie, Identity, SESSION_COOKIE};
use super::guard::AuditNote;
use super::http::{blocking, AppError, Params};
use super::render::{self, conv_url, msg_url, qv, Ctx};
use super::{api, Shared};
use crate::config::Role;
use crate::conversations::{ConvKind, ConvSummary, KindFilter};
use crate::query;
use crate::view::{Anchor, Page, TimeKey};

pub(crate) use super::export::{export_conversation, export_range};

/// Conversations per list page.
const CONVERSATIONS_PAGE: usize = 100;

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The frame of every signed-in page.
fn layout(st: &Shared, who: Option<&Identity>, title: &str, q: &str, body: Markup) -> Markup {
    let status = st.archive.status();
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 会话存档审阅" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/conversations" { "会话存档 " span.muted { "Review" } }
                    nav {
                        a href="/conversations" accesskey="c" { "会话 Conversations" }
                        a href="/search" { "搜索 Search" }
                    }
                    form.topsearch action="/search" method="get" role="search" {
                        input id="q" type="search" name="q" value=(q) placeholder="搜索消息… ( / )" aria-label="search messages" autocomplete="off";
                    }
                    @if let Some(w) = who {
                        div.user {
                            span { (w.name) " · " (w.role.as_str()) }
                            form action="/logout" method="post" { button.link type="submit" { "退出 Sign out" } }
                        }
                    }
                }
                main { (body) }
                footer.bottom {
                    span { (status.records) " messages indexed" }
                    @if let Some(t) = status.last_commit_unix_ms { span { " · updated " (st.clock.datetime(t)) } }
                    span { " · times " (st.clock.offset_label()) }
                    span.keys { " · keys: / search, j/k next/previous message, n/p older/newer page, ? help" }
                }
            }
        }
    }
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/conversations")
}

pub(crate) async fn not_found(
    who: Option<Extension<Identity>>,
    State(st): State<Shared>,
) -> Response {
    let body = html! { h1 { "Not found" } p { a href="/conversations" { "Conversations" } } };
    html_response(
        StatusCode::NOT_FOUND,
        layout(&st, who.as_ref().map(|w| &w.0), "Not found", "", body),
    )
}

fn login_page(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "登录 Sign in · 会话存档审阅" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/console.css";
            }
            body.login {
                main.login-box {
                    h1 { "会话存档审阅" br; span.muted { "WeCom archive review console" } }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    form method="post" action="/login" {
                        label for="token" { "访问令牌 Access token" }
                        input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
                        input type="hidden" name="next" value=(next);
                        button type="submit" { "登录 Sign in" }
                    }
                    p.muted { "Every access is recorded in the audit log." }
                }
            }
        }
    }
}

/// Only local paths: never an absolute URL (an open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/conversations".to_owned(),
    }
}

pub(crate) async fn login_form(Query(p): Query<Params>) -> Response {
    html_response(StatusCode::OK, login_page(&safe_next(p.get("next")), None))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

pub(crate) async fn login(State(st): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    match st.auth.by_token(f.token.trim()) {
        Some(id) if id.role == Role::Reviewer => {
            let sid = st.auth.start_session(id.clone());
            let mut cookie = format!(
                "{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                st.cfg.session_ttl_minutes * 60
            );
            if st.cfg.secure_cookies {
                cookie.push_str("; Secure");
            }
            let mut r = Redirect::to(&next).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r.extensions_mut().insert(AuditNote {
                who: Some(id),
                outcome: "login",
            });
            r
        }
        found => {
            // Slows guessing down without holding a thread.
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let msg = if found.is_some() {
                "This token has the api role: use it in an Authorization header with /api/."
            } else {
                "Unknown token."
            };
            let mut r = html_response(StatusCode::UNAUTHORIZED, login_page(&next, Some(msg)));
            r.extensions_mut().insert(AuditNote {
                who: found,
                outcome: "login_failed",
            });
            r
        }
    }
}

pub(crate) async fn logout(
    State(st): State<Shared>,
    who: Option<Extension<Identity>>,
    headers: HeaderMap,
) -> Response {
    if let Some(sid) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session_cookie)
    {
        st.auth.end_session(sid);
    }
    let mut r = Redirect::to("/login").into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "wecom_console_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r.extensions_mut().insert(AuditNote {
        who: who.map(|w| w.0),
        outcome: "logout",
    });
    r
}

fn kind_badge(k: ConvKind) -> Markup {
    match k {
        ConvKind::Room => html! { span.badge.room { "群 room" } },
        ConvKind::Single => html! { span.badge.single { "单聊 1:1" } },
        ConvKind::Other => html! { span.badge { "other" } },
    }
}

pub(crate) async fn conversations(
    State(st): State<Shared>,
    who: Option<Extension<Identity>>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let kind = match p.get("kind") {
        Some("room") => KindFilter::Rooms,
        Some("single") => KindFilter::Single,
        _ => KindFilter::All,
    };
    let kind_param = p.get("kind").unwrap_or("all").to_owned();
    let filter = p.get("filter").unwrap_or("").to_owned();
    let offset = p.offset("offset")?;
    let (list, total) = st
        .archive
        .convs
        .read()
        .map(|c| c.list(kind, Some(&filter), offset, CONVERSATIONS_PAGE))
        .unwrap_or_default();
    let link = |k: &str, off: usize| {
        format!(
            "/conversations?kind={k}&filter={}&offset={off}",
            qv(&filter)
        )
    };
    let body = html! {
        div.page-head {
            h1 { "会话 Conversations" span.count { (total) } }
            form.filters method="get" action="/conversations" {
                input type="hidden" name="kind" value=(kind_param);
                input type="search" name="filter" value=(filter) placeholder="筛选 name, id or member" aria-label="filter conversations";
            }
            nav.tabs {
                @for (k, label) in [("all", "全部 All"), ("room", "群聊 Rooms"), ("single", "单聊 1:1")] {
                    a.active[kind_param == k] href=(link(k, 0)) { (label) }
                }
            }
        }
        ul.conv-list {
            @for c in &list {
                li { (conv_row(&st, c)) }
            }
            @if list.is_empty() { li.muted { "No conversation yet." } }
        }
        nav.pager {
            @if offset > 0 { a rel="prev" href=(link(&kind_param, offset.saturating_sub(CONVERSATIONS_PAGE))) { "← 上一页 Previous" } }
            @if offset + list.len() < total { a rel="next" href=(link(&kind_param, offset + CONVERSATIONS_PAGE)) { "下一页 Next →" } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout(&st, who.as_ref().map(|w| &w.0), "Conversations", "", body),
    ))
}

fn conv_row(st: &Shared, c: &ConvSummary) -> Markup {
    html! {
        a.conv href=(conv_url(&c.id)) {
            div.conv-main {
                span.conv-title { (c.title()) }
                (kind_badge(c.kind))
                @if c.external { span.badge.external { "外部 external" } }
                span.muted.conv-count { (c.messages) " msgs" }
            }
            @if let Some(l) = &c.last {
                div.conv-last {
                    time { (st.clock.datetime(l.time_ms)) }
                    " " span.speaker { (l.speaker) } ": " span.snippet { (l.text) }
                }
            }
            @if c.kind == ConvKind::Room && !c.participants.is_empty() {
                div.muted.members {
                    @for p in c.participants.iter().take(8) { span { (p) } " " }
                    @if let Some(n) = c.member_count { "· " (n) " members" }
                }
            }
        }
    }
}

/// The anchor of a timeline or search request: `before`, `after`, or `date` (the end of that local day).
pub(crate) fn timeline_anchor(st: &Shared, p: &Params) -> Result<Anchor, AppError> {
    if let Some(b) = p.get("before") {
        return TimeKey::decode(b)
            .map(Anchor::Before)
            .ok_or_else(|| AppError::BadRequest("before: malformed page key".into()));
    }
    if let Some(a) = p.get("after") {
        return TimeKey::decode(a)
            .map(Anchor::After)
            .ok_or_else(|| AppError::BadRequest("after: malformed page key".into()));
    }
    if let Some(d) = p.get("date") {
        let end = st
            .clock
            .parse_end(d)
            .ok_or_else(|| AppError::BadRequest("date must be YYYY-MM-DD".into()))?;
        return Ok(Anchor::Before(TimeKey {
            time: end,
            ingest: 0,
        }));
    }
    Ok(Anchor::Newest)
}

fn pager(base: &str, page: &Page) -> Markup {
    let newest = page.msgs.first().map(TimeKey::of);
    let oldest = page.msgs.last().map(TimeKey::of);
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager {
            @if page.has_newer {
                a href=(base) { "⇤ 最新 Newest" }
                @if let Some(k) = newest { a rel="prev" href={ (base) (sep) "after=" (k.encode()) } { "← 较新 Newer" } }
            }
            @if page.has_older {
                @if let Some(k) = oldest { a rel="next" href={ (base) (sep) "before=" (k.encode()) } { "较早 Older →" } }
            }
        }
    }
}

pub(crate) async fn conversation(
    State(st): State<Shared>,
    who: Option<Extension<Identity>>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
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
    let anchor = timeline_anchor(&st, &p)?;
    let limit = st.cfg.page_size;
    let (st2, conv) = (st.clone(), id.clone());
    let (page, recalled) = blocking(&st, move || {
        let page = st2.archive.timeline(&conv, anchor, limit)?;
        let ids: Vec<&str> = page.msgs.iter().map(|m| m.record.msgid.as_str()).collect();
        let recalled = st2.archive.recalled(&ids)?;
        Ok((page, recalled))
    })
    .await?;
    let ctx = Ctx {
        clock: &st.clock,
        recalled: &recalled,
        query: None,
    };
    let base = conv_url(&id);
    let date_value = page
        .msgs
        .first()
        .and_then(|m| m.record.msgtime_ms)
        .map(|t| st.clock.date(t))
        .unwrap_or_default();
    let body = html! {
        div.page-head.conv-head {
            h1 { (summary.title()) " " (kind_badge(summary.kind)) @if summary.external { " " span.badge.external { "外部 external" } } }
            div.muted.conv-meta {
                code { (summary.id) } " · " (summary.messages) " messages"
                @if summary.media_messages > 0 { " · " (summary.media_messages) " with media" }
                @if summary.first_time_ms != u64::MAX { " · since " (st.clock.date(summary.first_time_ms)) }
                @if let Some(n) = summary.member_count { " · " (n) " members" }
            }
            @if !summary.participants.is_empty() {
                div.muted.members { @for p in &summary.participants { span { (p) } " " } }
            }
            div.toolbar {
                form.jump method="get" action=(base) {
                    label for="date" { "跳转 Jump to" }
                    input id="date" type="date" name="date" value=(date_value);
                    button type="submit" { "Go" }
                }
                form.inline method="get" action="/search" {
                    input type="hidden" name="conversation" value=(summary.id);
                    input type="search" name="q" placeholder="在此会话中搜索 search here" aria-label="search in this conversation";
                }
                form.export method="get" action={ (base) "/export" } {
                    label { "导出 Export" }
                    input type="date" name="from" aria-label="from date";
                    input type="date" name="to" aria-label="to date";
                    select name="format" aria-label="format" {
                        option value="markdown" { "Markdown" }
                        option value="json" { "JSON" }
                    }
                    button id="export-button" type="submit" { "Download" }
                }
            }
        }
        (pager(&base, &page))
        section.timeline aria-label="messages, newest first" {
            @for m in &page.msgs { (render::message(m, &ctx)) }
            @if page.msgs.is_empty() { p.muted { "No message here." } }
        }
        (pager(&base, &page))
    };
    Ok(html_response(
        StatusCode::OK,
        layout(&st, who.as_ref().map(|w| &w.0), &summary.title(), "", body),
    ))
}

pub(crate) async fn message(
    State(st): State<Shared>,
    who: Option<Extension<Identity>>,
    Path(msgid): Path<String>,
) -> Result<Response, AppError> {
    let (st2, id) = (st.clone(), msgid.clone());
    let (m, recalled, recall_target) = blocking(&st, move || {
        let Some(m) = st2.archive.by_msgid(&id)? else {
            return Err(AppError::NotFound(format!(
                "no message {id:?} in the index"
            )));
        };
        let recalled = st2.archive.recalled(&[m.record.msgid.as_str()])?;
        let target = match m.recalled_msgid() {
            Some(t) => st2.archive.by_msgid(t)?,
            None => None,
        };
        Ok((m, recalled, target))
    })
    .await?;
    let ctx = Ctx {
        clock: &st.clock,
        recalled: &recalled,
        query: None,
    };
    let r = &m.record;
    let around = TimeKey {
        time: r.msgtime_ms.unwrap_or(0),
        ingest: m.ingest + 1,
    };
    let raw = serde_json::to_value(r).unwrap_or_default();
    let body = html! {
        div.page-head {
            h1 { "消息 Message" }
            p {
                a href={ (conv_url(&r.conversation_id)) "?before=" (around.encode()) "#" (render::anchor(&r.msgid)) } {
                    "在会话中查看 Show in conversation →"
                }
            }
        }
        section.timeline { (render::message(&m, &ctx)) }
        @if let Some(by) = recalled.get(&r.msgid) {
            p.recall-notice { "This message was recalled by " a href=(msg_url(by)) { (by) } "." }
        }
        @if let Some(t) = &recall_target {
            h2 { "被撤回的消息 The recalled message" }
            section.timeline { (render::message(t, &ctx)) }
        }
        @if m.recalled_msgid().is_some() && recall_target.is_none() {
            p.muted { "The recalled message is not in the index (sent before the archive's retention, or not yet read)." }
        }
        table.meta {
            tr { th { "msgid" } td { code { (r.msgid) } } }
            tr { th { "stream / seq" } td { (r.stream) " / " (r.seq) } }
            tr { th { "conversation" } td { a href=(conv_url(&r.conversation_id)) { (r.conversation_id) } } }
            tr { th { "from → to" } td { (m.speaker()) " → " (r.to.join(", ")) } }
            tr { th { "time" } td { (r.msgtime_ms.map(|t| st.clock.rfc3339(t)).unwrap_or_default()) } }
            tr { th { "action / msgtype" } td { (r.action) " / " (m.msgtype()) } }
            tr { th { "key version" } td { (r.key_version) } }
            @for x in &r.media {
                tr { th { "media " (x.kind) } td { code { (x.object_key.as_deref().unwrap_or("—")) } " " (render::human_size(x.size)) } }
            }
            @if let Some(c) = &m.consent {
                tr { th { "consent" } td { (c.status) @if let Some(t) = &c.checked_at { " · checked " (t.to_string()) } } }
            }
        }
        details { summary { "Record (JSON)" } (render::raw_json(&raw)) }
    };
    Ok(html_response(
        StatusCode::OK,
        layout(&st, who.as_ref().map(|w| &w.0), "Message", "", body),
    ))
}

const MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "file",
    "emotion",
    "link",
    "weapp",
    "location",
    "card",
    "chatrecord",
    "mixed",
    "revoke",
    "agree",
    "disagree",
    "markdown",
    "news",
    "todo",
    "vote",
    "collect",
    "redpacket",
    "external_redpacket",
    "meeting",
    "docmsg",
    "calendar",
    "meeting_voice_call",
    "voip_doc_share",
    "sphfeed",
    "voiptext",
    "qydiskfile",
];

pub(crate) async fn search(
    State(st): State<Shared>,
    who: Option<Extension<Identity>>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let q_text = p.get("q").unwrap_or("").to_owned();
    let parsed = query::parse(&q_text).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let filters = api::filters(&p, &st.clock)?;
    let anchor = timeline_anchor(&st, &p)?;
    let searched = !(parsed.is_empty() && filters.is_empty());
    let limit = st.cfg.page_size;
    let (st2, q2, f2) = (st.clone(), parsed.clone(), filters.clone());
    let (page, recalled, titles) = if searched {
        blocking(&st, move || {
            let page = st2.archive.search(&q2, &f2, anchor, limit)?;
            let ids: Vec<&str> = page.msgs.iter().map(|m| m.record.msgid.as_str()).collect();
            let recalled = st2.archive.recalled(&ids)?;
            let titles: HashMap<String, String> = st2
                .archive
                .convs
                .read()
                .map(|c| {
                    page.msgs
                        .iter()
                        .filter_map(|m| {
                            c.get(&m.record.conversation_id)
                                .map(|s| (s.id.clone(), s.title()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((page, recalled, titles))
        })
        .await?
    } else {
        (Page::default(), HashMap::new(), HashMap::new())
    };
    let ctx = Ctx {
        clock: &st.clock,
        recalled: &recalled,
        query: Some(&parsed),
    };
    // The same search, without the page key: the base of the pager links.
    let base: String = {
        let kept: Vec<String> =
            p.0.iter()
                .filter(|(k, v)| k != "before" && k != "after" && !v.is_empty())
                .map(|(k, v)| format!("{}={}", qv(k), qv(v)))
                .collect();
        format!("/search?{}", kept.join("&"))
    };
    let get = |k: &str| p.get(k).unwrap_or("").to_owned();
    let chosen = filters.msgtypes.clone();
    let body = html! {
        div.page-head {
            h1 { "搜索 Search" }
            form.search-form method="get" action="/search" {
                div.row {
                    input.big type="search" name="q" value=(q_text) placeholder="关键词 words or \"a phrase\"; -word excludes" aria-label="query";
                    button type="submit" { "搜索 Search" }
                }
                div.row.filters {
                    label { "发送者 Sender " input type="text" name="sender" value=(get("sender")) size="12"; }
                    label { "会话 Conversation " input type="text" name="conversation" value=(get("conversation")) size="18"; }
                    label { "群 Room " input type="text" name="room" value=(get("room")) size="14"; }
                    label { "从 From " input type="date" name="from" value=(get("from")); }
                    label { "到 To " input type="date" name="to" value=(get("to")); }
                    label { "类型 Type "
                        select name="msgtype" {
                            option value="" { "any" }
                            @for t in MSGTYPES { option value=(t) selected[chosen.iter().any(|c| c == t)] { (t) } }
                        }
                    }
                    label { "媒体 Media "
                        select name="has_media" {
                            @for (v, l) in [("", "any"), ("true", "with media"), ("false", "without")] {
                                option value=(v) selected[get("has_media") == v] { (l) }
                            }
                        }
                    }
                    label { "外部 External "
                        select name="external" {
                            @for (v, l) in [("", "any"), ("true", "external contacts"), ("false", "internal only")] {
                                option value=(v) selected[get("external") == v] { (l) }
                            }
                        }
                    }
                }
            }
        }
        @if searched {
            p.result-count { (page.total) " 条结果 results" @if page.total > 0 { ", newest first" } }
            section.results {
                @for m in &page.msgs {
                    div.result {
                        div.result-conv {
                            a href=(conv_url(&m.record.conversation_id)) {
                                (titles.get(&m.record.conversation_id).cloned().unwrap_or_else(|| m.record.conversation_id.clone()))
                            }
                        }
                        (render::message(m, &ctx))
                    }
                }
            }
            (pager(&base, &page))
        } @else {
            p.muted { "Type words or a phrase. Chinese matches any substring (报价 finds 这个报价单); words match whole words, any case. Quote a phrase with spaces; prefix a word with - to exclude it." }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout(&st, who.as_ref().map(|w| &w.0), "Search", &q_text, body),
    ))
}
