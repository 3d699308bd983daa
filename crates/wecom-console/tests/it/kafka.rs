//! Kafka mode against the real broker (`WECOM_TEST_KAFKA_BROKERS`, skipped without): every record of the
//! messages topic indexed exactly once, also across a restart and after the index is deleted.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use wecom_console::{Console, SourceSpec};

use crate::common::{wait_records, Env};
use crate::synth;

async fn produce(brokers: &str, topic: &str, records: &[wecom_model::Record]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    for r in records {
        let payload = serde_json::to_vec(r).expect("json");
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&r.conversation_id)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumes_the_topic_exactly_once_across_restarts() {
    let Ok(brokers) = std::env::var("WECOM_TEST_KAFKA_BROKERS") else {
        eprintln!("skipped: set WECOM_TEST_KAFKA_BROKERS to test the console's Kafka source");
        return;
    };
    let topic = format!(
        "console-test-{}-{}",
        std::process::id(),
        wecom_store::now_unix_ms()
    );
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    let records: Vec<wecom_model::Record> = synth::records(600, 13).collect();
    produce(&brokers, &topic, &records[..400]).await;

    let env = Env::new(synth::CORP);
    let kafka = wecom_kafka::KafkaConfig {
        brokers: brokers.clone(),
        topics: wecom_kafka::Topics {
            messages: topic.clone(),
            ..wecom_kafka::Topics::default()
        },
        ..wecom_kafka::KafkaConfig::default()
    };
    let spec = SourceSpec::Kafka {
        kafka: Box::new(kafka),
        group_id: format!("{topic}-console"),
    };
    let start = |spec: SourceSpec| {
        let s = env.settings(spec);
        async move {
            Console::start(s, "127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("starts")
        }
    };
    let console = start(spec.clone()).await;
    wait_records(&console, 400).await;
    console.stop().await.expect("stops");

    produce(&brokers, &topic, &records[400..]).await;
    let console = start(spec.clone()).await;
    wait_records(&console, 600).await;
    // Nothing more arrives: the count stays exact.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(console.archive().status().records, 600);
    console.stop().await.expect("stops");

    // A deleted index starts every partition from the beginning, whatever the group committed.
    std::fs::remove_dir_all(env.data().join("console/index")).expect("delete the index");
    let console = start(spec).await;
    wait_records(&console, 600).await;
    console.stop().await.expect("stops");
}
