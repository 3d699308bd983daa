//! Search results against a brute-force scan of the records, with a matcher written here from the rule
//! the console documents (not from its code): a term's runs (CJK runs, and runs of other letters and
//! digits, lowercased, full-width forms read as ASCII) appear one after another in the text's runs; a lone CJK run matches inside any
//! CJK run, the first and last of several may be the end and the start of longer CJK runs, every other
//! run must be a whole run.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wecom_model::Record;

use crate::common::{get_json, query, wait_records, Env, API_TOKEN, REVIEWER_TOKEN};
use crate::synth;

fn cjk(c: char) -> bool {
    matches!(u32::from(c), 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

/// (is CJK, text) runs.
fn runs(text: &str) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut cur: Option<(bool, String)> = None;
    for c in text.chars() {
        // Full-width ASCII forms are read as ASCII.
        let c = match u32::from(c) {
            v @ 0xFF01..=0xFF5E => char::from_u32(v - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        let class = if cjk(c) {
            Some(true)
        } else if c.is_alphanumeric() {
            Some(false)
        } else {
            None
        };
        match (class, cur.as_mut()) {
            (Some(k), Some((ck, s))) if *ck == k => s.extend(c.to_lowercase()),
            (Some(k), _) => {
                if let Some(done) = cur.take() {
                    out.push(done);
                }
                cur = Some((k, c.to_lowercase().collect()));
            }
            (None, _) => {
                if let Some(done) = cur.take() {
                    out.push(done);
                }
            }
        }
    }
    out.extend(cur);
    out
}

fn term_matches(text_runs: &[(bool, String)], term: &str) -> bool {
    let q = runs(term);
    if q.is_empty() {
        return true;
    }
    let k = q.len();
    (0..text_runs.len()).any(|j| {
        if j + k > text_runs.len() {
            return false;
        }
        q.iter().enumerate().all(|(i, (qcjk, qs))| {
            let (tcjk, ts) = &text_runs[j + i];
            if qcjk != tcjk {
                return false;
            }
            if !qcjk {
                return ts == qs;
            }
            match (i == 0, i == k - 1) {
                (true, true) => ts.contains(qs.as_str()),
                (true, false) => ts.ends_with(qs.as_str()),
                (false, true) => ts.starts_with(qs.as_str()),
                (false, false) => ts == qs,
            }
        })
    })
}

/// What the query should find: every positive term matches, no negated one does.
fn brute_force(records: &[Record], q: &str, sender: Option<&str>) -> BTreeSet<String> {
    let terms: Vec<(bool, String)> = q
        .split_whitespace()
        .map(|t| match t.strip_prefix('-') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, t.trim_matches('"').to_owned()),
        })
        .collect();
    records
        .iter()
        .filter(|r| sender.is_none_or(|s| r.from.as_deref() == Some(s)))
        .filter(|r| {
            let tr = runs(&r.text);
            terms.iter().all(|(neg, t)| term_matches(&tr, t) != *neg)
        })
        .map(|r| r.msgid.clone())
        .collect()
}

async fn api_search(c: &wecom_console::Console, q: &str, extra: &str) -> (BTreeSet<String>, u64) {
    let mut found = BTreeSet::new();
    let mut before: Option<String> = None;
    let total;
    loop {
        let mut path = format!("/api/search?limit=200&q={}{extra}", query(q));
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let page = get_json(c, &path, API_TOKEN).await;
        let page_total = page["total"].as_u64().expect("total");
        for r in page["results"].as_array().expect("results") {
            assert!(
                found.insert(r["msgid"].as_str().expect("msgid").to_owned()),
                "a result appeared on two pages"
            );
            // Every highlight covers text that the query can match.
            let text: Vec<char> = r["full_text"].as_str().expect("text").chars().collect();
            for h in r["highlights"].as_array().expect("highlights") {
                let (a, b) = (
                    h[0].as_u64().expect("a") as usize,
                    h[1].as_u64().expect("b") as usize,
                );
                assert!(
                    a < b && b <= text.len(),
                    "highlight {a}..{b} inside the text"
                );
            }
        }
        match page["next_before"].as_str() {
            Some(b) => before = Some(b.to_owned()),
            None => {
                total = page_total;
                break;
            }
        }
    }
    (found, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_match_a_brute_force_scan() {
    let env = Env::new(synth::CORP);
    let mut records: Vec<Record> = synth::records(3000, 11).collect();
    // A few texts that exercise the edges of the rule.
    let edge = [
        "好的，收到",
        "好的收到了",
        "这个报价单可以再优惠一点吗？",
        "Please review the contract before Friday.",
        "REVIEWER notes: reviewed",
        "报价ok",
        "报价 OK 吗",
        "ＯＫ，全角",
        "2024年度报告",
        "新年2024快乐",
    ];
    for (i, t) in edge.iter().enumerate() {
        let r = &mut records[i * 7];
        r.content = wecom_model::Content::Text(wecom_model::message::Text {
            content: (*t).to_owned(),
            ..Default::default()
        });
        r.msgtype = Some("text".into());
        r.media.clear();
        r.text = (*t).to_owned();
    }
    env.append("corp", 1, &records);
    let console = env.start().await;
    wait_records(&console, records.len() as u64).await;

    let mut queries: Vec<String> = [
        "报价",
        "收到",
        "的收",
        "好的，收到",
        "\"好的，收到\"",
        "review",
        "Review",
        "reviewer",
        "OK",
        "ok 报价",
        "报价ok",
        "年2024",
        "2024年",
        "年",
        "ＯＫ",
        "contract friday",
        "报价 -优惠",
        "-收到 好的",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut r = ChaCha8Rng::seed_from_u64(99);
    for _ in 0..40 {
        let text: Vec<char> = records
            .choose(&mut r)
            .expect("record")
            .text
            .chars()
            .collect();
        if text.len() < 5 {
            continue;
        }
        let len = r.gen_range(1..5);
        let start = r.gen_range(0..text.len() - len);
        let q: String = text[start..start + len].iter().collect();
        if q.trim().is_empty() || q.contains('"') {
            continue;
        }
        queries.push(q.replace(char::is_whitespace, ""));
    }
    for q in &queries {
        if q.split_whitespace().all(|t| runs(t).is_empty()) {
            continue; // nothing searchable: the API refuses an empty query
        }
        let want = brute_force(&records, q, None);
        let (got, total) = api_search(&console, q, "").await;
        assert_eq!(total as usize, want.len(), "total for {q:?}");
        assert_eq!(got, want, "results for {q:?}");
    }

    // With a filter.
    let sender = records[0].from.clone().expect("sender");
    let want = brute_force(&records, "报价", Some(&sender));
    let (got, _) = api_search(&console, "报价", &format!("&sender={}", query(&sender))).await;
    assert_eq!(got, want, "sender filter");

    // The page shows the hit marked.
    let page = crate::common::client()
        .get(crate::common::url(
            &console,
            &format!("/search?q={}", query("报价单")),
        ))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("search page");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("这个<mark>报价单</mark>可以"),
        "highlighted hit in the page"
    );
    console.stop().await.expect("stops");
}
