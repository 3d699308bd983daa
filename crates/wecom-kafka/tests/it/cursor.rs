use std::collections::BTreeSet;

use crate::common::{config, connect, produce_raw, unique};
use crate::need_broker;

fn cursor_config(tag: &str) -> wecom_kafka::KafkaConfig {
    let mut cfg = config(tag);
    cfg.cursor_topic = Some(unique(&format!("{tag}.cursors")));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_round_trip_newest_record_per_key() {
    need_broker!();
    let cfg = cursor_config("cursor");
    let sink = connect(&cfg).await;
    assert_eq!(sink.load_cursor("corp-a", "corp").await.unwrap(), None);
    sink.store_cursor("corp-a", "corp", 5, 0).await.unwrap();
    sink.store_cursor("corp-a", "corp", 10, 0).await.unwrap();
    sink.store_cursor("corp-a", "room:r1", 3, 0).await.unwrap();
    // tansu does not compact: the loader must take the newest record, whatever its value
    sink.store_cursor("corp-a", "corp", 8, 0).await.unwrap();
    assert_eq!(sink.load_cursor("corp-a", "corp").await.unwrap(), Some(8));
    assert_eq!(
        sink.load_cursor("corp-a", "room:r1").await.unwrap(),
        Some(3)
    );
    assert_eq!(sink.load_cursor("corp-b", "corp").await.unwrap(), None);
    assert_eq!(sink.current_epoch("corp-a", "corp").await.unwrap(), 0);

    // a second sink (another machine taking over) sees the same cursor
    let other = connect(&cfg).await;
    assert_eq!(other.load_cursor("corp-a", "corp").await.unwrap(), Some(8));
}

/// A stream moves from machine A to machine B; A, not yet aware, keeps writing: its cursors are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_cursor_is_ignored() {
    need_broker!();
    let cfg = cursor_config("epoch");
    let a = connect(&cfg).await;
    let b = connect(&cfg).await;
    let ea = a.claim_epoch("c", "corp", "host-a").await.unwrap();
    assert_eq!(ea, 1);
    a.store_cursor("c", "corp", 100, ea).await.unwrap();
    assert_eq!(b.load_cursor("c", "corp").await.unwrap(), Some(100));

    let eb = b.claim_epoch("c", "corp", "host-b").await.unwrap();
    assert_eq!(eb, 2);
    let claim = a.current_claim("c", "corp").await.unwrap().unwrap();
    assert_eq!((claim.epoch, claim.owner.as_str()), (2, "host-b"));
    // B has not stored a cursor yet: the handover
    assert_eq!(b.load_cursor("c", "corp").await.unwrap(), Some(100));
    // the stale owner A writes after the claim: ignored, before and after B writes
    a.store_cursor("c", "corp", 300, ea).await.unwrap();
    assert_eq!(b.load_cursor("c", "corp").await.unwrap(), Some(100));
    b.store_cursor("c", "corp", 150, eb).await.unwrap();
    a.store_cursor("c", "corp", 400, ea).await.unwrap();
    assert_eq!(a.load_cursor("c", "corp").await.unwrap(), Some(150));
    assert_eq!(a.current_epoch("c", "corp").await.unwrap(), 2);
    // other streams are untouched
    assert_eq!(a.current_epoch("c", "room:x").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_share_an_epoch() {
    need_broker!();
    let cfg = cursor_config("epoch-race");
    let sinks = [
        connect(&cfg).await,
        connect(&cfg).await,
        connect(&cfg).await,
    ];
    for round in 0..3 {
        let claims = futures::future::join_all(
            sinks
                .iter()
                .enumerate()
                .map(|(i, s)| s.claim_epoch("c", "corp", ["a", "b", "c"][i])),
        )
        .await;
        let won: Vec<u64> = claims
            .iter()
            .filter_map(|c| c.as_ref().ok().copied())
            .collect();
        eprintln!("round {round}: {claims:?}");
        assert!(!won.is_empty());
        assert_eq!(
            won.iter().collect::<BTreeSet<_>>().len(),
            won.len(),
            "{claims:?}"
        );
        let current = sinks[0].current_epoch("c", "corp").await.unwrap();
        assert_eq!(current, *won.iter().max().unwrap(), "{claims:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_cursors_are_read_and_bad_ones_are_errors() {
    need_broker!();
    let cfg = cursor_config("cursor-v1");
    let sink = connect(&cfg).await;
    let topic = cfg.cursor_topic.as_deref().unwrap();
    produce_raw(topic, 0, "c/corp", Some(br#"{"version":1,"seq":42}"#)).await;
    assert_eq!(sink.load_cursor("c", "corp").await.unwrap(), Some(42));
    sink.store_cursor("c", "corp", 43, 0).await.unwrap();
    assert_eq!(sink.load_cursor("c", "corp").await.unwrap(), Some(43));

    // a cursor under an epoch nobody claimed
    sink.store_cursor("c", "room:r", 1, 4).await.unwrap();
    let err = sink.load_cursor("c", "room:r").await.unwrap_err();
    assert!(
        err.is_fatal() && err.to_string().contains("epoch 4"),
        "{err}"
    );

    produce_raw(topic, 0, "cursor/c/0/room:s", Some(b"not json")).await;
    let err = sink.load_cursor("c", "room:s").await.unwrap_err();
    assert!(err.to_string().contains("cursor/c/0/room:s"), "{err}");

    let err = sink.store_cursor("a/b", "corp", 1, 0).await.unwrap_err();
    assert!(err.is_fatal(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_calls_without_cursor_topic_fail() {
    need_broker!();
    let cfg = config("nocursor");
    let sink = connect(&cfg).await;
    assert!(sink
        .store_cursor("a", "corp", 1, 0)
        .await
        .unwrap_err()
        .is_fatal());
    assert!(sink
        .claim_epoch("a", "corp", "me")
        .await
        .unwrap_err()
        .is_fatal());
}
