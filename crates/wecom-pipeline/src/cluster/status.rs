//! Per-corp status in the compacted status topic: each worker writes the state of the corps it runs every
//! few seconds (key: corp id), and `wecom-archive status --cluster` reads the newest record per corp.

use serde::{Deserialize, Serialize};

/// What a corp is doing, as its worker last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorpState {
    /// Claimed; waiting out the fence before reading the topics.
    Claiming,
    Running,
    /// The last start or run failed; retried after a pause (see `last_error`).
    Failing,
    /// Another worker claimed it (this worker was paused or cut off); stopped here.
    Fenced,
    /// Stopped on this worker (revoked, removed, or the worker is leaving).
    Stopped,
}

/// One corp's status record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpStatus {
    pub corp_id: String,
    pub worker: String,
    pub state: CorpState,
    /// The owner epoch of the worker's claim (0 before the claim).
    pub epoch: u64,
    /// The committed seq of the corp stream.
    pub committed_seq: u64,
    /// The newest seq the worker knows of (fetched).
    pub newest_seq: u64,
    /// Items fetched and not yet committed.
    pub lag: u64,
    pub records: u64,
    pub dead_letters: u64,
    /// Media objects stored by this worker's run of the corp.
    pub media_stored: u64,
    pub media_failed: u64,
    /// The last error of a start or run (no secret: errors never carry one).
    pub last_error: Option<String>,
    /// When the worker wrote this record (ms since the Unix epoch).
    pub updated_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The newest status of every corp in the status topic (removed corps' tombstones left out), by corp id.
pub async fn read_cluster_status(
    kafka: &wecom_kafka::KafkaConfig,
    topic: &str,
) -> Result<Vec<CorpStatus>, wecom_kafka::KafkaError> {
    let mut out: Vec<CorpStatus> = wecom_kafka::read_latest(kafka, topic)
        .await?
        .into_iter()
        .filter_map(|r| r.value.and_then(|v| serde_json::from_slice(&v).ok()))
        .collect();
    out.sort_by(|a: &CorpStatus, b| a.corp_id.cmp(&b.corp_id));
    Ok(out)
}
