//! Media worker: streams every attachment referenced by the archived records into object storage
//! (local disk by default, S3 or an S3-compatible server when configured), md5-checked,
//! resumable and idempotent.
//!
//! Data flow: the pipeline writes records (with each media reference's deterministic
//! `object_key` and status `pending`) to the stream's `messages/seg-*.ndjson` and never waits for
//! media. This worker tails those files from its own committed position ([`Position`]), runs one
//! job per media reference ([`transfer`] has the details), appends one [`MediaEvent`] per job to
//! the stream's `media-events/`, and then commits its position. Every path comes from the
//! stream's [`wecom_store::StreamLayout`].
//!
//! When records go to Kafka only, the worker consumes the messages topic in a consumer group
//! instead of tailing the files, taking only its corp's and stream's records, and it can also
//! publish every event to the media topic ([`MediaWorker::with_kafka_records`],
//! [`MediaWorker::with_kafka_events`]; see `kafka.rs`).
//!
//! Code map: `source.rs` (the file tail or the consumer, behind one type) feeds the pump loop of
//! `worker.rs`, which starts a `job.rs` per media reference; a job transfers (`transfer.rs`) and
//! hands its event to `outputs.rs` (event log, media topic, then the acknowledgement that lets
//! `position.rs` or the group's offsets move). `status.rs` is what operators see.
//!
//! Invariants:
//! - **A half-written or unverified object is never visible under its final key.**
//! - **The position never passes a record with an unfinished media job** (crash-safe, at-least-once
//!   events).
//! - **Memory per transfer is bounded by the part size**, whatever the file size.
//! - **Media never holds messages back**: the worker only reads what the pipeline wrote.
//! - **A worker fetches only its own corp's media**: in the shared messages topic it skips the
//!   records of other corps and streams.
//! - **No secret reaches a log line** (the S3 secret is a [`wecom_model::Secret`]).

mod config;
mod error;
mod events;
mod job;
mod kafka;
mod outputs;
mod position;
mod source;
mod stats;
mod status;
mod tail;
mod tracker;
pub mod transfer;
mod worker;

pub use config::{
    MediaConfig, MediaStoreConfig, MediaWorkerConfig, DEFAULT_KAFKA_GROUP_PREFIX,
    S3_ACCESS_KEY_ENV, S3_MIN_PART_SIZE, S3_SECRET_ENV,
};
pub use error::MediaError;
pub use events::{read_events, MediaEvent, MediaEventStatus, MEDIA_EVENT_SCHEMA_ID};
pub use position::{MEDIA_CURSOR_STREAM, POSITION_FILE};
pub use stats::{MediaStats, MediaStatsSnapshot};
pub use status::{
    read_status, MediaLastError, MediaRunState, MediaSourceKind, MediaStatus, MEDIA_STATUS_VERSION,
};
/// The object store media goes to (the shared object-store type of `wecom-store`).
pub type MediaStore = wecom_store::Objects;
pub use tail::Position;
pub use worker::MediaWorker;
