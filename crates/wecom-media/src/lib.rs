//! Media worker: streams every attachment referenced by the archived records into object storage
//! (local disk by default, S3 or an S3-compatible server when configured), md5-checked,
//! resumable and idempotent.
//!
//! Data flow: the pipeline writes records (with each media reference's deterministic
//! `object_key` and status `pending`) to `<data>/messages/seg-*.ndjson` and never waits for
//! media. This worker tails those files from its own committed position, runs one job per media
//! reference ([`transfer`] has the details), appends one [`MediaEvent`] per job to
//! `<data>/media-events/`, and then commits its position.
//!
//! When records go to Kafka only, the worker consumes the messages topic in a consumer group
//! instead of tailing the files, and it can also publish every event to the media topic
//! ([`MediaWorker::with_kafka_records`], [`MediaWorker::with_kafka_events`]; see `kafka.rs`).
//!
//! Invariants:
//! - **A half-written or unverified object is never visible under its final key.**
//! - **The position never passes a record with an unfinished media job** (crash-safe, at-least-once
//!   events).
//! - **Memory per transfer is bounded by the part size**, whatever the file size.
//! - **Media never holds messages back**: the worker only reads what the pipeline wrote.
//! - **No secret reaches a log line** (the S3 secret is a [`wecom_api::Secret`]).

mod config;
mod error;
mod events;
mod kafka;
mod stats;
mod tail;
mod tracker;
pub mod transfer;
mod worker;

pub use config::{
    MediaConfig, MediaStoreConfig, MediaWorkerConfig, DEFAULT_KAFKA_GROUP_ID, S3_ACCESS_KEY_ENV,
    S3_MIN_PART_SIZE, S3_SECRET_ENV,
};
pub use error::MediaError;
pub use events::{read_events, MediaEvent, MediaEventStatus, MEDIA_EVENT_SCHEMA_ID};
pub use stats::{MediaStats, MediaStatsSnapshot};
/// The object store media goes to (the shared object-store type of `wecom-store`).
pub type MediaStore = wecom_store::Objects;
pub use tail::Position;
pub use worker::{MediaPaths, MediaWorker, MEDIA_CURSOR_STREAM, POSITION_FILE};
