//! The Kafka sink: publishes normalized records, dead letters and media events with an idempotent producer
//! (`acks=all`), keyed by conversation so a conversation stays in one partition and in seq order, and recovers
//! after a crash what was already published past the cursor, from the topics themselves ([`KafkaSink::recover`];
//! the exactly-once argument is in `recover.rs`, and for records published out of order by `redrive`, in
//! `since.rs`). No broker transactions are used (tansu has none).
//!
//! Around it: the connectivity check ([`KafkaSink::check`]), the record size limit the pipeline slims records
//! to ([`KafkaSink::max_record_bytes`], `limits.rs`), and the optional compacted cursor topic with owner
//! epochs for moving a stream between machines (`cursor.rs`).
//!
//! *Kafka never carries media bytes* (media events are references), and *no config property value reaches a
//! log line, an error or `Debug`* (they may hold SASL passwords).

mod admin;
mod client;
mod cluster;
mod config;
mod context;
mod cursor;
mod error;
mod limits;
mod publish;
mod recover;
mod redact;
mod scan;
mod since;
mod sink;

pub use admin::{CheckReport, TopicCheck, TopicRole};
pub use client::{client_config, ClientRole};
pub use cluster::{
    ensure_compacted_topic, read_latest, ClaimWatch, ControlEvent, ControlMember, KeyedProducer,
    KeyedRecord, MemberSettings,
};
pub use config::{KafkaConfig, Topics, COMPRESSIONS};
pub use context::ProducerStats;
pub use cursor::Claim;
pub use error::{is_fatal_code, ErrorClass, KafkaError};
pub use limits::RECORD_OVERHEAD;
pub use publish::PublishLine;
pub use rdkafka::error::RDKafkaErrorCode;
pub use recover::Recovered;
pub use since::EndOffsets;
pub use sink::{KafkaSink, LineKind};

/// Header carrying the corp id; `recover` matches on it.
pub const HEADER_CORP_ID: &str = "corp_id";
/// Header carrying the stream (`corp` or `room:<roomid>`); `recover` matches on it.
pub const HEADER_STREAM: &str = "stream";
/// Header carrying the seq in decimal; added by `publish` when missing.
pub const HEADER_SEQ: &str = "seq";
/// Header marking a record published by `redrive` (any value): it is out of the live seq order, so the
/// recovery scan counts it but never stops at it.
pub const HEADER_REDRIVEN: &str = "redriven";
/// Header carrying the owner epoch of the stream's publisher (cluster mode; see `cursor.rs`).
pub const HEADER_OWNER_EPOCH: &str = "owner_epoch";
/// Header naming the cluster worker that published the record.
pub const HEADER_WORKER: &str = "worker";
