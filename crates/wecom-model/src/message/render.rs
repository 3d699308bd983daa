//! What downstream stages read out of content: media references to fetch and a plain-text rendering.
//!
//! Both recurse into `chatrecord` and `mixed` items, because media and text hide inside their JSON strings.

use super::*;
use crate::record::MediaRef;

impl Content {
    /// Every media reference in this content, in message order, including media inside `chatrecord` and
    /// `mixed` items (recursively). References with an empty `sdkfileid` cannot be fetched and are left out
    /// (the content itself still has them).
    pub fn media(&self) -> Vec<MediaRef> {
        let mut out = Vec::new();
        self.collect_media(&mut out);
        out
    }

    fn collect_media(&self, out: &mut Vec<MediaRef>) {
        let found = match self {
            Content::Image(p) => media_ref("image", &p.sdkfileid, &p.md5sum, p.filesize, None),
            Content::Voice(p) => media_ref("voice", &p.sdkfileid, &p.md5sum, p.voice_size, None),
            Content::Video(p) => media_ref("video", &p.sdkfileid, &p.md5sum, p.filesize, None),
            Content::Emotion(p) => {
                let ext = match p.r#type {
                    Some(1) => Some("gif".to_owned()),
                    Some(2) => Some("png".to_owned()),
                    _ => None,
                };
                media_ref("emotion", &p.sdkfileid, &p.md5sum, p.imagesize, ext)
            }
            Content::File(p) => {
                let ext = clean_ext(&p.fileext).or_else(|| ext_of(&p.filename));
                media_ref("file", &p.sdkfileid, &p.md5sum, p.filesize, ext)
            }
            Content::MeetingVoiceCall(p) => {
                media_ref("meeting_voice_call", &p.sdkfileid, "", None, None)
            }
            Content::VoipDocShare(p) => {
                let ext = ext_of(&p.filename);
                media_ref("voip_doc_share", &p.sdkfileid, &p.md5sum, p.filesize, ext)
            }
            Content::ChatRecord(r) => {
                for nested in r.item.iter().filter_map(|i| i.parsed.as_deref()) {
                    nested.collect_media(out);
                }
                None
            }
            Content::Mixed(m) => {
                for nested in m.item.iter().filter_map(|i| i.parsed.as_deref()) {
                    nested.collect_media(out);
                }
                None
            }
            _ => None,
        };
        out.extend(found);
    }

    /// A plain-text rendering for search and language models: the words of the message, with short bracketed
    /// markers (`[image]`, `[file: name]`, …) standing for what has no words. Empty for `switch`.
    pub fn plain_text(&self) -> String {
        match self {
            Content::Text(p) => p.content.clone(),
            Content::Image(_) => "[image]".to_owned(),
            Content::Revoke(p) => format!("[recalled {}]", p.pre_msgid),
            Content::Agree(_) => "[agreed to archiving]".to_owned(),
            Content::Disagree(_) => "[refused archiving]".to_owned(),
            Content::Voice(p) => match p.play_length {
                Some(s) => format!("[voice {s}s]"),
                None => "[voice]".to_owned(),
            },
            Content::Video(_) => "[video]".to_owned(),
            Content::Card(p) => bracket("card", &[&p.corpname, &p.userid]),
            Content::Location(p) => bracket("location", &[&p.title, &p.address]),
            Content::Emotion(_) => "[emotion]".to_owned(),
            Content::File(p) => bracket("file", &[&p.filename]),
            Content::Link(p) => lines(&[&p.title, &p.description, &p.link_url]),
            Content::Weapp(p) => lines(&[&bracket("mini program", &[&p.title]), &p.description]),
            Content::ChatRecord(r) => {
                let mut parts = vec![bracket("chat record", &[&r.title])];
                for item in &r.item {
                    let text = match item.parsed.as_deref() {
                        Some(nested) => nested.plain_text(),
                        None => item.content.clone(),
                    };
                    // One line per item, so a multi-line item cannot run into the next one.
                    parts.push(text.replace('\n', " "));
                }
                parts.join("\n")
            }
            Content::Todo(p) => lines(&[&bracket("todo", &[&p.title]), &p.content]),
            Content::Vote(p) => {
                let mut parts = vec![bracket("vote", &[&p.votetitle])];
                parts.extend(p.voteitem.iter().map(|i| format!("- {i}")));
                parts.join("\n")
            }
            Content::Collect(p) => {
                let mut parts = vec![bracket("form", &[&p.title])];
                parts.extend(p.details.iter().map(|d| format!("- {}", d.ques)));
                parts.join("\n")
            }
            Content::RedPacket(p) | Content::ExternalRedPacket(p) => {
                bracket("red packet", &[&p.wish])
            }
            Content::Meeting(p) => bracket("meeting", &[&p.topic]),
            Content::DocMsg(p) => lines(&[&bracket("doc", &[&p.title]), &p.link_url]),
            Content::Markdown(p) => p.content.clone(),
            Content::News(p) => {
                let items: Vec<String> = p
                    .item
                    .iter()
                    .map(|i| lines(&[&i.title, &i.description]))
                    .collect();
                items.join("\n")
            }
            Content::Calendar(p) => bracket("calendar", &[&p.title]),
            Content::Mixed(m) => {
                let parts: Vec<String> = m
                    .item
                    .iter()
                    .map(|item| match item.parsed.as_deref() {
                        Some(nested) => nested.plain_text(),
                        None => item.content.clone(),
                    })
                    .filter(|t| !t.is_empty())
                    .collect();
                parts.join("\n")
            }
            Content::MeetingVoiceCall(_) => "[meeting voice call]".to_owned(),
            Content::VoipDocShare(p) => bracket("file", &[&p.filename]),
            Content::SphFeed(p) => lines(&[&bracket("channels", &[&p.sph_name]), &p.feed_desc]),
            Content::VoipText(p) => match p.callduration {
                Some(s) => format!("[call {s}s]"),
                None => "[call]".to_owned(),
            },
            Content::QyDiskFile(p) => bracket("file", &[&p.filename]),
            Content::Switch(s) if s.user.is_empty() => "[switched enterprise]".to_owned(),
            Content::Switch(s) => format!("[switched enterprise: {}]", s.user),
            Content::Unknown { msgtype, .. } if msgtype.is_empty() => String::new(),
            Content::Unknown { msgtype, .. } => format!("[{msgtype}]"),
        }
    }
}

