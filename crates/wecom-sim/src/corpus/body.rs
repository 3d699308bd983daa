//! Message bodies: the plaintext JSON of an item, rebuilt on demand from its plan, as the SDK's
//! `DecryptData` would return it (including its quirks: raw control characters, payload keys shared
//! between msgtypes, JSON inside strings).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::{Conv, Corpus, Kind, Meta, Plan};
use crate::config::SDK_CRASH_MARKER;
use crate::media;
use crate::picture;
use crate::rng::{self, fast_rng, mix};
use crate::truth::TruthMedia;

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
    /// The plaintext message JSON of item `i` (exactly the bytes that get encrypted) and its media.
    pub(super) fn message(&self, i: u64, items: &[Meta]) -> (String, Vec<TruthMedia>) {
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
                if plan.oversized {
                    content = long_text(&content, self.big_messages.text_bytes);
                }
                if plan.sdk_crash {
                    content = format!("{content} {SDK_CRASH_MARKER}");
                }
                if plan.control_chars {
                    content = format!("{content}\u{1}第二段\n\u{7}\tend\u{1f}\r");
                }
                ("text", json!({ "content": content }))
            }
            Kind::Image => {
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 0, 4 << 10, 600 << 10, &mut media);
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
                // Sent by the external contact whose consent it records.
                let ext = from.clone();
                if plan.kind == Kind::Agree {
                    ("agree", json!({"userid": ext, "agree_time": t}))
                } else {
                    ("disagree", json!({"userid": ext, "disagree_time": t}))
                }
            }
            Kind::Voice => {
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 0, 1 << 10, 80 << 10, &mut media);
                // 50 frames of 20 ms per second.
                let play_length = media::amr_frames(size).div_ceil(50).max(1);
                (
                    "voice",
                    json!({"md5sum": md5, "voice_size": size, "play_length": play_length, "sdkfileid": id}),
                )
            }
            Kind::Video => {
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 0, 100 << 10, 2 << 20, &mut media);
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
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 0, 2 << 10, 300 << 10, &mut media);
                let (w, h) = picture::EMOTION_SIZE;
                (
                    "emotion",
                    json!({"type": self.emotion_type(i), "width": w, "height": h, "imagesize": size, "sdkfileid": id, "md5sum": md5}),
                )
            }
            Kind::File => {
                let exts = ["pdf", "docx", "xlsx", "zip", "txt", "pptx"];
                let ext = exts[r.gen_range(0..exts.len())];
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 0, 1 << 10, 3 << 20, &mut media);
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
            Kind::ChatRecord if plan.oversized => {
                ("chatrecord", self.nested_chatrecord(i, secs, &mut media))
            }
            Kind::ChatRecord => {
                let (fid, fmd5, fsize) =
                    self.media_file(i, plan.kind, 1, 2 << 10, 200 << 10, &mut media);
                let mut items_v = vec![
                    json!({"type": "ChatRecordText", "msgtime": secs - 600, "content": json!({"content": text(&mut r)}).to_string(), "from_chatroom": false}),
                    json!({"type": "ChatRecordImage", "msgtime": secs - 500, "content": json!({"md5sum": fmd5, "filesize": fsize, "sdkfileid": fid}).to_string(), "from_chatroom": true}),
                ];
                if r.gen_bool(0.5) {
                    let (id2, md52, size2) =
                        self.media_file(i, plan.kind, 2, 1 << 10, 500 << 10, &mut media);
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
            Kind::Markdown if plan.oversized => (
                "info",
                json!({"content": long_markdown(self.big_messages.markdown_bytes)}),
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
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 1, 4 << 10, 400 << 10, &mut media);
                (
                    "mixed",
                    json!({"item": [
                        {"type": "text", "content": json!({"content": text(&mut r)}).to_string()},
                        {"type": "image", "content": json!({"md5sum": md5, "filesize": size, "sdkfileid": id}).to_string()},
                    ]}),
                )
            }
            Kind::MeetingVoiceCall => {
                let (id, _md5, _size) =
                    self.media_file(i, plan.kind, 0, 20 << 10, 800 << 10, &mut media);
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
                let (id, md5, size) =
                    self.media_file(i, plan.kind, 0, 2 << 10, 500 << 10, &mut media);
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

impl Corpus {
    /// An oversized chatrecord: each level holds a few text records and the next level as a
    /// `chatrecord` record whose content is that level's JSON in a string (so every level escapes the
    /// ones inside it again); the innermost level holds a picture. Levels and texts grow until the
    /// payload is at least `chatrecord_bytes`.
    fn nested_chatrecord(&self, i: u64, secs: i64, media: &mut Vec<TruthMedia>) -> Value {
        let target = usize::try_from(self.big_messages.chatrecord_bytes).unwrap_or(usize::MAX);
        let mut picture = Vec::new();
        let (id, md5, size) =
            self.media_file(i, Kind::ChatRecord, 1, 2 << 10, 200 << 10, &mut picture);
        media.extend(picture);
        let image = json!({"type": "ChatRecordImage", "msgtime": secs - 900, "content": json!({"md5sum": md5, "filesize": size, "sdkfileid": id}).to_string(), "from_chatroom": false});
        let mut texts = 4usize;
        loop {
            let mut level = json!({"title": "聊天记录 0", "item": [image.clone()]});
            for depth in 1..=NEST_LEVELS {
                let mut items: Vec<Value> = (0..texts)
                    .map(|k| {
                        let line = TEXTS[(k + depth) % TEXTS.len()];
                        json!({"type": "ChatRecordText", "msgtime": secs - 60 * (depth as i64) - k as i64, "content": json!({"content": format!("{line} ({depth}.{k})")}).to_string(), "from_chatroom": k % 2 == 0})
                    })
                    .collect();
                items.push(json!({"type": "chatrecord", "msgtime": secs - 60 * depth as i64, "content": level.to_string(), "from_chatroom": true}));
                level = json!({"title": format!("聊天记录 {depth}"), "item": items});
            }
            if level.to_string().len() >= target || texts >= target {
                return level;
            }
            texts *= 2;
        }
    }
}

/// Levels of an oversized chatrecord below its top level.
const NEST_LEVELS: usize = 6;

/// `first` then numbered lines until the text is at least `bytes` long.
fn long_text(first: &str, bytes: u64) -> String {
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    let mut out = String::with_capacity(bytes + 256);
    out.push_str(first);
    let mut k = 0usize;
    while out.len() < bytes {
        out.push_str(&format!("\n{k:07} {}", TEXTS[k % TEXTS.len()]));
        k += 1;
    }
    out
}

/// A markdown document of sections and lists at least `bytes` long.
fn long_markdown(bytes: u64) -> String {
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    let mut out = String::with_capacity(bytes + 256);
    out.push_str("# 发布通知（完整版）\n");
    let mut k = 0usize;
    while out.len() < bytes {
        if k.is_multiple_of(20) {
            out.push_str(&format!("\n## 第 {} 节\n", k / 20 + 1));
        }
        out.push_str(&format!("- **{k:06}** {}\n", TEXTS[k % TEXTS.len()]));
        k += 1;
    }
    out
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
