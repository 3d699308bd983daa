//! One media object: archive -> object store, streamed, md5-checked, resumed, retried.
//!
//! **Nothing unverified is ever visible under the final key.** The bytes go into a multipart
//! upload *of the final key*; a multipart upload is invisible until it is completed, and it is
//! completed only after the whole body was received and its size and md5 matched the message.
//! Anything else aborts it. (Local disk: `LocalFileSystem` stages the upload in a `key#n` file and
//! renames it into place on completion; S3: an incomplete upload is not an object.) Compared with
//! a temporary key plus copy, this writes each byte once and is not limited by S3's 5 GiB
//! single-request copy. A crash mid-upload can leave an incomplete S3 multipart upload (invisible,
//! but billed): give the bucket an `AbortIncompleteMultipartUpload` lifecycle rule.
//!
//! Media whose message has no md5sum (it happens in real data) is downloaded once without
//! writing anything, to learn its md5, then stored by a second download that must hash the same:
//! without it a corrupted or cut-short body of md5-less media could not be told from the real one.
//!
//! A body that breaks (reset, cut short, 5xx mid-way) is resumed on the **same** upload with
//! `media(sdkfileid, bytes received so far)`, so a 1 GiB video is not fetched twice because of
//! one reset. Memory per transfer is bounded by `part_size * (parts_in_flight + 1)`.

use std::time::Duration;

use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use tokio_util::sync::CancellationToken;
use wecom_api::{ApiError, ArchiveClient, ErrorClass};

use crate::config::MediaWorkerConfig;
use crate::stats::MediaStats;
use crate::MediaStore;

/// What the worker knows about the media to fetch.
#[derive(Debug, Clone)]
pub(crate) struct MediaJob {
    pub sdkfileid: String,
    /// The object key (without the store's prefix), for errors.
    pub object_key: String,
    pub path: Path,
    /// Lowercase hex, `None` when the message had no usable md5sum.
    pub expected_md5: Option<String>,
    pub expected_size: Option<u64>,
}

/// How one job ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Stored {
        size: u64,
        md5: Option<String>,
        already: bool,
        attempts: u32,
    },
    Failed {
        reason: String,
        errcode: Option<i64>,
        size: Option<u64>,
        md5: Option<String>,
        attempts: u32,
    },
    /// Shutdown: the job did not finish and must be redone by the next run.
    Cancelled,
    /// The worker must stop (bad secret, subscription expired, store unusable).
    Fatal(crate::MediaError),
}

enum AttemptError {
    /// Retry with a new attempt after a backoff.
    Retry(String),
    /// This object cannot be fetched (expired, bad fileid): fail it now.
    Item(ApiError),
    Fatal(ApiError),
    Cancelled,
}

/// How a complete download ended.
enum Verdict {
    /// Verified and completed under the final key.
    Stored(Received),
    /// Hash-only pass of md5-less media.
    Hashed(Received),
    /// Size or md5 did not match (the upload was aborted).
    Mismatch(String, Received),
}

struct Received {
    size: u64,
    md5: String,
}

pub(crate) struct Transfer<'a> {
    pub client: &'a ArchiveClient,
    pub store: &'a MediaStore,
    pub config: &'a MediaWorkerConfig,
    pub stats: &'a MediaStats,
    pub cancel: &'a CancellationToken,
}

