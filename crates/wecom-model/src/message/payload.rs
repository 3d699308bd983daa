//! Typed payloads of each msgtype (reference §3).
//!
//! Every struct reads leniently (missing keys default, see `lenient`) and keeps the keys it does not know in
//! `extra`, so a payload that gained a field in a newer SDK still round-trips verbatim.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Content;
use crate::lenient;

/// `text`: a plain text message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Text {
    #[serde(deserialize_with = "lenient::string")]
    pub content: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `image`: a picture (jpg).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Image {
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    /// May be empty.
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: String,
    /// Bytes; can exceed 2^31.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub filesize: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `revoke` (action `recall`): a message was recalled.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Revoke {
    /// The msgid of the recalled message.
    #[serde(deserialize_with = "lenient::string")]
    pub pre_msgid: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `agree`: an external contact agreed to archiving.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Agree {
    #[serde(deserialize_with = "lenient::string")]
    pub userid: String,
    /// Unix time in milliseconds.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub agree_time: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `disagree`: an external contact refused archiving.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Disagree {
    #[serde(deserialize_with = "lenient::string")]
    pub userid: String,
    /// Unix time in milliseconds.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub disagree_time: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `voice`: a voice message (AMR audio).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Voice {
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    /// Bytes.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub voice_size: Option<u64>,
    /// Seconds.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub play_length: Option<u64>,
    /// May be empty.
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `video`: a video (mp4).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Video {
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    /// Bytes; can exceed 2^31.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub filesize: Option<u64>,
    /// Seconds.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub play_length: Option<u64>,
    /// May be empty.
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `card`: a shared contact card.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Card {
    #[serde(deserialize_with = "lenient::string")]
    pub corpname: String,
    #[serde(deserialize_with = "lenient::string")]
    pub userid: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `location`: a shared location.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Location {
    #[serde(
        deserialize_with = "lenient::f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub longitude: Option<f64>,
    #[serde(
        deserialize_with = "lenient::f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub latitude: Option<f64>,
    #[serde(deserialize_with = "lenient::string")]
    pub address: String,
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub zoom: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `emotion`: a sticker.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Emotion {
    /// 1 gif, 2 png.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub r#type: Option<u64>,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub width: Option<u64>,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub height: Option<u64>,
    /// Bytes.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub imagesize: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    /// May be empty.
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `file`: a file attachment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct File {
    #[serde(deserialize_with = "lenient::string")]
    pub filename: String,
    /// Extension without the dot, as the sender's client reported it.
    #[serde(deserialize_with = "lenient::string")]
    pub fileext: String,
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    /// Bytes; can exceed 2^31.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub filesize: Option<u64>,
    /// May be empty.
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `link`: a shared link card.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Link {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(deserialize_with = "lenient::string")]
    pub link_url: String,
    #[serde(deserialize_with = "lenient::string")]
    pub image_url: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `weapp`: a mini-program card.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Weapp {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(deserialize_with = "lenient::string")]
    pub username: String,
    #[serde(deserialize_with = "lenient::string")]
    pub displayname: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `chatrecord`: a forwarded bundle of messages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ChatRecord {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::vec")]
    pub item: Vec<ChatRecordItem>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message inside a `chatrecord`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ChatRecordItem {
    /// `ChatRecordText`, `ChatRecordImage`, ... (see [`nested_msgtype`](super::nested_msgtype)).
    #[serde(deserialize_with = "lenient::string")]
    pub r#type: String,
    /// Unix time in **seconds** (unlike the envelope's milliseconds).
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub msgtime: Option<u64>,
    /// The item's payload as a JSON **string**, verbatim.
    #[serde(deserialize_with = "lenient::json_text")]
    pub content: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub from_chatroom: bool,
    /// `content` parsed into a typed payload; `None` when it is not a JSON object. Filled by the parser, never read from input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed: Option<Box<Content>>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `todo`: a to-do item.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Todo {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub content: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `vote`: a poll (the payload may sit at the top level or under `vote`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Vote {
    #[serde(deserialize_with = "lenient::string")]
    pub votetitle: String,
    #[serde(deserialize_with = "lenient::strings")]
    pub voteitem: Vec<String>,
    /// 101 start a vote, 102 take part.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub votetype: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub voteid: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `collect`: a form collecting answers (填表).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Collect {
    #[serde(deserialize_with = "lenient::string")]
    pub room_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub creator: String,
    /// As sent (a date-time text in the documentation's example).
    #[serde(deserialize_with = "lenient::string")]
    pub create_time: String,
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::vec")]
    pub details: Vec<CollectDetail>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One question of a `collect` form.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CollectDetail {
    /// Unsigned 64-bit.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub ques: String,
    #[serde(deserialize_with = "lenient::string")]
    pub r#type: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `redpacket` and `external_redpacket` (payload key `redpacket` for both).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RedPacket {
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub r#type: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub wish: String,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub totalcnt: Option<u64>,
    /// In fen (1/100 yuan).
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub totalamount: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `meeting`: a meeting invitation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Meeting {
    #[serde(deserialize_with = "lenient::string")]
    pub topic: String,
    /// Unix time in seconds.
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub starttime: Option<i64>,
    /// Unix time in seconds.
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub endtime: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub address: String,
    #[serde(deserialize_with = "lenient::string")]
    pub remarks: String,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub meetingtype: Option<u64>,
    /// Unsigned 64-bit.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub meetingid: Option<u64>,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `docmsg` (payload key `doc`): an online document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DocMsg {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub link_url: String,
    #[serde(deserialize_with = "lenient::string")]
    pub doc_creator: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `markdown` (payload key `info`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Markdown {
    #[serde(deserialize_with = "lenient::string")]
    pub content: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `news` (payload key `info`): article cards.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct News {
    #[serde(deserialize_with = "lenient::vec")]
    pub item: Vec<NewsItem>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One article of a `news` message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct NewsItem {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(deserialize_with = "lenient::string")]
    pub url: String,
    #[serde(deserialize_with = "lenient::string")]
    pub picurl: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `calendar`: a calendar event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Calendar {
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub creatorname: String,
    #[serde(deserialize_with = "lenient::strings")]
    pub attendeename: Vec<String>,
    /// Unix time in **seconds**.
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub starttime: Option<i64>,
    /// Unix time in **seconds**.
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub endtime: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub place: String,
    #[serde(deserialize_with = "lenient::string")]
    pub remarks: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `mixed`: text and pictures in one message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Mixed {
    #[serde(deserialize_with = "lenient::vec")]
    pub item: Vec<MixedItem>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One part of a `mixed` message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MixedItem {
    /// `text`, `image`, ... (a msgtype).
    #[serde(deserialize_with = "lenient::string")]
    pub r#type: String,
    /// The part's payload as a JSON **string**, verbatim.
    #[serde(deserialize_with = "lenient::json_text")]
    pub content: String,
    /// `content` parsed into a typed payload; `None` when it is not a JSON object. Filled by the parser, never read from input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed: Option<Box<Content>>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `meeting_voice_call`: a recorded voice meeting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MeetingVoiceCall {
    /// Copied from the message's top-level `voiceid`.
    #[serde(deserialize_with = "lenient::string")]
    pub voiceid: String,
    /// Unix time in seconds.
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub endtime: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    #[serde(deserialize_with = "lenient::vec")]
    pub demofiledata: Vec<DemoFileData>,
    #[serde(deserialize_with = "lenient::vec")]
    pub sharescreendata: Vec<ShareScreenData>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A file presented during a `meeting_voice_call`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DemoFileData {
    #[serde(deserialize_with = "lenient::string")]
    pub filename: String,
    #[serde(deserialize_with = "lenient::string")]
    pub demoer: String,
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub starttime: Option<i64>,
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub endtime: Option<i64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A screen share during a `meeting_voice_call`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ShareScreenData {
    #[serde(deserialize_with = "lenient::string")]
    pub share: String,
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub starttime: Option<i64>,
    #[serde(
        deserialize_with = "lenient::i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub endtime: Option<i64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `voip_doc_share`: a file shared in a call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct VoipDocShare {
    /// Copied from the message's top-level `voipid`.
    #[serde(deserialize_with = "lenient::string")]
    pub voipid: String,
    #[serde(deserialize_with = "lenient::string")]
    pub filename: String,
    /// May be empty.
    #[serde(deserialize_with = "lenient::string")]
    pub md5sum: String,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub filesize: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub sdkfileid: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `sphfeed`: a WeChat Channels (视频号) post.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SphFeed {
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub feed_type: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub sph_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub feed_desc: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `voiptext` (payload key `info`): a call summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct VoipText {
    /// Seconds.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub callduration: Option<u64>,
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub invitetype: Option<u64>,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `qydiskfile` (payload key `info`): a WeCom drive file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct QyDiskFile {
    #[serde(deserialize_with = "lenient::string")]
    pub filename: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `switch` (action `switch`, no msgtype): a user switched enterprise; read from the top level.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Switch {
    /// Unix time in milliseconds.
    #[serde(
        deserialize_with = "lenient::u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub user: String,
    /// Keys this version does not know, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
