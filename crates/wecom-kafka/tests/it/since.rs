use std::collections::BTreeSet;

use wecom_kafka::{EndOffsets, LineKind, HEADER_REDRIVEN};

use crate::common::{config, connect, line};
use crate::need_broker;

fn set(seqs: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
    seqs.into_iter().collect()
}

fn redriven(corp: &str, seq: u64, key: &str) -> wecom_kafka::PublishLine {
    let mut l = line(LineKind::Record, corp, "corp", seq, key);
    l.headers.push((HEADER_REDRIVEN.into(), "1".into()));
    l
}

/// The redrive intent: offsets taken before publishing old seqs after the live tail; after a crash between
/// the publish and the "resolved" mark, the forward scan says which of them landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_since_finds_exactly_what_landed_after_the_intent() {
    need_broker!();
    let cfg = config("since");
    let sink = connect(&cfg).await;
    // live history: pages of many records (multi-record batches, where tansu's watermark is off)
    for page in 0..5u64 {
        let lines = (page * 100 + 1..=(page + 1) * 100)
            .map(|s| line(LineKind::Record, "c", "corp", s, &format!("conv-{}", s % 7)))
            .collect();
        sink.publish(lines).await.unwrap();
    }
    let intent = sink.end_offsets(LineKind::Record).await.unwrap();
    assert_eq!(intent.topic, cfg.topics.messages);
    assert_eq!(intent.partitions.len(), cfg.partitions as usize);
    // the intent file round trip
    let stored: EndOffsets =
        serde_json::from_str(&serde_json::to_string(&intent).unwrap()).unwrap();
    assert_eq!(stored, intent);

    let candidates = set([5, 17, 33, 250, 260]);
    // nothing published yet: nothing found, and the read ends (no wait for a record that never comes)
    assert!(sink
        .published_since(&stored, "c", "corp", &candidates)
        .await
        .unwrap()
        .is_empty());

    // redrive publishes some of them (and the live pipeline and other corps keep publishing), then crashes
    sink.publish(vec![
        redriven("c", 5, "conv-5"),
        redriven("c", 33, "conv-5"),
    ])
    .await
    .unwrap();
    sink.publish(
        (501..=600)
            .map(|s| line(LineKind::Record, "c", "corp", s, &format!("conv-{}", s % 7)))
            .collect(),
    )
    .await
    .unwrap();
    sink.publish(vec![
        redriven("other-corp", 17, "conv-1"),
        line(LineKind::Record, "c", "room:r", 250, "conv-2"),
        redriven("c", 260, "conv-3"),
    ])
    .await
    .unwrap();
    let found = sink
        .published_since(&stored, "c", "corp", &candidates)
        .await
        .unwrap();
    // 250 was published before the intent (live), 17 only by another corp, 250 again only in another stream
    assert_eq!(found, set([5, 33, 260]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_since_reads_a_partition_unknown_to_the_intent_from_its_start() {
    need_broker!();
    let cfg = config("since-new-partition");
    let sink = connect(&cfg).await;
    sink.publish(vec![line(LineKind::Record, "c", "corp", 7, "k")])
        .await
        .unwrap();
    let mut intent = sink.end_offsets(LineKind::Record).await.unwrap();
    // as if the intent had been taken before the topic had these partitions
    intent.partitions.clear();
    let found = sink
        .published_since(&intent, "c", "corp", &set([7, 8]))
        .await
        .unwrap();
    assert_eq!(found, set([7]));
}
