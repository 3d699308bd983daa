//! The pipeline publishing to a real Kafka-protocol broker (tansu, started by scripts/kafka-broker.sh), read
//! back with a plain consumer and checked against the simulator's ground truth — once straight through, once
//! with the binary SIGKILLed at random moments.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message};
use tokio_util::sync::CancellationToken;
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};
use wecom_sim::{Fate, TruthItem};

use crate::support::{fetch_faults, sim, write_config};

pub(crate) fn brokers() -> String {
    std::env::var("WECOM_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "WECOM_TEST_KAFKA_BROKERS is not set: the Kafka tests need a real broker; \
             run `eval \"$(scripts/kafka-broker.sh start)\"` first (scripts/test.sh does)"
        )
    })
}

pub(crate) fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("e2e-{tag}-{}-{nanos:x}", std::process::id())
}

pub(crate) fn kafka_section(topic_prefix: &str) -> String {
    format!(
        r#"
[kafka]
brokers = "{}"
partitions = 4
message_timeout_ms = 30000

[kafka.topics]
messages = "{topic_prefix}.messages"
media = "{topic_prefix}.media"
deadletter = "{topic_prefix}.deadletter"
"#,
        brokers()
    )
}

pub(crate) fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Every record of `topic`, read from the beginning until `expected` arrived and a quiet second passed.
pub(crate) async fn consume_all(topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected && Instant::now() < deadline {
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
            out.push(r.expect("consume").detach());
        }
    }
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
        out.push(m.detach());
    }
    out
}

