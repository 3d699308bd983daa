//! Integration tests against a real Kafka-protocol broker (tansu): start one with
//! `eval "$(scripts/kafka-broker.sh start)"`. Without `WECOM_TEST_KAFKA_BROKERS` these tests fail.

mod common;
mod cursor;
mod fatal;
mod publish;
mod recover;
