//! Realistic synthetic records for the index bench and the console's tests: Chinese and English business
//! chat of varied length, rooms and 1:1 chats (some with external contacts), pictures, voice, files,
//! forwarded chat records and recalls, over a year of time. Deterministic per seed.
#![allow(dead_code)]

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wecom_model::message::{ChatRecord, ChatRecordItem, File, Image, Revoke, Text, Voice};
use wecom_model::{Content, MediaRef, MediaStatus, Record, RoomSummary, MESSAGE_SCHEMA_ID};

pub const CORP: &str = "wwbenchcorp01";

const ZH: &[&str] = &[
    "好的",
    "收到",
    "明天",
    "上午",
    "下午",
    "开会",
    "请",
    "准时",
    "参加",
    "这个",
    "报价",
    "可以",
    "再",
    "优惠",
    "一点",
    "吗",
    "已经",
    "发货",
    "了",
    "单号",
    "稍后",
    "发你",
    "谢谢",
    "我",
    "跟进",
    "一下",
    "合同",
    "客户",
    "项目",
    "进度",
    "预算",
    "确认",
    "排期",
    "下周一",
    "会议纪要",
    "审批",
    "流程",
    "付款",
    "发票",
    "税点",
    "采购",
    "供应商",
    "库存",
    "物流",
    "退货",
    "售后",
    "质量",
    "问题",
    "方案",
    "修改",
    "版本",
    "上线",
    "测试",
    "需求",
    "评审",
    "老板",
    "同意",
    "不同意",
    "麻烦",
    "尽快",
    "处理",
    "今天",
    "周五",
    "之前",
    "提交",
    "报告",
    "数据",
    "分析",
    "市场",
    "推广",
    "活动",
    "预约",
    "拜访",
    "签约",
    "回款",
    "逾期",
    "提醒",
    "注意",
    "安全",
    "保密",
    "文件",
    "附件",
    "请查收",
    "核对",
    "金额",
    "总计",
    "折扣",
    "样品",
    "规格",
    "型号",
    "价格",
    "单价",
    "数量",
    "交期",
    "加急",
    "延迟",
    "原因",
    "说明",
    "负责人",
    "张经理",
    "李总",
    "王工",
    "财务",
    "法务",
    "人事",
    "北京",
    "上海",
    "深圳",
    "杭州",
    "广州",
    "仓库",
    "门店",
    "渠道",
    "代理商",
    "经销商",
    "返利",
    "政策",
];
const EN: &[&str] = &[
    "please",
    "review",
    "the",
    "contract",
    "before",
    "friday",
    "invoice",
    "total",
    "is",
    "tax",
    "included",
    "meeting",
    "tomorrow",
    "at",
    "ten",
    "confirm",
    "budget",
    "schedule",
    "shipment",
    "delayed",
    "tracking",
    "number",
    "sent",
    "thanks",
    "follow",
    "up",
    "customer",
    "project",
    "status",
    "update",
    "deadline",
    "approved",
    "pending",
    "payment",
    "received",
    "quote",
    "discount",
    "sample",
    "order",
    "delivery",
    "warehouse",
    "report",
    "attached",
    "check",
    "numbers",
    "call",
    "me",
    "when",
    "free",
    "urgent",
];
const PINYIN: &[&str] = &[
    "zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba", "wujiu", "zhengshi", "chenyi",
    "liuer", "yangsan", "huangsi", "zhaowu", "zhouliu", "xuqi", "sunba", "majiu", "zhushi",
    "hulin", "guoyi",
];

