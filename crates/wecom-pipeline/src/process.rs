//! Decrypt and normalize: one archive item in, one output line out — a normalized record, or a dead letter
//! that keeps the raw item and says why. CPU work on blocking threads, never on the async reactor; the one
//! exception to "no I/O" is the room metadata lookup of a record with a roomid ([`crate::rooms`]), which is
//! answered from a cache and blocks on the runtime only on a miss (once per room per TTL).
//!
//! Items are processed a chunk at a time ([`Processor::process_chunk`]): the random keys are unwrapped in
//! Rust, then the whole chunk goes to the message cipher in one call (for the SDK cipher, one round trip
//! to a worker process instead of one per item). What the cipher's failure means decides the item's fate:
//! - the item's own fault (a refused argument, a corrupt ciphertext): a `decrypt_failed` dead letter;
//! - the item crashed the SDK worker, and crashed a fresh one again: an `sdk_crashed` dead letter;
//! - not the item's fault (the pool is restarting, timed out, shut down; SDK codes 10001–10003): the item
//!   is retried with the `[fetch.retry]` backoff, and if it still fails the chunk fails, so the run stops
//!   with the cursor before it. A transient failure never becomes a dead letter.

use std::sync::Arc;

use tracing::{debug, info};
use wecom_api::RetryPolicy;
use wecom_crypto::{CipherFailure, CryptoError, Keyring, MessageCipher};
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
    /// How often, and with what backoff, items whose decryption failed transiently are tried again.
    pub retry: RetryPolicy,
}

/// What one item became.
#[derive(Debug)]
pub struct Processed {
    pub line: OutputLine,
    /// The dead-letter reason, when the item could not become a record.
    pub dead: Option<DeadLetterReason>,
    /// msgtype of a record (for counters and the `msgtype` header); `None` for dead letters.
    pub msgtype: Option<String>,
    /// Partition key: the record's conversation id; a dead letter's msgid.
    pub key: String,
    pub msgid: String,
    /// The message's send time (ms), for latency; `None` for dead letters.
    pub msgtime_ms: Option<u64>,
    /// Whose consent the record's `consent` is about, set by the consent stage (consent.rs).
    pub consent: Option<crate::consent::Seen>,
}

