//! The corp's durable cursor in a compacted topic, with owner epochs, so a stream can move to another machine.
//!
//! Format: partition 0 of `cursor_topic`, UTF-8 keys, JSON values. A corp id may not contain `/` nor be
//! `cursor` or `claim`, which keeps the keys of different corps, streams and epochs apart.
//!
//! | record | key | value |
//! |---|---|---|
//! | cursor | `cursor/{corp_id}/{epoch}/{stream}` | `{"version":2,"seq":N,"epoch":E}` |
//! | owner claim | `claim/{corp_id}/{stream}` | `{"version":2,"epoch":E,"owner":"...","seq":N or null}` |
//! | cursor of version 1 (read only) | `{corp_id}/{stream}` | `{"version":1,"seq":N}`, read as epoch 0 |
//!
//! Rules, all of them "newest record per key", so they hold whether or not compaction ran:
//! - The **current claim** is the newest claim record; epoch 0 and no owner when there is none.
//!   [`claim_epoch`](KafkaSink::claim_epoch) writes `{epoch: current + 1, owner, seq: the cursor at the
//!   handover}` and then reads back what was written since: if another claimer wrote the same or a higher
//!   epoch first, it claims again above it, so no two owners ever hold the same epoch.
//! - The **cursor** is the newest cursor record written under the current claim's epoch; when the owner has
//!   not written one yet, the `seq` of the claim (the handover). Cursor records of lower epochs are a stale
//!   owner's and are ignored, however new. Each epoch has its own key, so a stale owner's writes never
//!   replace the current owner's record when the topic is compacted.
//! - A cursor record of an epoch *above* the current claim cannot come from this protocol (a claim was
//!   deleted): an error, not a guess.
//!
//! Reading scans partition 0 newest first down to the current claim (or, for a stream never claimed, down to
//! the low watermark, bounded by `recover_max_records_per_partition`). The sink creates the topic compacted
//! with hourly segments, so the scan stays short on brokers that compact; on brokers that do not (tansu), it
//! reads what was written since the last claim.

use std::collections::BTreeMap;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

use crate::error::KafkaError;
use crate::scan::{reader, scan_back, true_end, KafkaLog, Step, IDLE_TIMEOUT};
use crate::sink::{run_blocking, KafkaSink};

const VERSION: u32 = 2;
const CLAIM_ATTEMPTS: u32 = 5;

/// Who owns a stream, and under which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub epoch: u64,
    pub owner: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorValue {
    version: u32,
    seq: u64,
    /// absent in version 1
    #[serde(default)]
    epoch: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimValue {
    version: u32,
    epoch: u64,
    owner: String,
    /// The cursor when the claim was made.
    seq: Option<u64>,
}

fn supported(version: u32) -> Result<(), String> {
    if (1..=VERSION).contains(&version) {
        Ok(())
    } else {
        Err(format!(
            "unsupported version {version} (this build reads 1 to {VERSION})"
        ))
    }
}

/// Which record of the stream a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Claim,
    Cursor { epoch: u64 },
    Version1,
}

fn claim_key(corp_id: &str, stream: &str) -> String {
    format!("claim/{corp_id}/{stream}")
}

fn cursor_key(corp_id: &str, stream: &str, epoch: u64) -> String {
    format!("cursor/{corp_id}/{epoch}/{stream}")
}

/// What `key` is for the stream, `None` for another stream's records.
fn classify(key: &[u8], corp_id: &str, stream: &str) -> Option<Key> {
    let key = std::str::from_utf8(key).ok()?;
    if let Some(rest) = key.strip_prefix("cursor/") {
        let rest = rest.strip_prefix(corp_id)?.strip_prefix('/')?;
        let (epoch, s) = rest.split_once('/')?;
        return (s == stream)
            .then(|| epoch.parse().ok().map(|epoch| Key::Cursor { epoch }))
            .flatten();
    }
    if key
        .strip_prefix("claim/")
        .and_then(|r| r.strip_prefix(corp_id))
        == Some(&format!("/{stream}"))
    {
        return Some(Key::Claim);
    }
    let rest = key.strip_prefix(corp_id)?.strip_prefix('/')?;
    (rest == stream).then_some(Key::Version1)
}

