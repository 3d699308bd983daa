use std::collections::BTreeSet;
use std::time::Instant;

use wecom_kafka::{LineKind, Recovered, HEADER_REDRIVEN};

use crate::common::{config, connect, line};
use crate::need_broker;

fn set(seqs: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
    seqs.into_iter().collect()
}

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

    // every 50th seq of corp-a/corp is a dead letter
    let check = |after: u64, tail: std::ops::RangeInclusive<u64>, got: Recovered| {
        let records = set(tail.clone().filter(|s| s % 50 != 0));
        let dead_letters = set(tail.filter(|s| s % 50 == 0));
        assert_eq!(got.records, records, "records after_seq {after}");
        assert_eq!(
            got.dead_letters, dead_letters,
            "dead letters after_seq {after}"
        );
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
    let r1 = sink.recover("corp-a", "room:r1", 400).await.unwrap();
    assert_eq!(r1.records, set(401..=1000));
    assert!(r1.dead_letters.is_empty());
    // corp-b's dead letters have seqs 1..=1000, its records 5001..=6000
    let b = sink.recover("corp-b", "corp", 5_900).await.unwrap();
    assert_eq!(b.records, set(5_901..=6_000));
    assert!(b.dead_letters.is_empty());
    let b = sink.recover("corp-b", "corp", 990).await.unwrap();
    assert_eq!(b.dead_letters, set(991..=1_000));
    let unknown = sink.recover("corp-z", "corp", 0).await.unwrap();
    assert!(unknown.is_empty());
}

/// A seq dead-lettered to Kafka before a crash (before the local write and the cursor commit), then decrypted
/// after the restart (the operator added the missing key): it is not a published record, so it must be
/// published as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_in_kafka_is_not_a_published_record() {
    need_broker!();
    let cfg = config("recover-dl");
    let sink = connect(&cfg).await;
    let page = (1..=10)
        .map(|seq| {
            let kind = if seq == 5 {
                LineKind::DeadLetter
            } else {
                LineKind::Record
            };
            line(kind, "c", "corp", seq, "conv")
        })
        .collect();
    sink.publish(page).await.unwrap();
    // crash: cursor still 0
    let got = sink.recover("c", "corp", 0).await.unwrap();
    assert_eq!(got.records, set((1..=10).filter(|&s| s != 5)));
    assert_eq!(got.dead_letters, set([5]));
    assert!(!got.contains(LineKind::Record, 5));
    assert!(got.contains(LineKind::DeadLetter, 5));

    // after the restart seq 5 decrypts: the pipeline publishes it as a record, and it is found as one
    sink.publish(vec![line(LineKind::Record, "c", "corp", 5, "conv")])
        .await
        .unwrap();
    let got = sink.recover("c", "corp", 0).await.unwrap();
    assert_eq!(got.records, set(1..=10));
    assert_eq!(got.dead_letters, set([5]));
}

/// `redrive` publishing an old seq between a crash and the restart must not hide the live tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redriven_records_do_not_hide_the_live_tail() {
    need_broker!();
    let mut cfg = config("recover-redrive");
    cfg.partitions = 1;
    let sink = connect(&cfg).await;
    let page = |seqs: std::ops::RangeInclusive<u64>| {
        seqs.map(|s| line(LineKind::Record, "c", "corp", s, "conv"))
            .collect::<Vec<_>>()
    };
    sink.publish(page(1..=10)).await.unwrap(); // cursor 10
    sink.publish(page(11..=15)).await.unwrap(); // crash before the commit
    let mut redriven = line(LineKind::Record, "c", "corp", 3, "conv");
    redriven.headers.push((HEADER_REDRIVEN.into(), "1".into()));
    sink.publish(vec![redriven]).await.unwrap();
    let got = sink.recover("c", "corp", 10).await.unwrap();
    assert_eq!(got.records, set(11..=15));
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
        sink.recover("a", "corp", 0).await.unwrap().records,
        BTreeSet::from([11, 12])
    );
}
