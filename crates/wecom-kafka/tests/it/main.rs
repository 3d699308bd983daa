//! Integration tests against a real Kafka-protocol broker (tansu): start one with
//! `eval "$(scripts/kafka-broker.sh start)"`. Without `WECOM_TEST_KAFKA_BROKERS` they are skipped with a note.

mod check;
mod cluster;
mod common;
mod cursor;
mod fatal;
mod publish;
mod recover;
mod since;
mod size;
