//! The decrypted message: its envelope, a typed [`Content`] per msgtype, and the parser.
//!
//! Decryption yields one JSON object per archive item (reference §3). This module turns it into typed data
//! without ever losing anything: the whole object stays in [`Message::raw`], every typed payload keeps unknown
//! keys in `extra`, and a msgtype this version does not know (or a payload it cannot read) becomes
//! [`Content::Unknown`] with the payload verbatim. The only errors are inputs that are not a message at all.

mod escape;
mod payload;
mod render;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use escape::escape_control_chars;
pub use payload::*;

use crate::lenient;
use crate::ModelError;

/// Keys of the common envelope; everything else at the top level belongs to the payload.
const ENVELOPE_KEYS: [&str; 7] = [
    "msgid", "action", "from", "tolist", "roomid", "msgtime", "msgtype",
];

/// How deep `chatrecord`/`mixed` items are parsed into nested content. Real bundles nest a few levels; the
/// bound keeps a hostile input from recursing without end.
const MAX_NESTING: u8 = 8;

/// A decrypted archive message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub msgid: String,
    /// `send`, `recall` or `switch`; empty when absent.
    pub action: String,
    /// Sender userid (`wo…`/`wm…` external contacts, `wb…` robots); `None` when absent or empty.
    pub from: Option<String>,
    pub tolist: Vec<String>,
    /// Group id (`wr…`); `None` for a 1:1 chat (empty string) or when absent.
    pub roomid: Option<String>,
    /// Unix time in **milliseconds**.
    pub msgtime: Option<u64>,
    /// `None` for `switch` messages, which carry none.
    pub msgtype: Option<String>,
    pub content: Content,
    /// The whole decrypted object, verbatim (after control-character escaping).
    pub raw: Value,
}

/// The payload of a message, one variant per msgtype of reference §3.
///
/// Serialized adjacently tagged: `{"kind": "<msgtype>", "data": {…payload…}}`, where `kind` is the wire
/// msgtype (`chatrecord`, `external_redpacket`, …), `switch` or `unknown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum Content {
    Text(Text),
    Image(Image),
    Revoke(Revoke),
    Agree(Agree),
    Disagree(Disagree),
    Voice(Voice),
    Video(Video),
    Card(Card),
    Location(Location),
    Emotion(Emotion),
    File(File),
    Link(Link),
    Weapp(Weapp),
    ChatRecord(ChatRecord),
    Todo(Todo),
    Vote(Vote),
    Collect(Collect),
    RedPacket(RedPacket),
    #[serde(rename = "external_redpacket")]
    ExternalRedPacket(RedPacket),
    Meeting(Meeting),
    DocMsg(DocMsg),
    Markdown(Markdown),
    News(News),
    Calendar(Calendar),
    Mixed(Mixed),
    #[serde(rename = "meeting_voice_call")]
    MeetingVoiceCall(MeetingVoiceCall),
    #[serde(rename = "voip_doc_share")]
    VoipDocShare(VoipDocShare),
    SphFeed(SphFeed),
    VoipText(VoipText),
    QyDiskFile(QyDiskFile),
    Switch(Switch),
    /// A msgtype this version does not know, or a known one whose payload could not be read: `payload` is
    /// the payload verbatim (the value under the payload key, or the top-level object without the envelope
    /// keys when there is no such key). `msgtype` is empty when the message had none.
    Unknown {
        msgtype: String,
        payload: Value,
    },
}

