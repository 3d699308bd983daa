//! Oversized lines: never stall, never drop.
//!
//! A Kafka topic takes records up to a size (`[kafka] max_record_bytes`, or less when the broker says so).
//! A line bigger than that (a 5 MiB text, a deeply nested chatrecord, a dead letter holding such an item)
//! is published **slim**: its full JSON is first written to the archive's object store
//! (`[archive.store]`, key `oversized/<corp>/<stream>/<kind>-<seq>.json`), and only once the store has
//! acknowledged it is the slim line published, carrying a `content_ref` (key, location, SHA-256, size) to
//! it. A slim record keeps its envelope (ids, conversation, times, msgtype, room, media) with `content`
//! replaced by an empty `unknown` payload and `text` cut with a marker; if that is still too big, `media`
//! and `to` are emptied too. A slim dead letter keeps everything but `item.encrypt_chat_msg`. So every
//! seq still appears in the topic, in order, and a consumer can always fetch the whole body. The local
//! files are never slimmed.

use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;
use wecom_kafka::{LineKind, PublishLine};
use wecom_model::record::ContentRef;
use wecom_store::Objects;

use crate::config::Validated;
use crate::error::PipelineError;

/// How much of `text` a slim record keeps.
const SLIM_TEXT_BYTES: usize = 16 * 1024;

/// Writes full bodies to the archive's object store and makes slim lines.
#[derive(Clone)]
pub(crate) struct Oversize {
    objects: Objects,
    corp_id: String,
    stream: String,
}

impl Oversize {
    /// The archive store of `cfg` (whether or not the raw archive itself is enabled).
    pub fn open(cfg: &Validated, stream: &str) -> Result<Self, PipelineError> {
        let objects = cfg
            .archive
            .store
            .build("archive.store", &cfg.data_dir, true)
            .map_err(|e| PipelineError::Internal {
                corp_id: cfg.corp_id.clone(),
                stream: stream.to_string(),
                reason: format!("the object store for oversized records: {e}"),
            })?;
        Ok(Self {
            objects,
            corp_id: cfg.corp_id.clone(),
            stream: stream.to_string(),
        })
    }

    /// `line` slimmed to at most `limit` bytes (as [`PublishLine::record_bytes`] counts), its full payload
    /// stored first.
    pub async fn slim(&self, line: &PublishLine, limit: u64) -> Result<PublishLine, PipelineError> {
        let content_ref = self.store_full(line).await?;
        let mut value: Value = serde_json::from_slice(&line.payload)
            .map_err(|e| self.err(line.seq, format!("the line to slim is not JSON: {e}")))?;
        let Some(obj) = value.as_object_mut() else {
            return Err(self.err(line.seq, "the line to slim is not a JSON object".into()));
        };
        obj.insert(
            "content_ref".into(),
            serde_json::to_value(&content_ref).unwrap_or(Value::Null),
        );
        let marker = format!(
            "…[cut: the full record is {} bytes, at {}]",
            content_ref.size, content_ref.location
        );
        let mut slim = line.clone();
        for level in 0..2 {
            match line.kind {
                LineKind::Record => {
                    let msgtype = obj.get("msgtype").cloned().unwrap_or(Value::Null);
                    obj.insert(
                        "content".into(),
                        serde_json::json!({"kind": "unknown", "data": {"msgtype": msgtype.as_str().unwrap_or(""), "payload": {}}}),
                    );
                    if let Some(Value::String(text)) = obj.get_mut("text") {
                        if text.len() > SLIM_TEXT_BYTES {
                            text.truncate(text.floor_char_boundary(SLIM_TEXT_BYTES));
                            text.push_str(&marker);
                        }
                    }
                    if level == 1 {
                        obj.insert("media".into(), Value::Array(Vec::new()));
                        obj.insert("to".into(), Value::Array(Vec::new()));
                    }
                }
                LineKind::DeadLetter | LineKind::MediaEvent | LineKind::Recall => {
                    if let Some(item) = obj.get_mut("item").and_then(Value::as_object_mut) {
                        item.insert("encrypt_chat_msg".into(), Value::String(String::new()));
                        if level == 1 {
                            item.insert("encrypt_random_key".into(), Value::String(String::new()));
                        }
                    }
                    if let Some(Value::String(reason)) = obj.get_mut("reason") {
                        if level == 1 && reason.len() > SLIM_TEXT_BYTES {
                            reason.truncate(reason.floor_char_boundary(SLIM_TEXT_BYTES));
                        }
                    }
                }
            }
            slim.payload = serde_json::to_vec(obj)
                .map_err(|e| self.err(line.seq, format!("serialize the slim line: {e}")))?;
            if slim.record_bytes() <= limit {
                return Ok(slim);
            }
        }
        Err(self.err(
            line.seq,
            format!(
                "even slimmed the line is {} bytes, over the topic's limit of {limit}: raise [kafka] \
                 max_record_bytes and the topic's max.message.bytes (the full line is at {})",
                slim.record_bytes(),
                content_ref.location
            ),
        ))
    }

    async fn store_full(&self, line: &PublishLine) -> Result<ContentRef, PipelineError> {
        let kind = match line.kind {
            LineKind::Record => "record",
            LineKind::DeadLetter => "deadletter",
            LineKind::MediaEvent => "media",
            LineKind::Recall => "recall",
        };
        let corp = wecom_store::encode_component(&self.corp_id)
            .map_err(|e| self.err(line.seq, e.to_string()))?;
        let stream = wecom_store::stream_dir_name(&self.stream)
            .map_err(|e| self.err(line.seq, e.to_string()))?;
        let key = format!("oversized/{corp}/{stream}/{kind}-{}.json", line.seq);
        let path = self
            .objects
            .path(&key)
            .map_err(|reason| self.err(line.seq, reason))?;
        let bytes = bytes::Bytes::from(line.payload.clone());
        let for_hash = bytes.clone();
        let sha256 =
            tokio::task::spawn_blocking(move || wecom_ledger::manifest::sha256_hex(&for_hash))
                .await
                .map_err(|e| self.err(line.seq, format!("hashing: {e}")))?;
        let size = bytes.len() as u64;
        self.objects
            .object_store()
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| {
                self.err(
                    line.seq,
                    format!(
                        "storing the full body at {}: {e}",
                        self.objects.location(&path)
                    ),
                )
            })?;
        Ok(ContentRef {
            object_key: key,
            location: self.objects.location(&path),
            sha256,
            size,
        })
    }

    fn err(&self, seq: u64, reason: String) -> PipelineError {
        PipelineError::Internal {
            corp_id: self.corp_id.clone(),
            stream: self.stream.clone(),
            reason: format!("seq {seq}: oversized line: {reason}"),
        }
    }
}
