//! The consent history of a stream: `consent/consent.ndjson` in the stream directory, append-only, one
//! [`ConsentEntry`] per change of the status the pipeline put on a subject's records, with the seq from
//! which it applies. Written by the consent stage before the page it belongs to (so every record's
//! `consent` is backed by an entry); read by `wecom-archive consent` ([`ConsentReport`]) and by the runs
//! that must not call the service ([`ConsentHistory::as_of`]).
//!
//! After a crash the pages past the cursor are processed again and may append entries again (the same, or
//! a newer lookup's): readers take, for a seq, the last entry at or before it in file order.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wecom_model::record::format_msgtime;
use wecom_store::StreamLayout;

use super::{Stamp, Subject};
use crate::error::PipelineError;
use crate::process::Processed;

/// Schema id of [`ConsentEntry`].
pub const CONSENT_SCHEMA_ID: &str = "wecom-archive.consent.v1";
const DIR: &str = "consent";
const FILE: &str = "consent.ndjson";

/// The history file of a stream directory.
pub fn path(layout: &StreamLayout) -> PathBuf {
    layout.dir().join(DIR).join(FILE)
}

/// One change of a subject's status, as records from `seq` on carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    /// Always [`CONSENT_SCHEMA_ID`].
    pub schema: String,
    pub corp_id: String,
    pub stream: String,
    /// The first record it applies to.
    pub seq: u64,
    pub msgid: String,
    #[serde(flatten)]
    pub subject: Subject,
    /// `None`: the lookup failed; records from `seq` on go without `consent` until the next entry.
    pub status: Option<String>,
    /// When the status was learned (RFC 3339 UTC, and Unix ms).
    pub checked_at: Option<String>,
    pub checked_at_ms: Option<u64>,
    /// `lookup` (`check_single_agree` / `check_room_agree`) or `message` (an agree / disagree message:
    /// the one at `seq`).
    pub source: String,
}

impl ConsentEntry {
    fn stamp(&self) -> Option<Stamp> {
        Some(Stamp {
            status: self.status.clone()?,
            checked_at_ms: self.checked_at_ms?,
        })
    }
}

/// Appends a run's entries to its stream's history.
pub(crate) struct HistoryWriter {
    path: PathBuf,
    corp_id: String,
    stream: String,
}

impl HistoryWriter {
    /// The writer of `layout`'s history; cuts what a crash left after its last complete line.
    pub fn open(layout: &StreamLayout, corp_id: &str) -> Result<Self, PipelineError> {
        let path = path(layout);
        crate::recall::cut_torn_tail(&path).map_err(|e| PipelineError::Internal {
            corp_id: corp_id.to_owned(),
            stream: layout.stream().to_owned(),
            reason: format!("consent history {}: {e}", path.display()),
        })?;
        Ok(Self {
            path,
            corp_id: corp_id.to_owned(),
            stream: layout.stream().to_owned(),
        })
    }

    pub fn entry(
        &self,
        p: &Processed,
        subject: &Subject,
        stamp: Option<&Stamp>,
        from_message: bool,
    ) -> ConsentEntry {
        ConsentEntry {
            schema: CONSENT_SCHEMA_ID.to_owned(),
            corp_id: self.corp_id.clone(),
            stream: self.stream.clone(),
            seq: p.line.seq,
            msgid: p.msgid.clone(),
            subject: subject.clone(),
            status: stamp.map(|s| s.status.clone()),
            checked_at: stamp.and_then(|s| format_msgtime(s.checked_at_ms)),
            checked_at_ms: stamp.map(|s| s.checked_at_ms),
            source: if from_message { "message" } else { "lookup" }.to_owned(),
        }
    }

    /// Appends `entries` durably (off the async runtime).
    pub async fn append(&self, entries: Vec<ConsentEntry>) -> Result<(), PipelineError> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |reason: String| PipelineError::Internal {
            corp_id: self.corp_id.clone(),
            stream: self.stream.clone(),
            reason: format!("consent history {}: {reason}", self.path.display()),
        };
        let mut buf = Vec::new();
        for e in &entries {
            serde_json::to_writer(&mut buf, e).map_err(|e| err(e.to_string()))?;
            buf.push(b'\n');
        }
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(&buf)?;
            f.sync_data()
        })
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(e.to_string()))
    }
}