/// Every ok seq exactly once in the messages topic, every failing one exactly once in the dead-letter
/// topic, and within each conversation (one partition) the records in seq order.
async fn assert_exactly_once_in_kafka(prefix: &str, truth: &[TruthItem]) {
    let ok: Vec<&TruthItem> = truth.iter().filter(|t| t.fate == Fate::Ok).collect();
    let dead = truth.len() - ok.len();
    let msgs = consume_all(&format!("{prefix}.messages"), ok.len()).await;
    let mut count: BTreeMap<u64, u32> = BTreeMap::new();
    let mut by_key: BTreeMap<(String, i32), Vec<(i64, u64)>> = BTreeMap::new();
    for m in &msgs {
        let seq: u64 = header(m, "seq")
            .and_then(|s| s.parse().ok())
            .expect("seq header");
        *count.entry(seq).or_default() += 1;
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
        by_key
            .entry((key, m.partition()))
            .or_default()
            .push((m.offset(), seq));
        assert_eq!(header(m, "schema"), Some("wecom-archive.message.v1"));
    }
    let twice: Vec<u64> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        twice.is_empty(),
        "{} seqs published twice, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let missing: Vec<u64> = ok
        .iter()
        .map(|t| t.seq)
        .filter(|s| !count.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{} seqs missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(count.len(), ok.len(), "records the simulator never served");
    let keys: std::collections::BTreeSet<&String> = by_key.keys().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), by_key.len(), "a conversation spans partitions");
    for ((key, _), mut rows) in by_key {
        rows.sort();
        assert!(
            rows.windows(2).all(|w| w[0].1 < w[1].1),
            "conversation {key} out of seq order"
        );
    }
    let dls = consume_all(&format!("{prefix}.deadletter"), dead).await;
    let mut dl_seqs: Vec<u64> = dls
        .iter()
        .filter_map(|m| header(m, "seq")?.parse().ok())
        .collect();
    dl_seqs.sort_unstable();
    let mut want: Vec<u64> = truth
        .iter()
        .filter(|t| t.fate != Fate::Ok)
        .map(|t| t.seq)
        .collect();
    want.sort_unstable();
    assert_eq!(dl_seqs, want, "dead letters in kafka");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_seq_exactly_once_keyed_by_conversation() {
    let server = sim(31, 20_000, fetch_faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("straight");
    let extra = format!("{}\n", kafka_section(&prefix));
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &tmp.path().join("data"),
        &extra,
    );
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("[sink]", "[sink]\nkind = \"kafka\"");
    std::fs::write(&path, text).expect("config");
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    let opts = RunOptions {
        stream: StreamSel::Corp,
        follow: false,
        progress: false,
    };
    let summary = wecom_pipeline::run(&cfg, &source, &opts, CancellationToken::new())
        .await
        .expect("run");
    let truth = server.truth();
    assert_eq!(summary.records + summary.dead_letters, truth.len() as u64);
    assert_exactly_once_in_kafka(&prefix, &truth).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_publishing_still_exactly_once() {
    let server = sim(37, 20_000, fetch_faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("killed");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &tmp.path().join("data"),
        &kafka_section(&prefix),
    );
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("[sink]", "[sink]\nkind = \"both\"");
    std::fs::write(&path, text).expect("config");
    crate::support::run_with_random_kills(&path, 5, 5).await;
    let truth = server.truth();
    assert_exactly_once_in_kafka(&prefix, &truth).await;
    crate::support::assert_conserved(
        &truth,
        &crate::support::read_output(&tmp.path().join("data")),
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_a_topic_of_its_own_matches_the_live_output() {
    let server = sim(59, 3_000, fetch_faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("replay");
    let data = tmp.path().join("data");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &data,
        &kafka_section(&prefix),
    );
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    let opts = RunOptions {
        stream: StreamSel::Corp,
        follow: false,
        progress: false,
    };
    wecom_pipeline::run(&cfg, &source, &opts, CancellationToken::new())
        .await
        .expect("live run");

    // The live records of the range, byte for byte, from the local output. A replay's recall links come
    // from its own index, which starts at the replay's first seq, and its consent from its own walk:
    // both are left out of the comparison (see `without_recalls`).
    let (from, to) = (1_000u64, 2_500u64);
    let mut live: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for line in wecom_store::read_lines(&data.join("wwsimcorp0001/corp/messages")).expect("lines") {
        let line = line.expect("line");
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        let seq = v["seq"].as_u64().expect("seq");
        if (from..=to).contains(&seq) {
            live.insert(seq, without_recalls(&line, from));
        }
    }

    let topic = format!("{prefix}.replay");
    let req = |topic: &str| wecom_pipeline::replay::ReplayRequest {
        from_seq: from,
        to_seq: Some(to),
        kafka_topic: Some(topic.to_string()),
        name: Some("to-kafka".into()),
        ..Default::default()
    };
    let err = wecom_pipeline::replay::replay(
        &cfg,
        &source,
        &req(&format!("{prefix}.messages")),
        CancellationToken::new(),
    )
    .await
    .expect_err("the live topic is refused");
    assert!(
        err.to_string().contains("the live [kafka] topics.messages"),
        "{err}"
    );
    let summary =
        wecom_pipeline::replay::replay(&cfg, &source, &req(&topic), CancellationToken::new())
            .await
            .expect("replay");
    assert_eq!(summary.records, live.len() as u64);

    let msgs = consume_all(&topic, live.len()).await;
    let mut replayed: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for m in &msgs {
        let seq: u64 = header(m, "seq")
            .and_then(|s| s.parse().ok())
            .expect("seq header");
        let prev = replayed.insert(seq, without_recalls(m.payload().unwrap_or_default(), from));
        assert!(prev.is_none(), "seq {seq} replayed twice");
    }
    assert!(
        replayed == live,
        "replayed records differ from the live output"
    );
    source.shutdown().await;
    server.shutdown().await;
}

/// `line` without its `recalls` link when the recalled message is before `from` (a replay starting at
/// `from` does not know it and says so: `seq: null`), and without `consent` (a replay from the service
/// looks consent up itself and sees only the agree / disagree messages of its range; tests/e2e/consent.rs
/// checks consent); other lines unchanged, byte for byte.
fn without_recalls(line: &[u8], from: u64) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(line).expect("json");
    let before = v["recalls"]["seq"].as_u64().is_none_or(|s| s < from);
    match v.as_object_mut() {
        Some(obj) if (obj.contains_key("recalls") && before) || obj.contains_key("consent") => {
            if before {
                obj.remove("recalls");
            }
            obj.remove("consent");
            serde_json::to_vec(&v).expect("json")
        }
        _ => line.to_vec(),
    }
}
