//! The corpus: per-item metadata (seq, msgtime, plan) kept small, and each item's plaintext JSON and
//! ciphertext rebuilt on demand as a pure function of (seed, index).
//!
//! Only the metadata vector, the per-room index and the consent log grow with the corpus; message
//! bodies, ciphertexts and media bytes are never stored (media md5s are cached per file, 16 bytes each).
//! The bodies are built in `body.rs`.

mod body;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use base64::Engine as _;
use rand::seq::SliceRandom as _;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use wecom_crypto::{random_message_key, SimCipher, WrappingKey};

use crate::config::{BigMessagesConfig, FaultConfig, SimConfig, SimKey};
use crate::consent::{ConsentLog, ConsentModel, Scope};
use crate::media::{self, Format, SLOTS};
use crate::rng::{self, fast_rng, hit, mix};
use crate::truth::{
    AgreeStatus, ConsentChange, ConsentTruth, Fate, PairConsent, RoomConsent, TruthItem, TruthMedia,
};
use crate::SimError;

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
const KINDS: &[(Kind, u32)] = &[
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
const FORCE_EVERY: u64 = 40;
const FORCE_AT: u64 = 5;

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
    fn roomless(self) -> bool {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    User(u32),
    External(u32),
}

#[derive(Debug, Clone, Copy)]
enum Conv {
    Room(u32),
    Single { from: Party, to: Party },
}

/// Everything decided about an item before its body is built; small and `Copy`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    kind: Kind,
    conv: Conv,
    /// Sender (for rooms: a member).
    from: Party,
    external: bool,
    updown: bool,
    key_version: u32,
    fate: Fate,
    control_chars: bool,
    /// A text item carrying the stand-in SDK's abort marker.
    sdk_crash: bool,
    /// An oversized item of `[big_messages]`.
    oversized: bool,
    /// The consent subject of an agree / disagree item.
    consent: Option<u32>,
    msgid_form: u8,
    /// Omit `roomid` (rather than "") on a 1:1 item.
    omit_roomid: bool,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    seq: u64,
    msgtime_ms: i64,
    room_seq: u64,
    plan: Plan,
}

pub(crate) struct Room {
    pub(crate) id: String,
    pub(crate) name: String,
    creator: u32,
    pub(crate) create_time: i64,
    pub(crate) notice: String,
    members: Vec<(Party, i64)>,
}

#[derive(Default)]
struct State {
    items: Vec<Meta>,
    /// Per room: (room seq, item index), increasing.
    rooms: Vec<Vec<(u64, u32)>>,
    room_counters: Vec<u64>,
    consent: ConsentLog,
}

/// Which stream a page is cut from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Corp,
    Room(u32),
}

pub(crate) struct Corpus {
    seed: u64,
    messages: u64,
    item_faults: FaultConfig,
    history_ms: i64,
    retention_ms: i64,
    live_rate: f64,
    max_media: u64,
    big_every: u64,
    /// item index -> huge media size.
    huge_at: BTreeMap<u64, u64>,
    big_messages: BigMessagesConfig,
    users: Vec<String>,
    externals: Vec<String>,
    user_index: HashMap<String, u32>,
    external_index: HashMap<String, u32>,
    rooms: Vec<Room>,
    consent: ConsentModel,
    /// (version, from index, key), oldest first.
    keys: Vec<(u32, u64, WrappingKey)>,
    late: Option<(u32, WrappingKey)>,
    anchor_ms: i64,
    started: Instant,
    started_wall_ms: i64,
    state: RwLock<State>,
    md5_cache: Mutex<HashMap<u64, [u8; 16]>>,
}

pub(crate) fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn load_key(key: &SimKey) -> Result<WrappingKey, SimError> {
    let pem = std::fs::read_to_string(&key.pem_path).map_err(|source| SimError::Key {
        path: key.pem_path.clone(),
        source,
    })?;
    WrappingKey::from_private_pem(&pem).map_err(|e| SimError::Crypto {
        version: key.version,
        source: e,
    })
}