/// The text of a message: Chinese (most), English, or mixed, 1 to ~60 words.
pub fn sentence(r: &mut ChaCha8Rng) -> String {
    let kind = r.gen_range(0..10);
    let words = match r.gen_range(0..10) {
        0..=4 => r.gen_range(1..6),
        5..=8 => r.gen_range(6..20),
        _ => r.gen_range(20..60),
    };
    let mut s = String::new();
    for i in 0..words {
        let english = match kind {
            0..=6 => false,
            7..=8 => true,
            _ => r.gen_bool(0.5),
        };
        if english {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(EN.choose(r).unwrap_or(&"ok"));
        } else {
            s.push_str(ZH.choose(r).unwrap_or(&"好"));
            if r.gen_bool(0.12) {
                s.push_str(["，", "。", "！", "？", " "].choose(r).unwrap_or(&"，"));
            }
        }
        if r.gen_bool(0.03) {
            s.push_str(&format!(" {} ", r.gen_range(1..100_000)));
        }
    }
    s
}

struct Conv {
    id: String,
    roomid: Option<String>,
    members: Vec<String>,
    external: bool,
    name: Option<String>,
}

/// Users, externals and conversations of a corpus of `n` records.
struct World {
    convs: Vec<Conv>,
}

fn user(i: usize) -> String {
    let base = PINYIN[i % PINYIN.len()];
    if i < PINYIN.len() {
        base.to_owned()
    } else {
        format!("{base}{}", i / PINYIN.len())
    }
}

impl World {
    fn new(r: &mut ChaCha8Rng, n: u64) -> World {
        let users = (n / 2000).clamp(20, 500) as usize;
        let conversations = (n / 500).clamp(10, 2000) as usize;
        let mut convs = Vec::new();
        for c in 0..conversations {
            if c % 3 == 0 {
                let size = r.gen_range(3..40).min(users);
                let mut members: Vec<String> =
                    (0..size).map(|_| user(r.gen_range(0..users))).collect();
                members.sort();
                members.dedup();
                let external = r.gen_bool(0.2);
                if external {
                    members.push(format!("wmext{c:05}"));
                }
                convs.push(Conv {
                    id: format!("wrbench{c:06}"),
                    roomid: Some(format!("wrbench{c:06}")),
                    members,
                    external,
                    name: Some(format!("{}{}群", ZH.choose(r).unwrap_or(&"项目"), c)),
                });
            } else {
                let a = user(r.gen_range(0..users));
                let external = r.gen_bool(0.25);
                let b = if external {
                    format!("wmext{c:05}")
                } else {
                    user(r.gen_range(0..users))
                };
                let (x, y) = if a <= b { (a, b) } else { (b, a) };
                convs.push(Conv {
                    id: format!("single:{x}|{y}"),
                    roomid: None,
                    members: vec![x, y],
                    external,
                    name: None,
                });
            }
        }
        World { convs }
    }
}