/// Every entry of a history file, in file order (none when the file is missing). Complete lines only: a
/// run may be appending to it, or a crash may have left a torn last line.
pub fn read(path: &Path) -> std::io::Result<Vec<ConsentEntry>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            break;
        }
        line.pop();
        if line.is_empty() {
            continue;
        }
        let entry = serde_json::from_slice(&line).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {n}: {e}"))
        })?;
        out.push(entry);
    }
    Ok(out)
}

/// A stream's history, indexed for "the status of this subject at this seq".
#[derive(Debug, Default)]
pub struct ConsentHistory {
    by_subject: HashMap<Subject, Vec<(u64, Option<Stamp>)>>,
}

impl ConsentHistory {
    /// Loads the history of `layout` (empty when there is none yet).
    pub fn load(layout: &StreamLayout, corp_id: &str) -> Result<Self, PipelineError> {
        let path = path(layout);
        let entries = read(&path).map_err(|e| PipelineError::Internal {
            corp_id: corp_id.to_owned(),
            stream: layout.stream().to_owned(),
            reason: format!("consent history {}: {e}", path.display()),
        })?;
        Ok(Self::from_entries(entries))
    }

    pub fn from_entries(entries: Vec<ConsentEntry>) -> Self {
        let mut by_subject: HashMap<Subject, Vec<(u64, Option<Stamp>)>> = HashMap::new();
        for e in entries {
            let stamp = e.stamp();
            by_subject
                .entry(e.subject)
                .or_default()
                .push((e.seq, stamp));
        }
        for v in by_subject.values_mut() {
            // Stable: among entries of one seq, file order stays and the last one wins.
            v.sort_by_key(|(seq, _)| *seq);
        }
        Self { by_subject }
    }

    /// The status the subject's records carried at `seq`: its last entry at or before it.
    pub fn as_of(&self, subject: &Subject, seq: u64) -> Option<Stamp> {
        let v = self.by_subject.get(subject)?;
        let n = v.partition_point(|(s, _)| *s <= seq);
        v.get(n.checked_sub(1)?)?.1.clone()
    }
}

