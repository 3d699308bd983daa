use wecom_kafka::{KafkaSink, TopicRole};

use crate::common::{config, unique};
use crate::need_broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_topics_partitions_and_what_connect_would_create() {
    need_broker!();
    let mut cfg = config("check");
    cfg.partitions = 3;
    cfg.cursor_topic = Some(unique("check.cursors"));

    cfg.create_topics = false;
    let report = KafkaSink::check(&cfg).await.unwrap();
    assert!(!report.brokers.is_empty());
    assert_eq!(report.topics.len(), 5);
    assert!(report
        .topics
        .iter()
        .all(|t| t.partitions.is_none() && !t.will_create));
    assert!(!report.ok());

    cfg.create_topics = true;
    let report = KafkaSink::check(&cfg).await.unwrap();
    assert!(report.topics.iter().all(|t| t.will_create), "{report:?}");
    assert!(report.ok());

    KafkaSink::connect(&cfg).await.unwrap();
    let report = KafkaSink::check(&cfg).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.ok() && report.missing().next().is_none());
    for t in &report.topics {
        let expected = if t.role == TopicRole::Cursor { 1 } else { 3 };
        assert_eq!(t.partitions, Some(expected), "{t:?}");
        assert!(!t.will_create);
    }
    let names: Vec<&str> = report.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            cfg.topics.messages.as_str(),
            &cfg.topics.media,
            &cfg.topics.deadletter,
            &cfg.topics.recalls,
            cfg.cursor_topic.as_deref().unwrap()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_an_invalid_config_before_any_network() {
    need_broker!();
    let mut cfg = config("check-invalid");
    cfg.partitions = 0;
    let err = KafkaSink::check(&cfg).await.unwrap_err();
    assert!(
        err.is_fatal() && err.to_string().contains("partitions"),
        "{err}"
    );
}
