//! Integration tests of the media worker against the simulator (with media faults), on local disk,
//! on a real S3-compatible server (moto) and with records in a real Kafka-protocol broker (tansu);
//! `scripts/test-services.sh start` starts both. Without them those tests are skipped.

mod common;
mod kafka;
mod local;
mod s3;
