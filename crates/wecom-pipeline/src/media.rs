//! The media worker beside the pipeline (`[media]`): it follows the stream's record output on its own
//! position, so media never holds messages back, and shares the pipeline's HTTP client (one token cache).
//! Its counters and the age of the oldest pending media item (the service deletes media after 5 days) are
//! exported as metrics once a second. A worker run that stops on an error is started again after a pause
//! (from its committed position), for as long as the pipeline runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use wecom_media::{MediaStatsSnapshot, MediaWorker};

use crate::config::{SinkKind, Validated};
use crate::error::PipelineError;
use crate::source::Source;
use crate::stream::StreamSel;

pub struct MediaTask {
    worker: Arc<MediaWorker>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), wecom_media::MediaError>>,
    exporter: JoinHandle<()>,
    corp_id: String,
}

fn media_err(
    corp_id: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> PipelineError {
    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
    PipelineError::Media {
        corp_id: corp_id.to_string(),
        reason: wecom_model::error_chain(&*e),
    }
}

/// Starts the worker for `stream` when `[media]` is configured and enabled; `None` otherwise.
///
/// With `[kafka]` and `sink.kind = "kafka"` or `"both"`, every media event is also published to
/// `topics.media` before the worker's position passes its record. With `sink.kind = "kafka"` there are
/// no local records to follow: the worker consumes `topics.messages` in the consumer group
/// `[media] kafka_group_id` instead (every worker of the group shares the partitions; offsets are
/// committed only past records whose media jobs all finished).
pub async fn start(
    cfg: &Validated,
    source: &Source,
    stream: &StreamSel,
) -> Result<Option<MediaTask>, PipelineError> {
    let Some(mcfg) = cfg.media.as_ref().filter(|m| m.enabled) else {
        return Ok(None);
    };
    let kafka = match (&cfg.sink_kind, &cfg.kafka) {
        (SinkKind::Kafka | SinkKind::Both, Some(k)) => Some(k),
        (SinkKind::Kafka, None) => {
            return Err(media_err(
                &cfg.corp_id,
                "sink.kind = \"kafka\" needs a [kafka] section",
            ))
        }
        _ => None,
    };
    let worker_cfg = mcfg
        .worker_config()
        .map_err(|e| media_err(&cfg.corp_id, e))?;
    let store = mcfg
        .build_store(&cfg.data_dir)
        .map_err(|e| media_err(&cfg.corp_id, e))?;
    let layout = stream.layout(&cfg.data_dir, &cfg.corp_id)?;
    let dir = layout.dir().to_path_buf();
    let mut worker = MediaWorker::new(worker_cfg, store, source.client.clone(), layout)
        .map_err(|e| media_err(&cfg.corp_id, e))?;
    if let Some(kcfg) = kafka {
        // also creates the topics when allowed, so the messages topic exists before we subscribe
        let sink = wecom_kafka::KafkaSink::connect(kcfg)
            .await
            .map_err(|e| media_err(&cfg.corp_id, e))?;
        worker = worker.with_kafka_events(sink);
        if cfg.sink_kind == SinkKind::Kafka {
            worker = worker.with_kafka_records(
                kcfg.clone(),
                mcfg.consumer_group(&cfg.corp_id, &stream.name()),
            );
        }
    }
    let worker = Arc::new(worker);
    let stop = CancellationToken::new();
    let task = {
        let (w, s, corp) = (worker.clone(), stop.clone(), cfg.corp_id.clone());
        tokio::spawn(async move { supervise(&w, &s, &corp).await })
    };
    let exporter = {
        let (w, s) = (worker.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => export(&w),
                    () = s.cancelled() => { export(&w); break; }
                }
            }
        })
    };
    info!(corp = %cfg.corp_id, dir = %dir.display(), "media worker started");
    Ok(Some(MediaTask {
        worker,
        stop,
        task,
        exporter,
        corp_id: cfg.corp_id.clone(),
    }))
}

/// The first pause before a media worker that stopped on an error starts again; it doubles up to
/// [`RESTART_MAX`], and a run that lasted longer than that starts the doubling afresh.
const RESTART_PAUSE: Duration = Duration::from_secs(2);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// Runs the worker until `stop`. A run that ends on an error (the store unusable for a while, a secret
/// the service refuses) starts again after a pause, from the committed position: the pipeline goes on
/// publishing records, and media must not stop for good behind it. Returns the error of the last run
/// when it failed.
async fn supervise(
    w: &MediaWorker,
    stop: &CancellationToken,
    corp_id: &str,
) -> Result<(), wecom_media::MediaError> {
    let mut pause = RESTART_PAUSE;
    loop {
        let started = tokio::time::Instant::now();
        let e = match w.run(stop.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if stop.is_cancelled() => return Err(e),
            Err(e) => e,
        };
        if started.elapsed() > RESTART_MAX {
            pause = RESTART_PAUSE;
        }
        metrics::counter!("wecom_media_restarts_total").increment(1);
        tracing::warn!(
            corp = %corp_id,
            error = %wecom_model::error_chain(&e),
            retry_in_secs = pause.as_secs(),
            "media worker stopped on an error; it starts again from its committed position"
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return Err(e),
        }
        pause = (pause * 2).min(RESTART_MAX);
    }
}

fn export(w: &MediaWorker) {
    let s = w.stats();
    metrics::counter!("wecom_media_bytes_stored_total").absolute(s.bytes_stored_total);
    metrics::counter!("wecom_media_objects_total", "status" => "stored")
        .absolute(s.objects_stored_total);
    metrics::counter!("wecom_media_objects_total", "status" => "failed")
        .absolute(s.objects_failed_total);
    metrics::counter!("wecom_media_objects_total", "status" => "skipped")
        .absolute(s.objects_skipped_total);
    metrics::counter!("wecom_media_retries_total").absolute(s.retries_total);
    metrics::counter!("wecom_media_resumes_total").absolute(s.resumes_total);
    metrics::counter!("wecom_media_verify_failures_total").absolute(s.verify_failures_total);
    metrics::gauge!("wecom_media_jobs_in_flight").set(s.jobs_in_flight as f64);
    metrics::gauge!("wecom_media_oldest_pending_age_seconds")
        .set(w.oldest_pending_age().map_or(0.0, |d| d.as_secs_f64()));
}

impl MediaTask {
    /// The worker's counters so far.
    pub fn stats(&self) -> MediaStatsSnapshot {
        self.worker.stats()
    }

    /// Stops following. With `drain`, then processes everything the record output holds before returning
    /// (a batch run); without, in-flight transfers are abandoned and redone next time.
    pub async fn finish(self, drain: bool) -> Result<MediaStatsSnapshot, PipelineError> {
        self.stop.cancel();
        let ran = self.task.await.map_err(|e| media_err(&self.corp_id, e))?;
        let _ = self.exporter.await;
        ran.map_err(|e| media_err(&self.corp_id, e))?;
        if drain {
            let stats = self
                .worker
                .run_until_caught_up()
                .await
                .map_err(|e| media_err(&self.corp_id, e))?;
            export(&self.worker);
            return Ok(stats);
        }
        Ok(self.worker.stats())
    }
}
