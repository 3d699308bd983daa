//! The msgtypes of the corpus and their mix.

/// Every msgtype the simulator produces (`Switch` has no msgtype: action `switch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Image,
    Revoke,
    Agree,
    Disagree,
    Voice,
    Video,
    Card,
    Location,
    Emotion,
    File,
    Link,
    Weapp,
    ChatRecord,
    Todo,
    Vote,
    Collect,
    RedPacket,
    ExternalRedPacket,
    Meeting,
    DocMsg,
    Markdown,
    News,
    Calendar,
    Mixed,
    MeetingVoiceCall,
    VoipDocShare,
    SphFeed,
    VoipText,
    QyDiskFile,
    Jielong,
    Note,
    Switch,
}

/// (kind, weight) of the random mix; every kind is also forced periodically so small corpora have all.
pub(super) const KINDS: &[(Kind, u32)] = &[
    (Kind::Text, 400),
    (Kind::Image, 90),
    (Kind::Revoke, 20),
    (Kind::Agree, 8),
    (Kind::Disagree, 4),
    (Kind::Voice, 40),
    (Kind::Video, 25),
    (Kind::Card, 8),
    (Kind::Location, 8),
    (Kind::Emotion, 30),
    (Kind::File, 40),
    (Kind::Link, 25),
    (Kind::Weapp, 10),
    (Kind::ChatRecord, 15),
    (Kind::Todo, 5),
    (Kind::Vote, 5),
    (Kind::Collect, 5),
    (Kind::RedPacket, 6),
    (Kind::ExternalRedPacket, 4),
    (Kind::Meeting, 5),
    (Kind::DocMsg, 8),
    (Kind::Markdown, 8),
    (Kind::News, 5),
    (Kind::Calendar, 5),
    (Kind::Mixed, 15),
    (Kind::MeetingVoiceCall, 4),
    (Kind::VoipDocShare, 3),
    (Kind::SphFeed, 4),
    (Kind::VoipText, 5),
    (Kind::QyDiskFile, 3),
    (Kind::Jielong, 3),
    (Kind::Note, 3),
    (Kind::Switch, 5),
];

/// Every `FORCE_EVERY`-th item (at offset `FORCE_AT`) cycles through all kinds.
pub(super) const FORCE_EVERY: u64 = 40;
pub(super) const FORCE_AT: u64 = 5;

impl Kind {
    pub(crate) fn msgtype(self) -> Option<&'static str> {
        Some(match self {
            Kind::Text => "text",
            Kind::Image => "image",
            Kind::Revoke => "revoke",
            Kind::Agree => "agree",
            Kind::Disagree => "disagree",
            Kind::Voice => "voice",
            Kind::Video => "video",
            Kind::Card => "card",
            Kind::Location => "location",
            Kind::Emotion => "emotion",
            Kind::File => "file",
            Kind::Link => "link",
            Kind::Weapp => "weapp",
            Kind::ChatRecord => "chatrecord",
            Kind::Todo => "todo",
            Kind::Vote => "vote",
            Kind::Collect => "collect",
            Kind::RedPacket => "redpacket",
            Kind::ExternalRedPacket => "external_redpacket",
            Kind::Meeting => "meeting",
            Kind::DocMsg => "docmsg",
            Kind::Markdown => "markdown",
            Kind::News => "news",
            Kind::Calendar => "calendar",
            Kind::Mixed => "mixed",
            Kind::MeetingVoiceCall => "meeting_voice_call",
            Kind::VoipDocShare => "voip_doc_share",
            Kind::SphFeed => "sphfeed",
            Kind::VoipText => "voiptext",
            Kind::QyDiskFile => "qydiskfile",
            Kind::Jielong => "jielong",
            Kind::Note => "note",
            Kind::Switch => return None,
        })
    }

    /// Kinds that never carry a roomid.
    pub(super) fn roomless(self) -> bool {
        matches!(
            self,
            Kind::MeetingVoiceCall | Kind::VoipDocShare | Kind::Switch
        )
    }
}

/// Every msgtype string the corpus contains (for tests and docs).
pub fn all_msgtypes() -> Vec<&'static str> {
    KINDS.iter().filter_map(|(k, _)| k.msgtype()).collect()
}