const PINYIN: &[&str] = &[
    "zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba", "wujiu", "zhengshi", "chenming",
    "liuyang", "yangfan", "huanglei", "linjing", "heping", "guoqiang", "mafei", "luoxin",
    "gaoyuan", "xuli", "songjia", "tangwei", "hanmei", "fengchen", "dengyu",
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn alnum(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect()
}

impl Corpus {
    pub(crate) fn new(cfg: &SimConfig) -> Result<Self, SimError> {
        let seed = cfg.seed;
        let mut world = fast_rng(seed, rng::D_WORLD, 0);
        let users: Vec<String> = (0..cfg.users as usize)
            .map(|i| {
                let base = PINYIN[i % PINYIN.len()];
                if i < PINYIN.len() {
                    base.to_owned()
                } else {
                    format!("{base}{}", i / PINYIN.len() + 1)
                }
            })
            .collect();
        let externals: Vec<String> = (0..cfg.external_contacts)
            .map(|i| {
                let prefix = if i % 3 == 2 { "wo" } else { "wm" };
                format!("{prefix}{}", alnum(&mut world, 30))
            })
            .collect();
        let anchor_ms = cfg.anchor_unix_ms.unwrap_or_else(now_ms);
        let history_ms = i64::try_from(cfg.history_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let topics = [
            "项目群",
            "销售周会",
            "客户对接",
            "产品讨论",
            "Ops on-call",
            "供应链",
            "售后服务",
            "年会筹备",
        ];
        let rooms: Vec<Room> = (0..cfg.rooms)
            .map(|r| {
                let n_users = world.gen_range(2..=users.len().min(8));
                let mut picked: Vec<u32> = (0..cfg.users).collect();
                picked.shuffle(&mut world);
                picked.truncate(n_users);
                let create_time =
                    (anchor_ms - history_ms) / 1000 - world.gen_range(86_400..30 * 86_400);
                let mut members: Vec<(Party, i64)> = picked
                    .iter()
                    .map(|&u| (Party::User(u), create_time + world.gen_range(0..3600)))
                    .collect();
                // About half the rooms have external members.
                if r % 2 == 1 {
                    for _ in 0..world.gen_range(1..=2) {
                        let e = world.gen_range(0..cfg.external_contacts);
                        if !members.iter().any(|(p, _)| *p == Party::External(e)) {
                            members.push((
                                Party::External(e),
                                create_time + world.gen_range(0..86_400),
                            ));
                        }
                    }
                }
                Room {
                    id: format!("wr{}", alnum(&mut world, 30)),
                    name: format!("{}{}", topics[r as usize % topics.len()], r + 1),
                    creator: picked[0],
                    create_time,
                    notice: if r % 3 == 0 {
                        String::new()
                    } else {
                        format!(
                            "群公告：请大家关注{}进展",
                            topics[r as usize % topics.len()]
                        )
                    },
                    members,
                }
            })
            .collect();
        let messages = cfg.messages;
        let keys = cfg
            .keys
            .iter()
            .map(|k| {
                let from = (k.from_fraction.clamp(0.0, 1.0) * messages as f64).ceil() as u64;
                Ok((k.version, from, load_key(k)?))
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        let late = match &cfg.late_key {
            Some(k) => Some((k.version, load_key(k)?)),
            None => None,
        };
        let huge_at = cfg
            .media
            .huge_media
            .iter()
            .enumerate()
            .map(|(k, &size)| {
                let n = cfg.media.huge_media.len() as u64 + 1;
                let mut at = (k as u64 + 1) * messages / n;
                // Never on a forced-kind slot, so the kind cycle stays complete.
                if at % FORCE_EVERY == FORCE_AT {
                    at += 1;
                }
                (at, size.max(1))
            })
            .collect();
        let room_externals: Vec<Vec<(u32, i64)>> = rooms
            .iter()
            .map(|room| {
                room.members
                    .iter()
                    .filter_map(|&(p, joined)| match p {
                        Party::External(e) => Some((e, joined)),
                        Party::User(_) => None,
                    })
                    .collect()
            })
            .collect();
        let consent = ConsentModel::new(
            seed,
            cfg.users,
            cfg.external_contacts,
            &room_externals,
            anchor_ms - history_ms,
        );
        let index_of = |ids: &[String]| -> HashMap<String, u32> {
            ids.iter()
                .enumerate()
                .map(|(k, id)| (id.clone(), k as u32))
                .collect()
        };
        Ok(Self {
            seed,
            messages,
            item_faults: cfg.faults.clone(),
            history_ms,
            retention_ms: i64::try_from(cfg.retention_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            live_rate: cfg.live_rate_per_sec,
            max_media: cfg.media.max_bytes,
            big_every: cfg.media.big_every,
            huge_at,
            big_messages: cfg.big_messages.clone(),
            user_index: index_of(&users),
            external_index: index_of(&externals),
            users,
            externals,
            consent,
            state: RwLock::new(State {
                rooms: vec![Vec::new(); rooms.len()],
                room_counters: vec![0; rooms.len()],
                ..State::default()
            }),
            rooms,
            keys,
            late,
            anchor_ms,
            started: Instant::now(),
            started_wall_ms: now_ms(),
            md5_cache: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn users(&self) -> &[String] {
        &self.users
    }

    pub(crate) fn room_index(&self, roomid: &str) -> Option<u32> {
        self.rooms
            .iter()
            .position(|r| r.id == roomid)
            .map(|i| i as u32)
    }

    pub(crate) fn room(&self, idx: u32) -> &Room {
        &self.rooms[idx as usize]
    }

    pub(crate) fn room_members(&self, idx: u32) -> Vec<(String, i64)> {
        self.rooms[idx as usize]
            .members
            .iter()
            .map(|(p, t)| (self.party_id(*p).to_owned(), *t))
            .collect()
    }

    pub(crate) fn room_creator(&self, idx: u32) -> &str {
        &self.users[self.rooms[idx as usize].creator as usize]
    }

    fn party_id(&self, p: Party) -> &str {
        match p {
            Party::User(u) => &self.users[u as usize],
            Party::External(e) => &self.externals[e as usize],
        }
    }

    /// How many items exist now (initial corpus plus live items that became visible).
    pub(crate) fn visible_count(&self) -> u64 {
        if self.live_rate > 0.0 {
            let live = (self.started.elapsed().as_secs_f64() * self.live_rate).floor() as u64;
            self.messages.saturating_add(live)
        } else {
            self.messages
        }
    }

    fn plan(&self, i: u64) -> Plan {
        let mut r = fast_rng(self.seed, rng::D_PLAN, i);
        let oversized = self.oversized_kind(i);
        let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
        let kind = if self.huge_at.contains_key(&i) {
            Kind::Video
        } else if let Some(kind) = oversized {
            // Draw as the item would have, so the rest of its plan (conversation, msgid) is unchanged.
            r.gen_range(0..total);
            kind
        } else if i % FORCE_EVERY == FORCE_AT {
            KINDS[((i / FORCE_EVERY) % KINDS.len() as u64) as usize].0
        } else {
            let mut pick = r.gen_range(0..total);
            let mut chosen = Kind::Text;
            for (k, w) in KINDS {
                if pick < *w {
                    chosen = *k;
                    break;
                }
                pick -= w;
            }
            chosen
        };
        let kind = if kind == Kind::Revoke && i == 0 {
            Kind::Text
        } else {
            kind
        };
        let n_users = self.users.len() as u32;
        let n_ext = self.externals.len() as u32;
        let user = |r: &mut ChaCha8Rng| Party::User(r.gen_range(0..n_users));
        let consent = match kind {
            Kind::Agree | Kind::Disagree => self.consent.pick(&mut r),
            _ => None,
        };
        let kind = match (kind, consent) {
            (Kind::Agree | Kind::Disagree, None) => Kind::Text,
            _ => kind,
        };
        let (conv, from) = if let Some(s) = consent {
            // Consent items are sent by the external contact, to the user or in the room.
            let subject = self.consent.subject(s);
            let from = Party::External(subject.external);
            match subject.scope {
                Scope::Pair { user } => (
                    Conv::Single {
                        from,
                        to: Party::User(user),
                    },
                    from,
                ),
                Scope::Room { room } => (Conv::Room(room), from),
            }
        } else if !kind.roomless() && r.gen_bool(0.55) {
            let room = r.gen_range(0..self.rooms.len() as u32);
            let members = &self.rooms[room as usize].members;
            let from = members[r.gen_range(0..members.len())].0;
            (Conv::Room(room), from)
        } else {
            let a = user(&mut r);
            let b = if kind == Kind::ExternalRedPacket || r.gen_bool(0.35) {
                Party::External(r.gen_range(0..n_ext))
            } else {
                let mut b = user(&mut r);
                if b == a {
                    b = Party::User(
                        (r.gen_range(1..n_users)
                            + match a {
                                Party::User(u) => u,
                                Party::External(_) => 0,
                            })
                            % n_users,
                    );
                }
                b
            };
            let (from, to) = if matches!(b, Party::External(_)) && r.gen_bool(0.4) {
                (b, a)
            } else {
                (a, b)
            };
            (Conv::Single { from, to }, from)
        };
        let external = match conv {
            Conv::Room(room) => self.rooms[room as usize]
                .members
                .iter()
                .any(|(p, _)| matches!(p, Party::External(_))),
            Conv::Single { from, to } => {
                matches!(from, Party::External(_)) || matches!(to, Party::External(_))
            }
        };
        let updown = external && matches!(conv, Conv::Single { .. }) && r.gen_bool(0.08);
        let f = &self.item_faults;
        let late = self.late.as_ref().map(|(v, _)| *v);
        let (key_version, fate) = match late {
            Some(v) if hit(self.seed, rng::D_UNKNOWN_KEY, i, f.unknown_key_version) => {
                (v, Fate::UnknownKeyVersion)
            }
            _ => {
                let v = self
                    .keys
                    .iter()
                    .rev()
                    .find(|(_, from, _)| i >= *from)
                    .map_or(self.keys[0].0, |(v, _, _)| *v);
                let fate = if hit(self.seed, rng::D_CORRUPT, i, f.corrupt_ciphertext) {
                    Fate::CorruptCiphertext
                } else {
                    Fate::Ok
                };
                (v, fate)
            }
        };
        let msgid_form = match r.gen_range(0..10) {
            0..=6 => 0,
            7 | 8 => 1,
            _ => 2,
        };
        Plan {
            kind,
            conv,
            from,
            external,
            updown,
            key_version,
            fate,
            control_chars: kind == Kind::Text && hit(self.seed, rng::D_CONTROL, i, f.control_chars),
            sdk_crash: kind == Kind::Text && hit(self.seed, rng::D_CRASH, i, f.sdk_crash_marker),
            oversized: oversized.is_some(),
            consent,
            msgid_form,
            omit_roomid: r.gen_bool(0.05),
        }
    }

    /// The kind of item `i` when it is one of the oversized items of `[big_messages]`: about one in
    /// `every`, never on a forced-kind slot or a huge-media item, cycling through the oversized kinds.
    fn oversized_kind(&self, i: u64) -> Option<Kind> {
        let every = self.big_messages.every;
        if every == 0
            || i % every != every / 2
            || i % FORCE_EVERY == FORCE_AT
            || self.huge_at.contains_key(&i)
        {
            return None;
        }
        let kinds: &[Kind] = if self.big_messages.markdown_bytes > 0 {
            &[Kind::Text, Kind::ChatRecord, Kind::Markdown]
        } else {
            &[Kind::Text, Kind::ChatRecord]
        };
        Some(kinds[((i / every) % kinds.len() as u64) as usize])
    }

    fn gap(&self, domain: u64, i: u64) -> u64 {
        if hit(self.seed, domain, i, self.item_faults.seq_gaps) {
            1 + mix(self.seed, domain ^ 0x100, i) % 5
        } else {
            0
        }
    }

    fn msgtime_of(&self, i: u64, prev: Option<i64>) -> i64 {
        let t = if i < self.messages {
            let start = self.anchor_ms - self.history_ms;
            let n = self.messages as i128;
            let step = (self.history_ms as i128 / n).max(1) as i64;
            let base = start + (self.history_ms as i128 * i as i128 / n) as i64;
            base + (mix(self.seed, rng::D_TIME, i) % step as u64) as i64
        } else {
            let k = (i - self.messages + 1) as f64;
            self.started_wall_ms + (k / self.live_rate * 1000.0) as i64
        };
        match prev {
            Some(p) if t <= p => p + 1,
            _ => t,
        }
    }

    /// Grows the metadata to `n` items.
    fn extend_to(&self, n: u64) {
        if self
            .state
            .read()
            .map(|s| s.items.len() as u64 >= n)
            .unwrap_or(true)
        {
            return;
        }
        let Ok(mut st) = self.state.write() else {
            return;
        };
        while (st.items.len() as u64) < n {
            let i = st.items.len() as u64;
            let mut plan = self.plan(i);
            let prev = st.items.last().copied();
            let seq = prev.map_or(1, |m| m.seq + 1) + self.gap(rng::D_GAP, i);
            let msgtime_ms = self.msgtime_of(i, prev.map(|m| m.msgtime_ms));
            if let Some(subject) = plan.consent {
                let agree = plan.kind == Kind::Agree;
                let status = st
                    .consent
                    .record(&self.consent, subject, agree, msgtime_ms, i as u32);
                plan.kind = if status == AgreeStatus::Agree {
                    Kind::Agree
                } else {
                    Kind::Disagree
                };
            }
            let room_seq = match plan.conv {
                Conv::Room(r) => {
                    let c = st.room_counters[r as usize] + 1 + self.gap(rng::D_ROOM_GAP, i);
                    st.room_counters[r as usize] = c;
                    st.rooms[r as usize].push((c, i as u32));
                    c
                }
                Conv::Single { .. } => 0,
            };
            st.items.push(Meta {
                seq,
                msgtime_ms,
                room_seq,
                plan,
            });
        }
    }

    /// Item indexes of one page: items of `stream` with seq > `after` inside the retention window
    /// (msgtime >= now - retention and corp seq >= `floor_seq`), at most `limit`; plus, when `dups`
    /// > 0, up to `dups` items at or below `after` repeated in front.
    pub(crate) fn page(
        &self,
        stream: Stream,
        after: u64,
        limit: usize,
        floor_seq: u64,
        dups: usize,
    ) -> Vec<u64> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        let min_time = now_ms().saturating_sub(self.retention_ms);
        let window = st
            .items
            .partition_point(|m| m.msgtime_ms < min_time || m.seq < floor_seq);
        // Both conditions are monotonic in the index, so `window` is the first item inside it.
        match stream {
            Stream::Corp => {
                let first = st.items.partition_point(|m| m.seq <= after).max(window);
                let mut out: Vec<u64> = Vec::new();
                if dups > 0 {
                    let below = st.items.partition_point(|m| m.seq <= after);
                    let lo = below.saturating_sub(dups).max(window);
                    out.extend((lo..below.max(lo)).map(|i| i as u64));
                }
                let end = (first + limit).min(st.items.len());
                out.extend((first..end).map(|i| i as u64));
                out
            }
            Stream::Room(r) => {
                let list = &st.rooms[r as usize];
                let inside = |&(_, idx): &(u64, u32)| idx as usize >= window;
                let first = list.partition_point(|&(rs, _)| rs <= after);
                let mut out: Vec<u64> = Vec::new();
                if dups > 0 {
                    let lo = first.saturating_sub(dups);
                    out.extend(
                        list[lo..first]
                            .iter()
                            .filter(|e| inside(e))
                            .map(|&(_, i)| u64::from(i)),
                    );
                }
                out.extend(
                    list[first..]
                        .iter()
                        .filter(|e| inside(e))
                        .take(limit)
                        .map(|&(_, i)| u64::from(i)),
                );
                out
            }
        }
    }

    /// The item of index `i` as served in a `chatdata` array of `stream`.
    pub(crate) fn chatdata_entry(&self, i: u64, stream: Stream) -> Result<Value, SimError> {
        let st = self.state.read().map_err(|_| SimError::Poisoned)?;
        let meta = st.items[i as usize];
        let (plain, _) = self.message(i, &st.items);
        let mut enc = rng::crypto_rng(self.seed, rng::D_ENCRYPT, i);
        let random_key = random_message_key(&mut enc);
        let key = if meta.plan.fate == Fate::UnknownKeyVersion {
            self.late.as_ref().map(|(_, k)| k)
        } else {
            self.keys
                .iter()
                .find(|(v, _, _)| *v == meta.plan.key_version)
                .map(|(_, _, k)| k)
        }
        .ok_or(SimError::Config(format!(
            "no key for version {}",
            meta.plan.key_version
        )))?;
        let wrapped = key
            .wrap_random_key(&random_key, &mut enc)
            .map_err(|e| SimError::Crypto {
                version: meta.plan.key_version,
                source: e,
            })?;
        let mut ciphertext =
            SimCipher::encrypt(&random_key, plain.as_bytes()).map_err(|e| SimError::Crypto {
                version: meta.plan.key_version,
                source: e,
            })?;
        if meta.plan.fate == Fate::CorruptCiphertext {
            ciphertext = corrupt(&ciphertext);
        }
        let seq = match stream {
            Stream::Corp => meta.seq,
            Stream::Room(_) => meta.room_seq,
        };
        Ok(json!({
            "seq": seq,
            "msgid": self.msgid(i, &meta),
            "publickey_ver": meta.plan.key_version,
            "encrypt_random_key": wrapped,
            "encrypt_chat_msg": ciphertext,
        }))
    }

    /// Ground truth of every item up to the visible end (including items below the retention floor).
    pub(crate) fn truth(&self) -> Vec<TruthItem> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        (0..st.items.len() as u64)
            .map(|i| {
                let meta = st.items[i as usize];
                // Oversized texts and markdowns have no media: don't build megabytes for nothing.
                let media = if meta.plan.oversized && meta.plan.kind != Kind::ChatRecord {
                    Vec::new()
                } else {
                    self.message(i, &st.items).1
                };
                TruthItem {
                    seq: meta.seq,
                    msgid: self.msgid(i, &meta),
                    msgtype: meta.plan.kind.msgtype().map(str::to_owned),
                    action: match meta.plan.kind {
                        Kind::Revoke => "recall",
                        Kind::Switch => "switch",
                        _ => "send",
                    }
                    .to_owned(),
                    roomid: match meta.plan.conv {
                        Conv::Room(r) => Some(self.rooms[r as usize].id.clone()),
                        Conv::Single { .. } => None,
                    },
                    room_seq: (meta.room_seq > 0).then_some(meta.room_seq),
                    msgtime_ms: meta.msgtime_ms,
                    key_version: meta.plan.key_version,
                    fate: meta.plan.fate,
                    control_chars: meta.plan.control_chars,
                    media,
                    oversized: meta.plan.oversized,
                    sdk_crash: meta.plan.sdk_crash,
                }
            })
            .collect()
    }

    /// (msgtime, format) of the item owning `media_id`, when it is visible.
    pub(crate) fn media_owner(&self, media_id: u64) -> Option<(i64, Format)> {
        let idx = media_id / SLOTS;
        self.extend_to(self.visible_count());
        let st = self.state.read().ok()?;
        let meta = st.items.get(usize::try_from(idx).ok()?)?;
        Some((
            meta.msgtime_ms,
            self.media_format(idx, meta.plan.kind, media_id % SLOTS),
        ))
    }

    /// The format of media slot `slot` of item `i` (see `media_file` calls in `body.rs`).
    fn media_format(&self, i: u64, kind: Kind, slot: u64) -> Format {
        match (kind, slot) {
            (Kind::Image, 0) | (Kind::ChatRecord | Kind::Mixed, 1) => Format::Jpeg,
            (Kind::Voice, 0) => Format::Amr,
            (Kind::Emotion, 0) if self.emotion_type(i) == 1 => Format::Gif,
            (Kind::Emotion, 0) => Format::Png,
            _ => Format::Opaque,
        }
    }

    /// (count, newest seq, newest msgtime) of the items servable now.
    pub(crate) fn newest(&self) -> (u64, u64, i64) {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return (0, 0, 0);
        };
        let last = st.items.last();
        (
            st.items.len() as u64,
            last.map_or(0, |m| m.seq),
            last.map_or(0, |m| m.msgtime_ms),
        )
    }

    /// `check_single_agree`: (userid, external, status, change time s) of each answered pair, in
    /// request order, as of now. Pairs that never answered (or are unknown) are left out.
    pub(crate) fn single_agree(
        &self,
        pairs: &[(String, String)],
    ) -> Vec<(String, String, AgreeStatus, i64)> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        let now = now_ms();
        pairs
            .iter()
            .filter_map(|(userid, external)| {
                let u = *self.user_index.get(userid)?;
                let e = *self.external_index.get(external)?;
                let subject = self
                    .consent
                    .find(|s| s.external == e && s.scope == Scope::Pair { user: u })
                    .first()
                    .copied()?;
                let (status, at) = st.consent.status_at(&self.consent, subject, now)?;
                Some((
                    userid.clone(),
                    external.clone(),
                    status,
                    at.div_euclid(1000),
                ))
            })
            .collect()
    }

    /// `check_room_agree`: (external, status, change time s) of each answered external member of
    /// `room`, as of now.
    pub(crate) fn room_agree(&self, room: u32) -> Vec<(String, AgreeStatus, i64)> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        let now = now_ms();
        self.consent
            .find(|s| s.scope == Scope::Room { room })
            .into_iter()
            .filter_map(|subject| {
                let (status, at) = st.consent.status_at(&self.consent, subject, now)?;
                let e = self.consent.subject(subject).external;
                Some((
                    self.externals[e as usize].clone(),
                    status,
                    at.div_euclid(1000),
                ))
            })
            .collect()
    }

    /// Every agreement history up to the visible end.
    pub(crate) fn consent_truth(&self) -> ConsentTruth {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return ConsentTruth::default();
        };
        let mut out = ConsentTruth::default();
        for (s, subject) in self.consent.subjects().iter().enumerate() {
            let mut changes: Vec<ConsentChange> = subject
                .default_since_ms
                .map(|t| ConsentChange {
                    status: AgreeStatus::DefaultAgree,
                    time_ms: t,
                    seq: None,
                })
                .into_iter()
                .collect();
            changes.extend(st.consent.events(s as u32).iter().map(|e| ConsentChange {
                status: e.status,
                time_ms: e.time_ms,
                seq: Some(st.items[e.item as usize].seq),
            }));
            let external = self.externals[subject.external as usize].clone();
            match subject.scope {
                Scope::Pair { user } => out.pairs.push(PairConsent {
                    userid: self.users[user as usize].clone(),
                    external,
                    changes,
                }),
                Scope::Room { room } => out.rooms.push(RoomConsent {
                    roomid: self.rooms[room as usize].id.clone(),
                    external,
                    changes,
                }),
            }
        }
        out
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    fn msgid(&self, i: u64, meta: &Meta) -> String {
        let mut r = fast_rng(self.seed, rng::D_MSGID, i);
        let masked = i ^ (mix(self.seed, rng::D_MSGID, u64::MAX) & 0x00FF_FFFF_FFFF_0000);
        let mut id = match meta.plan.msgid_form {
            0 => {
                let mut raw = vec![0x08, 0x04, 0x10];
                raw.extend_from_slice(&masked.to_le_bytes());
                raw.extend((0..12).map(|_| r.gen::<u8>()));
                base64::engine::general_purpose::STANDARD.encode(raw)
            }
            1 => format!("{}{i:07}", r.gen_range(1_000_000_000u64..10_000_000_000)),
            _ => format!(
                "{}{i:07}_{}",
                r.gen_range(1_000_000_000u64..10_000_000_000),
                meta.msgtime_ms / 1000
            ),
        };
        if meta.plan.updown {
            id.push_str("_updown_stream");
        } else if meta.plan.external {
            id.push_str("_external");
        }
        id
    }

    /// The `type` of emotion item `i` (1 gif, 2 png): the first draw of its body's rng.
    fn emotion_type(&self, i: u64) -> i32 {
        fast_rng(self.seed, rng::D_BODY, i).gen_range(1..=2)
    }

    fn md5_hex(&self, media_id: u64, format: Format, size: u64) -> String {
        if let Some(d) = self
            .md5_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&media_id).copied())
        {
            return hex::encode(d);
        }
        let d = media::md5_of(self.seed, media_id, format, size);
        if let Ok(mut c) = self.md5_cache.lock() {
            c.insert(media_id, d);
        }
        hex::encode(d)
    }

    /// A media file of item `i` (of kind `kind`): (sdkfileid, md5sum as written in the message, size).
    fn media_file(
        &self,
        i: u64,
        kind: Kind,
        slot: u64,
        lo: u64,
        hi: u64,
        out: &mut Vec<TruthMedia>,
    ) -> (String, String, u64) {
        let media_id = i * SLOTS + slot;
        let h = mix(self.seed, rng::D_MEDIA_SIZE, media_id);
        let size = if let (0, Some(&huge)) = (slot, self.huge_at.get(&i)) {
            huge
        } else if (h >> 32).checked_rem(self.big_every) == Some(0) {
            let half = self.max_media / 2;
            half + h % (self.max_media - half).max(1)
        } else {
            // Log-uniform between lo and hi.
            let (lo, hi) = (lo.max(1) as f64, hi.max(lo + 1) as f64);
            let u = (h & 0xFFFF_FFFF) as f64 / f64::from(u32::MAX);
            (lo * (hi / lo).powf(u)) as u64
        };
        let size = if self.huge_at.contains_key(&i) && slot == 0 {
            size
        } else {
            size.clamp(1, self.max_media)
        };
        let format = self.media_format(i, kind, slot);
        let size = format.fit_size(size);
        let sdkfileid = media::encode_sdkfileid(self.seed, media_id, size);
        let md5 = self.md5_hex(media_id, format, size);
        let empty = hit(self.seed, rng::D_EMPTY_MD5, media_id, 0.01);
        out.push(TruthMedia {
            sdkfileid: sdkfileid.clone(),
            md5: md5.clone(),
            size,
            md5_in_message: !empty,
        });
        (sdkfileid, if empty { String::new() } else { md5 }, size)
    }
}

/// Damages a ciphertext so that it can never decrypt: drop 7 bytes (no longer a block multiple).
fn corrupt(b64: &str) -> String {
    let engine = &base64::engine::general_purpose::STANDARD;
    match engine.decode(b64) {
        Ok(mut raw) if raw.len() > 7 => {
            raw.truncate(raw.len() - 7);
            engine.encode(raw)
        }
        _ => "AAAA".to_owned(),
    }
}
