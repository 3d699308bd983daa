//! Integration tests of the media worker against the simulator (with media faults), on local disk,
//! on a real S3-compatible server (moto) and with records in a real Kafka-protocol broker (tansu);
//! `scripts/test-services.sh start` and `scripts/kafka-broker.sh start` start them. Without them
//! those tests are skipped with a note.

mod common;
mod kafka;
mod local;
mod s3;
