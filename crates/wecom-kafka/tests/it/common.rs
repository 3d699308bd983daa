use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message};
use wecom_kafka::{KafkaConfig, KafkaSink, LineKind, PublishLine, Topics};

pub fn brokers() -> String {
    std::env::var("WECOM_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "WECOM_TEST_KAFKA_BROKERS is not set: these tests need a real Kafka-protocol broker; \
             run `eval \"$(scripts/kafka-broker.sh start)\"` from the repository root first"
        )
    })
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A config with fresh topics on the test broker.
pub fn config(tag: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers(),
        topics: Topics {
            messages: unique(&format!("{tag}.messages")),
            media: unique(&format!("{tag}.media")),
            deadletter: unique(&format!("{tag}.deadletter")),
        },
        message_timeout_ms: 30_000,
        ..KafkaConfig::default()
    }
}

pub async fn connect(config: &KafkaConfig) -> KafkaSink {
    KafkaSink::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A line as the pipeline builds it: all six headers, a compressible JSON payload.
pub fn line(kind: LineKind, corp: &str, stream: &str, seq: u64, key: &str) -> PublishLine {
    let payload = serde_json::json!({
        "schema": "wecom-archive.message.v1",
        "corp_id": corp, "stream": stream, "seq": seq, "conversation_id": key,
        "msgid": format!("msg-{stream}-{seq}"), "msgtype": "text",
        "text": "the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog",
    });
    PublishLine {
        kind,
        seq,
        key: key.to_string(),
        headers: vec![
            ("corp_id".into(), corp.into()),
            ("stream".into(), stream.into()),
            ("seq".into(), seq.to_string()),
            ("msgid".into(), format!("msg-{stream}-{seq}")),
            ("msgtype".into(), "text".into()),
            ("schema".into(), "wecom-archive.message.v1".into()),
        ],
        payload: serde_json::to_vec(&payload).unwrap(),
    }
}

pub fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Everything in `topic` from the beginning, read with a plain consumer-group consumer.
pub async fn consume_all(topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("it-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "read {} of {expected} records of {topic} before the deadline",
            out.len()
        );
        match tokio::time::timeout(left.min(Duration::from_secs(5)), consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("consume {topic}: {e}"),
            Err(_) => {}
        }
    }
    // anything beyond `expected` would be a duplicate: read a little longer to catch it
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
        out.push(m.detach());
    }
    out
}

/// Per key, the seqs in partition order; panics when a key spans partitions.
pub fn seqs_by_key(msgs: &[OwnedMessage]) -> BTreeMap<String, Vec<u64>> {
    let mut rows: Vec<(String, i32, i64, u64)> = msgs
        .iter()
        .map(|m| {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let seq = header(m, "seq").unwrap().parse().unwrap();
            (key, m.partition(), m.offset(), seq)
        })
        .collect();
    rows.sort_by_key(|r| (r.1, r.2));
    let mut partition_of = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, partition, _, seq) in rows {
        let p = *partition_of.entry(key.clone()).or_insert(partition);
        assert_eq!(
            p, partition,
            "key {key} is in partitions {p} and {partition}"
        );
        out.entry(key).or_default().push(seq);
    }
    out
}
