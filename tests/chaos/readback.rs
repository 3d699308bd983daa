//! Reading the outputs back without the project's recovery code: a plain rdkafka `BaseConsumer` from the
//! beginning of every partition to its end, and the local NDJSON files read line by line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// One line of an output, as far as the verdict cares.
#[derive(Debug, Clone)]
pub struct Line {
    pub seq: u64,
    pub msgid: String,
    /// A dead letter's `reason_kind`.
    pub reason: Option<String>,
    /// Where it is: `partition/offset` in Kafka, `file:line` locally.
    pub at: String,
    /// The line's JSON (local lines only: media references and slim bodies are checked against them).
    pub json: Option<serde_json::Value>,
    /// A slim Kafka line's reference to its full body.
    pub content_ref: Option<serde_json::Value>,
    /// A Kafka record published by `redrive` (its `redriven` header).
    pub redriven: bool,
}

/// The four outputs and the resolved list.
pub struct Outputs {
    pub kafka_records: Vec<Line>,
    pub kafka_dead: Vec<Line>,
    pub local_records: Vec<Line>,
    pub local_dead: Vec<Line>,
    pub resolved: BTreeSet<u64>,
}

/// Both topics of `prefix` and the local files of the stream at `stream_dir`; a topic that cannot be read is
/// said in the second part (and counts as empty).
pub fn read_all(brokers: &str, prefix: &str, stream_dir: &Path) -> (Outputs, Vec<String>) {
    let mut failures = Vec::new();
    let mut topic = |name: &str| {
        let t = format!("{prefix}.{name}");
        read_topic(brokers, &t).unwrap_or_else(|e| {
            failures.push(format!("reading topic {t}: {e}"));
            Vec::new()
        })
    };
    let (kafka_records, kafka_dead) = (topic("messages"), topic("deadletter"));
    let local = |dir: &str| {
        read_local(&stream_dir.join(dir)).unwrap_or_else(|e| panic!("reading local {dir}: {e}"))
    };
    let outputs = Outputs {
        kafka_records,
        kafka_dead,
        local_records: local("messages"),
        local_dead: local("deadletter"),
        resolved: read_resolved(&stream_dir.join("deadletter/resolved.ndjson")),
    };
    (outputs, failures)
}

/// How long reading one topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Every record of `topic`, partition by partition, from the first offset to the high watermark taken when
/// the read began.
pub fn read_topic(brokers: &str, topic: &str) -> Result<Vec<Line>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("chaos-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // few, big fetches: each one costs the broker a query of its storage
        .set("max.partition.fetch.bytes", "16777216")
        .set("fetch.max.bytes", "67108864")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let timeout = Duration::from_secs(20);
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {topic} has no partitions (does it exist?)"));
    }
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| format!("assign {topic}/{p}: {e}"))?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("assign {topic}: {e}"))?;
    let mut out = Vec::new();
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|&p| (p, 0)).collect();
    let deadline = Instant::now() + READ_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            let left: Vec<String> = ends
                .iter()
                .map(|(p, end)| format!("{p} at offset {} of {end}", next[p]))
                .collect();
            return Err(format!(
                "{topic}: not read to the end within {} s: partition {}",
                READ_TIMEOUT.as_secs(),
                left.join(", partition ")
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => return Err(format!("{topic}: {e}")),
            Some(Ok(m)) => {
                let (p, off) = (m.partition(), m.offset());
                next.insert(p, off + 1);
                if ends.get(&p).is_some_and(|&end| off + 1 >= end) {
                    ends.remove(&p);
                }
                let header = |name: &str| {
                    m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == name)
                            .and_then(|h| std::str::from_utf8(h.value?).ok().map(str::to_string))
                    })
                };
                let payload: serde_json::Value = m
                    .payload()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(serde_json::Value::Null);
                let seq = header("seq")
                    .and_then(|s| s.parse().ok())
                    .or_else(|| payload["seq"].as_u64())
                    .ok_or_else(|| {
                        format!("{topic} {p}/{off}: no seq header and no seq in the payload")
                    })?;
                out.push(Line {
                    seq,
                    msgid: header("msgid")
                        .or_else(|| payload["msgid"].as_str().map(str::to_string))
                        .unwrap_or_default(),
                    reason: payload["reason_kind"].as_str().map(str::to_string),
                    at: format!("{p}/{off}"),
                    json: None,
                    content_ref: payload.get("content_ref").filter(|v| !v.is_null()).cloned(),
                    redriven: header("redriven").is_some(),
                });
            }
        }
    }
    Ok(out)
}

/// Every line of the `seg-*.ndjson` files of `dir`, in file order.
pub fn read_local(dir: &Path) -> Result<Vec<Line>, String> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".ndjson"))
            })
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            if raw.is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(raw)
                .map_err(|e| format!("{name}:{}: not JSON ({e})", i + 1))?;
            let seq = v["seq"]
                .as_u64()
                .ok_or_else(|| format!("{name}:{}: no seq", i + 1))?;
            out.push(Line {
                seq,
                msgid: v["msgid"].as_str().unwrap_or_default().to_string(),
                reason: v["reason_kind"].as_str().map(str::to_string),
                at: format!("{name}:{}", i + 1),
                json: Some(v),
                content_ref: None,
                redriven: false,
            });
        }
    }
    Ok(out)
}

/// The seqs in `deadletter/resolved.ndjson` (dead letters a redrive turned into records).
fn read_resolved(path: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}
