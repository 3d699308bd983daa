use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use wecom_kafka::{KafkaConfig, KafkaSink, LineKind, PublishLine, Topics};

/// Returns from the test, with a note, when no broker is configured (CI always sets one).
#[macro_export]
macro_rules! need_broker {
    () => {
        if std::env::var_os("WECOM_TEST_KAFKA_BROKERS").is_none() {
            eprintln!(
                "skipped: WECOM_TEST_KAFKA_BROKERS is not set; run `eval \"$(scripts/kafka-broker.sh start)\"` \
                 from the repository root to run it"
            );
            return;
        }
    };
}

pub fn brokers() -> String {
    std::env::var("WECOM_TEST_KAFKA_BROKERS")
        .expect("need_broker!() at the start of the test checks WECOM_TEST_KAFKA_BROKERS")
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
            recalls: unique(&format!("{tag}.recalls")),
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

/// Creates `topic` with `partitions` and topic `configs`, as an operator would.
pub async fn create_topic(topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = admin
        .create_topics([&t], &opts)
        .await
        .expect("create topic");
    assert!(r.iter().all(Result::is_ok), "{r:?}");
}

/// Writes one raw record, as another program would.
pub async fn produce_raw(topic: &str, partition: i32, key: &str, value: Option<&[u8]>) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("producer");
    let mut r = FutureRecord::<str, [u8]>::to(topic)
        .partition(partition)
        .key(key);
    if let Some(v) = value {
        r = r.payload(v);
    }
    p.send(r, Duration::from_secs(10)).await.expect("produce");
}

/// Log events of this test binary (all threads: librdkafka logs from its own), as `LEVEL target: text`.
pub fn logs() -> &'static Mutex<Vec<String>> {
    static LOGS: OnceLock<&'static Mutex<Vec<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<String>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        tracing::subscriber::set_global_default(Capture(logs)).expect("one global subscriber");
        logs
    })
}

/// Captured lines containing `needle`, at `level` or more severe.
pub fn logged(needle: &str, level: tracing::Level) -> Vec<String> {
    logs()
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .filter(|l| {
            let lvl = l
                .split(' ')
                .next()
                .and_then(|s| s.parse::<tracing::Level>().ok());
            lvl.is_some_and(|lvl| lvl <= level)
        })
        .cloned()
        .collect()
}

struct Capture(&'static Mutex<Vec<String>>);

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target().starts_with("librdkafka") || m.target().starts_with("wecom_kafka")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut text = Text(format!(
            "{} {}:",
            e.metadata().level(),
            e.metadata().target()
        ));
        e.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
