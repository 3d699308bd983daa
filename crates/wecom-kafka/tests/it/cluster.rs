//! What cluster mode takes from this crate: the control topic's group member (assignment shared between
//! members, revocation before the partitions go), the claim watch, and the compacted-topic helpers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wecom_kafka::{
    ensure_compacted_topic, read_latest, ClaimWatch, ControlEvent, ControlMember, KeyedProducer,
    MemberSettings,
};

use crate::common::{config, connect, unique};
use crate::need_broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_watch_sees_newer_claims_of_its_stream_only() {
    need_broker!();
    let mut cfg = config("watch");
    cfg.cursor_topic = Some(unique("watch.cursors"));
    let sink = connect(&cfg).await;
    let watch = ClaimWatch::start(&cfg).await.unwrap();
    let t = Duration::from_secs(20);
    assert_eq!(watch.newest_epoch("corp-a", "corp", t).await.unwrap(), 0);
    let e1 = sink.claim_epoch("corp-a", "corp", "w1").await.unwrap();
    // the claim is seen at once: the check reads up to the end fetched after it began
    assert_eq!(watch.newest_epoch("corp-a", "corp", t).await.unwrap(), e1);
    sink.store_cursor("corp-a", "corp", 10, e1).await.unwrap();
    let e2 = sink.claim_epoch("corp-a", "corp", "w2").await.unwrap();
    assert!(e2 > e1);
    assert_eq!(watch.newest_epoch("corp-a", "corp", t).await.unwrap(), e2);
    assert_eq!(watch.newest_epoch("corp-b", "corp", t).await.unwrap(), 0);
    assert_eq!(watch.newest_epoch("corp-a", "room:r1", t).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_latest_keeps_the_newest_record_of_each_key_and_tombstones() {
    need_broker!();
    let cfg = config("latest");
    let topic = unique("latest.control");
    assert_eq!(ensure_compacted_topic(&cfg, &topic, 3).await.unwrap(), 3);
    // an existing topic keeps its partitions
    assert_eq!(ensure_compacted_topic(&cfg, &topic, 8).await.unwrap(), 3);
    let out = KeyedProducer::new(&cfg).unwrap();
    out.put(&topic, Some(1), "a", Some(b"1")).await.unwrap();
    out.put(&topic, Some(2), "b", Some(b"2")).await.unwrap();
    out.put(&topic, Some(1), "a", Some(b"3")).await.unwrap();
    out.put(&topic, Some(2), "b", None).await.unwrap();
    let latest = read_latest(&cfg, &topic).await.unwrap();
    let got: Vec<(i32, &str, Option<&[u8]>)> = latest
        .iter()
        .map(|r| (r.partition, r.key.as_str(), r.value.as_deref()))
        .collect();
    assert_eq!(got, vec![(1, "a", Some(&b"3"[..])), (2, "b", None)]);
}

/// Drains events until `pred` holds on the member's partitions (answering revocations), or fails.
async fn until(
    rx: &mut mpsc::Receiver<ControlEvent>,
    owned: &mut BTreeSet<i32>,
    what: &str,
    pred: impl Fn(&BTreeSet<i32>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pred(owned) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}: {owned:?}");
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(ControlEvent::Assigned(ps))) => owned.extend(ps),
            Ok(Some(ControlEvent::Revoked { partitions, done })) => {
                for p in partitions {
                    owned.remove(&p);
                }
                let _ = done.send(());
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("member stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}: {owned:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_the_control_partitions_and_one_leaving_hands_them_over() {
    need_broker!();
    let cfg = config("group");
    let topic = unique("group.control");
    ensure_compacted_topic(&cfg, &topic, 4).await.unwrap();
    let settings = |name: &str| MemberSettings {
        topic: topic.clone(),
        group_id: unique("group"),
        member_name: name.into(),
        session_timeout: Duration::from_secs(6),
        revoke_timeout: Duration::from_secs(10),
    };
    let mut s1 = settings("m1");
    let s2 = MemberSettings {
        member_name: "m2".into(),
        ..s1.clone()
    };
    s1.group_id.clone_from(&s2.group_id);
    let (tx1, mut rx1) = mpsc::channel(64);
    let m1 = ControlMember::join(&cfg, &s1, tx1).unwrap();
    let mut own1 = BTreeSet::new();
    until(&mut rx1, &mut own1, "m1 owns every partition", |o| {
        o.len() == 4
    })
    .await;

    let (tx2, mut rx2) = mpsc::channel(64);
    let m2 = ControlMember::join(&cfg, &s2, tx2).unwrap();
    let mut own2 = BTreeSet::new();
    // m1 must answer its revocation while m2 waits for its share
    let (r1, r2) = tokio::join!(
        until(&mut rx1, &mut own1, "m1 gives partitions up", |o| o.len()
            < 4),
        until(&mut rx2, &mut own2, "m2 gets partitions", |o| !o.is_empty()),
    );
    let ((), ()) = (r1, r2);
    assert!(
        own1.is_disjoint(&own2),
        "a partition on two members: {own1:?} {own2:?}"
    );

    // m2 leaves cleanly: m1 gets everything back
    let leaving = tokio::task::spawn_blocking(move || m2.leave());
    let answer = async {
        while let Some(ev) = rx2.recv().await {
            if let ControlEvent::Revoked { done, .. } = ev {
                let _ = done.send(());
            }
        }
    };
    let waiting = until(&mut rx1, &mut own1, "m1 owns every partition again", |o| {
        o.len() == 4
    });
    tokio::select! {
        () = waiting => {}
        () = async { let _ = tokio::join!(leaving, answer); std::future::pending::<()>().await } => {}
    }
    drop(m1);
}