fn media(kind: &str, i: u64, ext: &str, size: u64) -> MediaRef {
    let md5 = format!(
        "{:032x}",
        u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    MediaRef {
        kind: kind.to_owned(),
        sdkfileid: format!("sdk{i}"),
        md5sum: Some(md5.clone()),
        size: Some(size),
        fileext: Some(ext.to_owned()),
        object_key: Some(format!("media/{CORP}/md5/{md5}.{ext}")),
        status: Some(MediaStatus::Pending),
    }
}

/// `n` records, seq 1..=n, times over a year, as the pipeline writes them.
pub fn records(n: u64, seed: u64) -> impl Iterator<Item = Record> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let world = World::new(&mut r, n);
    let start_ms: u64 = 1_735_660_800_000; // 2025-01-01 00:00 +08:00
    let step = (365 * 86_400_000 / n.max(1)).max(1);
    let mut sent: Vec<String> = Vec::new();
    (1..=n).map(move |seq| {
        let conv = &world.convs[r.gen_range(0..world.convs.len())];
        let from = conv.members.choose(&mut r).cloned().unwrap_or_default();
        let to: Vec<String> = conv
            .members
            .iter()
            .filter(|m| **m != from)
            .take(3)
            .cloned()
            .collect();
        let time = start_ms + seq * step + r.gen_range(0..step);
        let msgid = format!(
            "bench{seq}_{}{}",
            r.gen::<u32>(),
            if conv.external { "_external" } else { "" }
        );
        let roll = r.gen_range(0..100);
        let (msgtype, content, media_refs, action) = match roll {
            0..=69 => (
                "text",
                Content::Text(Text {
                    content: sentence(&mut r),
                    ..Default::default()
                }),
                vec![],
                "send",
            ),
            70..=77 => {
                let m = media("image", seq, "jpg", r.gen_range(4_000..600_000));
                (
                    "image",
                    Content::Image(Image {
                        sdkfileid: m.sdkfileid.clone(),
                        md5sum: m.md5sum.clone().unwrap_or_default(),
                        filesize: m.size,
                        ..Default::default()
                    }),
                    vec![m],
                    "send",
                )
            }
            78..=82 => {
                let m = media("voice", seq, "amr", r.gen_range(1_000..60_000));
                (
                    "voice",
                    Content::Voice(Voice {
                        sdkfileid: m.sdkfileid.clone(),
                        md5sum: m.md5sum.clone().unwrap_or_default(),
                        voice_size: m.size,
                        play_length: Some(r.gen_range(1..60)),
                        ..Default::default()
                    }),
                    vec![m],
                    "send",
                )
            }
            83..=86 => {
                let name = format!("{}{}.pdf", ZH.choose(&mut r).unwrap_or(&"报告"), seq % 97);
                let m = media("file", seq, "pdf", r.gen_range(10_000..5_000_000));
                (
                    "file",
                    Content::File(File {
                        filename: name,
                        fileext: "pdf".into(),
                        sdkfileid: m.sdkfileid.clone(),
                        md5sum: m.md5sum.clone().unwrap_or_default(),
                        filesize: m.size,
                        ..Default::default()
                    }),
                    vec![m],
                    "send",
                )
            }
            87..=89 if !sent.is_empty() => {
                let pre = sent[r.gen_range(0..sent.len())].clone();
                (
                    "revoke",
                    Content::Revoke(Revoke {
                        pre_msgid: pre,
                        ..Default::default()
                    }),
                    vec![],
                    "recall",
                )
            }
            _ => {
                let items: Vec<ChatRecordItem> = (0..r.gen_range(2..6))
                    .map(|_| {
                        let text = sentence(&mut r);
                        ChatRecordItem {
                            r#type: "ChatRecordText".into(),
                            msgtime: Some(time / 1000 - 600),
                            content: serde_json::json!({ "content": text }).to_string(),
                            parsed: Some(Box::new(Content::Text(Text {
                                content: text,
                                ..Default::default()
                            }))),
                            ..Default::default()
                        }
                    })
                    .collect();
                (
                    "chatrecord",
                    Content::ChatRecord(ChatRecord {
                        title: "群聊的聊天记录".into(),
                        item: items,
                        ..Default::default()
                    }),
                    vec![],
                    "send",
                )
            }
        };
        if msgtype != "revoke" {
            sent.push(msgid.clone());
            if sent.len() > 1000 {
                sent.remove(0);
            }
        }
        let text = content.plain_text();
        Record {
            schema: MESSAGE_SCHEMA_ID.to_owned(),
            corp_id: CORP.to_owned(),
            stream: "corp".to_owned(),
            seq,
            msgid,
            action: action.to_owned(),
            from: Some(from),
            to,
            roomid: conv.roomid.clone(),
            conversation_id: conv.id.clone(),
            send_time: wecom_model::record::format_msgtime(time),
            msgtime_ms: Some(time),
            msgtype: Some(msgtype.to_owned()),
            external: conv.external,
            updown_stream: false,
            content,
            media: media_refs,
            text,
            key_version: 1,
            room: conv.name.as_ref().map(|name| RoomSummary {
                name: name.clone(),
                member_count: conv.members.len() as u32,
            }),
            content_ref: None,
            recalls: None,
            consent: None,
        }
    })
}
