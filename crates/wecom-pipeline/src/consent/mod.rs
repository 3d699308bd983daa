//! Consent on records: a record of a message with an external contact says whether that contact agreed to
//! having the conversation archived (`consent: {status, checked_at}`), so that an archive can show, message
//! by message, what the corp knew about consent when it kept the message.
//!
//! ```toml
//! [consent]
//! enabled = true    # look consent up and add `consent` to records
//! ttl_secs = 3600   # how long a looked-up status is reused
//! max_entries = 65536
//! ```
//!
//! ## Who a record's consent is about
//!
//! External contacts are the ids the service gives them: `wm…` / `wo…` followed by at least 22 more
//! characters (internal userids are chosen by the corp and may start with the same letters, but not with
//! an id that long and of that form). The subject of a record is:
//! - 1:1 (no roomid): the pair (corp member, external contact) of sender and recipient, looked up with
//!   `check_single_agree`, batched at most [`cache::MAX_PAIRS`] pairs per call;
//! - in a room: the sender, when the sender is an external contact, as a member of that room, looked up
//!   with `check_room_agree` {roomid} (one call answers every external member of the room). A room
//!   message sent by a corp member gets no `consent`: a record carries one status, and a room may hold
//!   several external members with different answers.
//!
//! A subject the service has no answer for (never asked, or never replied) gets the status `Unanswered`.
//!
//! ## Where the status comes from
//!
//! The consent stage runs in the sink task, on each page in seq order, before the page is written: it
//! looks up the subjects it has no status for (one batch per page, through [`ConsentCache`]: a TTL, single
//! flight per subject across every run of the process), then walks the page in order. An `agree` /
//! `disagree` message sets its subject's status at the message's own time (`agree_time` /
//! `disagree_time`, else `msgtime`) for itself and the stream's later records, for the TTL; after that the
//! subject is looked up again. It also refreshes the cached status, unless the cache learned a status
//! later than the message (a replay walking old messages never undoes a newer answer). A failed lookup
//! never holds a message back: the record goes without `consent` (logged once, see [`cache`]).
//!
//! A lookup answers the status as of now: records older than the first agree / disagree message of their
//! subject carry the status the service gave when the pipeline reached them, with that time as
//! `checked_at`.
//!
//! ## The history, and runs that must not call the service
//!
//! Every change of the status the stage puts on a subject's records (a new lookup, an agree / disagree
//! message, a failed lookup) is appended to `consent/consent.ndjson` in the stream directory, with the seq
//! from which it applies ([`history`]). That file is what `wecom-archive consent` reports, and what
//! `replay --from-archive` and redrive use instead of the service: a record of seq S gets the status of
//! the subject's newest history entry at or before S, which is exactly what the live run put on it.

pub mod cache;
pub mod history;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use wecom_model::message::Content;
use wecom_model::record::{format_msgtime, ConsentStamp, Record};
use wecom_store::StreamLayout;

pub use cache::{ConsentCache, ConsentCacheStats};
pub use history::{ConsentEntry, ConsentHistory, ConsentReport};

use crate::error::PipelineError;
use crate::process::Processed;

/// The status given to a subject the service has no answer for.
pub const UNANSWERED: &str = "Unanswered";

/// The `[consent]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// Look consent up and add `consent` to records of messages with external contacts.
    pub enabled: bool,
    /// How long a looked-up (or message-given) status is reused before it is looked up again.
    pub ttl_secs: u64,
    /// Subjects whose status is kept at most.
    pub max_entries: usize,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_secs: 3600,
            max_entries: 65_536,
        }
    }
}

const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

impl ConsentConfig {
    /// Rejects settings that would turn the cache into a call per message, or overflow its clock.
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled && self.ttl_secs == 0 {
            return Err(
                "ttl_secs must be at least 1 (set enabled = false to turn lookups off)".into(),
            );
        }
        if self.ttl_secs > MAX_TTL_SECS {
            return Err(format!(
                "ttl_secs = {} is above the maximum of {MAX_TTL_SECS} (one year)",
                self.ttl_secs
            ));
        }
        if self.enabled && self.max_entries == 0 {
            return Err("max_entries must be at least 1".into());
        }
        Ok(())
    }
}

