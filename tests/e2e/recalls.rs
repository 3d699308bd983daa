//! Recall linkage: every `revoke` record names the seq and conversation of the message it recalls, and a
//! recall event links the two, in the local file and in the Kafka topic; a replay that starts after the
//! original says it does not know it instead of guessing.

use std::collections::{BTreeMap, HashMap};

use tokio_util::sync::CancellationToken;
use wecom_sim::Fate;

use crate::kafka::{consume_all, header, kafka_section, unique};
use crate::support::{load_and_run, set_sink_kind, sim, write_config};

fn records(dir: &std::path::Path) -> BTreeMap<u64, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in wecom_store::read_lines(dir).expect("lines") {
        let v: serde_json::Value = serde_json::from_slice(&line.expect("line")).expect("json");
        out.insert(v["seq"].as_u64().expect("seq"), v);
    }
    out
}

fn events(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("recall events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_records_and_recall_events_link_the_recalled_message_both_ways() {
    let faults = wecom_sim::FaultConfig {
        corrupt_ciphertext: 0.01,
        ..wecom_sim::FaultConfig::default()
    };
    let server = sim(83, 2_000, faults).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("recalls");
    let data = tmp.path().join("data");
    let kafka = format!("{}recalls = \"{prefix}.recalls\"\n", kafka_section(&prefix));
    let path = write_config(tmp.path(), &server.base_url(), &data, &kafka);
    set_sink_kind(&path, "both");
    let (cfg, source, _) = load_and_run(&path).await;

    let truth = server.truth();
    // Only records are indexed: a recalled item that was dead-lettered is not found.
    let record_of: HashMap<&str, u64> = truth
        .iter()
        .filter(|t| t.fate == Fate::Ok)
        .map(|t| (t.msgid.as_str(), t.seq))
        .collect();
    let stream = data.join("wwsimcorp0001/corp");
    let recs = records(&stream.join("messages"));
    let revokes: Vec<&serde_json::Value> =
        recs.values().filter(|r| r["msgtype"] == "revoke").collect();
    assert!(revokes.len() >= 5, "the corpus should hold revokes");
    let mut found = 0;
    for r in &revokes {
        let pre = r["content"]["data"]["pre_msgid"]
            .as_str()
            .expect("pre_msgid");
        let link = &r["recalls"];
        assert_eq!(link["msgid"], pre, "seq {}", r["seq"]);
        match record_of.get(pre) {
            Some(seq) => {
                found += 1;
                assert_eq!(link["seq"].as_u64(), Some(*seq), "revoke seq {}", r["seq"]);
                assert_eq!(
                    link["conversation_id"], recs[seq]["conversation_id"],
                    "the original's conversation"
                );
                // The original is not rewritten (unless it is a revoke itself, with a link of its own).
                if recs[seq]["msgtype"] != "revoke" {
                    assert!(recs[seq].get("recalls").is_none(), "seq {seq} rewritten");
                }
            }
            None => assert!(link["seq"].is_null(), "seq {}: {link}", r["seq"]),
        }
    }
    assert!(found >= 5, "most recalled messages are records ({found})");

    // One local event per revoke, linking both ways.
    let local = events(&stream.join("recalls/recalls.ndjson"));
    assert_eq!(local.len(), revokes.len());
    for e in &local {
        let revoke = &recs[&e["revoke_seq"].as_u64().expect("revoke_seq")];
        assert_eq!(e["revoke_msgid"], revoke["msgid"]);
        assert_eq!(e["original_seq"], revoke["recalls"]["seq"]);
        assert_eq!(e["found"], !revoke["recalls"]["seq"].is_null());
    }
    // And the same events in the topic.
    let msgs = consume_all(&format!("{prefix}.recalls"), revokes.len()).await;
    let mut in_topic: Vec<u64> = msgs
        .iter()
        .map(|m| {
            assert_eq!(header(m, "schema"), Some("wecom-archive.recall.v1"));
            header(m, "seq").and_then(|s| s.parse().ok()).expect("seq")
        })
        .collect();
    in_topic.sort_unstable();
    let mut want: Vec<u64> = local
        .iter()
        .filter_map(|e| e["revoke_seq"].as_u64())
        .collect();
    want.sort_unstable();
    assert_eq!(in_topic, want, "recall events in kafka");

    // A replay from the middle has an index of its own: a revoke of an earlier message says it was not
    // found instead of guessing.
    let from = 1_000u64;
    let req = wecom_pipeline::replay::ReplayRequest {
        from_seq: from,
        to_seq: None,
        rooms: Vec::new(),
        from_archive: true,
        name: Some("recalls".into()),
        out_dir: None,
        kafka_topic: None,
        progress: false,
    };
    let summary = wecom_pipeline::replay::replay(&cfg, &source, &req, CancellationToken::new())
        .await
        .expect("replay");
    let replayed = records(&summary.dir.join("corp/messages"));
    let mut not_found = 0;
    for r in replayed.values().filter(|r| r["msgtype"] == "revoke") {
        let pre = r["content"]["data"]["pre_msgid"]
            .as_str()
            .expect("pre_msgid");
        match record_of.get(pre) {
            Some(seq) if *seq >= from => assert_eq!(r["recalls"]["seq"].as_u64(), Some(*seq)),
            _ => {
                not_found += 1;
                assert!(r["recalls"]["seq"].is_null(), "{r}");
            }
        }
    }
    assert!(
        not_found > 0,
        "some revokes in the replay recall earlier messages"
    );
    source.shutdown().await;
    server.shutdown().await;
}
