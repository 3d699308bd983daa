//! Room metadata history: stored with the time taken, unchanged snapshots not stored twice, answered
//! "as of" a time, across processes, and checked on read.

use serde_json::json;
use wecom_ledger::{Ledger, LedgerError};
use wecom_store::Objects;

use crate::common::*;

#[tokio::test]
async fn snapshots_answer_as_of_a_time_and_are_stored_once_per_change() {
    let objects = Objects::in_memory();
    let ledger = Ledger::new(objects.clone(), CORP, None).expect("ledger");
    let a =
        json!({"roomname": "ops", "creator": "u1", "members": [{"memberid": "u1", "jointime": 1}]});
    let b = json!({"roomname": "ops-renamed", "creator": "u1", "notice": "hi", "members": []});
    let room = "wrAbC.d_1";

    assert!(ledger.put_room_snapshot(room, 100, &a).await.expect("put"));
    assert!(
        !ledger.put_room_snapshot(room, 200, &a).await.expect("same"),
        "unchanged: not stored again"
    );
    assert!(ledger.put_room_snapshot(room, 300, &b).await.expect("put"));
    assert!(ledger
        .put_room_snapshot(room, 400, &a)
        .await
        .expect("changed back"));

    let all = ledger.room_snapshots(room).await.expect("list");
    let got: Vec<(u64, &serde_json::Value)> =
        all.iter().map(|s| (s.taken_at_ms, &s.room)).collect();
    assert_eq!(got, [(100, &a), (300, &b), (400, &a)]);
    let as_of = |at| {
        let ledger = ledger.clone();
        async move {
            ledger
                .room_as_of(room, at)
                .await
                .expect("as of")
                .map(|s| (s.taken_at_ms, s.room))
        }
    };
    assert_eq!(as_of(99).await, None);
    assert_eq!(as_of(299).await, Some((100, a.clone())));
    assert_eq!(as_of(300).await, Some((300, b.clone())));
    assert_eq!(as_of(u64::MAX).await, Some((400, a.clone())));
    assert!(ledger
        .room_as_of("other", 1000)
        .await
        .expect("none")
        .is_none());

    // A new process sees the same history and does not repeat the newest snapshot.
    let restarted = Ledger::new(objects.clone(), CORP, None).expect("ledger");
    assert!(!restarted
        .put_room_snapshot(room, 500, &a)
        .await
        .expect("same"));
    assert!(restarted
        .put_room_snapshot(room, 350, &json!({"x": 1}))
        .await
        .expect("between"));
    assert_eq!(restarted.room_snapshots(room).await.expect("list").len(), 4);
}

#[tokio::test]
async fn an_altered_snapshot_is_refused() {
    let objects = Objects::in_memory();
    let ledger = Ledger::new(objects.clone(), CORP, None).expect("ledger");
    ledger
        .put_room_snapshot("wr1", 100, &json!({"roomname": "a"}))
        .await
        .expect("put");
    let key = {
        use futures::StreamExt;
        let prefix = objects.path(&format!("rooms/{CORP}/wr1")).expect("path");
        let metas: Vec<_> = objects.object_store().list(Some(&prefix)).collect().await;
        assert_eq!(metas.len(), 1);
        metas
            .into_iter()
            .next()
            .expect("one")
            .expect("meta")
            .location
            .to_string()
    };
    overwrite(&objects, &key, br#"{"roomname":"b"}"#.to_vec()).await;
    let err = ledger.room_as_of("wr1", 100).await.expect_err("altered");
    assert!(
        matches!(err, LedgerError::Corrupt { .. }) && err.to_string().contains(&key),
        "{err}"
    );
}
