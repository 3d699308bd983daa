//! The transcript cursor: paging with `since` never misses nor repeats a message, even while new records
//! arrive (new lines, a new segment, a room stream that repeats corp messages).

use std::collections::HashSet;

use crate::common::{get_json, query, seg, wait_records, Env, API_TOKEN};
use crate::synth;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_the_cursor_never_misses_or_repeats_while_records_arrive() {
    let env = Env::new(synth::CORP);
    let all: Vec<wecom_model::Record> = synth::records(1200, 5).collect();
    // The busiest conversation is the one whose transcript we page through.
    let mut counts = std::collections::HashMap::new();
    for r in &all {
        *counts.entry(r.conversation_id.clone()).or_insert(0) += 1;
    }
    let conv = counts
        .iter()
        .max_by_key(|(id, n)| (**n, (*id).clone()))
        .map(|(id, _)| id.clone())
        .expect("a conversation");

    env.append("corp", 1, &all[..400]);
    let console = env.start().await;
    wait_records(&console, 400).await;

    let mut seen: Vec<String> = Vec::new();
    let mut since: Option<String> = None;
    let mut written = 400;
    let mut quiet_rounds = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let status = console.archive().status();
        assert!(
            std::time::Instant::now() < deadline && status.last_error.is_none(),
            "paging did not settle: {status:?}, {} seen",
            seen.len()
        );
        let path = match &since {
            None => format!("/api/conversations/{}/transcript?limit=7", seg(&conv)),
            Some(c) => format!(
                "/api/conversations/{}/transcript?limit=7&since={}",
                seg(&conv),
                query(c)
            ),
        };
        let page = get_json(&console, &path, API_TOKEN).await;
        let msgs = page["messages"].as_array().expect("messages");
        for m in msgs {
            seen.push(m["msgid"].as_str().expect("msgid").to_owned());
        }
        since = Some(page["next_cursor"].as_str().expect("cursor").to_owned());
        // Keep writing while paging: more lines in segment 1, then a new segment, then a room stream
        // that repeats messages the corp stream already had.
        if written < all.len() {
            let next = (written + 60).min(all.len());
            let segment = if written < 800 { 1 } else { 801 };
            env.append("corp", segment, &all[written..next]);
            written = next;
            if written == all.len() {
                env.append("room-wrrepeat", 1, &all[100..160]);
            }
        } else if msgs.is_empty() && !page["has_more"].as_bool().expect("has_more") {
            // Everything written is indexed and nothing new came twice in a row: done.
            // The room stream is found within seconds; its 60 repeats must not come back as new.
            let s = console.archive().status();
            if s.records == all.len() as u64 && s.duplicates_skipped == 60 {
                quiet_rounds += 1;
                if quiet_rounds == 2 {
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }

    let expected: Vec<String> = all
        .iter()
        .filter(|r| r.conversation_id == conv)
        .map(|r| r.msgid.clone())
        .collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a message was returned twice");
    assert_eq!(
        seen, expected,
        "pages must hold every message of the conversation, in order"
    );
    assert_eq!(
        console.archive().status().duplicates_skipped,
        60,
        "the room stream's repeats are recognized"
    );
    console.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_after_the_committed_position() {
    let env = Env::new(synth::CORP);
    let all: Vec<wecom_model::Record> = synth::records(500, 9).collect();
    env.append("corp", 1, &all[..300]);
    let console = env.start().await;
    wait_records(&console, 300).await;
    let epoch = console.archive().epoch().to_owned();
    console.stop().await.expect("stops");

    env.append("corp", 1, &all[300..]);
    let console = env.start().await;
    wait_records(&console, 500).await;
    assert_eq!(console.archive().epoch(), epoch, "same index, same epoch");
    let status = get_json(&console, "/api/status", API_TOKEN).await;
    assert_eq!(status["records"], 500);
    let convs = get_json(&console, "/api/conversations?limit=1000", API_TOKEN).await;
    let sum: u64 = convs["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["messages"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        sum, 500,
        "the conversation list counts every record once after a restart"
    );
    console.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_of_another_index_is_refused() {
    let env = Env::new(synth::CORP);
    let all: Vec<wecom_model::Record> = synth::records(50, 3).collect();
    env.append("corp", 1, &all);
    let console = env.start().await;
    wait_records(&console, 50).await;
    let conv = all[0].conversation_id.clone();
    let page = get_json(
        &console,
        &format!("/api/conversations/{}/transcript?limit=2", seg(&conv)),
        API_TOKEN,
    )
    .await;
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    console.stop().await.expect("stops");
    std::fs::remove_dir_all(env.data().join("console/index")).expect("delete the index");
    let console = env.start().await;
    wait_records(&console, 50).await;
    let r = crate::common::client()
        .get(crate::common::url(
            &console,
            &format!(
                "/api/conversations/{}/transcript?since={}",
                seg(&conv),
                query(&cursor)
            ),
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 410, "a rebuilt index numbers records anew");
    console.stop().await.expect("stops");
}
