//! Room metadata: records of a room carry the room's name and member count as `groupchat/get` {roomid}
//! answers them, looked up once per room (not per message); `[rooms] enrich = false` turns it off.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

use crate::support::{assert_conserved, read_output, sim, write_config};

fn opts() -> RunOptions {
    RunOptions {
        stream: StreamSel::Corp,
        follow: false,
        progress: false,
    }
}

/// Every record of the corp stream as JSON.
fn records(data: &Path) -> Vec<serde_json::Value> {
    let dir = data.join("wwsimcorp0001").join("corp").join("messages");
    wecom_store::read_lines(&dir)
        .expect("read lines")
        .map(|l| serde_json::from_slice(&l.expect("line")).expect("json"))
        .collect()
}

fn info_requests(server: &wecom_sim::SimServer) -> u64 {
    server
        .stats()
        .requests
        .get("groupchat_info")
        .copied()
        .unwrap_or(0)
}

async fn run_once(seed: u64, extra: &str) -> (wecom_sim::SimServer, tempfile::TempDir, Source) {
    let server = sim(seed, 3_000, wecom_sim::FaultConfig::default()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, extra);
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    wecom_pipeline::run(&cfg, &source, &opts(), CancellationToken::new())
        .await
        .expect("run");
    assert_conserved(&server.truth(), &read_output(&data));
    (server, tmp, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_room_metadata_looked_up_once_per_room() {
    let (server, tmp, source) = run_once(51, "").await;
    let lookups = info_requests(&server);
    let recs = records(&tmp.path().join("data"));

    // roomid → the (name, member_count) of each of its records.
    let mut by_room: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for r in &recs {
        let Some(roomid) = r["roomid"].as_str().filter(|s| !s.is_empty()) else {
            assert!(
                r.get("room").is_none(),
                "a record without roomid has a room: {r}"
            );
            continue;
        };
        let room = &r["room"];
        let name = room["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no room.name: {r}"));
        let count = room["member_count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no room.member_count: {r}"));
        by_room
            .entry(roomid.to_string())
            .or_default()
            .push((name.to_string(), count));
    }
    let room_records: usize = by_room.values().map(Vec::len).sum();
    assert!(by_room.len() >= 2, "the corpus should have rooms");
    assert!(
        room_records > 4 * by_room.len(),
        "too few room messages ({room_records}) to tell a lookup per room from one per message"
    );
    assert!(
        lookups >= 1 && lookups <= by_room.len() as u64,
        "{lookups} groupchat/get info requests for {} rooms ({room_records} room messages)",
        by_room.len()
    );

    // What the simulator says about each room (after the count above: these calls count too).
    for (roomid, seen) in &by_room {
        let info = source.client.room_info(roomid).await.expect("room info");
        let want = (info.roomname.clone(), info.members.len() as u64);
        assert!(!want.0.is_empty(), "{roomid} has no name");
        assert!(
            seen.iter().all(|s| *s == want),
            "{roomid}: records say {:?}, groupchat/get says {want:?}",
            seen.first()
        );
    }
    source.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_false_makes_no_lookups() {
    let (server, tmp, source) = run_once(52, "\n[rooms]\nenrich = false\n").await;
    assert_eq!(info_requests(&server), 0);
    let recs = records(&tmp.path().join("data"));
    assert!(recs
        .iter()
        .any(|r| r["roomid"].as_str().is_some_and(|s| !s.is_empty())));
    assert!(recs.iter().all(|r| r.get("room").is_none()));
    source.shutdown().await;
    server.shutdown().await;
}