impl Transfer<'_> {
    pub(crate) async fn run(&self, job: &MediaJob) -> Outcome {
        let os = self.store.object_store();
        // Idempotence: only verified objects ever reach the final key, and the key is derived
        // from the md5 (or the sdkfileid), so an object of the right size there is this media.
        let mut head_failures = 0u32;
        loop {
            match os.head(&job.path).await {
                Ok(meta) if job.expected_size.is_none_or(|s| s == meta.size) => {
                    return Outcome::Stored {
                        size: meta.size,
                        md5: job.expected_md5.clone(),
                        already: true,
                        attempts: 0,
                    };
                }
                Ok(_) | Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => {
                    head_failures += 1;
                    if head_failures >= self.config.max_attempts {
                        return Outcome::Fatal(crate::MediaError::Store {
                            store: self.store.location(&job.path),
                            reason: format!("head failed {head_failures} times: {e}"),
                        });
                    }
                    if self.sleep(head_failures).await.is_err() {
                        return Outcome::Cancelled;
                    }
                }
            }
        }

        // The md5 an upload must match: the message's, or, when the message has none, the md5 of
        // an earlier complete download (a hash-only pass). Two downloads that agree are the only
        // evidence there is that the bytes are not a corrupted or cut-short body.
        let mut want = job.expected_md5.clone();
        let mut last: Option<(String, Option<Received>)> = None;
        let mut backoff = false;
        let mut retries = 0u32;
        // Md5-less media needs two agreeing downloads: twice the attempts.
        let max_attempts = if job.expected_md5.is_some() {
            self.config.max_attempts
        } else {
            self.config.max_attempts.saturating_mul(2)
        };
        for attempt in 1..=max_attempts {
            if backoff {
                retries += 1;
                self.stats.add_retry();
                if self.sleep(retries).await.is_err() {
                    return Outcome::Cancelled;
                }
            }
            backoff = true;
            let result = match &want {
                None => self.attempt(job, None).await,
                Some(md5) => self.attempt(job, Some(md5)).await,
            };
            match result {
                Ok(Verdict::Stored(got)) => {
                    self.stats.add_stored(got.size);
                    return Outcome::Stored {
                        size: got.size,
                        md5: Some(got.md5),
                        already: false,
                        attempts: attempt,
                    };
                }
                Ok(Verdict::Hashed(got)) => {
                    // The first complete download of md5-less media: confirm it with a second.
                    want = Some(got.md5);
                    backoff = false;
                }
                Ok(Verdict::Mismatch(reason, got)) => {
                    self.stats.add_mismatch();
                    tracing::debug!(object = %job.path, %reason, attempt, "media verification failed");
                    if job.expected_md5.is_none() && job.expected_size.is_none_or(|s| s == got.size)
                    {
                        // No md5 in the message: the latest download is the new candidate.
                        want = Some(got.md5.clone());
                    }
                    last = Some((reason, Some(got)));
                }
                Err(AttemptError::Retry(reason)) => {
                    tracing::debug!(object = %job.path, %reason, attempt, "media attempt failed");
                    last = Some((reason, None));
                }
                Err(AttemptError::Item(e)) => {
                    return Outcome::Failed {
                        reason: e.to_string(),
                        errcode: e.errcode(),
                        size: None,
                        md5: None,
                        attempts: attempt,
                    };
                }
                Err(AttemptError::Fatal(e)) => {
                    return Outcome::Fatal(crate::MediaError::Api {
                        sdkfileid: job.sdkfileid.clone(),
                        object_key: job.object_key.clone(),
                        source: Box::new(e),
                    })
                }
                Err(AttemptError::Cancelled) => return Outcome::Cancelled,
            }
        }
        let (reason, got) =
            last.unwrap_or_else(|| ("no two downloads agreed on the content".to_owned(), None));
        Outcome::Failed {
            reason: format!("gave up after {max_attempts} attempts: {reason}"),
            errcode: None,
            size: got.as_ref().map(|g| g.size),
            md5: got.map(|g| g.md5),
            attempts: max_attempts,
        }
    }

    /// Backoff before retry `n` (1-based): full jitter, exponential, capped. Err on shutdown.
    async fn sleep(&self, n: u32) -> Result<(), ()> {
        use rand::Rng;
        let base = self.config.initial_backoff.as_secs_f64()
            * 2f64.powi(n.saturating_sub(1).min(30) as i32);
        let ceiling = base.min(self.config.max_backoff.as_secs_f64());
        let wait = Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..=ceiling.max(0.0)));
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = self.cancel.cancelled() => Err(()),
        }
    }

    /// One attempt. With `want` (the md5 to match): a fresh multipart upload fed by as many
    /// resumed bodies as needed, completed only when size and md5 match. Without: a hash-only
    /// download (nothing is written).
    async fn attempt(&self, job: &MediaJob, want: Option<&str>) -> Result<Verdict, AttemptError> {
        let Some(want) = want else {
            let got = self.feed(job, None).await?;
            if let Some(s) = job.expected_size.filter(|s| *s != got.size) {
                let reason = format!("size mismatch: expected {s} bytes, received {}", got.size);
                return Ok(Verdict::Mismatch(reason, got));
            }
            return Ok(Verdict::Hashed(got));
        };
        let os = self.store.object_store();
        let upload = os
            .put_multipart(&job.path)
            .await
            .map_err(|e| AttemptError::Retry(format!("starting the upload: {e}")))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.config.part_size);
        let result = self.feed(job, Some(&mut writer)).await;
        match result {
            Ok(got) => {
                let bad_size = job.expected_size.filter(|s| *s != got.size);
                let bad_md5 = (got.md5 != want).then_some(want);
                if bad_size.is_none() && bad_md5.is_none() {
                    return match writer.finish().await {
                        Ok(_) => Ok(Verdict::Stored(got)),
                        Err(e) => Err(AttemptError::Retry(format!("completing the upload: {e}"))),
                    };
                }
                self.abort(job, writer).await;
                let reason = match (bad_size, bad_md5) {
                    (Some(s), _) => {
                        format!("size mismatch: expected {s} bytes, received {}", got.size)
                    }
                    (None, Some(m)) => format!("md5 mismatch: expected {m}, received {}", got.md5),
                    (None, None) => unreachable!(),
                };
                Ok(Verdict::Mismatch(reason, got))
            }
            Err(e) => {
                self.abort(job, writer).await;
                Err(e)
            }
        }
    }

    /// Drops an unverified upload. A failed abort leaves an invisible incomplete upload behind
    /// (S3 bills it until the bucket's lifecycle rule removes it): counted, not fatal.
    async fn abort(&self, job: &MediaJob, writer: WriteMultipart) {
        if let Err(e) = writer.abort().await {
            self.stats.add_abort_failure();
            tracing::debug!(object = %job.path, error = %e, "aborting a media upload failed");
        }
    }

    /// Streams the body into the writer, resuming broken bodies at the offset reached.
    async fn feed(
        &self,
        job: &MediaJob,
        mut writer: Option<&mut WriteMultipart>,
    ) -> Result<Received, AttemptError> {
        let mut md5 = Md5::new();
        let mut received: u64 = 0;
        let mut total = job.expected_size;
        let mut stalled = 0u32;
        let mut first = true;
        // Set to the offset of a clean end when nobody knows the size: a body cut short and
        // ended cleanly looks exactly like a complete one, so one more request from that offset
        // must confirm the end (416, or an empty body) before the body counts as complete.
        let mut probe_at: Option<u64> = None;
        loop {
            let mut probe_started = false;
            if !first {
                self.stats.add_resume();
            }
            first = false;
            let before = received;
            let called = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(AttemptError::Cancelled),
                r = self.client.media(&job.sdkfileid, received) => r,
            };
            let done = |md5: Md5, received: u64| Received {
                size: received,
                md5: hex::encode(md5.finalize()),
            };
            let broken = match called {
                Ok(mut body) => {
                    if total.is_none() {
                        total = body.total_len;
                    }
                    let probing = probe_at == Some(received);
                    loop {
                        let next = tokio::select! {
                            biased;
                            () = self.cancel.cancelled() => return Err(AttemptError::Cancelled),
                            next = body.stream.next() => next,
                        };
                        match next {
                            Some(Ok(bytes)) => {
                                if bytes.is_empty() {
                                    continue;
                                }
                                let len = bytes.len() as u64;
                                if let Some(t) = total.filter(|t| received + len > *t) {
                                    return Err(AttemptError::Retry(format!(
                                        "body longer than the expected {t} bytes"
                                    )));
                                }
                                md5.update(&bytes);
                                received += len;
                                if let Some(w) = writer.as_deref_mut() {
                                    w.wait_for_capacity(self.config.parts_in_flight)
                                        .await
                                        .map_err(|e| {
                                            AttemptError::Retry(format!("uploading a part: {e}"))
                                        })?;
                                    w.put(bytes);
                                }
                            }
                            Some(Err(e)) => break format!("body broken at byte {received}: {e}"),
                            None => match total {
                                Some(t) if received < t => {
                                    break format!("body ended at byte {received} of {t}");
                                }
                                Some(_) => return Ok(done(md5, received)),
                                None if probing && received == before => {
                                    return Ok(done(md5, received));
                                }
                                None => {
                                    probe_at = Some(received);
                                    probe_started = true;
                                    break format!(
                                        "length unknown: checking for bytes after {received}"
                                    );
                                }
                            },
                        }
                    }
                }
                Err(ApiError::Http { status: 416, .. }) if probe_at == Some(received) => {
                    // Range not satisfiable right after the last byte: the end is confirmed.
                    return Ok(done(md5, received));
                }
                Err(e) => match e.class() {
                    ErrorClass::Item => return Err(AttemptError::Item(e)),
                    ErrorClass::Fatal => return Err(AttemptError::Fatal(e)),
                    ErrorClass::Retriable => format!("requesting byte {received}: {e}"),
                },
            };
            if received > before || probe_started {
                stalled = 0;
            } else {
                stalled += 1;
                if stalled > self.config.max_stalled_resumes {
                    return Err(AttemptError::Retry(broken));
                }
                if self.sleep(stalled).await.is_err() {
                    return Err(AttemptError::Cancelled);
                }
            }
            tracing::debug!(object = %job.path, reason = %broken, "media body resumed");
        }
    }
}
