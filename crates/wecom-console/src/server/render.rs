//! One message as HTML, by type: pictures inline (thumbnails), voice playable, files and videos as
//! downloads, forwarded chat records and mixed messages expanded, recalls linked both ways.
//!
//! Everything from a record is escaped by maud; links from records are only made for `http(s)` URLs and
//! open without a referrer.

use std::collections::HashMap;

use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use wecom_model::message::{ChatRecord, Mixed};
use wecom_model::{Content, MediaRef};

use super::timefmt::Clock;
use crate::highlight;
use crate::msg::Msg;
use crate::query::ParsedQuery;

/// Characters kept as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How deep forwarded chat records are shown expanded.
const MAX_DEPTH: u8 = 6;

/// A path segment, percent-encoded.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A query value, percent-encoded.
pub fn qv(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// An object key as a URL path (each segment encoded, slashes kept).
pub fn key_path(key: &str) -> String {
    key.split('/').map(seg).collect::<Vec<_>>().join("/")
}

pub fn conv_url(id: &str) -> String {
    format!("/c/{}", seg(id))
}

pub fn msg_url(msgid: &str) -> String {
    format!("/m/{}", seg(msgid))
}

/// A DOM id for a message anchor.
pub fn anchor(msgid: &str) -> String {
    format!("m-{}", seg(msgid).replace('%', "_"))
}

pub fn human_size(bytes: Option<u64>) -> String {
    match bytes {
        None => String::new(),
        Some(b) if b < 1024 => format!("{b} B"),
        Some(b) if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        Some(b) if b < 1024 * 1024 * 1024 => format!("{:.1} MB", b as f64 / 1_048_576.0),
        Some(b) => format!("{:.2} GB", b as f64 / 1_073_741_824.0),
    }
}

/// What rendering needs besides the message.
pub struct Ctx<'a> {
    pub clock: &'a Clock,
    /// Recalled msgid → the recall's msgid.
    pub recalled: &'a HashMap<String, String>,
    pub query: Option<&'a ParsedQuery>,
}

/// Text with the query's hits marked.
pub fn marked(text: &str, q: Option<&ParsedQuery>) -> Markup {
    let spans = q.map(|q| highlight::spans(text, q)).unwrap_or_default();
    if spans.is_empty() {
        return html! { (text) };
    }
    let mut parts: Vec<(bool, &str)> = Vec::with_capacity(spans.len() * 2 + 1);
    let mut at = 0;
    for &(s, e) in &spans {
        parts.push((false, &text[at..s]));
        parts.push((true, &text[s..e]));
        at = e;
    }
    parts.push((false, &text[at..]));
    html! {
        @for (hit, part) in parts {
            @if hit { mark { (part) } } @else { (part) }
        }
    }
}

/// Media of a record by sdkfileid (nested chat records refer to theirs that way).
struct MediaIndex<'a>(HashMap<&'a str, &'a MediaRef>);

impl<'a> MediaIndex<'a> {
    fn of(m: &'a Msg) -> Self {
        MediaIndex(
            m.record
                .media
                .iter()
                .map(|r| (r.sdkfileid.as_str(), r))
                .collect(),
        )
    }

    fn key(&self, sdkfileid: &str) -> Option<&'a str> {
        self.0.get(sdkfileid).and_then(|r| r.object_key.as_deref())
    }
}

/// One message, as an `<article>` of the timeline or a search result.
pub fn message(m: &Msg, ctx: &Ctx<'_>) -> Markup {
    let r = &m.record;
    let time = r.msgtime_ms.unwrap_or(0);
    let recalled_by = ctx.recalled.get(&r.msgid);
    let msgtype = m.msgtype();
    html! {
        article.msg.recalled[recalled_by.is_some()] id=(anchor(&r.msgid)) data-msgid=(r.msgid) tabindex="-1" {
            header.msg-head {
                span.speaker title=(m.speaker()) { (m.speaker()) }
                time datetime=(ctx.clock.rfc3339(time)) title=(ctx.clock.rfc3339(time)) { (ctx.clock.datetime(time)) }
                span.badge.type { (msgtype) }
                @if r.external { span.badge.external title="conversation with an external contact" { "外部 external" } }
                @if let Some(c) = &m.consent {
                    span.badge.consent title="consent of the external contact" { "consent: " (c.status) }
                }
                @if let Some(by) = recalled_by {
                    a.badge.recall href=(msg_url(by)) title="this message was recalled" { "已撤回 recalled" }
                }
                a.permalink href=(msg_url(&r.msgid)) title="message details" { "#" (r.seq) }
            }
            div.msg-body {
                (content(&r.content, &MediaIndex::of(m), m, ctx, 0))
            }
        }
    }
}

