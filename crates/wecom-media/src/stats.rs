//! Counters of the media worker (atomics, cheap to read from a metrics endpoint).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters. Names follow the metrics they back (`wecom_media_<name>`).
#[derive(Debug, Default)]
pub struct MediaStats {
    bytes_stored_total: AtomicU64,
    objects_stored_total: AtomicU64,
    objects_failed_total: AtomicU64,
    /// Already in the store (earlier run, or identical media of another message).
    objects_skipped_total: AtomicU64,
    /// A broken body continued at the offset reached.
    resumes_total: AtomicU64,
    /// A new download attempt after a failed one.
    retries_total: AtomicU64,
    /// Complete bodies whose size or md5 did not match the message.
    verify_failures_total: AtomicU64,
    records_read_total: AtomicU64,
    /// Lines of the segments (or messages of the topic) that are not readable records (skipped).
    records_unreadable_total: AtomicU64,
    /// Messages of the topic that belong to another corp or stream (skipped, committed past).
    records_other_stream_total: AtomicU64,
    /// Errors of the messages topic's consumer (the consumer retries).
    kafka_consume_errors_total: AtomicU64,
    /// Unverified uploads whose abort failed (an S3 bucket keeps the parts until its lifecycle
    /// rule removes them).
    upload_abort_failures_total: AtomicU64,
    jobs_in_flight: AtomicU64,
}

/// What a record read turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordRead {
    /// A message record: its media jobs run.
    Ours,
    /// Not a message record.
    Unreadable,
    /// A record of another corp or stream in the shared messages topic.
    OtherStream,
}

/// A point-in-time copy of [`MediaStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MediaStatsSnapshot {
    pub bytes_stored_total: u64,
    pub objects_stored_total: u64,
    pub objects_failed_total: u64,
    pub objects_skipped_total: u64,
    pub resumes_total: u64,
    pub retries_total: u64,
    pub verify_failures_total: u64,
    pub records_read_total: u64,
    pub records_unreadable_total: u64,
    pub records_other_stream_total: u64,
    pub kafka_consume_errors_total: u64,
    pub upload_abort_failures_total: u64,
    pub jobs_in_flight: u64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl MediaStats {
    pub fn snapshot(&self) -> MediaStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MediaStatsSnapshot {
            bytes_stored_total: g(&self.bytes_stored_total),
            objects_stored_total: g(&self.objects_stored_total),
            objects_failed_total: g(&self.objects_failed_total),
            objects_skipped_total: g(&self.objects_skipped_total),
            resumes_total: g(&self.resumes_total),
            retries_total: g(&self.retries_total),
            verify_failures_total: g(&self.verify_failures_total),
            records_read_total: g(&self.records_read_total),
            records_unreadable_total: g(&self.records_unreadable_total),
            records_other_stream_total: g(&self.records_other_stream_total),
            kafka_consume_errors_total: g(&self.kafka_consume_errors_total),
            upload_abort_failures_total: g(&self.upload_abort_failures_total),
            jobs_in_flight: g(&self.jobs_in_flight),
        }
    }

    pub(crate) fn add_stored(&self, bytes: u64) {
        inc(&self.bytes_stored_total, bytes);
        inc(&self.objects_stored_total, 1);
    }
    pub(crate) fn add_failed(&self) {
        inc(&self.objects_failed_total, 1);
    }
    pub(crate) fn add_skipped(&self) {
        inc(&self.objects_skipped_total, 1);
    }
    pub(crate) fn add_resume(&self) {
        inc(&self.resumes_total, 1);
    }
    pub(crate) fn add_retry(&self) {
        inc(&self.retries_total, 1);
    }
    pub(crate) fn add_mismatch(&self) {
        inc(&self.verify_failures_total, 1);
    }
    pub(crate) fn add_record(&self, read: RecordRead) {
        inc(&self.records_read_total, 1);
        match read {
            RecordRead::Ours => {}
            RecordRead::Unreadable => inc(&self.records_unreadable_total, 1),
            RecordRead::OtherStream => inc(&self.records_other_stream_total, 1),
        }
    }
    pub(crate) fn add_consume_error(&self) {
        inc(&self.kafka_consume_errors_total, 1);
    }
    pub(crate) fn add_abort_failure(&self) {
        inc(&self.upload_abort_failures_total, 1);
    }
    pub(crate) fn job_started(&self) {
        inc(&self.jobs_in_flight, 1);
    }
    pub(crate) fn job_ended(&self) {
        self.jobs_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
