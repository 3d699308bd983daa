use std::time::Instant;

use wecom_kafka::{ErrorClass, KafkaConfig, KafkaSink};

use crate::common::{config, logged};
use crate::need_broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topic_without_create_is_a_clear_fatal_error() {
    need_broker!();
    let mut cfg = config("missing");
    cfg.create_topics = false;
    let err = KafkaSink::connect(&cfg)
        .await
        .expect_err("topics do not exist");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(err.is_fatal(), "{msg}");
    assert!(
        msg.contains(&cfg.topics.messages) && msg.contains("create_topics"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_properties_are_refused() {
    need_broker!();
    for key in ["enable.idempotence", "message.max.bytes", "acks"] {
        let mut cfg = config("protected");
        cfg.properties.insert(key.into(), "1".into());
        let err = KafkaSink::connect(&cfg).await.expect_err("must refuse");
        assert!(err.is_fatal() && err.to_string().contains(key), "{err}");
    }
}

/// An unreachable broker: one error that names the brokers and the config key, nothing from librdkafka's
/// reconnect attempts at warn or error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_one_clear_error() {
    crate::common::logs();
    let cfg = KafkaConfig {
        // nothing listens on port 1
        brokers: "127.0.0.1:1".into(),
        ..KafkaConfig::default()
    };
    let t = Instant::now();
    let check = KafkaSink::check(&cfg)
        .await
        .expect_err("nothing listens there");
    eprintln!("check: {check} (after {:?})", t.elapsed());
    let connect = KafkaSink::connect(&cfg)
        .await
        .expect_err("nothing listens there");
    eprintln!("connect: {connect}");
    for err in [&check, &connect] {
        let msg = err.to_string();
        assert!(
            matches!(err, wecom_kafka::KafkaError::Unreachable { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("127.0.0.1:1") && msg.contains("[kafka] brokers"),
            "{msg}"
        );
        assert_eq!(err.class(), ErrorClass::Retriable, "{msg}");
    }
    let noise = logged("127.0.0.1:1", tracing::Level::WARN);
    assert!(
        noise.is_empty(),
        "librdkafka noise at warn or error: {noise:#?}"
    );
}

/// SASL settings the broker does not take: the error and the logs never show the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_values_never_reach_errors_or_logs() {
    need_broker!();
    crate::common::logs();
    let mut cfg = config("secret");
    let password = "pw-4a1b9c-do-not-print";
    for (k, v) in [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "svc-archive"),
        ("sasl.password", password),
    ] {
        cfg.properties.insert(k.into(), v.into());
    }
    match KafkaSink::connect(&cfg).await {
        Ok(sink) => {
            let d = format!("{sink:?}");
            assert!(!d.contains(password), "{d}");
        }
        Err(e) => {
            let msg = format!("{e} / {e:?}");
            eprintln!("error: {e}");
            assert!(!msg.contains(password), "{msg}");
            if matches!(e, wecom_kafka::KafkaError::Unreachable { .. }) {
                assert!(
                    msg.contains("sasl.*"),
                    "points at the security settings: {msg}"
                );
            }
        }
    }
    let leaked = logged(password, tracing::Level::TRACE);
    assert!(leaked.is_empty(), "{leaked:#?}");
}
