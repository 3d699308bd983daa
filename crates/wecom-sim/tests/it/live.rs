//! Live traffic: items appear one at a time, each servable from its msgtime on.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mode_appends_items() {
    let mut cfg = config(4, 20);
    cfg.live_rate_per_sec = 50.0;
    let sim = serve(cfg).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = sim.truth().len();
    assert!(n > 20, "live items visible: {n}");
    let http = client();
    let served = walk(&http, &sim.base_url(), 1000).await;
    assert!(served.len() >= n);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_items_appear_one_at_a_time_from_their_msgtime_on() {
    let rate = 200.0;
    let mut cfg = config(5, 50);
    cfg.live_rate_per_sec = rate;
    let sim = serve(cfg).await;
    let http = client();
    let base = sim.base_url();
    let mut token = String::new();
    let mut seq = 0;
    // (seq, local receive time ms) of every item, first sighting.
    let mut received = Vec::new();
    let until = now_ms() + 1500;
    while now_ms() < until {
        let page = call(
            &http,
            &base,
            &mut token,
            "/cgi-bin/msgaudit/get_chat_data",
            &serde_json::json!({"seq": seq, "limit": 1000}),
        )
        .await;
        let at = now_ms();
        for item in page["chatdata"].as_array().unwrap() {
            seq = item["seq"].as_u64().unwrap();
            received.push((seq, at));
        }
    }
    let stats = sim.stats();
    assert!(stats.visible_items > 50);
    assert!(stats.newest_seq >= seq);
    assert!(stats.newest_msgtime_ms <= stats.now_ms);
    let truth = sim.truth();
    let msgtime: std::collections::HashMap<u64, i64> =
        truth.iter().map(|t| (t.seq, t.msgtime_ms)).collect();
    let live: Vec<_> = received
        .iter()
        .filter(|(s, _)| *s > truth[49].seq)
        .collect();
    assert!(live.len() > 100, "{} live items received", live.len());
    for (s, at) in &live {
        assert!(msgtime[s] <= *at, "seq {s} served before its msgtime");
    }
    // Continuous, not in bursts: consecutive live items are 1000 / rate ms apart.
    for w in truth[50..].windows(2) {
        let step = w[1].msgtime_ms - w[0].msgtime_ms;
        assert!((4..=6).contains(&step), "step {step} ms");
    }
    // The encrypted message carries the same msgtime.
    let messages = decrypted_messages_upto(&sim, live[20].0).await;
    for (s, _) in live.iter().take(20) {
        let m = &messages[s];
        let t = m.get("msgtime").or(m.get("time")).and_then(|v| v.as_i64());
        assert_eq!(t, Some(msgtime[s]), "seq {s}");
    }
    sim.shutdown().await;
}
