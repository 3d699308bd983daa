use crate::common::{config, connect, unique};
use crate::need_broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_round_trip_in_compacted_topic() {
    need_broker!();
    let mut cfg = config("cursor");
    cfg.cursor_topic = Some(unique("cursor.cursors"));
    let sink = connect(&cfg).await;
    assert_eq!(sink.load_cursor("corp-a", "corp").await.unwrap(), None);
    sink.store_cursor("corp-a", "corp", 5).await.unwrap();
    sink.store_cursor("corp-a", "corp", 10).await.unwrap();
    sink.store_cursor("corp-a", "room:r1", 3).await.unwrap();
    assert_eq!(sink.load_cursor("corp-a", "corp").await.unwrap(), Some(10));
    assert_eq!(
        sink.load_cursor("corp-a", "room:r1").await.unwrap(),
        Some(3)
    );
    assert_eq!(sink.load_cursor("corp-b", "corp").await.unwrap(), None);

    // a second sink (another machine taking over) sees the same cursor
    let other = connect(&cfg).await;
    assert_eq!(other.load_cursor("corp-a", "corp").await.unwrap(), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_calls_without_cursor_topic_fail() {
    need_broker!();
    let cfg = config("nocursor");
    let sink = connect(&cfg).await;
    assert!(sink
        .store_cursor("a", "corp", 1)
        .await
        .unwrap_err()
        .is_fatal());
}
