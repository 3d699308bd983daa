//! Publishing a page: every record keyed by conversation, in order, acknowledged (`acks=all`) before
//! `publish` returns.
//!
//! **A page never leaves its records out of order within a partition, even when a record is refused as too
//! large.** When a record of a partition is refused, librdkafka bumps the idempotent producer's epoch and
//! sends the records queued behind it, which then land *before* the slimmed record the pipeline publishes in
//! its place. So nothing may be queued behind a record that can be refused:
//! - every line is checked against [`KafkaSink::max_record_bytes`] before any is sent, and librdkafka's
//!   `message.max.bytes` is derived from the same limit (`limits.rs`): a record over it is refused with
//!   nothing of the page sent;
//! - a topic whose broker takes less than the sink believes can still refuse a big record, so records over
//!   [`SOLO_RECORD_BYTES`] are sent alone: after every earlier line is acknowledged, and before any later
//!   line is sent. Such a refusal lowers the limit, so the pipeline slims that record and the bigger ones
//!   after it. Small records travel in batches no larger than the limit, which the topics were checked to
//!   take at connect; a refused batch of them is a fatal configuration error.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};
use rdkafka::Message;

use crate::error::{is_fatal_code, is_size_code, KafkaError};
use crate::limits::{MAX_HEADERS, SOLO_RECORD_BYTES};
use crate::sink::{KafkaSink, LineKind};
use crate::{HEADER_CORP_ID, HEADER_SEQ, HEADER_STREAM};

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishLine {
    pub kind: LineKind,
    pub seq: u64,
    /// Partition key: the conversation id for records; for dead letters the conversation if known, else the msgid.
    pub key: String,
    /// Kafka headers. `Record` and `DeadLetter` lines must carry `corp_id` and `stream` (recovery matches on
    /// them); a `seq` header is added when missing and must equal `seq` when present.
    pub headers: Vec<(String, String)>,
    /// The JSON value.
    pub payload: Vec<u8>,
}

impl PublishLine {
    /// The record's size as `max_record_bytes` counts it: key, value, and each header's name and value
    /// (the `seq` header `publish` adds included).
    pub fn record_bytes(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let added_seq = if self.headers.iter().any(|(k, _)| k == HEADER_SEQ) {
            0
        } else {
            HEADER_SEQ.len() + self.seq.to_string().len()
        };
        (self.key.len() + self.payload.len() + headers + added_seq) as u64
    }
}

/// A record sent and not yet acknowledged.
struct InFlight {
    delivery: DeliveryFuture,
    kind: LineKind,
    seq: u64,
    /// Its position in the `publish` call.
    index: usize,
    bytes: u64,
    solo: bool,
}

impl KafkaSink {
    /// Publishes `lines` in order and resolves when the broker acknowledged every one (`acks=all`).
    ///
    /// Records are enqueued (waiting for the oldest acknowledgement when the bounded producer queue is full)
    /// and then awaited in order; with the idempotent producer, records of one partition land in send order,
    /// so awaiting each call before the next keeps every partition in seq order.
    ///
    /// Errors: [`KafkaError::RecordTooLarge`] says exactly which lines were acknowledged and that nothing after
    /// them was sent (see the module docs). After any other error, records of this call may or may not be in
    /// the topics: stop without moving the cursor and `recover` on the next start; never re-publish the same
    /// lines blindly.
    pub async fn publish(&self, lines: Vec<PublishLine>) -> Result<(), KafkaError> {
        self.publish_slice(&lines).await
    }

    /// [`KafkaSink::publish`] over borrowed lines, so that after a [`KafkaError::RecordTooLarge`] the caller
    /// still has the lines to publish the rest with.
    pub async fn publish_slice(&self, lines: &[PublishLine]) -> Result<(), KafkaError> {
        self.publish_inner(lines, None).await
    }

    /// [`publish_slice`](Self::publish_slice) that asks `may_send` before enqueueing each line (cluster
    /// mode: whether this worker's ownership lease of the stream still holds). When it says no, the lines
    /// already sent are awaited and [`KafkaError::LeaseExpired`] says how many; none after was sent.
    pub async fn publish_guarded(
        &self,
        lines: &[PublishLine],
        may_send: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), KafkaError> {
        self.publish_inner(lines, Some(may_send)).await
    }