/// Who a consent is about: an external contact towards one corp member (`userid`, 1:1 chats) or as a
/// member of a room (`roomid`). Exactly one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
pub struct Subject {
    pub external: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roomid: Option<String>,
}

/// A status and when it was learned (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub status: String,
    pub checked_at_ms: u64,
}

impl Stamp {
    fn to_record(&self) -> ConsentStamp {
        ConsentStamp {
            status: self.status.clone(),
            checked_at: format_msgtime(self.checked_at_ms).unwrap_or_default(),
        }
    }
}

/// What the processor saw of a record's consent: its subject, and for an `agree` / `disagree` message
/// the status it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub subject: Subject,
    pub sets: Option<Stamp>,
}

/// An id the service gives an external contact (`wm…` / `wo…`, 24 characters or more, alphanumeric).
pub fn is_external(id: &str) -> bool {
    (id.starts_with("wm") || id.starts_with("wo"))
        && id.len() >= 24
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The consent subject of `record` (see the module docs), `None` when it involves no external contact.
pub fn subject_of(record: &Record) -> Option<Seen> {
    let from = record.from.as_deref().unwrap_or_default();
    let roomid = record.roomid.as_deref().filter(|r| !r.is_empty());
    let sets = match &record.content {
        Content::Agree(a) => Some(("Agree", a.agree_time, a.userid.as_str())),
        Content::Disagree(d) => Some(("Disagree", d.disagree_time, d.userid.as_str())),
        _ => None,
    };
    // An agree / disagree is about its payload's external contact (the sender, in practice).
    let external = match sets {
        Some((_, _, userid)) if is_external(userid) => userid,
        _ => from,
    };
    let subject = match roomid {
        Some(room) if is_external(external) => Subject {
            external: external.to_owned(),
            userid: None,
            roomid: Some(room.to_owned()),
        },
        Some(_) => return None,
        None if is_external(external) => {
            let member = record
                .to
                .iter()
                .find(|id| !id.is_empty() && !is_external(id))?;
            Subject {
                external: external.to_owned(),
                userid: Some(member.clone()),
                roomid: None,
            }
        }
        None if !from.is_empty() => {
            let ext = record.to.iter().find(|id| is_external(id))?;
            Subject {
                external: ext.clone(),
                userid: Some(from.to_owned()),
                roomid: None,
            }
        }
        None => return None,
    };
    let sets = sets.and_then(|(status, at, _)| {
        Some(Stamp {
            status: status.to_owned(),
            checked_at_ms: at.or(record.msgtime_ms)?,
        })
    });
    Some(Seen { subject, sets })
}

/// Adds `consent` to a record's JSON line. `consent` is serialized after every field [`normalize`] and the
/// processor set, so appending it gives the bytes `serde_json` gives for the record with `consent` set.
///
/// [`normalize`]: wecom_model::record::normalize
fn splice(json: &mut Vec<u8>, stamp: &Stamp) {
    let Ok(value) = serde_json::to_vec(&stamp.to_record()) else {
        return;
    };
    if json.last() != Some(&b'}') || json.len() < 2 {
        return;
    }
    json.pop();
    if json.last() != Some(&b'{') {
        json.push(b',');
    }
    json.extend_from_slice(b"\"consent\":");
    json.extend_from_slice(&value);
    json.push(b'}');
}

/// Where a run's records get their consent from.
#[derive(Clone)]
pub(crate) enum ConsentSource {
    /// The process's cache, which calls the service; changes are appended to the run's history.
    Online(Arc<ConsentCache>),
    /// A stream's recorded history only (`replay --from-archive`, redrive): never calls the service.
    Offline(Arc<ConsentHistory>),
}

/// The consent stage of one run (see the module docs).
pub(crate) struct ConsentStage {
    source: ConsentSource,
    /// The history this run appends to (online runs).
    writer: Option<history::HistoryWriter>,
    /// The stamp (or "none") the run last put on each subject's records.
    last: HashMap<Subject, Option<Stamp>>,
    /// The status the last agree / disagree message of this stream set, per subject, and when (it
    /// stands for the TTL, whatever the cache holds: the cache may hold a newer lookup, made before this
    /// run reached the message).
    set_by_message: HashMap<Subject, (Stamp, Instant)>,
    ttl: Duration,
    max_entries: usize,
}

impl ConsentStage {
    /// The stage of a run writing to `layout`; an online run appends its history there.
    pub fn open(
        source: ConsentSource,
        layout: &StreamLayout,
        corp_id: &str,
        cfg: &ConsentConfig,
    ) -> Result<Self, PipelineError> {
        let writer = match &source {
            ConsentSource::Online(_) => Some(history::HistoryWriter::open(layout, corp_id)?),
            ConsentSource::Offline(_) => None,
        };
        Ok(Self {
            source,
            writer,
            last: HashMap::new(),
            set_by_message: HashMap::new(),
            ttl: Duration::from_secs(cfg.ttl_secs.max(1)),
            max_entries: cfg.max_entries.max(1),
        })
    }

    /// Puts `consent` on the page's records (in seq order) and appends the page's history entries.
    pub async fn enrich(&mut self, lines: &mut [Processed]) -> Result<(), PipelineError> {
        let cache = match &self.source {
            ConsentSource::Offline(h) => {
                for p in lines.iter_mut().filter(|p| p.dead.is_none()) {
                    if let Some(stamp) = p
                        .consent
                        .as_ref()
                        .and_then(|s| h.as_of(&s.subject, p.line.seq))
                    {
                        splice(&mut p.line.json, &stamp);
                    }
                }
                return Ok(());
            }
            ConsentSource::Online(c) => c.clone(),
        };
        let now = Instant::now();
        let ttl = self.ttl;
        self.set_by_message
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
        // Bounded between pages (a page adds at most its own messages); a subject forgotten here is
        // looked up instead.
        if self.set_by_message.len() >= self.max_entries {
            self.set_by_message.clear();
        }
        // Subjects a record needs that no agree / disagree message of this stream set (yet).
        let mut set_in_page = HashSet::new();
        let mut need = Vec::new();
        for seen in lines
            .iter()
            .filter(|p| p.dead.is_none())
            .filter_map(|p| p.consent.as_ref())
        {
            if seen.sets.is_some() {
                set_in_page.insert(&seen.subject);
            } else if !set_in_page.contains(&seen.subject)
                && !self.set_by_message.contains_key(&seen.subject)
            {
                need.push(seen.subject.clone());
            }
        }
        let looked_up = cache.resolve(need).await;
        let mut entries = Vec::new();
        for p in lines.iter_mut().filter(|p| p.dead.is_none()) {
            let Some(seen) = &p.consent else { continue };
            let (stamp, from_message) = match &seen.sets {
                Some(s) => {
                    cache.observe(&seen.subject, s.clone());
                    self.set_by_message
                        .insert(seen.subject.clone(), (s.clone(), now));
                    (Some(s.clone()), true)
                }
                None => {
                    let stamp = match self.set_by_message.get(&seen.subject) {
                        Some((s, _)) => Some(s.clone()),
                        None => looked_up.get(&seen.subject).cloned().flatten(),
                    };
                    (stamp, false)
                }
            };
            if let Some(s) = &stamp {
                splice(&mut p.line.json, s);
            }
            if self.last.get(&seen.subject) != Some(&stamp) {
                if let Some(w) = &self.writer {
                    entries.push(w.entry(p, &seen.subject, stamp.as_ref(), from_message));
                }
                if self.last.len() >= self.max_entries {
                    // Forgetting only costs a repeated (identical) history entry.
                    self.last.clear();
                }
                self.last.insert(seen.subject.clone(), stamp);
            }
        }
        if let Some(w) = &self.writer {
            w.append(entries).await?;
        }
        Ok(())
    }
}

/// The consent source of a run, or `None` when consent is off.
pub(crate) fn source_for_run(
    cfg: &crate::config::Validated,
    cache: Option<&Arc<ConsentCache>>,
    archive_of: Option<&StreamLayout>,
) -> Result<Option<ConsentSource>, PipelineError> {
    if !cfg.consent.enabled {
        return Ok(None);
    }
    match archive_of {
        Some(live) => Ok(Some(ConsentSource::Offline(Arc::new(
            ConsentHistory::load(live, &cfg.corp_id)?,
        )))),
        None => Ok(cache.map(|c| ConsentSource::Online(c.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_model::message::parse_message;
    use wecom_model::record::{normalize, NormalizeContext};

    const EXT: &str = "wmAbCdEfGhIjKlMnOpQrStUvWxYz0123";

    fn record(json: &str) -> Record {
        let msg = parse_message(json.as_bytes()).unwrap();
        let ctx = NormalizeContext {
            corp_id: "c",
            stream: "corp",
            seq: 7,
            key_version: 1,
        };
        normalize(&ctx, &msg)
    }

    #[test]
    fn externals_are_recognized() {
        assert!(is_external(EXT));
        assert!(is_external("wo0123456789012345678901"));
        assert!(!is_external("wmzhang"), "a short userid is a corp member");
        assert!(!is_external("zhangsan"));
        assert!(!is_external("wbRobot0123456789012345678901"));
    }

    #[test]
    fn subjects_of_records() {
        let to_ext = record(&format!(
            r#"{{"msgid":"1_external","action":"send","from":"zhangsan","tolist":["{EXT}"],"roomid":"","msgtime":5,"msgtype":"text","text":{{"content":"hi"}}}}"#
        ));
        let seen = subject_of(&to_ext).unwrap();
        assert_eq!(seen.subject.userid.as_deref(), Some("zhangsan"));
        assert_eq!(seen.subject.external, EXT);
        assert_eq!(seen.sets, None);

        let agree = record(&format!(
            r#"{{"msgid":"2","action":"send","from":"{EXT}","tolist":["lisi"],"roomid":"","msgtime":9,"msgtype":"agree","agree":{{"userid":"{EXT}","agree_time":8}}}}"#
        ));
        let seen = subject_of(&agree).unwrap();
        assert_eq!(seen.subject.userid.as_deref(), Some("lisi"));
        assert_eq!(
            seen.sets,
            Some(Stamp {
                status: "Agree".into(),
                checked_at_ms: 8
            })
        );

        let in_room = record(&format!(
            r#"{{"msgid":"3","action":"send","from":"{EXT}","tolist":["lisi"],"roomid":"wr1","msgtime":9,"msgtype":"disagree","disagree":{{"userid":"{EXT}"}}}}"#
        ));
        let seen = subject_of(&in_room).unwrap();
        assert_eq!(seen.subject.roomid.as_deref(), Some("wr1"));
        assert_eq!(
            seen.sets.unwrap().checked_at_ms,
            9,
            "msgtime without disagree_time"
        );

        let member_in_room = record(&format!(
            r#"{{"msgid":"4","action":"send","from":"lisi","tolist":["{EXT}"],"roomid":"wr1","msgtime":9,"msgtype":"text","text":{{"content":"hi"}}}}"#
        ));
        assert_eq!(subject_of(&member_in_room), None);
        let internal = record(
            r#"{"msgid":"5","action":"send","from":"lisi","tolist":["zhangsan"],"roomid":"","msgtime":9,"msgtype":"text","text":{"content":"hi"}}"#,
        );
        assert_eq!(subject_of(&internal), None);
    }

    #[test]
    fn spliced_consent_is_what_serde_writes() {
        let mut r = record(&format!(
            r#"{{"msgid":"1_external","action":"send","from":"zhangsan","tolist":["{EXT}"],"roomid":"","msgtime":5,"msgtype":"text","text":{{"content":"hi"}}}}"#
        ));
        let mut json = serde_json::to_vec(&r).unwrap();
        let stamp = Stamp {
            status: "Default_Agree".into(),
            checked_at_ms: 1_700_000_000_123,
        };
        splice(&mut json, &stamp);
        r.consent = Some(stamp.to_record());
        assert_eq!(
            String::from_utf8(json).unwrap(),
            serde_json::to_string(&r).unwrap()
        );
        assert_eq!(r.consent.unwrap().checked_at, "2023-11-14T22:13:20.123Z");
    }

    fn processed(seq: u64, json: &str) -> Processed {
        let mut r = record(json);
        r.seq = seq;
        Processed {
            line: wecom_store::OutputLine {
                kind: wecom_store::LineKind::Record,
                seq,
                json: serde_json::to_vec(&r).unwrap(),
            },
            dead: None,
            msgtype: r.msgtype.clone(),
            key: r.conversation_id.clone(),
            msgid: r.msgid.clone(),
            msgtime_ms: r.msgtime_ms,
            consent: subject_of(&r),
        }
    }

    fn page() -> Vec<Processed> {
        let text = |from: &str, to: &str| {
            format!(
                r#"{{"msgid":"m","action":"send","from":"{from}","tolist":["{to}"],"roomid":"","msgtime":40,"msgtype":"text","text":{{"content":"hi"}}}}"#
            )
        };
        vec![
            processed(1, &text("zhangsan", EXT)),
            processed(
                2,
                &format!(
                    r#"{{"msgid":"d","action":"send","from":"{EXT}","tolist":["zhangsan"],"roomid":"","msgtime":60,"msgtype":"disagree","disagree":{{"userid":"{EXT}","disagree_time":50}}}}"#
                ),
            ),
            processed(3, &text(EXT, "zhangsan")),
            processed(4, &text("lisi", "zhangsan")),
            processed(5, &text("lisi", EXT)),
        ]
    }

    fn status(p: &Processed) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&p.line.json).unwrap();
        v.get("consent")
            .map(|c| c["status"].as_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn the_stage_applies_messages_in_seq_order_and_its_history_replays_the_same_bytes() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let pairs: cache::PairFetch = {
            let calls = calls.clone();
            Arc::new(move |req: Vec<(String, String)>| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async move {
                    Ok(req
                        .into_iter()
                        .filter(|(u, _)| u == "zhangsan")
                        .map(|(userid, external_openid)| wecom_api::AgreeInfo {
                            userid,
                            external_openid,
                            agree_status: wecom_api::AgreeStatus::DefaultAgree,
                            status_change_time: 1,
                        })
                        .collect())
                })
            })
        };
        let rooms: cache::RoomFetch = Arc::new(|_| Box::pin(async { Ok(Vec::new()) }));
        let cfg = ConsentConfig::default();
        let cache = Arc::new(ConsentCache::new(
            "c",
            &cfg,
            pairs,
            rooms,
            Arc::new(Instant::now),
        ));
        let dir = tempfile::tempdir().unwrap();
        let layout = StreamLayout::at(dir.path(), "corp");
        let mut stage =
            ConsentStage::open(ConsentSource::Online(cache), &layout, "c", &cfg).unwrap();
        let mut live = page();
        stage.enrich(&mut live).await.unwrap();
        let got: Vec<Option<String>> = live.iter().map(status).collect();
        assert_eq!(
            got,
            [
                Some("Default_Agree".into()),
                Some("Disagree".into()),
                Some("Disagree".into()),
                None,
                Some(UNANSWERED.into())
            ]
        );
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one batch for the page"
        );

        let entries = history::read(&history::path(&layout)).unwrap();
        let seqs: Vec<(u64, &str)> = entries.iter().map(|e| (e.seq, e.source.as_str())).collect();
        assert_eq!(seqs, [(1, "lookup"), (2, "message"), (5, "lookup")]);
        assert_eq!(entries[1].checked_at_ms, Some(50), "the message's own time");

        // The history alone gives every record the same bytes, without the service.
        let offline = ConsentHistory::load(&layout, "c").unwrap();
        let mut stage = ConsentStage::open(
            ConsentSource::Offline(Arc::new(offline)),
            &layout,
            "c",
            &cfg,
        )
        .unwrap();
        let mut again = page();
        stage.enrich(&mut again).await.unwrap();
        for (a, b) in live.iter().zip(&again) {
            assert_eq!(
                String::from_utf8_lossy(&a.line.json),
                String::from_utf8_lossy(&b.line.json)
            );
        }
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: ConsentConfig = toml::from_str("").unwrap();
        assert!(c.enabled && c.validate().is_ok());
        assert!(
            toml::from_str::<ConsentConfig>("enabled = false\nttl_secs = 0")
                .unwrap()
                .validate()
                .is_ok()
        );
        let zero: ConsentConfig = toml::from_str("ttl_secs = 0").unwrap();
        assert!(zero.validate().unwrap_err().contains("ttl_secs"));
        let huge: ConsentConfig = toml::from_str("ttl_secs = 9223372036854775807").unwrap();
        assert!(huge.validate().unwrap_err().contains("one year"));
        assert!(
            toml::from_str::<ConsentConfig>("ttl = 5").is_err(),
            "unknown keys are refused"
        );
    }
}
