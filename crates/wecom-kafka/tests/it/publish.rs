use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use wecom_kafka::LineKind;

use crate::common::{config, connect, consume_all, header, line, seqs_by_key};
use crate::need_broker;

const N: u64 = 20_000;
const CONVERSATIONS: u64 = 200;
const PAGE: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_records_exactly_once_in_key_order() {
    need_broker!();
    let mut cfg = config("publish");
    cfg.properties
        .insert("statistics.interval.ms".into(), "100".into());
    let sink = connect(&cfg).await;

    let started = Instant::now();
    for page in 0..N / PAGE {
        let lines = (page * PAGE + 1..=(page + 1) * PAGE)
            // a pseudo-random conversation per seq, so pages mix conversations
            .map(|seq| {
                line(
                    LineKind::Record,
                    "corp-a",
                    "corp",
                    seq,
                    &format!("conv-{}", (seq * 7919) % CONVERSATIONS),
                )
            })
            .collect();
        sink.publish(lines)
            .await
            .unwrap_or_else(|e| panic!("publish page {page}: {e}"));
    }
    eprintln!("published {N} records in {:?}", started.elapsed());

    let msgs = consume_all(&cfg.topics.messages, N as usize).await;
    let mut count: BTreeMap<u64, u32> = BTreeMap::new();
    for m in &msgs {
        for h in ["corp_id", "stream", "seq", "msgid", "msgtype", "schema"] {
            assert!(
                header(m, h).is_some(),
                "header {h} missing at offset {}",
                m.offset()
            );
        }
        let seq: u64 = header(m, "seq").unwrap().parse().unwrap();
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(v["seq"], seq);
        assert_eq!(
            v["conversation_id"].as_str().unwrap().as_bytes(),
            m.key().unwrap()
        );
        *count.entry(seq).or_default() += 1;
    }
    assert_eq!(count.len() as u64, N, "distinct seqs");
    assert!(count.values().all(|&c| c == 1), "a seq was published twice");
    assert_eq!(
        count.keys().copied().collect::<Vec<_>>(),
        (1..=N).collect::<Vec<_>>()
    );

    let by_key = seqs_by_key(&msgs);
    assert_eq!(by_key.len() as u64, CONVERSATIONS);
    for (key, seqs) in &by_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "conversation {key} out of seq order"
        );
    }
    let partitions: std::collections::BTreeSet<i32> = msgs.iter().map(|m| m.partition()).collect();
    assert!(partitions.len() > 1, "keys should spread over partitions");

    // compression: librdkafka's own statistics of the batches it sent to this topic
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = sink.statistics().expect("statistics enabled");
    eprintln!("producer statistics: {stats:?}");
    assert!(stats.tx_messages >= N, "{stats:?}");
    // the payloads are repetitive JSON: lz4 must shrink what goes on the wire well below the record bytes
    assert!(
        stats.tx_bytes * 2 < stats.tx_message_bytes,
        "no compression on the wire: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_round_trip_and_all_three_topics() {
    need_broker!();
    let mut cfg = config("zstd");
    cfg.compression = "zstd".into();
    let sink = connect(&cfg).await;
    let mut lines: Vec<_> = (1..=100)
        .map(|s| line(LineKind::Record, "c", "corp", s, "conv"))
        .collect();
    lines.push(line(LineKind::DeadLetter, "c", "corp", 101, "msg-101"));
    let mut media = line(LineKind::MediaEvent, "c", "corp", 102, "conv");
    media.headers.clear();
    lines.push(media);
    sink.publish(lines).await.unwrap();
    sink.flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(consume_all(&cfg.topics.messages, 100).await.len(), 100);
    let dead = consume_all(&cfg.topics.deadletter, 1).await;
    assert_eq!(header(&dead[0], "seq"), Some("101"));
    let media = consume_all(&cfg.topics.media, 1).await;
    assert_eq!(
        header(&media[0], "seq"),
        Some("102"),
        "publish adds the seq header"
    );
}