    async fn publish_inner(
        &self,
        lines: &[PublishLine],
        may_send: Option<&(dyn Fn() -> bool + Sync)>,
    ) -> Result<(), KafkaError> {
        let limit = self.max_record_bytes();
        let mut headers = Vec::with_capacity(lines.len());
        for line in lines {
            headers.push(record_headers(line)?);
            let bytes = line.record_bytes();
            if bytes > limit {
                return Err(self.too_large(line, bytes, 0));
            }
        }
        let mut pending: VecDeque<InFlight> = VecDeque::with_capacity(lines.len());
        for (index, (line, headers)) in lines.iter().zip(headers).enumerate() {
            let bytes = line.record_bytes();
            let solo = bytes > SOLO_RECORD_BYTES;
            if solo {
                while let Some(p) = pending.pop_front() {
                    self.delivered(p).await?;
                }
            }
            if may_send.is_some_and(|ok| !ok()) {
                while let Some(p) = pending.pop_front() {
                    self.delivered(p).await?;
                }
                return Err(KafkaError::LeaseExpired {
                    seq: line.seq,
                    published: index,
                });
            }
            let topic = self.topic(line.kind);
            let mut record = FutureRecord::to(topic)
                .key(line.key.as_str())
                .payload(line.payload.as_slice())
                .headers(headers);
            let delivery = loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match pending.pop_front() {
                            Some(p) => self.delivered(p).await?,
                            // the queue is full with another caller's records (e.g. store_cursor)
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((RdError::MessageProduction(code), _)) if is_size_code(code) => {
                        // librdkafka's own limit (not expected: the same limit was checked above); the
                        // lines before are queued, none after is sent
                        while let Some(p) = pending.pop_front() {
                            self.delivered(p).await?;
                        }
                        return Err(self.too_large(line, bytes, index));
                    }
                    Err((e, _)) => return Err(self.publish_error(topic, -1, line.seq, &e)),
                }
            };
            let in_flight = InFlight {
                delivery,
                kind: line.kind,
                seq: line.seq,
                index,
                bytes,
                solo,
            };
            if solo {
                self.delivered(in_flight).await?;
            } else {
                pending.push_back(in_flight);
            }
        }
        for p in pending {
            self.delivered(p).await?;
        }
        Ok(())
    }

    async fn delivered(&self, p: InFlight) -> Result<(), KafkaError> {
        let topic = self.topic(p.kind);
        match p.delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, msg))) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                if !is_size_code(code) {
                    return Err(self.publish_error(topic, msg.partition(), p.seq, &e));
                }
                if !p.solo {
                    return Err(KafkaError::BatchTooLarge {
                        topic: topic.into(),
                        partition: msg.partition(),
                        seq: p.seq,
                        code,
                    });
                }
                // The topic takes less than the sink believed: from now on records of this size are slimmed.
                let lowered = p.bytes.saturating_sub(1);
                let was = self.max_record_bytes.fetch_min(lowered, Ordering::Relaxed);
                if lowered < was {
                    tracing::warn!(
                        topic,
                        partition = msg.partition(),
                        seq = p.seq,
                        bytes = p.bytes,
                        max_record_bytes = lowered,
                        "kafka topic refused a record as too large: its max.message.bytes is below [kafka] max_record_bytes; \
                         records of this size are now published slimmed"
                    );
                }
                Err(KafkaError::RecordTooLarge {
                    topic: topic.into(),
                    seq: p.seq,
                    bytes: p.bytes,
                    limit: self.max_record_bytes(),
                    published: p.index,
                })
            }
            Err(_canceled) => Err(KafkaError::Canceled {
                topic: topic.into(),
                seq: p.seq,
            }),
        }
    }

    fn too_large(&self, line: &PublishLine, bytes: u64, published: usize) -> KafkaError {
        KafkaError::RecordTooLarge {
            topic: self.topic(line.kind).into(),
            seq: line.seq,
            bytes,
            limit: self.max_record_bytes(),
            published,
        }
    }

    pub(crate) fn publish_error(
        &self,
        topic: &str,
        partition: i32,
        seq: u64,
        e: &RdError,
    ) -> KafkaError {
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        let (detail, fatal) = match self.producer.client().fatal_error() {
            Some((fcode, reason)) => (
                format!(
                    ": producer is in fatal state {fcode:?}: {}",
                    self.redact.apply(&reason)
                ),
                true,
            ),
            None => (String::new(), is_fatal_code(code)),
        };
        // the caller reports it; this is the detail for a debugging session
        tracing::debug!(topic, partition, seq, code = ?code, fatal, "kafka publish failed");
        KafkaError::Publish {
            topic: topic.into(),
            partition,
            seq,
            code,
            detail,
            fatal,
        }
    }
}

