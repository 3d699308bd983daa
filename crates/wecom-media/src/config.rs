//! The `[media]` config section (serde, `deny_unknown_fields`), its validated runtime form, and the
//! object store built from it.
//!
//! ```toml
//! [media]
//! concurrency = 4
//! part_size_bytes = 8388608
//! [media.store]
//! kind = "s3"                       # or "local" (the default: <data_dir>/objects)
//! bucket = "wecom-media"
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! access_key_id = "AKIA..."
//! # secret_access_key: prefer the environment, WECOM_S3_SECRET_ACCESS_KEY or AWS_SECRET_ACCESS_KEY
//! allow_http = true
//! prefix = "archive/"
//! ```
//!
//! With `sink.kind = "kafka"` the worker consumes the messages topic in the consumer group
//! `kafka_group_id` (default `wecom-archive-media`) instead of tailing local segment files.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::MediaError;
use crate::MediaStore;

const MIB: usize = 1024 * 1024;
/// S3 rejects parts (except the last) below 5 MiB.
pub const S3_MIN_PART_SIZE: usize = 5 * MIB;

pub use wecom_store::{S3_ACCESS_KEY_ENV, S3_SECRET_ENV};

/// Default of `[media] kafka_group_id`.
pub const DEFAULT_KAFKA_GROUP_ID: &str = "wecom-archive-media";

/// The `[media]` section as written in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Run the media worker next to the pipeline.
    pub enabled: bool,
    /// Media objects transferred at once.
    pub concurrency: usize,
    /// Multipart part size; also the unit of memory per transfer (S3: at least 5 MiB).
    pub part_size_bytes: usize,
    /// Parts of one transfer being uploaded at once (memory per transfer is about
    /// `part_size_bytes * (parts_in_flight + 1)`).
    pub parts_in_flight: usize,
    /// Whole download attempts per object (an md5/size mismatch or a failure that outlasts the
    /// resumes starts a new attempt); then the object is recorded as `failed`. Media whose
    /// message has no md5 gets twice as many (it is stored only when two downloads in a row agree).
    pub max_attempts: u32,
    /// Within one attempt, resumes in a row that bring no new byte before the attempt is given up.
    pub max_stalled_resumes: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How often the tail looks for new record lines once caught up.
    pub poll_interval_ms: u64,
    /// Records read ahead of the oldest unfinished one (bounds the worker's bookkeeping).
    pub max_window_records: usize,
    /// A media-events file is rotated when it would grow past this.
    pub events_file_max_bytes: u64,
    /// fsync stored objects (local store), events and the position. Off only in benches.
    pub fsync: bool,
    /// Consumer group of the workers that consume the messages topic when records go to Kafka only
    /// (`sink.kind = "kafka"`): the group's members share the topic's partitions.
    pub kafka_group_id: String,
    pub store: MediaStoreConfig,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            enabled: true,
            concurrency: 4,
            part_size_bytes: 8 * MIB,
            parts_in_flight: 2,
            max_attempts: 5,
            max_stalled_resumes: 10,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            poll_interval_ms: 1000,
            max_window_records: 100_000,
            events_file_max_bytes: 64 * MIB as u64,
            fsync: true,
            kafka_group_id: DEFAULT_KAFKA_GROUP_ID.to_owned(),
            store: MediaStoreConfig::default(),
        }
    }
}

/// Where media objects go: the shared object-store section (`[media.store]`).
pub type MediaStoreConfig = wecom_store::ObjectStoreConfig;

/// The validated settings the worker runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaWorkerConfig {
    pub concurrency: usize,
    pub part_size: usize,
    pub parts_in_flight: usize,
    pub max_attempts: u32,
    pub max_stalled_resumes: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub poll_interval: Duration,
    pub max_window_records: usize,
    pub events_file_max_bytes: u64,
    pub fsync: bool,
}

impl Default for MediaWorkerConfig {
    fn default() -> Self {
        MediaConfig::default()
            .worker_config()
            .expect("the defaults are valid")
    }
}

impl MediaConfig {
    /// Checks ranges and returns the worker's runtime settings.
    pub fn worker_config(&self) -> Result<MediaWorkerConfig, MediaError> {
        let bad = |m: &str| Err(MediaError::Config(m.to_owned()));
        if self.concurrency == 0 {
            return bad("media.concurrency must be at least 1");
        }
        if self.part_size_bytes < 64 * 1024 {
            return bad("media.part_size_bytes must be at least 64 KiB");
        }
        if matches!(self.store, MediaStoreConfig::S3 { .. })
            && self.part_size_bytes < S3_MIN_PART_SIZE
        {
            return bad("media.part_size_bytes must be at least 5 MiB (5242880) for s3");
        }
        if self.parts_in_flight == 0 {
            return bad("media.parts_in_flight must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("media.max_attempts must be at least 1");
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return bad("media.initial_backoff_ms must not exceed media.max_backoff_ms");
        }
        if self.poll_interval_ms == 0 {
            return bad("media.poll_interval_ms must be positive");
        }
        if self.max_window_records == 0 {
            return bad("media.max_window_records must be at least 1");
        }
        if self.kafka_group_id.trim().is_empty() {
            return bad("media.kafka_group_id is empty");
        }
        Ok(MediaWorkerConfig {
            concurrency: self.concurrency,
            part_size: self.part_size_bytes,
            parts_in_flight: self.parts_in_flight,
            max_attempts: self.max_attempts,
            max_stalled_resumes: self.max_stalled_resumes,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            max_window_records: self.max_window_records,
            events_file_max_bytes: self.events_file_max_bytes.max(1),
            fsync: self.fsync,
        })
    }

    /// Builds the object store of `[media.store]`; a local root defaults to `<data_dir>/objects`.
    pub fn build_store(&self, data_dir: &Path) -> Result<MediaStore, MediaError> {
        self.store
            .build("media.store", &data_dir.join("objects"), self.fsync)
            .map_err(|e| MediaError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_model::Secret;

    fn parse(text: &str) -> Result<MediaConfig, String> {
        toml::from_str::<MediaConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_sections() {
        let c = parse("").unwrap();
        assert_eq!(c, MediaConfig::default());
        assert_eq!(
            c.store,
            MediaStoreConfig::Local {
                root: None,
                prefix: String::new()
            }
        );

        let c = parse(
            "concurrency = 2\n[store]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://x\"\nallow_http = true\n",
        )
        .unwrap();
        assert_eq!(c.concurrency, 2);
        match &c.store {
            MediaStoreConfig::S3 {
                bucket,
                region,
                allow_http,
                ..
            } => {
                assert_eq!(bucket, "b");
                assert_eq!(region, "us-east-1");
                assert!(allow_http);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(parse("concurency = 2").is_err());
        assert!(parse("[store]\nkind = \"local\"\nbucket = \"b\"").is_err());
        assert!(parse("[store]\nkind = \"gcs\"").is_err());
    }

    #[test]
    fn validation() {
        let mut c = MediaConfig {
            store: MediaStoreConfig::S3 {
                bucket: "b".into(),
                endpoint: None,
                region: "us-east-1".into(),
                access_key_id: None,
                secret_access_key: Some(Secret::new("hunter2")),
                allow_http: false,
                prefix: String::new(),
            },
            part_size_bytes: 1024 * 1024,
            ..MediaConfig::default()
        };
        let err = c.worker_config().unwrap_err().to_string();
        assert!(err.contains("5 MiB"), "{err}");
        c.part_size_bytes = S3_MIN_PART_SIZE;
        assert!(c.worker_config().is_ok());
        c.concurrency = 0;
        assert!(c.worker_config().is_err());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
