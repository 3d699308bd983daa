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
//! `kafka_group_id` (default `wecom-archive-media-<corp_id>`) instead of tailing local segment
//! files.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::MediaError;
use crate::MediaStore;

const MIB: usize = 1024 * 1024;
/// S3 rejects parts (except the last) below 5 MiB.
pub const S3_MIN_PART_SIZE: usize = 5 * MIB;

pub use wecom_store::{S3_ACCESS_KEY_ENV, S3_SECRET_ENV};

/// The default consumer group is this prefix, `-`, and the corp id ([`MediaConfig::consumer_group`]).
pub const DEFAULT_KAFKA_GROUP_PREFIX: &str = "wecom-archive-media";
/// The corp-wide stream's name; other streams are `room:<roomid>`.
const CORP_STREAM: &str = "corp";
const MIN_PART_SIZE: usize = 64 * 1024;
/// S3 rejects parts above 5 GiB.
const S3_MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

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
    /// (`sink.kind = "kafka"`): the group's members share the topic's partitions. Default
    /// `wecom-archive-media-<corp_id>`; see [`MediaConfig::consumer_group`].
    pub kafka_group_id: Option<String>,
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
            kafka_group_id: None,
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
    /// Checks every value; the error names the key (`media.…`). The pipeline's config loading calls
    /// this, so a bad value is reported with the file before anything starts.
    pub fn validate(&self) -> Result<(), MediaError> {
        let bad = |m: String| Err(MediaError::Config(m));
        if self.concurrency == 0 {
            return bad("media.concurrency must be at least 1".into());
        }
        if self.part_size_bytes < MIN_PART_SIZE {
            return bad(format!(
                "media.part_size_bytes must be at least 64 KiB ({MIN_PART_SIZE}), got {}",
                self.part_size_bytes
            ));
        }
        if self.store.is_s3() {
            if self.part_size_bytes < S3_MIN_PART_SIZE {
                return bad(format!(
                    "media.part_size_bytes must be at least 5 MiB ({S3_MIN_PART_SIZE}) for s3, got {}",
                    self.part_size_bytes
                ));
            }
            if self.part_size_bytes as u64 > S3_MAX_PART_SIZE {
                return bad(format!(
                    "media.part_size_bytes must be at most 5 GiB ({S3_MAX_PART_SIZE}) for s3, got {}",
                    self.part_size_bytes
                ));
            }
        }
        if self.parts_in_flight == 0 {
            return bad("media.parts_in_flight must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("media.max_attempts must be at least 1".into());
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return bad(format!(
                "media.initial_backoff_ms ({}) must not exceed media.max_backoff_ms ({})",
                self.initial_backoff_ms, self.max_backoff_ms
            ));
        }
        if self.poll_interval_ms == 0 {
            return bad("media.poll_interval_ms must be positive".into());
        }
        if self.max_window_records == 0 {
            return bad("media.max_window_records must be at least 1".into());
        }
        if self.events_file_max_bytes == 0 {
            return bad("media.events_file_max_bytes must be positive".into());
        }
        if let Some(group) = &self.kafka_group_id {
            if group.trim().is_empty() {
                return bad(
                    "media.kafka_group_id is empty (leave it out for the default, wecom-archive-media-<corp_id>)"
                        .into(),
                );
            }
        }
        self.store
            .validate("media.store")
            .map_err(|e| MediaError::Config(e.to_string()))
    }

    /// Checks every value ([`MediaConfig::validate`]) and returns the worker's runtime settings.
    pub fn worker_config(&self) -> Result<MediaWorkerConfig, MediaError> {
        self.validate()?;
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
            events_file_max_bytes: self.events_file_max_bytes,
            fsync: self.fsync,
        })
    }

    /// The consumer group of the worker of `corp_id`'s stream `stream` when it consumes the
    /// messages topic: `kafka_group_id` as given, else `wecom-archive-media-<corp_id>`; a stream
    /// other than `corp` gets `-<stream>` appended to either.
    ///
    /// A worker takes only its corp's and stream's records and commits past the others, so two
    /// workers of different corps or streams must never share a group: each would skip (and
    /// commit past) records only the other may take.
    pub fn consumer_group(&self, corp_id: &str, stream: &str) -> String {
        let base = match &self.kafka_group_id {
            Some(group) => group.clone(),
            None => format!("{DEFAULT_KAFKA_GROUP_PREFIX}-{corp_id}"),
        };
        if stream == CORP_STREAM {
            base
        } else {
            format!("{base}-{stream}")
        }
    }

    /// Builds the object store of `[media.store]`; a local root defaults to `<data_dir>/objects`.
    pub fn build_store(&self, data_dir: &Path) -> Result<MediaStore, MediaError> {
        Ok(self
            .store
            .build("media.store", &data_dir.join("objects"), self.fsync)?)
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

    fn s3(part_size_bytes: usize) -> MediaConfig {
        MediaConfig {
            store: MediaStoreConfig::S3 {
                bucket: "b".into(),
                endpoint: None,
                region: "us-east-1".into(),
                access_key_id: None,
                secret_access_key: Some(Secret::new("hunter2")),
                allow_http: false,
                prefix: String::new(),
            },
            part_size_bytes,
            ..MediaConfig::default()
        }
    }

    /// `validate` rejects `config` with a message naming `key`.
    fn rejects(config: MediaConfig, key: &str) {
        let err = config
            .validate()
            .expect_err(&format!("{key}: accepted"))
            .to_string();
        assert!(err.contains(key), "{key}: {err}");
        assert!(config.worker_config().is_err(), "{key}");
    }

    #[test]
    fn validation_names_the_bad_key() {
        let ok = s3(S3_MIN_PART_SIZE);
        ok.validate().unwrap();
        assert!(ok.worker_config().is_ok());
        MediaConfig::default().validate().unwrap();

        let d = MediaConfig::default;
        rejects(s3(1024 * 1024), "media.part_size_bytes");
        rejects(s3(6 << 30), "media.part_size_bytes");
        rejects(
            MediaConfig {
                concurrency: 0,
                ..d()
            },
            "media.concurrency",
        );
        rejects(
            MediaConfig {
                part_size_bytes: 1000,
                ..d()
            },
            "media.part_size_bytes",
        );
        rejects(
            MediaConfig {
                parts_in_flight: 0,
                ..d()
            },
            "media.parts_in_flight",
        );
        rejects(
            MediaConfig {
                max_attempts: 0,
                ..d()
            },
            "media.max_attempts",
        );
        rejects(
            MediaConfig {
                initial_backoff_ms: 10,
                max_backoff_ms: 5,
                ..d()
            },
            "media.initial_backoff_ms",
        );
        rejects(
            MediaConfig {
                poll_interval_ms: 0,
                ..d()
            },
            "media.poll_interval_ms",
        );
        rejects(
            MediaConfig {
                max_window_records: 0,
                ..d()
            },
            "media.max_window_records",
        );
        rejects(
            MediaConfig {
                events_file_max_bytes: 0,
                ..d()
            },
            "media.events_file_max_bytes",
        );
        rejects(
            MediaConfig {
                kafka_group_id: Some(" ".into()),
                ..d()
            },
            "media.kafka_group_id",
        );
        let mut empty_bucket = s3(S3_MIN_PART_SIZE);
        if let MediaStoreConfig::S3 { bucket, .. } = &mut empty_bucket.store {
            bucket.clear();
        }
        rejects(empty_bucket, "media.store.bucket");
        rejects(
            parse("[store]\nkind = \"local\"\nprefix = \"a//b\"\n").unwrap(),
            "media.store.prefix",
        );
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn consumer_groups_are_per_corp_and_stream() {
        let c = MediaConfig::default();
        assert_eq!(c.consumer_group("wwA", "corp"), "wecom-archive-media-wwA");
        assert_eq!(c.consumer_group("wwB", "corp"), "wecom-archive-media-wwB");
        assert_eq!(
            c.consumer_group("wwA", "room:r1"),
            "wecom-archive-media-wwA-room:r1"
        );
        let given = parse("kafka_group_id = \"media-prod\"").unwrap();
        assert_eq!(given.consumer_group("wwA", "corp"), "media-prod");
        assert_eq!(given.consumer_group("wwA", "room:r1"), "media-prod-room:r1");
    }
}
