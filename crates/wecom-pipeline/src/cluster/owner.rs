//! A worker's ownership of one corp's stream: the owner epoch it claimed in the cursor topic, the cursor
//! stored under that epoch, and the lease that every publish is checked against (ARCHITECTURE.md, "Cluster
//! mode: fencing").
//!
//! The lease: [`Ownership::ensure`] asks the claim watch whether a newer claim than ours exists, as of a
//! moment after the call began; if not, publishing may go on until `lease` after that call began
//! (monotonic clock, which keeps running while the process is stopped). [`Ownership::lease_holds`] is
//! asked before each record is handed to the producer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wecom_kafka::{ClaimWatch, KafkaSink};

use crate::error::PipelineError;

pub struct Ownership {
    sink: KafkaSink,
    watch: Arc<ClaimWatch>,
    corp_id: String,
    stream: String,
    worker: String,
    epoch: u64,
    lease: Duration,
    valid_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("corp_id", &self.corp_id)
            .field("stream", &self.stream)
            .field("worker", &self.worker)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// How long a check of the claim watch may take before the publish fails (and is retried).
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

impl Ownership {
    /// Claims `corp_id`/`stream` for `worker` (the next owner epoch), then waits `fence_wait` so that
    /// whatever a previous owner still had on its way has landed before this owner reads the topics.
    /// Returns early (`None`) when `stop` is cancelled during the wait.
    #[allow(clippy::too_many_arguments)]
    pub async fn claim(
        sink: KafkaSink,
        watch: Arc<ClaimWatch>,
        corp_id: &str,
        stream: &str,
        worker: &str,
        lease: Duration,
        fence_wait: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Self>, PipelineError> {
        let epoch = sink
            .claim_epoch(corp_id, stream, worker)
            .await
            .map_err(|e| kafka(corp_id, stream, e))?;
        tokio::select! {
            () = tokio::time::sleep(fence_wait) => {}
            () = stop.cancelled() => return Ok(None),
        }
        Ok(Some(Self {
            sink,
            watch,
            corp_id: corp_id.to_string(),
            stream: stream.to_string(),
            worker: worker.to_string(),
            epoch,
            lease,
            valid_until: Mutex::new(None),
        }))
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The cursor stored under the current claim (the handover seq when this owner stored none yet).
    pub async fn load_cursor(&self) -> Result<u64, PipelineError> {
        self.ensure().await?;
        Ok(self
            .sink
            .load_cursor(&self.corp_id, &self.stream)
            .await
            .map_err(|e| kafka(&self.corp_id, &self.stream, e))?
            .unwrap_or(0))
    }

    /// Ok when no newer claim exists (and renews the lease); [`PipelineError::Fenced`] when one does.
    pub async fn ensure(&self) -> Result<(), PipelineError> {
        if self.lease_holds() {
            return Ok(());
        }
        let began = Instant::now();
        let newest = self
            .watch
            .newest_epoch(&self.corp_id, &self.stream, CHECK_TIMEOUT)
            .await
            .map_err(|e| kafka(&self.corp_id, &self.stream, e))?;
        if newest > self.epoch {
            return Err(PipelineError::Fenced {
                corp_id: self.corp_id.clone(),
                stream: self.stream.clone(),
                epoch: self.epoch,
                newer: newest,
            });
        }
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(began + self.lease);
        Ok(())
    }

    /// Whether the last successful [`ensure`](Self::ensure) is recent enough to publish now.
    pub fn lease_holds(&self) -> bool {
        self.valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }

    /// Stores the cursor under this owner's epoch (a stale owner's cursor is ignored by readers).
    pub async fn commit(&self, seq: u64) -> Result<(), PipelineError> {
        self.sink
            .store_cursor(&self.corp_id, &self.stream, seq, self.epoch)
            .await
            .map_err(|e| kafka(&self.corp_id, &self.stream, e))
    }

    /// The headers that name the publisher of a record.
    pub fn headers(&self) -> [(String, String); 2] {
        [
            (
                wecom_kafka::HEADER_OWNER_EPOCH.to_string(),
                self.epoch.to_string(),
            ),
            (wecom_kafka::HEADER_WORKER.to_string(), self.worker.clone()),
        ]
    }
}

fn kafka(corp_id: &str, stream: &str, e: wecom_kafka::KafkaError) -> PipelineError {
    PipelineError::Kafka {
        corp_id: corp_id.to_string(),
        stream: stream.to_string(),
        source: Box::new(e),
    }
}
