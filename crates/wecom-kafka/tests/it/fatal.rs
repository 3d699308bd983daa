use wecom_kafka::{KafkaSink, LineKind, RDKafkaErrorCode};

use crate::common::{config, connect, line};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_larger_than_message_max_bytes_is_fatal() {
    let mut cfg = config("fatal");
    cfg.properties
        .insert("message.max.bytes".into(), "10000".into());
    cfg.batch_size = 10_000;
    let sink = connect(&cfg).await;
    let mut big = line(LineKind::Record, "c", "corp", 3, "conv");
    big.payload = vec![b'x'; 50_000];
    let lines = vec![
        line(LineKind::Record, "c", "corp", 1, "conv"),
        line(LineKind::Record, "c", "corp", 2, "conv"),
        big,
    ];
    let err = sink
        .publish(lines)
        .await
        .expect_err("a record over message.max.bytes must fail");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(err.is_fatal(), "{msg}");
    assert_eq!(err.code(), Some(RDKafkaErrorCode::MessageSizeTooLarge));
    assert!(
        msg.contains(&cfg.topics.messages) && msg.contains("seq 3"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topic_without_create_is_a_clear_fatal_error() {
    let mut cfg = config("missing");
    cfg.create_topics = false;
    let err = KafkaSink::connect(&cfg)
        .await
        .expect_err("topics do not exist");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(err.is_fatal(), "{msg}");
    assert!(msg.contains(&cfg.topics.messages), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_properties_are_refused() {
    let mut cfg = config("protected");
    cfg.properties
        .insert("enable.idempotence".into(), "false".into());
    let err = KafkaSink::connect(&cfg).await.expect_err("must refuse");
    assert!(
        err.is_fatal() && err.to_string().contains("enable.idempotence"),
        "{err}"
    );
}
