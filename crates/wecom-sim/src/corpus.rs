//! The corpus: per-item metadata (seq, msgtime, plan) kept small, and each item's plaintext JSON and
//! ciphertext rebuilt on demand as a pure function of (seed, index).
//!
//! Only the metadata vector and the per-room index grow with the corpus; message bodies, ciphertexts
//! and media bytes are never stored (media md5s are cached per file, 16 bytes each).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use base64::Engine as _;
use rand::seq::SliceRandom as _;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use wecom_crypto::{random_message_key, SimCipher, WrappingKey};

use crate::config::{FaultConfig, SimConfig, SimKey};
use crate::media::{self, SLOTS};
use crate::rng::{self, fast_rng, hit, mix};
use crate::truth::{Fate, TruthItem, TruthMedia};
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
            Kind::MeetingVoiceCall
                | Kind::VoipDocShare
                | Kind::Switch
                | Kind::Agree
                | Kind::Disagree
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
    users: Vec<String>,
    externals: Vec<String>,
    rooms: Vec<Room>,
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

fn hexs(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

const TEXTS: &[&str] = &[
    "好的，收到",
    "明天上午十点开会，请准时参加",
    "Please review the contract before Friday.",
    "这个报价可以再优惠一点吗？",
    "已经发货了，单号稍后发你",
    "ok",
    "谢谢！👍",
    "第一行\n第二行\n第三行",
    "The invoice total is ¥12,800.00 (tax included).",
    "会议纪要：\n1. 预算确认\n2. 排期\t下周一",
    "\"quoted\" and back\\slash",
    "收到，我跟进一下",
];

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
            users,
            externals,
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
        let kind = if self.huge_at.contains_key(&i) {
            Kind::Video
        } else if i % FORCE_EVERY == FORCE_AT {
            KINDS[((i / FORCE_EVERY) % KINDS.len() as u64) as usize].0
        } else {
            let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
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
        let (conv, from) = if !kind.roomless() && r.gen_bool(0.55) {
            let room = r.gen_range(0..self.rooms.len() as u32);
            let members = &self.rooms[room as usize].members;
            let from = members[r.gen_range(0..members.len())].0;
            (Conv::Room(room), from)
        } else {
            let a = user(&mut r);
            let needs_external =
                matches!(kind, Kind::Agree | Kind::Disagree | Kind::ExternalRedPacket);
            let b = if needs_external || r.gen_bool(0.35) {
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
            msgid_form,
            omit_roomid: r.gen_bool(0.05),
        }
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
            let plan = self.plan(i);
            let prev = st.items.last().copied();
            let seq = prev.map_or(1, |m| m.seq + 1) + self.gap(rng::D_GAP, i);
            let msgtime_ms = self.msgtime_of(i, prev.map(|m| m.msgtime_ms));
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
                let (_, media) = self.message(i, &st.items);
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
                }
            })
            .collect()
    }

    /// (item index, msgtime) of the item owning `media_id`, when it is visible.
    pub(crate) fn media_owner_time(&self, media_id: u64) -> Option<i64> {
        let idx = media_id / SLOTS;
        self.extend_to(self.visible_count());
        let st = self.state.read().ok()?;
        st.items
            .get(usize::try_from(idx).ok()?)
            .map(|m| m.msgtime_ms)
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

    fn md5_hex(&self, media_id: u64, size: u64) -> String {
        if let Some(d) = self
            .md5_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&media_id).copied())
        {
            return hex::encode(d);
        }
        let d = media::md5_of(self.seed, media_id, size);
        if let Ok(mut c) = self.md5_cache.lock() {
            c.insert(media_id, d);
        }
        hex::encode(d)
    }

    /// A media file of item `i`: (sdkfileid, md5sum as written in the message, size).
    fn media_file(
        &self,
        i: u64,
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
        let sdkfileid = media::encode_sdkfileid(self.seed, media_id, size);
        let md5 = self.md5_hex(media_id, size);
        let empty = hit(self.seed, rng::D_EMPTY_MD5, media_id, 0.01);
        out.push(TruthMedia {
            sdkfileid: sdkfileid.clone(),
            md5: md5.clone(),
            size,
            md5_in_message: !empty,
        });
        (sdkfileid, if empty { String::new() } else { md5 }, size)
    }

    /// The plaintext message JSON of item `i` (exactly the bytes that get encrypted) and its media.
    fn message(&self, i: u64, items: &[Meta]) -> (String, Vec<TruthMedia>) {
        let meta = items[i as usize];
        let plan = meta.plan;
        let mut r = fast_rng(self.seed, rng::D_BODY, i);
        let mut media = Vec::new();
        let msgid = self.msgid(i, &meta);
        let t = meta.msgtime_ms;
        let from = self.party_id(plan.from).to_owned();
        let mut m = Map::new();
        m.insert("msgid".into(), json!(msgid));
        if plan.kind == Kind::Switch {
            m.insert("action".into(), json!("switch"));
            m.insert("time".into(), json!(t));
            m.insert("user".into(), json!(from));
            return (
                serde_json::to_string(&Value::Object(m)).unwrap_or_default(),
                media,
            );
        }
        let msgtype = plan.kind.msgtype().unwrap_or("text");
        m.insert(
            "action".into(),
            json!(if plan.kind == Kind::Revoke {
                "recall"
            } else {
                "send"
            }),
        );
        m.insert("from".into(), json!(from));
        let tolist: Vec<String> = match plan.conv {
            Conv::Room(room) => self.rooms[room as usize]
                .members
                .iter()
                .filter(|(p, _)| *p != plan.from)
                .map(|(p, _)| self.party_id(*p).to_owned())
                .collect(),
            Conv::Single { to, .. } => vec![self.party_id(to).to_owned()],
        };
        m.insert("tolist".into(), json!(tolist));
        match plan.conv {
            Conv::Room(room) => {
                m.insert("roomid".into(), json!(self.rooms[room as usize].id));
            }
            Conv::Single { .. } if plan.kind.roomless() || plan.omit_roomid => {}
            Conv::Single { .. } => {
                m.insert("roomid".into(), json!(""));
            }
        }
        m.insert("msgtime".into(), json!(t));
        m.insert("msgtype".into(), json!(msgtype));
        let secs = t / 1000;
        let text = |r: &mut ChaCha8Rng| TEXTS[r.gen_range(0..TEXTS.len())].to_owned();
        let user = |r: &mut ChaCha8Rng| self.users[r.gen_range(0..self.users.len())].clone();
        let (key, payload) = match plan.kind {
            Kind::Text => {
                let mut content = text(&mut r);
                if plan.control_chars {
                    content = format!("{content}\u{1}第二段\n\u{7}\tend\u{1f}\r");
                }
                ("text", json!({ "content": content }))
            }
            Kind::Image => {
                let (id, md5, size) = self.media_file(i, 0, 4 << 10, 600 << 10, &mut media);
                (
                    "image",
                    json!({"md5sum": md5, "filesize": size, "sdkfileid": id}),
                )
            }
            Kind::Revoke => {
                let j = r.gen_range(0..i);
                let pre = self.msgid(j, &items[j as usize]);
                ("revoke", json!({ "pre_msgid": pre }))
            }
            Kind::Agree | Kind::Disagree => {
                let ext = match plan.conv {
                    Conv::Single {
                        from: Party::External(e),
                        ..
                    }
                    | Conv::Single {
                        to: Party::External(e),
                        ..
                    } => self.externals[e as usize].clone(),
                    _ => self.externals[0].clone(),
                };
                if plan.kind == Kind::Agree {
                    ("agree", json!({"userid": ext, "agree_time": t}))
                } else {
                    ("disagree", json!({"userid": ext, "disagree_time": t}))
                }
            }
            Kind::Voice => {
                let (id, md5, size) = self.media_file(i, 0, 1 << 10, 80 << 10, &mut media);
                (
                    "voice",
                    json!({"md5sum": md5, "voice_size": size, "play_length": r.gen_range(1..60), "sdkfileid": id}),
                )
            }
            Kind::Video => {
                let (id, md5, size) = self.media_file(i, 0, 100 << 10, 2 << 20, &mut media);
                (
                    "video",
                    json!({"md5sum": md5, "filesize": size, "play_length": r.gen_range(1..300), "sdkfileid": id}),
                )
            }
            Kind::Card => (
                "card",
                json!({"corpname": "模拟科技有限公司", "userid": user(&mut r)}),
            ),
            Kind::Location => (
                "location",
                json!({
                    "longitude": 113.0 + f64::from(r.gen_range(0..100_000u32)) / 100_000.0,
                    "latitude": 22.0 + f64::from(r.gen_range(0..100_000u32)) / 100_000.0,
                    "address": "广东省深圳市南山区科技园",
                    "title": "腾讯大厦",
                    "zoom": 15,
                }),
            ),
            Kind::Emotion => {
                let (id, md5, size) = self.media_file(i, 0, 2 << 10, 300 << 10, &mut media);
                (
                    "emotion",
                    json!({"type": r.gen_range(1..=2), "width": 240, "height": 240, "imagesize": size, "sdkfileid": id, "md5sum": md5}),
                )
            }
            Kind::File => {
                let exts = ["pdf", "docx", "xlsx", "zip", "txt", "pptx"];
                let ext = exts[r.gen_range(0..exts.len())];
                let (id, md5, size) = self.media_file(i, 0, 1 << 10, 3 << 20, &mut media);
                (
                    "file",
                    json!({"md5sum": md5, "filename": format!("报价单-{i}.{ext}"), "fileext": ext, "filesize": size, "sdkfileid": id}),
                )
            }
            Kind::Link => (
                "link",
                json!({"title": "行业报告2024", "description": "点击查看完整报告", "link_url": format!("https://example.com/r/{i}"), "image_url": "https://example.com/cover.png"}),
            ),
            Kind::Weapp => (
                "weapp",
                json!({"title": "订单详情", "description": "查看物流", "username": "gh_0123456789ab@app", "displayname": "模拟商城"}),
            ),
            Kind::ChatRecord => {
                let (fid, fmd5, fsize) = self.media_file(i, 1, 2 << 10, 200 << 10, &mut media);
                let mut items_v = vec![
                    json!({"type": "ChatRecordText", "msgtime": secs - 600, "content": json!({"content": text(&mut r)}).to_string(), "from_chatroom": false}),
                    json!({"type": "ChatRecordImage", "msgtime": secs - 500, "content": json!({"md5sum": fmd5, "filesize": fsize, "sdkfileid": fid}).to_string(), "from_chatroom": true}),
                ];
                if r.gen_bool(0.5) {
                    let (id2, md52, size2) = self.media_file(i, 2, 1 << 10, 500 << 10, &mut media);
                    items_v.push(json!({"type": "ChatRecordFile", "msgtime": secs - 400, "content": json!({"filename": "合同.pdf", "fileext": "pdf", "md5sum": md52, "filesize": size2, "sdkfileid": id2}).to_string(), "from_chatroom": false}));
                }
                (
                    "chatrecord",
                    json!({"title": "群聊的聊天记录", "item": items_v}),
                )
            }
            Kind::Todo => (
                "todo",
                json!({"title": "周五前提交报销", "content": "请大家周五前提交本月报销单"}),
            ),
            Kind::Vote => {
                let vote = json!({"votetitle": "团建去哪里", "voteitem": ["爬山", "露营", "聚餐"], "votetype": if r.gen_bool(0.5) { 101 } else { 102 }, "voteid": format!("{}", mix(self.seed, 99, i))});
                if i & 1 == 0 {
                    ("vote", vote)
                } else {
                    // The other shape SDKs disagree about: vote fields at the top level.
                    if let Value::Object(fields) = vote {
                        m.extend(fields);
                    }
                    return (self.finish(plan, m), media);
                }
            }
            Kind::Collect => (
                "collect",
                json!({"room_name": "项目群", "creator": user(&mut r), "create_time": "2024-03-01 10:00:00", "title": "收集地址",
                       "details": [{"id": mix(self.seed, 98, i), "ques": "收货地址", "type": "Text"}, {"id": mix(self.seed, 97, i), "ques": "人数", "type": "Number"}]}),
            ),
            Kind::RedPacket | Kind::ExternalRedPacket => (
                "redpacket",
                json!({"type": r.gen_range(1..=3), "wish": "恭喜发财，大吉大利", "totalcnt": r.gen_range(1..20), "totalamount": r.gen_range(100..100_000)}),
            ),
            Kind::Meeting => (
                "meeting",
                json!({"topic": "项目周会", "starttime": secs + 3600, "endtime": secs + 7200, "address": "3号会议室", "remarks": "带电脑",
                       "meetingtype": 102, "meetingid": (1u64 << 63) | mix(self.seed, 96, i), "status": 1}),
            ),
            Kind::DocMsg => (
                "doc",
                json!({"title": "需求文档", "link_url": format!("https://doc.weixin.qq.com/doc/{}", hexs(&mut r, 16)), "doc_creator": user(&mut r)}),
            ),
            Kind::Markdown => (
                "info",
                json!({"content": "# 发布通知\n- 版本 **1.2**\n- 时间 今晚"}),
            ),
            Kind::News => (
                "info",
                json!({"item": [{"title": "新品发布", "description": "点击查看", "url": "https://example.com/news", "picurl": "https://example.com/pic.png"}]}),
            ),
            Kind::Calendar => (
                "calendar",
                json!({"title": "客户拜访", "creatorname": user(&mut r), "attendeename": [user(&mut r), user(&mut r)],
                       "starttime": secs + 86_400, "endtime": secs + 90_000, "place": "客户公司", "remarks": ""}),
            ),
            Kind::Mixed => {
                let (id, md5, size) = self.media_file(i, 1, 4 << 10, 400 << 10, &mut media);
                (
                    "mixed",
                    json!({"item": [
                        {"type": "text", "content": json!({"content": text(&mut r)}).to_string()},
                        {"type": "image", "content": json!({"md5sum": md5, "filesize": size, "sdkfileid": id}).to_string()},
                    ]}),
                )
            }
            Kind::MeetingVoiceCall => {
                let (id, _md5, _size) = self.media_file(i, 0, 20 << 10, 800 << 10, &mut media);
                // No md5sum field in this type.
                if let Some(last) = media.last_mut() {
                    last.md5_in_message = false;
                }
                m.insert("voiceid".into(), json!(format!("grb{}", hexs(&mut r, 32))));
                (
                    "meeting_voice_call",
                    json!({"endtime": secs + 600, "sdkfileid": id,
                           "demofiledata": [{"filename": "演示.pptx", "demooperator": from, "starttime": secs + 60, "endtime": secs + 300}],
                           "sharescreendata": [{"share": from, "starttime": secs + 300, "endtime": secs + 500}]}),
                )
            }
            Kind::VoipDocShare => {
                let (id, md5, size) = self.media_file(i, 0, 2 << 10, 500 << 10, &mut media);
                m.insert("voipid".into(), json!(format!("gr{}", hexs(&mut r, 32))));
                (
                    "voip_doc_share",
                    json!({"filename": "共享文档.docx", "md5sum": md5, "filesize": size, "sdkfileid": id}),
                )
            }
            Kind::SphFeed => (
                "sphfeed",
                json!({"feed_type": 4, "sph_name": "模拟视频号", "feed_desc": "新品视频"}),
            ),
            Kind::VoipText => (
                "info",
                json!({"callduration": r.gen_range(0..3600), "invitetype": r.gen_range(1..=2)}),
            ),
            Kind::QyDiskFile => ("info", json!({"filename": "年度预算.xlsx"})),
            Kind::Jielong => (
                "jielong",
                json!({"title": "周末加班接龙", "entries": [{"no": 1, "userid": user(&mut r), "text": "参加"}]}),
            ),
            Kind::Note => (
                "note",
                json!({"title": "会议笔记", "content": "要点见附件"}),
            ),
            Kind::Switch => unreachable!("handled above"),
        };
        m.insert(key.into(), payload);
        (self.finish(plan, m), media)
    }

    fn finish(&self, plan: Plan, m: Map<String, Value>) -> String {
        let s = serde_json::to_string(&Value::Object(m)).unwrap_or_default();
        if plan.control_chars {
            raw_control_chars(&s)
        } else {
            s
        }
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

/// Turns JSON escapes of control characters (`\n`, `\u0001`, ...) back into raw bytes, as the real
/// SDK emits them. Escaped backslashes are skipped correctly.
pub(crate) fn raw_control_chars(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|v| *v < 0x20)
                    .and_then(char::from_u32)
                {
                    Some(ctrl) => out.push(ctrl),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::raw_control_chars;

    #[test]
    fn control_escapes_become_raw_and_backslashes_survive() {
        let s = serde_json::json!({"a": "x\u{1}\n\\n\"q\"\u{1f}é"}).to_string();
        let raw = raw_control_chars(&s);
        assert_eq!(raw, "{\"a\":\"x\u{1}\n\\\\n\\\"q\\\"\u{1f}é\"}");
    }
}