/// What `wecom-archive consent` prints: per external contact, the agreement history the pipeline saw.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentReport {
    pub corp_id: String,
    pub stream: String,
    /// The history file it was read from.
    pub history: String,
    pub externals: Vec<ExternalReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExternalReport {
    pub external: String,
    /// One per corp member (1:1) or room the contact was seen with.
    pub subjects: Vec<SubjectReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roomid: Option<String>,
    /// The newest known status (`None`: the last lookup failed).
    pub status: Option<String>,
    /// When a status was last learned.
    pub last_checked_at: Option<String>,
    /// Every change of status, oldest first (a lookup confirming the status before it is not a change).
    pub changes: Vec<ConsentChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentChange {
    pub seq: u64,
    pub msgid: String,
    pub status: Option<String>,
    pub checked_at: Option<String>,
    pub source: String,
}

impl ConsentReport {
    /// The report of `entries` (one stream's history, in file order).
    pub fn build(corp_id: &str, stream: &str, history: &Path, entries: &[ConsentEntry]) -> Self {
        let mut by_subject: BTreeMap<&Subject, Vec<&ConsentEntry>> = BTreeMap::new();
        for e in entries {
            by_subject.entry(&e.subject).or_default().push(e);
        }
        let mut externals: BTreeMap<&str, Vec<SubjectReport>> = BTreeMap::new();
        for (subject, mut list) in by_subject {
            list.sort_by_key(|e| e.seq);
            let mut changes: Vec<ConsentChange> = Vec::new();
            for e in &list {
                if changes.last().is_some_and(|c| c.status == e.status) {
                    continue;
                }
                changes.push(ConsentChange {
                    seq: e.seq,
                    msgid: e.msgid.clone(),
                    status: e.status.clone(),
                    checked_at: e.checked_at.clone(),
                    source: e.source.clone(),
                });
            }
            externals
                .entry(subject.external.as_str())
                .or_default()
                .push(SubjectReport {
                    userid: subject.userid.clone(),
                    roomid: subject.roomid.clone(),
                    status: list.last().and_then(|e| e.status.clone()),
                    last_checked_at: list.iter().rev().find_map(|e| e.checked_at.clone()),
                    changes,
                });
        }
        ConsentReport {
            corp_id: corp_id.to_owned(),
            stream: stream.to_owned(),
            history: history.display().to_string(),
            externals: externals
                .into_iter()
                .map(|(external, subjects)| ExternalReport {
                    external: external.to_owned(),
                    subjects,
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for ConsentReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "corp {} stream {}: {} external contacts (from {})",
            self.corp_id,
            self.stream,
            self.externals.len(),
            self.history
        )?;
        let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
        for x in &self.externals {
            writeln!(f, "{}", x.external)?;
            for s in &x.subjects {
                let with = match (&s.userid, &s.roomid) {
                    (Some(u), _) => format!("with {u}"),
                    (None, Some(r)) => format!("in room {r}"),
                    (None, None) => "-".to_owned(),
                };
                let status = s
                    .status
                    .clone()
                    .unwrap_or_else(|| "unknown (lookup failed)".to_owned());
                writeln!(
                    f,
                    "  {with}: {status} (last checked {})",
                    or_dash(&s.last_checked_at)
                )?;
                for c in &s.changes {
                    writeln!(
                        f,
                        "    seq {:<10} {:<24} {:<14} {}",
                        c.seq,
                        or_dash(&c.checked_at),
                        or_dash(&c.status),
                        c.source
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        seq: u64,
        external: &str,
        status: Option<&str>,
        at: u64,
        source: &str,
    ) -> ConsentEntry {
        ConsentEntry {
            schema: CONSENT_SCHEMA_ID.into(),
            corp_id: "c".into(),
            stream: "corp".into(),
            seq,
            msgid: format!("m{seq}"),
            subject: Subject {
                external: external.into(),
                userid: Some("lisi".into()),
                roomid: None,
            },
            status: status.map(str::to_owned),
            checked_at: format_msgtime(at),
            checked_at_ms: Some(at),
            source: source.into(),
        }
    }

    #[test]
    fn as_of_takes_the_last_entry_at_or_before_the_seq() {
        let entries = vec![
            entry(10, "wmA", Some("Default_Agree"), 1, "lookup"),
            entry(20, "wmA", Some("Disagree"), 2, "message"),
            entry(30, "wmA", None, 3, "lookup"),
            // After a crash: seq 20 again, the later line wins.
            entry(20, "wmA", Some("Agree"), 4, "message"),
        ];
        let h = ConsentHistory::from_entries(entries);
        let s = Subject {
            external: "wmA".into(),
            userid: Some("lisi".into()),
            roomid: None,
        };
        let status = |seq| h.as_of(&s, seq).map(|s| s.status);
        assert_eq!(status(9), None);
        assert_eq!(status(10).as_deref(), Some("Default_Agree"));
        assert_eq!(status(25).as_deref(), Some("Agree"));
        assert_eq!(status(30), None, "the lookup failed there");
    }

    #[test]
    fn a_torn_last_line_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consent.ndjson");
        let mut bytes = serde_json::to_vec(&entry(10, "wmA", Some("Agree"), 1, "lookup")).unwrap();
        bytes.push(b'\n');
        bytes.extend_from_slice(br#"{"schema":"wecom-archive.consent.v1","corp_id":"#);
        std::fs::write(&path, &bytes).unwrap();
        let got = read(&path).unwrap();
        assert_eq!(got, [entry(10, "wmA", Some("Agree"), 1, "lookup")]);
        assert!(read(&dir.path().join("missing")).unwrap().is_empty());
        std::fs::write(&path, b"not json\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn the_report_lists_changes_per_external() {
        let entries = vec![
            entry(10, "wmB", Some("Default_Agree"), 1, "lookup"),
            entry(15, "wmA", Some("Agree"), 1, "lookup"),
            entry(20, "wmB", Some("Default_Agree"), 2, "lookup"),
            entry(30, "wmB", Some("Disagree"), 3, "message"),
        ];
        let r = ConsentReport::build("c", "corp", Path::new("/x"), &entries);
        assert_eq!(r.externals.len(), 2);
        assert_eq!(r.externals[0].external, "wmA");
        let b = &r.externals[1].subjects[0];
        assert_eq!(b.status.as_deref(), Some("Disagree"));
        let seqs: Vec<u64> = b.changes.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            [10, 30],
            "a lookup confirming the status is not a change"
        );
        let text = r.to_string();
        assert!(
            text.contains("wmB") && text.contains("with lisi: Disagree"),
            "{text}"
        );
    }
}
