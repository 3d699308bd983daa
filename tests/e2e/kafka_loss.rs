//! Loss paths of the Kafka output, each against the real broker: an oversized message is published slim
//! with its full body in object storage instead of stopping the pipeline; redrive reaches the messages topic,
//! exactly once even after an interrupted redrive; a replay's topics never collide with the live ones.

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::Message;
use wecom_pipeline::StreamSel;
use wecom_sim::{Fate, FaultConfig, SimConfig};

use crate::kafka::{consume_all, header, kafka_section, unique};
use crate::support::{load_and_run, repo_root, set_sink_kind, sim, write_config};

/// seq → how many times it is in `topic`, and the messages themselves.
async fn seq_counts(
    topic: &str,
    expected: usize,
) -> (BTreeMap<u64, u32>, Vec<rdkafka::message::OwnedMessage>) {
    let msgs = consume_all(topic, expected).await;
    let mut count = BTreeMap::new();
    for m in &msgs {
        let seq: u64 = header(m, "seq")
            .and_then(|s| s.parse().ok())
            .expect("seq header");
        *count.entry(seq).or_insert(0) += 1;
    }
    (count, msgs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_published_slim_with_its_full_body_in_object_storage() {
    let cfg = SimConfig {
        seed: 71,
        messages: 200,
        // A 5 MiB text, then a chatrecord nested past 1.5 MiB.
        big_messages: wecom_sim::BigMessagesConfig {
            every: 80,
            markdown_bytes: 0,
            ..Default::default()
        },
        ..SimConfig::default()
    };
    let server = wecom_sim::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("oversized");
    let data = tmp.path().join("data");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &data,
        &kafka_section(&prefix).replace("[kafka]\n", "[kafka]\nmax_record_bytes = 1000000\n"),
    );
    set_sink_kind(&path, "both");
    // The usual broker limit: 1 MB. An oversized message must not stop the run.
    let (_, _, summary) = load_and_run(&path).await;
    let truth = server.truth();
    let big: Vec<u64> = truth
        .iter()
        .filter(|t| t.oversized)
        .map(|t| t.seq)
        .collect();
    assert!(big.len() >= 2, "the corpus should hold oversized items");
    assert_eq!(summary.records + summary.dead_letters, truth.len() as u64);

    let ok = truth.iter().filter(|t| t.fate == Fate::Ok).count();
    let (count, msgs) = seq_counts(&format!("{prefix}.messages"), ok).await;
    assert_eq!(count.len(), ok, "every record seq is in the topic");
    assert!(count.values().all(|n| *n == 1), "no seq twice");

    // The full records, from the local files (never slimmed).
    let mut local: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for line in wecom_store::read_lines(&data.join("wwsimcorp0001/corp/messages")).expect("lines") {
        let line = line.expect("line");
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        local.insert(v["seq"].as_u64().expect("seq"), line);
    }
    let mut slim = 0;
    for m in &msgs {
        let payload = m.payload().expect("payload");
        assert!(payload.len() <= 1_000_000, "a record over the limit");
        let v: serde_json::Value = serde_json::from_slice(payload).expect("json");
        let seq = v["seq"].as_u64().expect("seq");
        let Some(r) = v.get("content_ref") else {
            assert!(!big.contains(&seq) || local[&seq].len() < 1_000_000);
            continue;
        };
        slim += 1;
        // The reference names an object holding exactly the full record, with its hash and size.
        let location = r["location"].as_str().expect("location");
        let file = location.strip_prefix("file://").expect("local store");
        let body = std::fs::read(file).expect("the full body is stored");
        assert_eq!(
            body, local[&seq],
            "seq {seq}: stored body = the full record"
        );
        assert_eq!(r["size"].as_u64(), Some(body.len() as u64));
        let sha = wecom_ledger::manifest::sha256_hex(&body);
        assert_eq!(r["sha256"].as_str(), Some(sha.as_str()));
        // The slim record keeps the envelope and says where the rest is.
        let full: serde_json::Value = serde_json::from_slice(&body).expect("json");
        for k in ["msgid", "conversation_id", "msgtype", "send_time", "from"] {
            assert_eq!(v[k], full[k], "seq {seq}: {k} kept");
        }
        assert_eq!(v["content"]["kind"], "unknown");
        assert!(v["text"]
            .as_str()
            .expect("text")
            .contains("[cut: the full record is"));
        // And it still reads as a record.
        let _: wecom_model::record::Record = serde_json::from_slice(payload).expect("a Record");
    }
    assert!(slim >= 2, "the oversized records went slim ({slim})");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_publishes_to_kafka_exactly_once_even_after_an_interrupted_redrive() {
    let faults = FaultConfig {
        unknown_key_version: 0.05,
        ..FaultConfig::default()
    };
    let server = sim(73, 1_500, faults).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("redrive");
    let data = tmp.path().join("data");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &data,
        &kafka_section(&prefix),
    );
    set_sink_kind(&path, "both");
    let (cfg, _, _) = load_and_run(&path).await;
    let truth = server.truth();
    let late: BTreeSet<u64> = truth
        .iter()
        .filter(|t| t.fate == Fate::UnknownKeyVersion)
        .map(|t| t.seq)
        .collect();
    let ok = truth.iter().filter(|t| t.fate == Fate::Ok).count();
    assert!(!late.is_empty());

    // Where the outputs end before the redrive, as an interrupted redrive's intent would say.
    let stream_dir = data.join("wwsimcorp0001/corp");
    let messages = stream_dir.join("messages");
    let newest = wecom_store::list_segments(&messages)
        .expect("segments")
        .pop()
        .expect("a segment");
    let first: u64 = newest
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| {
            n.strip_prefix("seg-")?
                .strip_suffix(".ndjson")?
                .parse()
                .ok()
        })
        .expect("segment name");
    let len = std::fs::metadata(&newest).expect("segment").len();
    let kcfg = cfg.kafka.clone().expect("kafka config");
    let sink = wecom_kafka::KafkaSink::connect(&kcfg).await.expect("kafka");
    let kafka_end = sink
        .end_offsets(wecom_kafka::LineKind::Record)
        .await
        .expect("end offsets");

    let mut cfg4 = cfg.clone();
    cfg4.key_files.push(wecom_pipeline::config::KeyFile {
        version: 4,
        path: repo_root().join("config/sim-keys/v4.pem"),
    });
    let r = wecom_pipeline::redrive::redrive(&cfg4, &StreamSel::Corp)
        .await
        .expect("redrive");
    assert_eq!(r.recovered, late.len() as u64);

    // The records are in the topic now, marked as redriven, each once.
    let (count, msgs) = seq_counts(&format!("{prefix}.messages"), ok + late.len()).await;
    for s in &late {
        assert_eq!(count.get(s), Some(&1), "redriven seq {s} in kafka once");
    }
    let redriven: BTreeSet<u64> = msgs
        .iter()
        .filter(|m| header(m, "redriven").is_some())
        .filter_map(|m| header(m, "seq")?.parse().ok())
        .collect();
    assert_eq!(
        redriven, late,
        "exactly the redriven records carry the header"
    );

    // A crash after the writes but before the resolved mark: the resolve marks are lost and the intent
    // remains. The next redrive must find both outputs already hold the records.
    std::fs::remove_file(stream_dir.join("deadletter/resolved.ndjson")).expect("resolved");
    let intent = serde_json::json!({
        "seqs": late,
        "local_end": [first, len],
        "kafka_end": kafka_end,
    });
    std::fs::write(
        stream_dir.join("deadletter/redrive-intent.json"),
        serde_json::to_vec(&intent).expect("json"),
    )
    .expect("intent");
    let r = wecom_pipeline::redrive::redrive(&cfg4, &StreamSel::Corp)
        .await
        .expect("redrive after the crash");
    assert_eq!(r.recovered, late.len() as u64);
    assert_eq!(r.already_written, late.len() as u64, "{r:?}");
    assert!(!stream_dir.join("deadletter/redrive-intent.json").exists());

    let (count, _) = seq_counts(&format!("{prefix}.messages"), ok + late.len()).await;
    assert!(count.values().all(|n| *n == 1), "a seq twice in kafka");
    let mut local: BTreeMap<u64, u32> = BTreeMap::new();
    for line in wecom_store::read_lines(&messages).expect("lines") {
        let v: serde_json::Value = serde_json::from_slice(&line.expect("line")).expect("json");
        *local.entry(v["seq"].as_u64().expect("seq")).or_default() += 1;
    }
    assert!(local.values().all(|n| *n == 1), "a seq twice in the files");
    assert_eq!(local.len(), ok + late.len());
    // Resolved again: a third redrive examines nothing.
    let r = wecom_pipeline::redrive::redrive(&cfg4, &StreamSel::Corp)
        .await
        .expect("redrive again");
    assert_eq!(r.examined, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_replay_topic_whose_dead_letters_would_land_in_a_live_topic_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // `--topic wecom` would send the replay's dead letters to `wecom.deadletter`, the live one.
    let kafka = "[kafka]\nbrokers = \"127.0.0.1:9\"\n[kafka.topics]\nmessages = \"live.m\"\nmedia = \"live.x\"\ndeadletter = \"wecom.deadletter\"\n";
    let path = write_config(tmp.path(), "http://127.0.0.1:9", &data, kafka);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["replay", "--config"])
        .arg(&path)
        .args(["--from-seq", "0", "--sink", "kafka", "--topic", "wecom"])
        .output()
        .expect("run the binary");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("wecom.deadletter") && err.contains("topics.deadletter"),
        "the error names the colliding topic and its config key: {err}"
    );
}
