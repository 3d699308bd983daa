//! The normalized output record (`wecom-archive.message.v1`), media references, and dead letters.
//!
//! A [`Record`] is what sinks write and consumers read: one line per archived message, self-describing
//! (schema id, corp, stream, seq), with a stable conversation id, the typed content, media references with
//! their object keys, and a plain-text rendering. [`normalize`] is pure and deterministic: the same
//! message and context always give byte-identical JSON.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api::{ChatDataItem, RoomInfo};
use crate::message::{Content, Message};

/// Schema id of [`Record`].
pub const MESSAGE_SCHEMA_ID: &str = "wecom-archive.message.v1";
/// Schema id of [`DeadLetter`].
pub const DEADLETTER_SCHEMA_ID: &str = "wecom-archive.deadletter.v1";

/// One normalized archive message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    /// Always [`MESSAGE_SCHEMA_ID`].
    pub schema: String,
    pub corp_id: String,
    /// `corp` for the corp-wide stream, `room:<roomid>` for a room's own stream.
    pub stream: String,
    /// Sequence number within `stream`.
    pub seq: u64,
    pub msgid: String,
    /// `send`, `recall` or `switch`.
    pub action: String,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub roomid: Option<String>,
    /// See [`conversation_id`].
    pub conversation_id: String,
    /// `msgtime_ms` as RFC 3339 UTC with milliseconds, e.g. `2020-03-01T08:00:00.123Z`.
    pub send_time: Option<String>,
    /// The message's `msgtime` (for `switch`, its `time`), Unix milliseconds.
    pub msgtime_ms: Option<u64>,
    /// The message's msgtype; `"switch"` for a switch (which has none in the archive). `None` only for an
    /// item of another action without one.
    pub msgtype: Option<String>,
    /// The msgid ends with `_external`: a conversation with an external contact.
    pub external: bool,
    /// The msgid contains `_updown_stream`: a conversation with an upstream/downstream partner.
    pub updown_stream: bool,
    pub content: Content,
    /// Media to fetch, with `object_key` set; see [`media_object_key`].
    pub media: Vec<MediaRef>,
    /// [`Content::plain_text`].
    pub text: String,
    /// `publickey_ver` of the archive item.
    pub key_version: u32,
    /// Room name and size when the pipeline knows them; [`normalize`] leaves it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomSummary>,
    /// Set only on a **slim** record: one too big for the Kafka topic. The full record (this record with
    /// `content` and `text` whole) is the object named here; in the slim one `content` is `unknown` with an
    /// empty payload, `text` is cut with a marker, and when even that is too big `media` and `to` are
    /// empty too. The local record files always hold the full record. [`normalize`] leaves it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_ref: Option<ContentRef>,
    /// Whether the external contact of the conversation agreed to archiving, as the pipeline knew it when
    /// it wrote the record: from a `check_single_agree` / `check_room_agree` lookup, or from an `agree` /
    /// `disagree` message earlier in the stream. Absent when the message involves no external contact, or
    /// the status could not be learned (lookups off, or failed). [`normalize`] leaves it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentStamp>,
    /// On a `revoke` record: the message it recalls, resolved by the pipeline's msgid index. The original
    /// record is never rewritten; a `recall` event links the two. [`normalize`] leaves it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalls: Option<RecallLink>,
}

/// A record's consent: the external contact's agreement status and when the pipeline learned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentStamp {
    /// The service's value (`Agree`, `Disagree`, `Default_Agree`, or another it may add, verbatim), or
    /// `Unanswered`: the service was asked and has no answer for the contact (they were never asked, or
    /// never replied).
    pub status: String,
    /// When the status was learned, RFC 3339 UTC with milliseconds: the lookup's time, or the `agree` /
    /// `disagree` message's own time.
    pub checked_at: String,
}

/// What a `revoke` record recalls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecallLink {
    /// The recalled message's msgid (`pre_msgid`).
    pub msgid: String,
    /// The recalled message's seq in the same stream; `None` when the index does not hold it (it is
    /// older than the index, e.g. in a replay that started after it).
    pub seq: Option<u64>,
    /// The recalled message's conversation, when found.
    pub conversation_id: Option<String>,
}

/// Schema id of [`RecallEvent`].
pub const RECALL_SCHEMA_ID: &str = "wecom-archive.recall.v1";

/// A recall, linking the `revoke` record and the recalled one both ways (topic `topics.recalls`, and
/// `recalls/` in the stream directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecallEvent {
    /// Always [`RECALL_SCHEMA_ID`].
    pub schema: String,
    pub corp_id: String,
    pub stream: String,
    /// The `revoke` record.
    pub revoke_seq: u64,
    pub revoke_msgid: String,
    /// When it was recalled (the revoke's `msgtime`), Unix milliseconds.
    pub recalled_at_ms: Option<u64>,
    /// The recalled message.
    pub original_msgid: String,
    pub original_seq: Option<u64>,
    pub original_conversation_id: Option<String>,
    /// False when the index does not hold the original: the event says so rather than guessing.
    pub found: bool,
}