impl Content {
    /// The msgtype this content was read as (`"switch"` for a switch, the original msgtype for `Unknown`).
    pub fn msgtype(&self) -> &str {
        match self {
            Content::Text(_) => "text",
            Content::Image(_) => "image",
            Content::Revoke(_) => "revoke",
            Content::Agree(_) => "agree",
            Content::Disagree(_) => "disagree",
            Content::Voice(_) => "voice",
            Content::Video(_) => "video",
            Content::Card(_) => "card",
            Content::Location(_) => "location",
            Content::Emotion(_) => "emotion",
            Content::File(_) => "file",
            Content::Link(_) => "link",
            Content::Weapp(_) => "weapp",
            Content::ChatRecord(_) => "chatrecord",
            Content::Todo(_) => "todo",
            Content::Vote(_) => "vote",
            Content::Collect(_) => "collect",
            Content::RedPacket(_) => "redpacket",
            Content::ExternalRedPacket(_) => "external_redpacket",
            Content::Meeting(_) => "meeting",
            Content::DocMsg(_) => "docmsg",
            Content::Markdown(_) => "markdown",
            Content::News(_) => "news",
            Content::Calendar(_) => "calendar",
            Content::Mixed(_) => "mixed",
            Content::MeetingVoiceCall(_) => "meeting_voice_call",
            Content::VoipDocShare(_) => "voip_doc_share",
            Content::SphFeed(_) => "sphfeed",
            Content::VoipText(_) => "voiptext",
            Content::QyDiskFile(_) => "qydiskfile",
            Content::Switch(_) => "switch",
            Content::Unknown { msgtype, .. } => msgtype,
        }
    }

    /// Whether the payload was read into a typed variant (not [`Content::Unknown`]).
    pub fn is_typed(&self) -> bool {
        !matches!(self, Content::Unknown { .. })
    }
}

/// The key a msgtype's payload sits under. Several msgtypes share `info`, which is why dispatch is always on
/// the msgtype and never on which key is present.
pub fn payload_key(msgtype: &str) -> &str {
    match msgtype {
        "external_redpacket" => "redpacket",
        "docmsg" => "doc",
        "markdown" | "news" | "voiptext" | "qydiskfile" => "info",
        other => other,
    }
}

/// The msgtype of a `chatrecord` or `mixed` item type: `ChatRecordText` -> `text`,
/// `ChatRecordChatRecord` -> `chatrecord`, `image` -> `image`.
pub fn nested_msgtype(item_type: &str) -> String {
    let t = item_type
        .strip_prefix("ChatRecord")
        .or_else(|| item_type.strip_prefix("chatrecord"))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(item_type);
    t.to_ascii_lowercase()
}

/// Parses one decrypted message.
///
/// Raw control characters inside JSON strings (which some SDK builds emit) are escaped first, never
/// deleted, so a newline in a text survives as a newline. Errors only when the input is not JSON, not an
/// object, or has no msgid; everything else becomes some [`Content`], at worst [`Content::Unknown`].
pub fn parse_message(bytes: &[u8]) -> Result<Message, ModelError> {
    let text = escape_control_chars(bytes);
    let raw: Value = serde_json::from_slice(&text).map_err(|e| ModelError::NotJson {
        detail: e.to_string(),
    })?;
    let Value::Object(obj) = &raw else {
        return Err(ModelError::NotObject {
            found: json_kind(&raw),
        });
    };

    let msgid = obj
        .get("msgid")
        .and_then(lenient::scalar_text)
        .filter(|s| !s.is_empty())
        .ok_or(ModelError::MissingMsgid)?;
    let text_field = |key: &str| {
        obj.get(key)
            .and_then(lenient::scalar_text)
            .filter(|s| !s.is_empty())
    };
    let action = text_field("action").unwrap_or_default();
    let from = text_field("from");
    let roomid = text_field("roomid");
    let msgtype = text_field("msgtype");
    let msgtime = obj.get("msgtime").and_then(lenient::value_u64);
    let tolist = match obj.get("tolist") {
        Some(Value::Array(items)) => items.iter().filter_map(lenient::scalar_text).collect(),
        Some(v) => lenient::scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    };
    let content = top_level_content(obj, msgtype.as_deref(), &action);

    Ok(Message {
        msgid,
        action,
        from,
        tolist,
        roomid,
        msgtime,
        msgtype,
        content,
        raw,
    })
}

