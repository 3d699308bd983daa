//! Kafka only (`sink.kind = "kafka"`): the worker consumes the shared messages topic in its corp's
//! consumer group, takes only its own corp's and stream's records, and publishes its events to the
//! media topic. Needs a Kafka-protocol broker (`WECOM_TEST_KAFKA_BROKERS`); skipped without one.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;
use wecom_kafka::{KafkaConfig, KafkaSink, PublishLine, Topics};
use wecom_media::{read_events, read_status, MediaRunState, MediaSourceKind};
use wecom_model::{media_object_key, Record};
use wecom_sim::FaultConfig;
use wecom_store::OutputLine;

use crate::common::*;

const OTHER_CORP: &str = "wwothercorp0002";

fn brokers() -> Option<String> {
    let brokers = std::env::var("WECOM_TEST_KAFKA_BROKERS").ok();
    if brokers.is_none() {
        eprintln!(
            "skipped: WECOM_TEST_KAFKA_BROKERS is not set (run `eval \"$(scripts/kafka-broker.sh start)\"` first)"
        );
    }
    brokers
}

fn unique(prefix: &str) -> String {
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

/// A record line as the pipeline publishes it: keyed by conversation, with the sink's headers.
fn publish_line(line: &OutputLine) -> PublishLine {
    let r: Record = serde_json::from_slice(&line.json).unwrap();
    PublishLine {
        kind: wecom_kafka::LineKind::Record,
        seq: r.seq,
        key: r.conversation_id.clone(),
        headers: vec![
            ("corp_id".into(), r.corp_id.clone()),
            ("stream".into(), r.stream.clone()),
            ("seq".into(), r.seq.to_string()),
            ("msgid".into(), r.msgid.clone()),
            ("schema".into(), wecom_model::MESSAGE_SCHEMA_ID.into()),
        ],
        payload: line.json.clone(),
    }
}

/// `line` as a record of another corp (or of another stream of this corp), whose media this
/// corp's token cannot fetch.
fn moved(line: &OutputLine, corp: &str, stream: &str) -> OutputLine {
    let mut r: Record = serde_json::from_slice(&line.json).unwrap();
    r.corp_id = corp.to_owned();
    r.stream = stream.to_owned();
    r.msgid = format!("{}-{corp}-{stream}", r.msgid);
    for m in &mut r.media {
        m.sdkfileid = format!("{corp}-{stream}-{}", m.sdkfileid);
        m.object_key = Some(media_object_key(corp, m));
    }
    OutputLine {
        kind: line.kind,
        seq: line.seq,
        json: serde_json::to_vec(&r).unwrap(),
    }
}

async fn consume_all(brokers: &str, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("media-it-reader"))
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
            "read {} of {expected} messages of {topic}",
            out.len()
        );
        match tokio::time::timeout(left.min(Duration::from_secs(5)), consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("consume {topic}: {e}"),
            Err(_) => {}
        }
    }
    // anything beyond `expected` would be an event too many: read a little longer to catch it
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await {
        out.push(m.detach());
    }
    out
}

fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_worker_takes_only_its_own_corps_records() {
    let Some(brokers) = brokers() else {
        return;
    };
    let mut config = sim_config(400);
    config.faults = FaultConfig::default();
    let sim = start_sim(config.clone()).await;
    let ours = fetch_records(&sim, &config).await;
    // Another corp shares the topic, and so does a room stream of this corp.
    let others: Vec<OutputLine> = ours
        .iter()
        .map(|l| moved(l, OTHER_CORP, "corp"))
        .chain(
            ours.iter()
                .take(20)
                .map(|l| moved(l, &config.corp_id, "room:r1")),
        )
        .collect();

    let kcfg = KafkaConfig {
        brokers: brokers.clone(),
        topics: Topics {
            messages: unique("media-it.messages"),
            media: unique("media-it.media"),
            deadletter: unique("media-it.deadletter"),
            recalls: unique("media-it.recalls"),
        },
        partitions: 3,
        message_timeout_ms: 30_000,
        ..KafkaConfig::default()
    };
    let sink = KafkaSink::connect(&kcfg).await.expect("kafka connect");
    let mut lines = Vec::new();
    let mut others_iter = others.iter();
    for l in &ours {
        lines.push(publish_line(l));
        if let Some(o) = others_iter.next() {
            lines.push(publish_line(o));
        }
    }
    lines.extend(others_iter.map(publish_line));
    for chunk in lines.chunks(200) {
        sink.publish(chunk.to_vec()).await.expect("publish records");
    }

    let data = tempfile::tempdir().unwrap();
    let mc = media_config(1024 * 1024);
    let store = mc.build_store(data.path()).unwrap();
    let group = mc.consumer_group(&config.corp_id, "corp");
    assert_eq!(group, format!("wecom-archive-media-{}", config.corp_id));
    let w = worker(data.path(), &mc, store.clone(), client(&sim, &config))
        .with_kafka_records(kcfg.clone(), group.clone())
        .with_kafka_events(sink.clone());
    let stats = w.run_until_caught_up().await.unwrap();

    assert_eq!(stats.objects_failed_total, 0, "{stats:?}");
    assert_eq!(stats.records_other_stream_total, others.len() as u64);
    assert_eq!(stats.records_read_total, (ours.len() + others.len()) as u64);
    verify_media(data.path(), &sim, &store, &ours, Events::ExactlyOnce).await;
    let events = read_events(&layout(data.path()).media_events_dir()).unwrap();
    assert_eq!(events.len(), media_refs(&ours));
    assert!(events
        .iter()
        .all(|e| e.corp_id == config.corp_id && e.stream == "corp"));

    // Every event is in the media topic too, and only those.
    let published = consume_all(&brokers, &kcfg.topics.media, events.len()).await;
    assert_eq!(published.len(), events.len());
    let keys: BTreeSet<(u64, String)> = events
        .iter()
        .map(|e| (e.seq, e.sdkfileid.clone()))
        .collect();
    for m in &published {
        assert_eq!(header(m, "corp_id"), Some(config.corp_id.as_str()));
        let e: wecom_media::MediaEvent = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert!(keys.contains(&(e.seq, e.sdkfileid.clone())), "{e:?}");
    }

    let status = read_status(&layout(data.path())).unwrap().expect("status");
    assert_eq!(status.source, MediaSourceKind::Kafka);
    assert_eq!(status.state, MediaRunState::Stopped);
    assert_eq!(status.media_pending, 0);
    assert_eq!(status.stats.records_other_stream_total, others.len() as u64);

    // The group committed past every record, the other corp's included: a second member of the
    // group finds nothing left.
    let data2 = tempfile::tempdir().unwrap();
    let again = worker(data2.path(), &mc, store.clone(), client(&sim, &config))
        .with_kafka_records(kcfg.clone(), group)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(again.records_read_total, 0, "{again:?}");
    sim.shutdown().await;
}