fn media_missing(kind: &str) -> Markup {
    html! { span.muted { "[" (kind) ": no object key]" } }
}

fn image(key: Option<&str>, label: &str) -> Markup {
    match key {
        Some(k) => html! {
            a.img-link href={ "/media/" (key_path(k)) } target="_blank" rel="noopener" {
                img.thumb src={ "/thumb/" (key_path(k)) } alt=(label) loading="lazy" data-key=(k);
            }
        },
        None => media_missing(label),
    }
}

fn download(key: Option<&str>, name: &str, size: Option<u64>, icon: &str) -> Markup {
    match key {
        Some(k) => html! {
            a.download href={ "/media/" (key_path(k)) "?download=1&name=" (qv(name)) } {
                span.icon { (icon) } " " (name)
                @if size.is_some() { " " span.muted { "(" (human_size(size)) ")" } }
            }
        },
        None => media_missing(name),
    }
}

fn link(url: &str, label: &str) -> Markup {
    let safe = url.starts_with("https://") || url.starts_with("http://");
    html! {
        @if safe { a.ext href=(url) target="_blank" rel="noopener noreferrer" { (label) } }
        @else { (label) }
    }
}

fn content(c: &Content, media: &MediaIndex<'_>, m: &Msg, ctx: &Ctx<'_>, depth: u8) -> Markup {
    match c {
        Content::Text(p) => html! { div.text { (marked(&p.content, ctx.query)) } },
        Content::Markdown(p) => html! { div.text.markdown { (marked(&p.content, ctx.query)) } },
        Content::Image(p) => html! {
            (image(media.key(&p.sdkfileid), "image"))
            @if p.filesize.is_some() { span.muted.size { (human_size(p.filesize)) } }
        },
        Content::Emotion(p) => image(media.key(&p.sdkfileid), "emotion"),
        Content::Voice(p) => match media.key(&p.sdkfileid) {
            Some(k) => html! {
                div.voice {
                    audio controls preload="metadata" src={ "/voice/" (key_path(k)) } {}
                    @if let Some(s) = p.play_length { span.muted { (s) "″" } }
                    " "
                    a.muted href={ "/media/" (key_path(k)) "?download=1" } { "AMR" }
                }
            },
            None => media_missing("voice"),
        },
        Content::Video(p) => html! {
            (download(media.key(&p.sdkfileid), "video.mp4", p.filesize, "🎬"))
            @if let Some(s) = p.play_length { " " span.muted { (s) "″" } }
        },
        Content::File(p) => download(media.key(&p.sdkfileid), &p.filename, p.filesize, "📄"),
        Content::VoipDocShare(p) => {
            download(media.key(&p.sdkfileid), &p.filename, p.filesize, "📄")
        }
        Content::MeetingVoiceCall(p) => html! {
            div { "会议语音 meeting voice call" }
            (download(media.key(&p.sdkfileid), "meeting-voice", None, "🎙"))
            @for d in &p.demofiledata { div.muted { "shared: " (d.filename) " (" (d.demoer) ")" } }
        },
        Content::Link(p) => html! {
            div.card-box {
                div.card-title { (link(&p.link_url, if p.title.is_empty() { &p.link_url } else { &p.title })) }
                @if !p.description.is_empty() { div.muted { (marked(&p.description, ctx.query)) } }
                div.url.muted { (p.link_url) }
            }
        },
        Content::Weapp(p) => html! {
            div.card-box {
                div.card-title { "小程序 " (p.displayname) ": " (p.title) }
                @if !p.description.is_empty() { div.muted { (p.description) } }
            }
        },
        Content::Location(p) => html! {
            div.card-box {
                div.card-title { "📍 " (p.title) }
                div.muted { (p.address) }
                @if let (Some(lat), Some(lng)) = (p.latitude, p.longitude) { div.muted { (format!("{lat:.5}, {lng:.5}")) } }
            }
        },
        Content::Card(p) => {
            html! { div.card-box { "名片 card: " (p.userid) @if !p.corpname.is_empty() { " · " (p.corpname) } } }
        }
        Content::Revoke(p) => html! {
            div.recall-notice {
                "撤回了一条消息 recalled a message: "
                @if p.pre_msgid.is_empty() { span.muted { "(unknown)" } }
                @else { a href=(msg_url(m.recalled_msgid().unwrap_or(&p.pre_msgid))) { (p.pre_msgid) } }
            }
        },
        Content::Agree(p) => {
            html! { div.consent-event { "✅ " (p.userid) " 同意存档 agreed to archiving" @if let Some(t) = p.agree_time { " · " (ctx.clock.datetime(t)) } } }
        }
        Content::Disagree(p) => {
            html! { div.consent-event.refused { "⛔ " (p.userid) " 拒绝存档 refused archiving" @if let Some(t) = p.disagree_time { " · " (ctx.clock.datetime(t)) } } }
        }
        Content::ChatRecord(r) => chatrecord(r, media, m, ctx, depth),
        Content::Mixed(x) => mixed(x, media, m, ctx, depth),
        Content::Switch(s) => html! { div.muted { "切换企业 switched enterprise: " (s.user) } },
        Content::Unknown { msgtype, payload } => html! {
            div.muted { "[" (if msgtype.is_empty() { "unknown" } else { msgtype }) "]" }
            details { summary { "payload" } pre.raw { (serde_json::to_string_pretty(payload).unwrap_or_default()) } }
        },
        other => html! {
            div.text { (marked(&other.plain_text(), ctx.query)) }
            @for r in other.media() { (download(media.key(&r.sdkfileid), &r.kind, r.size, "📎")) }
        },
    }
}