/// Where the full body of a slim record or dead letter is: an object in the archive's object store,
/// written (and acknowledged by the store) before the slim line was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentRef {
    /// The object's key in the `[archive.store]` (its prefix not included).
    pub object_key: String,
    /// Where the object is (`file:///…`, `s3://bucket/…`).
    pub location: String,
    /// Lowercase hex SHA-256 of the object's bytes: the full JSON line, without its newline.
    pub sha256: String,
    /// The object's size in bytes.
    pub size: u64,
}

/// What a record says about its room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RoomSummary {
    pub name: String,
    pub member_count: u32,
}

impl From<&RoomInfo> for RoomSummary {
    fn from(info: &RoomInfo) -> Self {
        RoomSummary {
            name: info.roomname.clone(),
            member_count: u32::try_from(info.members.len()).unwrap_or(u32::MAX),
        }
    }
}

/// A media file referenced by a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MediaRef {
    /// `image`, `voice`, `video`, `emotion`, `file`, `meeting_voice_call` or `voip_doc_share`.
    pub kind: String,
    pub sdkfileid: String,
    /// `None` when the message's md5sum was empty.
    pub md5sum: Option<String>,
    /// Size in bytes as the message states it.
    pub size: Option<u64>,
    /// Extension without the dot: the file's own, or `gif`/`png` for an emotion.
    pub fileext: Option<String>,
    #[serde(default)]
    pub object_key: Option<String>,
    #[serde(default)]
    pub status: Option<MediaStatus>,
}

/// Where the media's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaStatus {
    /// Referenced, not yet stored.
    Pending,
    Stored,
    /// Could not be fetched for good (e.g. expired after five days).
    Failed,
}

/// The object-store key of a media file. Stable forever: changing it orphans stored media.
///
/// - With a valid md5 (32 hex digits): `media/<corp_id>/md5/<md5 lowercase>[.<ext>]`, so identical media
///   referenced by many messages is stored once.
/// - Otherwise: `media/<corp_id>/fileid/<fnv1a-128 of sdkfileid, 32 lowercase hex digits>[.<ext>]`
///   (FNV-1a, 128-bit, over the UTF-8 bytes of `sdkfileid`).
///
/// `<ext>` is `fileext` when set, else by kind: image `jpg`, voice `amr`, video `mp4`; none otherwise.
/// `corp_id` is used as given and must be a safe path segment (corp ids are `ww…` alphanumerics).
pub fn media_object_key(corp_id: &str, m: &MediaRef) -> String {
    let ext = m
        .fileext
        .as_deref()
        .filter(|e| !e.is_empty())
        .or(match m.kind.as_str() {
            "image" => Some("jpg"),
            "voice" => Some("amr"),
            "video" => Some("mp4"),
            _ => None,
        });
    let suffix = ext.map(|e| format!(".{e}")).unwrap_or_default();
    match m.md5sum.as_deref().filter(|s| is_md5_hex(s)) {
        Some(md5) => format!("media/{corp_id}/md5/{}{suffix}", md5.to_ascii_lowercase()),
        None => format!(
            "media/{corp_id}/fileid/{:032x}{suffix}",
            fnv1a_128(m.sdkfileid.as_bytes())
        ),
    }
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// FNV-1a, 128-bit. Part of [`media_object_key`]'s contract: never change it.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u128::from(b)).wrapping_mul(PRIME)
    })
}

/// Where a message sits in the archive when it is normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalizeContext<'a> {
    pub corp_id: &'a str,
    /// `corp` or `room:<roomid>`.
    pub stream: &'a str,
    pub seq: u64,
    /// `publickey_ver` of the item.
    pub key_version: u32,
}

