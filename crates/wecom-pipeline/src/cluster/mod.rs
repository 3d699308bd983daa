//! Cluster mode: many corps on many workers, coordinated by Kafka's consumer-group protocol (the way Kafka
//! Connect spreads source tasks), with no state on local disk.
//!
//! - The corps are the records of a compacted control topic (key: corp id, value: its [`CorpDef`]); adding
//!   a corp is a produced record, removing one a tombstone ([`add_corp`], [`remove_corp`]).
//! - Every worker joins one consumer group on that topic with the cooperative-sticky assignor; a worker
//!   runs the corps of the partitions it is assigned ([`worker`]) and stops them before a revocation
//!   completes.
//! - A corp's state moves with it: the cursor in the cursor topic under the worker's owner epoch
//!   ([`Ownership`]), records and dead letters in the shared topics (corp in key and headers, the topic tail
//!   recovered as the check), media and the raw archive in object storage, media progress in the media
//!   worker's consumer group. The local directory of a corp is scratch, emptied on every takeover.
//! - Fencing: a paused worker that resumes after its corps moved must not publish for them
//!   ([`Ownership`], ARCHITECTURE.md).
//!
//! This module must not know librdkafka: the group member and the claim watch are `wecom-kafka`'s.

mod config;
mod owner;
mod status;
pub mod worker;

pub use config::{ClusterFile, ClusterSection, CorpDef, CorpKey};
pub use owner::Ownership;
pub use status::{read_cluster_status, CorpState, CorpStatus};
pub use worker::run_worker;

use crate::error::PipelineError;

fn kafka_err(e: wecom_kafka::KafkaError) -> PipelineError {
    PipelineError::Kafka {
        corp_id: "-".into(),
        stream: "-".into(),
        source: Box::new(e),
    }
}

/// The corps of the control topic: partition and definition, by partition then corp id. Records that are
/// not a definition of their key are reported as errors in the second list.
pub async fn list_corps(
    file: &ClusterFile,
) -> Result<(Vec<(i32, CorpDef)>, Vec<String>), PipelineError> {
    wecom_kafka::ensure_compacted_topic(
        &file.kafka,
        &file.cluster.control_topic,
        file.cluster.control_partitions,
    )
    .await
    .map_err(kafka_err)?;
    let mut corps = Vec::new();
    let mut bad = Vec::new();
    for r in wecom_kafka::read_latest(&file.kafka, &file.cluster.control_topic)
        .await
        .map_err(kafka_err)?
    {
        let Some(v) = r.value else { continue };
        match serde_json::from_slice::<CorpDef>(&v) {
            Ok(def) if def.corp_id == r.key => corps.push((r.partition, def)),
            Ok(def) => bad.push(format!(
                "partition {} key {}: defines corp {}",
                r.partition, r.key, def.corp_id
            )),
            Err(e) => bad.push(format!("partition {} key {}: {e}", r.partition, r.key)),
        }
    }
    corps.sort_by(|a, b| (a.0, &a.1.corp_id).cmp(&(b.0, &b.1.corp_id)));
    Ok((corps, bad))
}

/// Adds (or updates) a corp: its definition to the control topic, on the partition it already has, else
/// on the partition with the fewest corps. Returns the partition.
pub async fn add_corp(file: &ClusterFile, def: &CorpDef) -> Result<i32, PipelineError> {
    def.check().map_err(|reason| PipelineError::Config {
        path: file.path.clone(),
        reason,
    })?;
    // the definition must make a valid config here too (a worker would refuse it the same way)
    let parts = wecom_kafka::ensure_compacted_topic(
        &file.kafka,
        &file.cluster.control_topic,
        file.cluster.control_partitions,
    )
    .await
    .map_err(kafka_err)?;
    let (corps, _) = list_corps(file).await?;
    let partition = match corps.iter().find(|(_, d)| d.corp_id == def.corp_id) {
        Some((p, _)) => *p,
        None => {
            let mut load = vec![0usize; parts];
            for (p, _) in &corps {
                if let Some(n) = load.get_mut(*p as usize) {
                    *n += 1;
                }
            }
            (0..parts)
                .min_by_key(|&p| (load[p], p))
                .map_or(0, |p| p as i32)
        }
    };
    let json = serde_json::to_vec(def).map_err(|e| PipelineError::Config {
        path: file.path.clone(),
        reason: format!("corp {}: {e}", def.corp_id),
    })?;
    wecom_kafka::KeyedProducer::new(&file.kafka)
        .map_err(kafka_err)?
        .put(
            &file.cluster.control_topic,
            Some(partition),
            &def.corp_id,
            Some(&json),
        )
        .await
        .map_err(kafka_err)?;
    Ok(partition)
}

/// Removes a corp: a tombstone on its partition of the control topic (its worker stops it) and on its
/// status. Returns false when the control topic does not hold it.
pub async fn remove_corp(file: &ClusterFile, corp_id: &str) -> Result<bool, PipelineError> {
    let (corps, _) = list_corps(file).await?;
    let Some((partition, _)) = corps.iter().find(|(_, d)| d.corp_id == corp_id) else {
        return Ok(false);
    };
    let out = wecom_kafka::KeyedProducer::new(&file.kafka).map_err(kafka_err)?;
    out.put(&file.cluster.control_topic, Some(*partition), corp_id, None)
        .await
        .map_err(kafka_err)?;
    out.put(&file.cluster.status_topic, None, corp_id, None)
        .await
        .map_err(kafka_err)?;
    Ok(true)
}
