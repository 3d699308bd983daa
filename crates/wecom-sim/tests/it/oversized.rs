//! Oversized items (`[big_messages]`) and items carrying the stand-in SDK's abort marker: both are
//! valid, decryptable items that the truth marks.

use serde_json::Value;
use wecom_sim::{BigMessagesConfig, Fate, SDK_CRASH_MARKER};

use crate::common::*;

/// (depth of chatrecords nested as JSON strings, sdkfileids found at any depth).
fn nested_chatrecord(payload: &Value) -> (usize, Vec<String>) {
    let mut deepest = 0;
    let mut ids = Vec::new();
    for item in payload["item"].as_array().unwrap() {
        let content: Value = serde_json::from_str(item["content"].as_str().unwrap()).unwrap();
        if let Some(id) = content["sdkfileid"].as_str() {
            ids.push(id.to_owned());
        }
        if item["type"] == "chatrecord" {
            let (d, inner) = nested_chatrecord(&content);
            deepest = deepest.max(d + 1);
            ids.extend(inner);
        }
    }
    (deepest, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_items_are_valid_and_marked() {
    let mut cfg = config(41, 240);
    cfg.big_messages = BigMessagesConfig {
        every: 40,
        text_bytes: 5 * 1024 * 1024,
        chatrecord_bytes: 1_200_000,
        markdown_bytes: 2 * 1024 * 1024,
    };
    let sim = serve(cfg).await;
    let truth = sim.truth();
    let messages = decrypted_messages(&sim).await;
    let big: Vec<_> = truth.iter().filter(|t| t.oversized).collect();
    assert!(big.len() >= 5, "{} oversized", big.len());
    let mut kinds = std::collections::BTreeSet::new();
    for t in &big {
        let m = &messages[&t.seq];
        let plaintext = m.to_string().len();
        assert!(plaintext > 1_000_000, "seq {} is {plaintext} bytes", t.seq);
        let msgtype = t.msgtype.clone().unwrap();
        match msgtype.as_str() {
            "text" => assert!(m["text"]["content"].as_str().unwrap().len() >= 5 * 1024 * 1024),
            "markdown" => assert!(m["info"]["content"].as_str().unwrap().len() >= 2 * 1024 * 1024),
            "chatrecord" => {
                let (depth, ids) = nested_chatrecord(&m["chatrecord"]);
                assert!(depth >= 5, "nesting depth {depth}");
                let want: Vec<String> = t.media.iter().map(|f| f.sdkfileid.clone()).collect();
                assert_eq!(ids, want, "the innermost picture is the item's media");
            }
            other => panic!("oversized {other}"),
        }
        kinds.insert(msgtype);
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    // Everything else stays small.
    for t in truth.iter().filter(|t| !t.oversized && t.fate == Fate::Ok) {
        assert!(
            messages[&t.seq].to_string().len() < 100_000,
            "seq {}",
            t.seq
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_make_no_oversized_and_no_crash_items() {
    let cfg = config(42, 400);
    let plain = serve(cfg.clone()).await;
    let truth = plain.truth();
    assert!(truth.iter().all(|t| !t.oversized && !t.sdk_crash));
    // Turning the options on changes only the items they pick.
    let mut on = cfg.clone();
    on.big_messages.every = 100;
    on.big_messages.text_bytes = 2_000_000;
    let with = serve(on).await;
    let truth_on = with.truth();
    // Items that refer to others (a recall names a msgid, consent flips with the previous answer)
    // may follow a picked item, and a picked item may move into or out of a room (shifting that
    // room's later seqs); nothing else changes.
    let refers = |t: &wecom_sim::TruthItem| {
        matches!(t.msgtype.as_deref(), Some("revoke" | "agree" | "disagree"))
    };
    let without_room_seq = |t: &wecom_sim::TruthItem| wecom_sim::TruthItem {
        room_seq: None,
        ..t.clone()
    };
    let changed: Vec<u64> = truth
        .iter()
        .zip(&truth_on)
        .filter(|(a, b)| without_room_seq(a) != without_room_seq(b) && !refers(a) && !refers(b))
        .map(|(a, _)| a.seq)
        .collect();
    let marked: Vec<u64> = truth_on
        .iter()
        .filter(|t| t.oversized)
        .map(|t| t.seq)
        .collect();
    assert!(!marked.is_empty());
    assert_eq!(changed, marked);
    plain.shutdown().await;
    with.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_marker_sits_in_the_marked_texts_only() {
    let mut cfg = config(43, 1500);
    cfg.faults.sdk_crash_marker = 0.05;
    let sim = serve(cfg).await;
    let truth = sim.truth();
    let messages = decrypted_messages(&sim).await;
    let mut marked = 0;
    for t in truth.iter().filter(|t| t.fate == Fate::Ok) {
        let has = messages[&t.seq].to_string().contains(SDK_CRASH_MARKER);
        assert_eq!(has, t.sdk_crash, "seq {}", t.seq);
        if t.sdk_crash {
            assert_eq!(t.msgtype.as_deref(), Some("text"));
            marked += 1;
        }
    }
    assert!(marked > 5, "{marked} marked");
    sim.shutdown().await;
}