fn record_headers(line: &PublishLine) -> Result<OwnedHeaders, KafkaError> {
    let invalid = |reason: String| KafkaError::InvalidLine {
        seq: line.seq,
        reason,
    };
    let find = |name: &str| {
        line.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if matches!(line.kind, LineKind::Record | LineKind::DeadLetter) {
        for name in [HEADER_CORP_ID, HEADER_STREAM] {
            if find(name).is_none() {
                return Err(invalid(format!(
                    "missing header {name} (recover matches on it)"
                )));
            }
        }
    }
    let seq = line.seq.to_string();
    let has_seq = match find(HEADER_SEQ) {
        Some(v) if v == seq => true,
        Some(v) => {
            return Err(invalid(format!(
                "header seq {v:?} differs from the line's seq"
            )))
        }
        None => false,
    };
    if line.headers.len() + usize::from(!has_seq) > MAX_HEADERS {
        return Err(invalid(format!(
            "{} headers, at most {MAX_HEADERS} are allowed",
            line.headers.len()
        )));
    }
    let mut h = OwnedHeaders::new_with_capacity(line.headers.len() + 1);
    for (k, v) in &line.headers {
        h = h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    if !has_seq {
        h = h.insert(Header {
            key: HEADER_SEQ,
            value: Some(seq.as_bytes()),
        });
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn line(headers: &[(&str, &str)]) -> PublishLine {
        PublishLine {
            kind: LineKind::Record,
            seq: 5,
            key: "conv".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn seq_header_is_added_and_checked() {
        let h = record_headers(&line(&[("corp_id", "c"), ("stream", "corp")])).unwrap();
        let keys: Vec<_> = h
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap().to_vec()))
            .collect();
        assert_eq!(keys.last().unwrap(), &("seq".to_string(), b"5".to_vec()));
        assert_eq!(h.count(), 3);
        assert!(
            record_headers(&line(&[("corp_id", "c"), ("stream", "corp"), ("seq", "5")])).is_ok()
        );
        let e = record_headers(&line(&[("corp_id", "c"), ("stream", "corp"), ("seq", "6")]))
            .unwrap_err();
        assert!(e.is_fatal());
        let e = record_headers(&line(&[("corp_id", "c")])).unwrap_err();
        assert!(e.to_string().contains("stream"), "{e}");
        let mut media = line(&[]);
        media.kind = LineKind::MediaEvent;
        assert!(record_headers(&media).is_ok());
    }

    #[test]
    fn record_bytes_counts_key_value_and_headers() {
        // key 4 + payload 2 + "corp_id""c" 8 + "stream""corp" 10 + added "seq""5" 4
        assert_eq!(
            line(&[("corp_id", "c"), ("stream", "corp")]).record_bytes(),
            28
        );
        assert_eq!(
            line(&[("corp_id", "c"), ("stream", "corp"), ("seq", "5")]).record_bytes(),
            28
        );
    }

    #[test]
    fn too_many_headers_are_refused() {
        let many: Vec<(String, String)> = (0..MAX_HEADERS)
            .map(|i| (format!("h{i}"), "v".into()))
            .collect();
        let mut l = line(&[("corp_id", "c"), ("stream", "corp")]);
        l.headers.extend(many);
        assert!(record_headers(&l)
            .unwrap_err()
            .to_string()
            .contains("headers"));
    }
}
