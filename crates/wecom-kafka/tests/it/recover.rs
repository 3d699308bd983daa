use std::collections::BTreeSet;
use std::time::Instant;

use wecom_kafka::LineKind;

use crate::common::{config, connect, line};
use crate::need_broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_finds_exactly_the_published_tail() {
    need_broker!();
    let cfg = config("recover");
    let sink = connect(&cfg).await;
    for page in 0..10u64 {
        let mut lines = Vec::new();
        for seq in page * 100 + 1..=(page + 1) * 100 {
            // every 50th item is a dead letter: recovery reads that topic too
            let kind = if seq % 50 == 0 {
                LineKind::DeadLetter
            } else {
                LineKind::Record
            };
            lines.push(line(
                kind,
                "corp-a",
                "corp",
                seq,
                &format!("conv-{}", seq % 17),
            ));
        }
        sink.publish(lines).await.unwrap();
        // other streams and corps interleaved in the same topics, same seqs and keys
        let others = (page * 100 + 1..=(page + 1) * 100)
            .flat_map(|seq| {
                let key = format!("conv-{}", seq % 17);
                [
                    line(LineKind::Record, "corp-a", "room:r1", seq, &key),
                    line(LineKind::Record, "corp-b", "corp", seq + 5_000, &key),
                    line(LineKind::DeadLetter, "corp-b", "corp", seq, &key),
                ]
            })
            .collect();
        sink.publish(others).await.unwrap();
    }

    let check = |after: u64, expected: std::ops::RangeInclusive<u64>, got: BTreeSet<u64>| {
        assert_eq!(got, expected.collect::<BTreeSet<_>>(), "after_seq {after}");
    };
    let t = Instant::now();
    check(
        700,
        701..=1000,
        sink.recover("corp-a", "corp", 700).await.unwrap(),
    );
    eprintln!("recover(700) took {:?}", t.elapsed());
    #[allow(clippy::reversed_empty_ranges)]
    check(
        1000,
        1..=0,
        sink.recover("corp-a", "corp", 1000).await.unwrap(),
    );
    check(
        0,
        1..=1000,
        sink.recover("corp-a", "corp", 0).await.unwrap(),
    );
    check(
        999,
        1000..=1000,
        sink.recover("corp-a", "corp", 999).await.unwrap(),
    );
    check(
        400,
        401..=1000,
        sink.recover("corp-a", "room:r1", 400).await.unwrap(),
    );
    check(
        5_900,
        5_901..=6_000,
        sink.recover("corp-b", "corp", 5_900).await.unwrap(),
    );
    let unknown = sink.recover("corp-z", "corp", 0).await.unwrap();
    assert!(unknown.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_on_empty_topics_is_fast_and_empty() {
    need_broker!();
    let cfg = config("recover-empty");
    let sink = connect(&cfg).await;
    let t = Instant::now();
    assert!(sink.recover("corp-a", "corp", 0).await.unwrap().is_empty());
    let took = t.elapsed();
    eprintln!("recover on empty topics took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_scan_respects_its_bound() {
    need_broker!();
    let mut cfg = config("recover-bound");
    cfg.partitions = 1;
    cfg.recover_max_records_per_partition = 300;
    let sink = connect(&cfg).await;
    // our stream's tail (seqs 1..=10) is buried under 1000 records of another stream
    sink.publish(
        (1..=10)
            .map(|s| line(LineKind::Record, "a", "corp", s, "k"))
            .collect(),
    )
    .await
    .unwrap();
    sink.publish(
        (1..=1000)
            .map(|s| line(LineKind::Record, "b", "corp", s, "k"))
            .collect(),
    )
    .await
    .unwrap();
    assert!(
        sink.recover("a", "corp", 0).await.unwrap().is_empty(),
        "the scan stops at its bound"
    );
    sink.publish(
        (11..=12)
            .map(|s| line(LineKind::Record, "a", "corp", s, "k"))
            .collect(),
    )
    .await
    .unwrap();
    assert_eq!(
        sink.recover("a", "corp", 0).await.unwrap(),
        BTreeSet::from([11, 12])
    );
}