/// What a successfully decoded item carries besides its JSON line.
struct Decoded {
    json: Vec<u8>,
    msgtype: Option<String>,
    conversation_id: String,
    msgtime_ms: Option<u64>,
    consent: Option<crate::consent::Seen>,
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
            retry: cfg.retry.clone(),
        })
    }

    /// Processes `items`, one output line per item in the same order. Fails only when the cipher kept
    /// failing transiently for some item through every retry: then none of the chunk is handed on.
    pub fn process_chunk(&self, items: &[ChatDataItem]) -> Result<Vec<Processed>, PipelineError> {
        let mut out: Vec<Option<Processed>> = items.iter().map(|_| None).collect();
        // (index, unwrapped random key) of the items for the cipher
        let mut todo = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self
                .keyring
                .unwrap_random_key(item.publickey_ver, &item.encrypt_random_key)
            {
                Ok(key) => todo.push((i, key)),
                Err(e) => {
                    let kind = match e {
                        CryptoError::UnknownKeyVersion { .. } => {
                            DeadLetterReason::UnknownKeyVersion
                        }
                        _ => DeadLetterReason::BadRandomKey,
                    };
                    out[i] = Some(self.dead(item, kind, e.to_string()));
                }
            }
        }
        let mut attempt = 1;
        while !todo.is_empty() {
            let batch: Vec<(&[u8], &str)> = todo
                .iter()
                .map(|(i, key)| (key.as_slice(), items[*i].encrypt_chat_msg.as_str()))
                .collect();
            let results = self.cipher.decrypt_batch(&batch);
            if results.len() != todo.len() {
                return Err(self.internal(format!(
                    "the {} cipher answered {} results for {} items",
                    self.cipher.name(),
                    results.len(),
                    todo.len()
                )));
            }
            let mut again = Vec::new();
            let mut last_transient = String::new();
            for ((i, key), result) in todo.into_iter().zip(results) {
                let item = &items[i];
                out[i] = Some(match result {
                    Ok(plain) => self.finish(item, &plain),
                    Err(e) => match e.cipher_failure() {
                        Some(CipherFailure::Transient) => {
                            last_transient = e.to_string();
                            again.push((i, key));
                            continue;
                        }
                        Some(CipherFailure::Crashed) => {
                            self.dead(item, DeadLetterReason::SdkCrashed, e.to_string())
                        }
                        _ => self.dead(item, DeadLetterReason::DecryptFailed, e.to_string()),
                    },
                });
            }
            if again.is_empty() {
                break;
            }
            let seqs = || {
                let first = again.first().map_or(0, |(i, _)| items[*i].seq);
                let last = again.last().map_or(0, |(i, _)| items[*i].seq);
                (first, last)
            };
            if attempt >= self.retry.max_attempts {
                let (first, last) = seqs();
                return Err(PipelineError::Sdk {
                    corp_id: self.corp_id.to_string(),
                    reason: format!(
                        "stream {}: {} items (seq {first}..={last}) still failed to decrypt after {attempt} attempts, \
                         not because of the items: {last_transient}; the cursor stays before them, restart when the \
                         cipher's workers are healthy",
                        self.stream,
                        again.len()
                    ),
                });
            }
            let wait = self.retry.backoff(attempt);
            let (first, last) = seqs();
            debug!(corp = %self.corp_id, stream = %self.stream, first_seq = first, last_seq = last, items = again.len(), attempt, wait_ms = wait.as_millis() as u64, reason = %last_transient, "transient decrypt failure, retrying");
            std::thread::sleep(wait);
            attempt += 1;
            todo = again;
        }
        // Every slot is filled: an item either became a line above or was retried until it did.
        Ok(out.into_iter().flatten().collect())
    }

    /// Parses and normalizes a decrypted item into its record line (or a `parse_failed` dead letter).
    fn finish(&self, item: &ChatDataItem, plain: &[u8]) -> Processed {
        match self.normalize(item, plain) {
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
                consent: d.consent,
            },
            Err(reason) => self.dead(item, DeadLetterReason::ParseFailed, reason),
        }
    }

    fn dead(
        &self,
        item: &ChatDataItem,
        reason_kind: DeadLetterReason,
        reason: String,
    ) -> Processed {
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
            consent: None,
        }
    }

    fn normalize(&self, item: &ChatDataItem, plain: &[u8]) -> Result<Decoded, String> {
        let msg = parse_message(plain).map_err(|e| e.to_string())?;
        let ctx = NormalizeContext {
            corp_id: &self.corp_id,
            stream: &self.stream,
            seq: item.seq,
            key_version: item.publickey_ver,
        };
        let mut record = normalize(&ctx, &msg);
        if let (Some(rooms), Some(roomid)) = (&self.rooms, record.roomid.as_deref()) {
            record.room = rooms.summary(roomid, record.msgtime_ms);
        }
        let json = serde_json::to_vec(&record).map_err(|e| format!("serialize record: {e}"))?;
        Ok(Decoded {
            consent: crate::consent::subject_of(&record),
            json,
            msgtype: record.msgtype,
            conversation_id: record.conversation_id,
            msgtime_ms: record.msgtime_ms,
        })
    }

    fn internal(&self, reason: String) -> PipelineError {
        PipelineError::Internal {
            corp_id: self.corp_id.to_string(),
            stream: self.stream.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use wecom_crypto::{random_message_key, RsaBackendKind, SimCipher, WrappingKey};

    use super::*;

    const PEM: &str = include_str!("../../../config/sim-keys/v1.pem");

    /// A cipher that fails transiently for its first `transient` batches, crashes on items whose
    /// message is `"crash"`, and otherwise is the simulator's cipher.
    struct Flaky {
        transient: usize,
        calls: AtomicUsize,
    }

    impl MessageCipher for Flaky {
        fn decrypt(&self, key: &[u8], msg: &str) -> Result<Vec<u8>, CryptoError> {
            if msg == "crash" {
                return Err(CryptoError::Cipher {
                    reason: "sdk worker crashed: SIGSEGV (twice)".into(),
                    class: CipherFailure::Crashed,
                });
            }
            SimCipher.decrypt(key, msg)
        }

        fn decrypt_batch(&self, items: &[(&[u8], &str)]) -> Vec<Result<Vec<u8>, CryptoError>> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.transient {
                return items
                    .iter()
                    .map(|_| {
                        Err(CryptoError::Cipher {
                            reason: "sdk pool restarting".into(),
                            class: CipherFailure::Transient,
                        })
                    })
                    .collect();
            }
            items.iter().map(|(k, m)| self.decrypt(k, m)).collect()
        }

        fn name(&self) -> &'static str {
            "flaky"
        }
    }

    fn processor(transient: usize, max_attempts: u32) -> (Processor, Arc<Flaky>) {
        let mut ring = Keyring::new(RsaBackendKind::AwsLc);
        ring.insert_pem(1, PEM).unwrap();
        let cipher = Arc::new(Flaky {
            transient,
            calls: AtomicUsize::new(0),
        });
        let p = Processor {
            corp_id: "corp1".into(),
            stream: "corp".into(),
            keyring: Arc::new(ring),
            cipher: cipher.clone(),
            rooms: None,
            retry: RetryPolicy {
                max_attempts,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                ..RetryPolicy::default()
            },
        };
        (p, cipher)
    }

    fn item(seq: u64, crash: bool) -> ChatDataItem {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seq);
        let key = random_message_key(&mut rng);
        let wrapped = WrappingKey::from_private_pem(PEM)
            .unwrap()
            .wrap_random_key(&key, &mut rng)
            .unwrap();
        let msg = format!(
            r#"{{"msgid":"m{seq}","action":"send","from":"a","tolist":["b"],"roomid":"","msgtime":1,"msgtype":"text","text":{{"content":"hello {seq}"}}}}"#
        );
        ChatDataItem {
            seq,
            msgid: format!("m{seq}"),
            publickey_ver: 1,
            encrypt_random_key: wrapped,
            encrypt_chat_msg: if crash {
                "crash".into()
            } else {
                SimCipher::encrypt(&key, msg.as_bytes()).unwrap()
            },
            extra: Default::default(),
        }
    }

    #[test]
    fn transient_cipher_failures_are_retried_not_dead_lettered() {
        let (p, cipher) = processor(2, 5);
        let out = p.process_chunk(&[item(1, false), item(2, false)]).unwrap();
        assert_eq!(
            cipher.calls.load(Ordering::SeqCst),
            3,
            "two failed rounds, one good"
        );
        assert!(out.iter().all(|o| o.dead.is_none()), "{out:?}");
        assert_eq!(out.iter().map(|o| o.line.seq).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_cipher_that_stays_down_fails_the_chunk_naming_the_seqs() {
        let (p, _) = processor(usize::MAX, 3);
        let err = p
            .process_chunk(&[item(7, false), item(9, false)])
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("seq 7..=9") && text.contains("3 attempts"),
            "{text}"
        );
        assert!(text.contains("sdk pool restarting"), "{text}");
    }

    #[test]
    fn an_item_that_crashes_the_worker_is_an_sdk_crashed_dead_letter_and_the_rest_decrypt() {
        let (p, _) = processor(0, 3);
        let out = p
            .process_chunk(&[item(1, false), item(2, true), item(3, false)])
            .unwrap();
        let kinds: Vec<_> = out.iter().map(|o| o.dead).collect();
        assert_eq!(kinds, [None, Some(DeadLetterReason::SdkCrashed), None]);
        let dl: DeadLetter = serde_json::from_slice(&out[1].line.json).unwrap();
        assert_eq!(dl.reason_kind, DeadLetterReason::SdkCrashed);
        assert_eq!(
            dl.item.encrypt_chat_msg, "crash",
            "the raw item is kept whole"
        );
    }
}