fn chatrecord(r: &ChatRecord, media: &MediaIndex<'_>, m: &Msg, ctx: &Ctx<'_>, depth: u8) -> Markup {
    html! {
        details.chatrecord open[depth < 2] {
            summary { "聊天记录 chat record: " (r.title) " (" (r.item.len()) ")" }
            ol.items {
                @for item in &r.item {
                    li {
                        span.muted.item-meta {
                            (wecom_model::message::nested_msgtype(&item.r#type))
                            @if let Some(s) = item.msgtime { " · " (ctx.clock.datetime(s.saturating_mul(1000))) }
                            @if item.from_chatroom { " · 群聊" }
                        }
                        @match item.parsed.as_deref() {
                            Some(nested) if depth < MAX_DEPTH => { (content(nested, media, m, ctx, depth + 1)) }
                            Some(nested) => { div.text { (nested.plain_text()) } }
                            None => { div.text { (marked(&item.content, ctx.query)) } }
                        }
                    }
                }
            }
        }
    }
}

fn mixed(x: &Mixed, media: &MediaIndex<'_>, m: &Msg, ctx: &Ctx<'_>, depth: u8) -> Markup {
    html! {
        div.mixed {
            @for item in &x.item {
                div.mixed-item {
                    @match item.parsed.as_deref() {
                        Some(nested) if depth < MAX_DEPTH => { (content(nested, media, m, ctx, depth + 1)) }
                        Some(nested) => { div.text { (nested.plain_text()) } }
                        None => { div.text { (marked(&item.content, ctx.query)) } }
                    }
                }
            }
        }
    }
}

/// A JSON value shown pretty (the raw record on the message page).
pub fn raw_json(line: &serde_json::Value) -> Markup {
    html! { pre.raw { (serde_json::to_string_pretty(line).unwrap_or_default()) } }
}
