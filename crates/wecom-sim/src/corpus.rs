//! The corpus: per-item metadata (seq, msgtime, plan) kept small, and each item's plaintext JSON and
//! ciphertext rebuilt on demand as a pure function of (seed, index).
//!
//! Only the metadata vector, the per-room index and the consent log grow with the corpus; message
//! bodies, ciphertexts and media bytes are never stored (media md5s are cached per file, 16 bytes each).
//! Bodies are built in `body.rs`, media sizes and md5s in `media_files.rs`, the consent answers in
//! `agree.rs`, the ground truth in `ground_truth.rs`; the msgtype mix is in `kind.rs`.

mod agree;
mod body;
mod ground_truth;
mod kind;
mod media_files;

pub use kind::all_msgtypes;
use kind::{Kind, FORCE_AT, FORCE_EVERY, KINDS};

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
use crate::rng::{self, fast_rng, hit, mix};
use crate::truth::{AgreeStatus, Fate};
use crate::SimError;

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