/// `[label: a b]`, or `[label]` when all parts are empty.
fn bracket(label: &str, parts: &[&str]) -> String {
    let words: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if words.is_empty() {
        format!("[{label}]")
    } else {
        format!("[{label}: {}]", words.join(" "))
    }
}

/// The non-empty parts, one per line.
fn lines(parts: &[&str]) -> String {
    let kept: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    kept.join("\n")
}

fn media_ref(
    kind: &str,
    sdkfileid: &str,
    md5sum: &str,
    size: Option<u64>,
    fileext: Option<String>,
) -> Option<MediaRef> {
    if sdkfileid.is_empty() {
        return None;
    }
    Some(MediaRef {
        kind: kind.to_owned(),
        sdkfileid: sdkfileid.to_owned(),
        md5sum: (!md5sum.is_empty()).then(|| md5sum.to_owned()),
        size,
        fileext,
        object_key: None,
        status: None,
    })
}

/// A file extension fit for an object key: 1..=16 ASCII letters or digits, lowercased.
fn clean_ext(ext: &str) -> Option<String> {
    let ext = ext.trim().trim_start_matches('.');
    let ok = !ext.is_empty() && ext.len() <= 16 && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| ext.to_ascii_lowercase())
}

fn ext_of(filename: &str) -> Option<String> {
    filename
        .rsplit_once('.')
        .and_then(|(_, ext)| clean_ext(ext))
}