/// A claim record's stream (`{corp_id}/{stream}`) and epoch; `None` for any other record of the topic.
pub(crate) fn parse_claim(key: &[u8], value: &[u8]) -> Option<(String, u64)> {
    let stream = std::str::from_utf8(key).ok()?.strip_prefix("claim/")?;
    let claim: ClaimValue = serde_json::from_slice(value).ok()?;
    Some((stream.to_string(), claim.epoch))
}

/// The stream's records found by a newest-first scan down to its current claim.
#[derive(Debug, Default)]
struct Found {
    claim: Option<ClaimValue>,
    /// newest cursor value per epoch (`None`: deleted)
    cursors: BTreeMap<u64, Option<u64>>,
}

impl KafkaSink {
    fn cursor_topic(&self) -> Result<&str, KafkaError> {
        self.config
            .cursor_topic
            .as_deref()
            .ok_or(KafkaError::NoCursorTopic)
    }

    fn cursor_error(&self, key: &str, reason: impl Into<String>) -> KafkaError {
        KafkaError::Cursor {
            topic: self.config.cursor_topic.clone().unwrap_or_default(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn check_corp_id(&self, corp_id: &str, stream: &str) -> Result<(), KafkaError> {
        if corp_id.is_empty() || corp_id.contains('/') || corp_id == "cursor" || corp_id == "claim"
        {
            return Err(self.cursor_error(
                &cursor_key(corp_id, stream, 0),
                "a corp id in the cursor topic must be non-empty, without '/', and not \"cursor\" or \"claim\"",
            ));
        }
        Ok(())
    }

    /// Writes `value` under `key` to partition 0 and returns its offset once acknowledged.
    async fn write(&self, key: &str, value: &[u8], seq: u64) -> Result<i64, KafkaError> {
        let topic = self.cursor_topic()?;
        let record = FutureRecord::to(topic).partition(0).key(key).payload(value);
        let timeout = Timeout::After(std::time::Duration::from_millis(u64::from(
            self.config.message_timeout_ms,
        )));
        match self.producer.send(record, timeout).await {
            Ok(delivery) => Ok(delivery.offset),
            Err((e, m)) => Err(self.publish_error(topic, m.partition(), seq, &e)),
        }
    }

    /// Writes the cursor of `corp_id`/`stream` under `epoch` (0 when streams are not claimed) and waits for the
    /// broker's acknowledgement. A cursor of an epoch below the current claim is ignored by readers.
    pub async fn store_cursor(
        &self,
        corp_id: &str,
        stream: &str,
        seq: u64,
        epoch: u64,
    ) -> Result<(), KafkaError> {
        self.check_corp_id(corp_id, stream)?;
        let key = cursor_key(corp_id, stream, epoch);
        let value = serde_json::to_vec(&CursorValue {
            version: VERSION,
            seq,
            epoch,
        })
        .map_err(|e| self.cursor_error(&key, e.to_string()))?;
        self.write(&key, &value, seq).await.map(drop)
    }

    /// The cursor of `corp_id`/`stream`: the newest written under the current claim's epoch, else the claim's
    /// handover (see the module docs). `None` when there is neither.
    pub async fn load_cursor(
        &self,
        corp_id: &str,
        stream: &str,
    ) -> Result<Option<u64>, KafkaError> {
        let found = self.scan_stream(corp_id, stream).await?;
        self.cursor_of(corp_id, stream, &found)
    }

    fn cursor_of(
        &self,
        corp_id: &str,
        stream: &str,
        found: &Found,
    ) -> Result<Option<u64>, KafkaError> {
        let epoch = found.claim.as_ref().map_or(0, |c| c.epoch);
        if let Some((&above, _)) = found.cursors.range(epoch + 1..).next() {
            return Err(self.cursor_error(
                &cursor_key(corp_id, stream, above),
                format!(
                    "written under epoch {above}, but the newest claim has epoch {epoch}; was a claim deleted?"
                ),
            ));
        }
        Ok(match found.cursors.get(&epoch) {
            Some(seq) => *seq,
            None => found.claim.as_ref().and_then(|c| c.seq),
        })
    }

    /// The current owner claim of `corp_id`/`stream`, `None` when it was never claimed.
    pub async fn current_claim(
        &self,
        corp_id: &str,
        stream: &str,
    ) -> Result<Option<Claim>, KafkaError> {
        Ok(self
            .scan_stream(corp_id, stream)
            .await?
            .claim
            .map(|c| Claim {
                epoch: c.epoch,
                owner: c.owner,
            }))
    }

    /// The epoch of the current claim, 0 when the stream was never claimed.
    pub async fn current_epoch(&self, corp_id: &str, stream: &str) -> Result<u64, KafkaError> {
        Ok(self
            .current_claim(corp_id, stream)
            .await?
            .map_or(0, |c| c.epoch))
    }

    /// Claims `corp_id`/`stream` for `owner`: writes a claim with the next epoch, carrying the current cursor
    /// as the handover, and returns that epoch. From then on, cursors stored under a lower epoch are ignored.
    /// A claimer racing this one with the same epoch is resolved by claiming again above it (see the module
    /// docs); a claim written after this one wins.
    pub async fn claim_epoch(
        &self,
        corp_id: &str,
        stream: &str,
        owner: &str,
    ) -> Result<u64, KafkaError> {
        self.check_corp_id(corp_id, stream)?;
        let key = claim_key(corp_id, stream);
        let mut floor_epoch = 0;
        for _ in 0..CLAIM_ATTEMPTS {
            // everything written from here on lies at or after `since`
            let since = self.cursor_end().await?;
            let found = self.scan_stream(corp_id, stream).await?;
            let handover = self.cursor_of(corp_id, stream, &found)?;
            let epoch = found.claim.map_or(0, |c| c.epoch).max(floor_epoch) + 1;
            let value = serde_json::to_vec(&ClaimValue {
                version: VERSION,
                epoch,
                owner: owner.into(),
                seq: handover,
            })
            .map_err(|e| self.cursor_error(&key, e.to_string()))?;
            let offset = self.write(&key, &value, handover.unwrap_or(0)).await?;
            let rivals = self.claims_since(corp_id, stream, since).await?;
            if let Some((_, c)) = rivals.iter().find(|(o, _)| *o > offset) {
                return Err(self.cursor_error(
                    &key,
                    format!(
                        "claim of epoch {epoch} by {owner} was superseded by a later claim of epoch {} by {}",
                        c.epoch, c.owner
                    ),
                ));
            }
            match rivals
                .iter()
                .filter(|(o, c)| *o < offset && c.epoch >= epoch)
                .map(|(_, c)| c.epoch)
                .max()
            {
                None => {
                    tracing::info!(corp_id, stream, owner, epoch, handover = ?handover, "stream claimed");
                    return Ok(epoch);
                }
                // another claimer got this epoch first: claim above it
                Some(rival) => floor_epoch = rival,
            }
        }
        Err(self.cursor_error(
            &key,
            format!("{CLAIM_ATTEMPTS} claims in a row met a rival claim; is another process claiming the stream in a loop?"),
        ))
    }

    /// The end of partition 0 of the cursor topic.
    async fn cursor_end(&self) -> Result<i64, KafkaError> {
        let topic = self.cursor_topic()?.to_string();
        let config = self.config.clone();
        run_blocking(move || {
            let consumer = reader(&config)?;
            let mut log = KafkaLog::new(&consumer, &topic, 0, |_| None::<()>);
            true_end(&mut log, IDLE_TIMEOUT)
        })
        .await
    }

    /// Claim records of the stream at offsets `since` and above, newest first.
    async fn claims_since(
        &self,
        corp_id: &str,
        stream: &str,
        since: i64,
    ) -> Result<Vec<(i64, Claim)>, KafkaError> {
        let topic = self.cursor_topic()?.to_string();
        let config = self.config.clone();
        let (corp_id, stream) = (corp_id.to_string(), stream.to_string());
        run_blocking(move || {
            let consumer = reader(&config)?;
            // every record: the scan stops at the first one below `since`
            let mut log = KafkaLog::new(&consumer, &topic, 0, |m| {
                let claim = (m.key().and_then(|k| classify(k, &corp_id, &stream))
                    == Some(Key::Claim))
                .then(|| {
                    m.payload()
                        .and_then(|v| serde_json::from_slice::<ClaimValue>(v).ok())
                })
                .flatten();
                Some(claim)
            });
            let mut claims = Vec::new();
            scan_back(
                &mut log,
                config.recover_max_records_per_partition,
                IDLE_TIMEOUT,
                |offset, claim| {
                    if offset < since {
                        return Step::Stop;
                    }
                    if let Some(c) = claim {
                        claims.push((
                            offset,
                            Claim {
                                epoch: c.epoch,
                                owner: c.owner,
                            },
                        ));
                    }
                    Step::Continue
                },
            )?;
            Ok(claims)
        })
        .await
    }

    /// The stream's records, newest first, down to its newest claim.
    async fn scan_stream(&self, corp_id: &str, stream: &str) -> Result<Found, KafkaError> {
        self.check_corp_id(corp_id, stream)?;
        let topic = self.cursor_topic()?.to_string();
        let config = self.config.clone();
        let (corp_id, stream) = (corp_id.to_string(), stream.to_string());
        let found = run_blocking(move || {
            let consumer = reader(&config)?;
            let mut log = KafkaLog::new(&consumer, &topic, 0, |m| {
                let raw = m.key()?;
                let key = classify(raw, &corp_id, &stream)?;
                let raw = String::from_utf8_lossy(raw).into_owned();
                Some((key, raw, m.payload().map(<[u8]>::to_vec)))
            });
            let mut found = Found::default();
            let mut bad: Option<(String, String)> = None;
            let outcome = scan_back(
                &mut log,
                config.recover_max_records_per_partition,
                IDLE_TIMEOUT,
                |_, (key, raw, value)| {
                    let parsed = match (key, &value) {
                        (_, None) => Ok(None),
                        (Key::Claim, Some(v)) => serde_json::from_slice::<ClaimValue>(v)
                            .map_err(|e| e.to_string())
                            .and_then(|c| supported(c.version).map(|()| Some((Some(c), None)))),
                        (_, Some(v)) => serde_json::from_slice::<CursorValue>(v)
                            .map_err(|e| e.to_string())
                            .and_then(|c| supported(c.version).map(|()| Some((None, Some(c))))),
                    };
                    match parsed {
                        Err(reason) => {
                            bad = Some((raw, reason));
                            Step::Stop
                        }
                        // a deleted claim: the stream is unclaimed from there on
                        Ok(None) if key == Key::Claim => Step::Stop,
                        Ok(None) => {
                            let epoch = match key {
                                Key::Cursor { epoch } => epoch,
                                _ => 0,
                            };
                            found.cursors.entry(epoch).or_insert(None);
                            Step::Continue
                        }
                        Ok(Some((Some(claim), _))) => {
                            found.claim = Some(claim);
                            Step::Stop
                        }
                        Ok(Some((_, Some(c)))) => {
                            found.cursors.entry(c.epoch).or_insert(Some(c.seq));
                            Step::Continue
                        }
                        Ok(Some((None, None))) => Step::Continue,
                    }
                },
            )?;
            if outcome.bound_hit {
                tracing::warn!(
                    %topic,
                    bound = config.recover_max_records_per_partition,
                    "cursor topic scan stopped at its bound before finding a claim; older records are ignored"
                );
            }
            Ok((found, bad))
        })
        .await?;
        match found {
            (found, None) => Ok(found),
            (_, Some((key, reason))) => Err(self.cursor_error(&key, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_one_stream_and_epoch() {
        let check = |key: &str, expected: Option<Key>| {
            assert_eq!(
                classify(key.as_bytes(), "ww1", "room:a/b"),
                expected,
                "{key}"
            );
        };
        check("cursor/ww1/7/room:a/b", Some(Key::Cursor { epoch: 7 }));
        check("claim/ww1/room:a/b", Some(Key::Claim));
        check("ww1/room:a/b", Some(Key::Version1));
        check("cursor/ww1/7/room:a", None);
        check("cursor/ww10/7/room:a/b", None);
        check("cursor/ww1/x/room:a/b", None);
        check("claim/ww1/room:a/b/c", None);
        check("ww1/corp", None);
        assert_eq!(
            classify(cursor_key("c", "corp", 3).as_bytes(), "c", "corp"),
            Some(Key::Cursor { epoch: 3 })
        );
        assert_eq!(
            classify(claim_key("c", "corp").as_bytes(), "c", "corp"),
            Some(Key::Claim)
        );
    }

    #[test]
    fn version_1_values_read_as_epoch_0() {
        let v: CursorValue = serde_json::from_str(r#"{"version":1,"seq":12}"#).unwrap();
        assert_eq!((v.seq, v.epoch), (12, 0));
    }
}
