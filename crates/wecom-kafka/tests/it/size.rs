use std::collections::BTreeSet;

use rdkafka::Message;
use wecom_kafka::{ErrorClass, KafkaError, KafkaSink, LineKind, PublishLine, RECORD_OVERHEAD};

use crate::common::{config, connect, consume_all, create_topic, header, line, seqs_by_key};
use crate::need_broker;

/// A line whose `record_bytes` is exactly `bytes`.
fn sized(seq: u64, key: &str, bytes: u64) -> PublishLine {
    let mut l = line(LineKind::Record, "c", "corp", seq, key);
    let other = l.record_bytes() - l.payload.len() as u64;
    l.payload = vec![b'x'; (bytes - other) as usize];
    assert_eq!(l.record_bytes(), bytes);
    l
}

fn too_large(err: &KafkaError) -> (u64, u64, u64, usize) {
    match err {
        KafkaError::RecordTooLarge {
            seq,
            bytes,
            limit,
            published,
            ..
        } => (*seq, *bytes, *limit, *published),
        other => panic!("expected RecordTooLarge, got {other}"),
    }
}

/// The pipeline's reaction, as the contract of `RecordTooLarge` describes it: publish the unacknowledged rest of
/// the page with the refused record slimmed.
async fn publish_slimming(sink: &KafkaSink, mut page: Vec<PublishLine>) -> Vec<u64> {
    let mut slimmed = Vec::new();
    loop {
        match sink.publish(page.clone()).await {
            Ok(()) => return slimmed,
            Err(e) if e.class() == ErrorClass::RecordTooLarge => {
                let (seq, _, limit, published) = too_large(&e);
                page.drain(..published);
                let l = page
                    .iter_mut()
                    .find(|l| l.seq == seq)
                    .expect("refused line");
                l.payload = br#"{"slim":true}"#.to_vec();
                assert!(l.record_bytes() <= limit);
                slimmed.push(seq);
            }
            Err(e) => panic!("publish: {e}"),
        }
    }
}

/// The loss path: a 5 MiB record was fatal, so every restart failed on the same seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_limit_is_not_fatal_and_names_its_seq_and_size() {
    need_broker!();
    let cfg = config("size-5mib");
    let sink = connect(&cfg).await;
    assert_eq!(sink.max_record_bytes(), 1_000_000);
    let big = sized(3, "conv", 5 * 1024 * 1024);
    let err = sink.publish(vec![big]).await.expect_err("over the limit");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert_eq!(err.class(), ErrorClass::RecordTooLarge, "{msg}");
    assert!(!err.is_fatal());
    assert_eq!(err.too_large_seq(), Some(3));
    assert!(
        msg.contains("seq 3")
            && msg.contains("5242880 bytes")
            && msg.contains(&cfg.topics.messages),
        "{msg}"
    );
}

/// Nothing of a page is sent when one of its records is refused, so the page published again with that
/// record slimmed is in seq order in every partition, each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_leaves_its_page_in_order() {
    need_broker!();
    let mut cfg = config("size-order");
    cfg.max_record_bytes = 16 * 1024;
    let sink = connect(&cfg).await;
    let page: Vec<PublishLine> = (1..=40)
        .map(|seq| {
            let key = format!("conv-{}", seq % 4);
            if seq == 13 || seq == 30 {
                sized(seq, &key, 50_000)
            } else {
                line(LineKind::Record, "c", "corp", seq, &key)
            }
        })
        .collect();
    let err = sink
        .publish(page.clone())
        .await
        .expect_err("seq 13 is too large");
    assert_eq!(too_large(&err).0, 13);
    assert_eq!(too_large(&err).3, 0, "nothing acknowledged");

    let slimmed = publish_slimming(&sink, page).await;
    assert_eq!(slimmed, vec![13, 30]);
    let msgs = consume_all(&cfg.topics.messages, 40).await;
    // a record of the refused attempt in the topic would show here as a duplicate, before its page
    assert_eq!(msgs.len(), 40, "each record once");
    for (key, seqs) in seqs_by_key(&msgs) {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
    let slim: BTreeSet<u64> = msgs
        .iter()
        .filter(|m| m.payload() == Some(br#"{"slim":true}"#.as_slice()))
        .map(|m| header(m, "seq").unwrap().parse().unwrap())
        .collect();
    assert_eq!(slim, BTreeSet::from([13, 30]));
}

/// librdkafka's `message.max.bytes` accounts for the framing: a record of exactly the limit is published,
/// with all six headers, alone and in a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_exactly_the_limit_is_published() {
    need_broker!();
    let mut cfg = config("size-exact");
    cfg.max_record_bytes = 100_000;
    let sink = connect(&cfg).await;
    let page = vec![
        sized(1, "a", 100_000),
        line(LineKind::Record, "c", "corp", 2, "a"),
        sized(3, "a", 100_000),
        sized(4, "b", 60_000),
        sized(5, "b", 60_000),
    ];
    sink.publish(page).await.expect("records within the limit");
    assert_eq!(consume_all(&cfg.topics.messages, 5).await.len(), 5);
    let err = sink
        .publish(vec![sized(6, "a", 100_001)])
        .await
        .expect_err("one byte over");
    assert_eq!(too_large(&err).1, 100_001);
}

/// Topics the sink creates take its records; a topic that takes less lowers the limit at connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_follows_what_the_topics_take() {
    need_broker!();
    let mut cfg = config("size-topics");
    cfg.max_record_bytes = 2_000_000;
    cfg.queue_buffering_max_kbytes = 65_536;
    let sink = connect(&cfg).await;
    let report = KafkaSink::check(&cfg).await.unwrap();
    for t in &report.topics {
        assert_eq!(
            t.max_message_bytes,
            Some(2_000_000 + RECORD_OVERHEAD),
            "{t:?}"
        );
    }
    assert_eq!(sink.max_record_bytes(), 2_000_000);
    sink.publish(vec![sized(1, "k", 1_500_000)]).await.unwrap();

    // an operator created the messages topic with a smaller limit
    let mut cfg = config("size-small-topic");
    create_topic(&cfg.topics.messages, 2, &[("max.message.bytes", "100000")]).await;
    cfg.max_record_bytes = 1_000_000;
    let sink = connect(&cfg).await;
    assert_eq!(sink.max_record_bytes(), 100_000 - RECORD_OVERHEAD);
    let err = sink
        .publish(vec![sized(1, "k", 200_000)])
        .await
        .expect_err("over the topic's limit");
    assert_eq!(too_large(&err).2, 100_000 - RECORD_OVERHEAD);
}