/// The conversation a message belongs to. Stable: consumers group and partition by it.
///
/// 1. The message's roomid when non-empty (`wr…`), else the room of a `room:<roomid>` stream.
/// 2. A 1:1 chat: `single:<a>|<b>` with `a <= b` the sender and the first recipient, so both directions of a
///    chat share one id.
/// 3. Only one participant known (sender or first recipient): `single:<it>`.
/// 4. A `switch` message: `switch:<user>`.
/// 5. Nothing known: `msg:<msgid>`.
pub fn conversation_id(msg: &Message, stream: &str) -> String {
    if let Some(room) = msg.roomid.as_deref().filter(|r| !r.is_empty()) {
        return room.to_owned();
    }
    if let Some(room) = stream.strip_prefix("room:").filter(|r| !r.is_empty()) {
        return room.to_owned();
    }
    let from = msg.from.as_deref().filter(|f| !f.is_empty());
    let to = msg
        .tolist
        .first()
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    match (from, to) {
        (Some(a), Some(b)) => {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            format!("single:{a}|{b}")
        }
        (Some(one), None) | (None, Some(one)) => format!("single:{one}"),
        (None, None) => match &msg.content {
            Content::Switch(s) if !s.user.is_empty() => format!("switch:{}", s.user),
            _ => format!("msg:{}", msg.msgid),
        },
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds; `None` when out of range (after 9999).
pub fn format_msgtime(ms: u64) -> Option<String> {
    let nanos = i128::from(ms).checked_mul(1_000_000)?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).ok()
}

/// Normalizes a decrypted message into a [`Record`]. Media get their object key and status `Pending`.
pub fn normalize(ctx: &NormalizeContext<'_>, msg: &Message) -> Record {
    let msgtime_ms = msg.msgtime.or(match &msg.content {
        Content::Switch(s) => s.time,
        _ => None,
    });
    let media = msg
        .content
        .media()
        .into_iter()
        .map(|mut m| {
            m.object_key = Some(media_object_key(ctx.corp_id, &m));
            m.status = Some(MediaStatus::Pending);
            m
        })
        .collect();
    Record {
        schema: MESSAGE_SCHEMA_ID.to_owned(),
        corp_id: ctx.corp_id.to_owned(),
        stream: ctx.stream.to_owned(),
        seq: ctx.seq,
        msgid: msg.msgid.clone(),
        action: msg.action.clone(),
        from: msg.from.clone(),
        to: msg.tolist.clone(),
        roomid: msg.roomid.clone(),
        conversation_id: conversation_id(msg, ctx.stream),
        send_time: msgtime_ms.and_then(format_msgtime),
        msgtime_ms,
        // A switch comes without a msgtype; downstream consumers get "switch" rather than null.
        msgtype: match &msg.content {
            Content::Switch(_) if msg.msgtype.is_none() => Some("switch".to_owned()),
            _ => msg.msgtype.clone(),
        },
        external: msg.msgid.ends_with("_external"),
        updown_stream: msg.msgid.contains("_updown_stream"),
        content: msg.content.clone(),
        media,
        text: msg.content.plain_text(),
        key_version: ctx.key_version,
        room: None,
        content_ref: None,
        consent: None,
        recalls: None,
    }
}

/// Why an item went to the dead-letter output. Serialized snake_case; also a bounded metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// No private key of the item's `publickey_ver` is configured.
    UnknownKeyVersion,
    /// The random key did not unwrap (bad base64 or RSA failure).
    BadRandomKey,
    DecryptFailed,
    /// Decrypted, but not a message ([`crate::ModelError`]).
    ParseFailed,
    /// The SDK process crashed on this item.
    SdkCrashed,
    /// The archive service reported the data expired.
    Expired,
    Other,
}

impl DeadLetterReason {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::UnknownKeyVersion => "unknown_key_version",
            DeadLetterReason::BadRandomKey => "bad_random_key",
            DeadLetterReason::DecryptFailed => "decrypt_failed",
            DeadLetterReason::ParseFailed => "parse_failed",
            DeadLetterReason::SdkCrashed => "sdk_crashed",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Other => "other",
        }
    }
}

/// An item that could not become a [`Record`], kept whole (the encrypted item verbatim) for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// Always [`DEADLETTER_SCHEMA_ID`].
    pub schema: String,
    pub corp_id: String,
    pub stream: String,
    pub seq: u64,
    pub msgid: String,
    pub reason_kind: DeadLetterReason,
    /// Human-readable; never carries key material.
    pub reason: String,
    pub item: ChatDataItem,
    /// Set only on a slim dead letter (too big for the Kafka topic): `item.encrypt_chat_msg` is empty
    /// here, and the full dead letter is the object named here. See [`Record::content_ref`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_ref: Option<ContentRef>,
}

impl DeadLetter {
    /// A dead letter for `item` in `stream`; seq and msgid are taken from the item.
    pub fn new(
        corp_id: &str,
        stream: &str,
        reason_kind: DeadLetterReason,
        reason: impl Into<String>,
        item: ChatDataItem,
    ) -> Self {
        DeadLetter {
            schema: DEADLETTER_SCHEMA_ID.to_owned(),
            corp_id: corp_id.to_owned(),
            stream: stream.to_owned(),
            seq: item.seq,
            msgid: item.msgid.clone(),
            reason_kind,
            reason: reason.into(),
            item,
            content_ref: None,
        }
    }
}

/// The JSON Schema of [`Record`], as committed in `config/schema/message.v1.json`.
pub fn record_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Record);
    serde_json::to_value(schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_the_published_vectors() {
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"")),
            "6c62272e07bb014262b821756295c58d"
        );
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"a")),
            "d228cb696f1a8caf78912b704e4a8964"
        );
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"foobar")),
            "343e1662793c64bf6f0d3597ba446f18"
        );
    }

    #[test]
    fn format_msgtime_edges() {
        assert_eq!(
            format_msgtime(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            format_msgtime(1_547_087_894_783).as_deref(),
            Some("2019-01-10T02:38:14.783Z")
        );
        assert_eq!(format_msgtime(u64::MAX), None);
    }

    /// The committed schema must match the types. Regenerate with
    /// `UPDATE_SCHEMA=1 cargo test -p wecom-model committed_schema_is_current`.
    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/schema/message.v1.json");
        let mut generated = serde_json::to_string_pretty(&record_json_schema()).unwrap_or_default();
        generated.push('\n');
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date with the Record type; regenerate it with \
             `UPDATE_SCHEMA=1 cargo test -p wecom-model committed_schema_is_current` and review the diff",
            path.display()
        );
    }
}
