//! Decrypt and normalize: one archive item in, one output line out — a normalized record, or a dead letter
//! that keeps the raw item and says why. CPU work on blocking threads, never on the async reactor; the one
//! exception to "no I/O" is the room metadata lookup of a record with a roomid ([`crate::rooms`]), which is
//! answered from a cache and blocks on the runtime only on a miss (once per room per TTL).

use std::sync::Arc;

use tracing::info;
use wecom_crypto::{CryptoError, Keyring, MessageCipher};
use wecom_model::api::ChatDataItem;
use wecom_model::message::parse_message;
use wecom_model::record::{normalize, DeadLetter, DeadLetterReason, NormalizeContext};
use wecom_store::{LineKind, OutputLine};

use crate::config::Validated;
use crate::error::PipelineError;

/// Everything needed to turn items into output lines; cheap to clone into a blocking job.
#[derive(Clone)]
pub struct Processor {
    pub corp_id: Arc<str>,
    pub stream: Arc<str>,
    pub keyring: Arc<Keyring>,
    pub cipher: Arc<dyn MessageCipher>,
    /// Room metadata for `record.room`; `None`: records carry no `room` (redrive, `[rooms] enrich = false`).
    pub rooms: Option<crate::rooms::RoomLookup>,
}

/// What one item became.
#[derive(Debug)]
pub struct Processed {
    pub line: OutputLine,
    /// The dead-letter reason, when the item could not become a record.
    pub dead: Option<DeadLetterReason>,
    /// msgtype of a record (for counters); `None` for dead letters and `switch`.
    pub msgtype: Option<String>,
    /// Partition key: the record's conversation id; a dead letter's msgid.
    pub key: String,
    pub msgid: String,
    /// The message's send time (ms), for latency; `None` for dead letters.
    pub msgtime_ms: Option<u64>,
}

/// What a successfully decoded item carries besides its JSON line.
struct Decoded {
    json: Vec<u8>,
    msgtype: Option<String>,
    conversation_id: String,
    msgtime_ms: Option<u64>,
}

/// Loads every configured private key.
pub fn load_keyring(cfg: &Validated) -> Result<Keyring, PipelineError> {
    let mut ring = Keyring::new(cfg.key_backend);
    for k in &cfg.key_files {
        ring.load_pem_file(k.version, &k.path)?;
    }
    Ok(ring)
}

impl Processor {
    /// The processor of `stream`, built the same way for every run, replay and redrive: every configured
    /// key, the configured cipher (`sdk`: the pool's), and room metadata from `rooms` when given.
    pub fn new(
        cfg: &Validated,
        stream: &str,
        sdk: Option<&wecom_sdk::SdkPool>,
        rooms: Option<crate::rooms::RoomLookup>,
    ) -> Result<Self, PipelineError> {
        let keyring = Arc::new(load_keyring(cfg)?);
        info!(corp = %cfg.corp_id, stream = %stream, versions = ?keyring.versions(), "keyring loaded");
        Ok(Processor {
            corp_id: cfg.corp_id.clone().into(),
            stream: stream.into(),
            keyring,
            cipher: crate::sdk::cipher(cfg, sdk)?,
            rooms,
        })
    }

    pub fn process(&self, item: &ChatDataItem) -> Processed {
        match self.decode(item) {
            Ok(d) => Processed {
                line: OutputLine {
                    kind: LineKind::Record,
                    seq: item.seq,
                    json: d.json,
                },
                dead: None,
                msgtype: d.msgtype,
                key: d.conversation_id,
                msgid: item.msgid.clone(),
                msgtime_ms: d.msgtime_ms,
            },
            Err((reason_kind, reason)) => {
                let dl = DeadLetter::new(
                    &self.corp_id,
                    &self.stream,
                    reason_kind,
                    reason,
                    item.clone(),
                );
                let json = serde_json::to_vec(&dl).unwrap_or_else(|e| {
                    // A DeadLetter is plain strings and numbers; this cannot fail, but never lose the item.
                    format!(
                        "{{\"schema\":\"wecom-archive.deadletter.v1\",\"seq\":{},\"reason\":\"serialize: {}\"}}",
                        item.seq,
                        e.to_string().replace('"', "'")
                    )
                    .into_bytes()
                });
                Processed {
                    line: OutputLine {
                        kind: LineKind::DeadLetter,
                        seq: item.seq,
                        json,
                    },
                    dead: Some(reason_kind),
                    msgtype: None,
                    key: item.msgid.clone(),
                    msgid: item.msgid.clone(),
                    msgtime_ms: None,
                }
            }
        }
    }

    fn decode(&self, item: &ChatDataItem) -> Result<Decoded, (DeadLetterReason, String)> {
        let key = self
            .keyring
            .unwrap_random_key(item.publickey_ver, &item.encrypt_random_key)
            .map_err(|e| match e {
                CryptoError::UnknownKeyVersion { .. } => {
                    (DeadLetterReason::UnknownKeyVersion, e.to_string())
                }
                other => (DeadLetterReason::BadRandomKey, other.to_string()),
            })?;
        let plain = self
            .cipher
            .decrypt(&key, &item.encrypt_chat_msg)
            .map_err(|e| (DeadLetterReason::DecryptFailed, e.to_string()))?;
        let msg =
            parse_message(&plain).map_err(|e| (DeadLetterReason::ParseFailed, e.to_string()))?;
        let ctx = NormalizeContext {
            corp_id: &self.corp_id,
            stream: &self.stream,
            seq: item.seq,
            key_version: item.publickey_ver,
        };
        let mut record = normalize(&ctx, &msg);
        if let (Some(rooms), Some(roomid)) = (&self.rooms, record.roomid.as_deref()) {
            record.room = rooms.summary(roomid);
        }
        let json = serde_json::to_vec(&record).map_err(|e| {
            (
                DeadLetterReason::ParseFailed,
                format!("serialize record: {e}"),
            )
        })?;
        Ok(Decoded {
            json,
            msgtype: record.msgtype,
            conversation_id: record.conversation_id,
            msgtime_ms: record.msgtime_ms,
        })
    }
}