/// The top-level object without the envelope keys: where a payload lives when it has no key of its own.
fn without_envelope(obj: &Map<String, Value>) -> Value {
    Value::Object(
        obj.iter()
            .filter(|(k, _)| !ENVELOPE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn top_level_content(obj: &Map<String, Value>, msgtype: Option<&str>, action: &str) -> Content {
    let Some(msgtype) = msgtype else {
        let rest = without_envelope(obj);
        if action == "switch" {
            if let Some(switch) = read::<Switch>(&rest) {
                return Content::Switch(switch);
            }
        }
        return Content::Unknown {
            msgtype: String::new(),
            payload: rest,
        };
    };

    let mut content = match (msgtype, obj.get(payload_key(msgtype))) {
        // SDKs disagree on where a vote's fields are: under `vote` or at the top level.
        ("vote", Some(nested @ Value::Object(_))) => typed_content("vote", nested, 0),
        ("vote", _) => typed_content("vote", &without_envelope(obj), 0),
        (_, Some(payload)) => typed_content(msgtype, payload, 0),
        (_, None) => Content::Unknown {
            msgtype: msgtype.to_owned(),
            payload: without_envelope(obj),
        },
    };

    // Two msgtypes carry part of their payload at the top level.
    match &mut content {
        Content::MeetingVoiceCall(call) => {
            if let Some(id) = obj.get("voiceid").and_then(lenient::scalar_text) {
                call.voiceid = id;
            }
        }
        Content::VoipDocShare(share) => {
            if let Some(id) = obj.get("voipid").and_then(lenient::scalar_text) {
                share.voipid = id;
            }
        }
        _ => {}
    }
    content
}

fn read<T: DeserializeOwned>(payload: &Value) -> Option<T> {
    T::deserialize(payload).ok()
}

/// Reads `payload` as the typed payload of `msgtype`, falling back to [`Content::Unknown`].
fn typed_content(msgtype: &str, payload: &Value, depth: u8) -> Content {
    let typed = match msgtype {
        "text" => read(payload).map(Content::Text),
        "image" => read(payload).map(Content::Image),
        "revoke" => read(payload).map(Content::Revoke),
        "agree" => read(payload).map(Content::Agree),
        "disagree" => read(payload).map(Content::Disagree),
        "voice" => read(payload).map(Content::Voice),
        "video" => read(payload).map(Content::Video),
        "card" => read(payload).map(Content::Card),
        "location" => read(payload).map(Content::Location),
        "emotion" => read(payload).map(Content::Emotion),
        "file" => read(payload).map(Content::File),
        "link" => read(payload).map(Content::Link),
        "weapp" => read(payload).map(Content::Weapp),
        "chatrecord" => read::<ChatRecord>(payload).map(|mut record| {
            for item in &mut record.item {
                item.parsed = parse_nested(&item.r#type, &item.content, depth);
            }
            Content::ChatRecord(record)
        }),
        "todo" => read(payload).map(Content::Todo),
        "vote" => read(payload).map(Content::Vote),
        "collect" => read(payload).map(Content::Collect),
        "redpacket" => read(payload).map(Content::RedPacket),
        "external_redpacket" => read(payload).map(Content::ExternalRedPacket),
        "meeting" => read(payload).map(Content::Meeting),
        "docmsg" => read(payload).map(Content::DocMsg),
        "markdown" => read(payload).map(Content::Markdown),
        "news" => read(payload).map(Content::News),
        "calendar" => read(payload).map(Content::Calendar),
        "mixed" => read::<Mixed>(payload).map(|mut mixed| {
            for item in &mut mixed.item {
                item.parsed = parse_nested(&item.r#type, &item.content, depth);
            }
            Content::Mixed(mixed)
        }),
        "meeting_voice_call" => read(payload).map(Content::MeetingVoiceCall),
        "voip_doc_share" => read(payload).map(Content::VoipDocShare),
        "sphfeed" => read(payload).map(Content::SphFeed),
        "voiptext" => read(payload).map(Content::VoipText),
        "qydiskfile" => read(payload).map(Content::QyDiskFile),
        _ => None,
    };
    typed.unwrap_or_else(|| Content::Unknown {
        msgtype: msgtype.to_owned(),
        payload: payload.clone(),
    })
}

/// Parses the JSON string inside a `chatrecord`/`mixed` item into content, where it is a JSON object.
fn parse_nested(item_type: &str, content: &str, depth: u8) -> Option<Box<Content>> {
    if depth >= MAX_NESTING {
        return None;
    }
    let escaped = escape_control_chars(content.as_bytes());
    match serde_json::from_slice::<Value>(&escaped) {
        Ok(payload @ Value::Object(_)) => Some(Box::new(typed_content(
            &nested_msgtype(item_type),
            &payload,
            depth + 1,
        ))),
        _ => None,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
