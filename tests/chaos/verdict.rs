//! The verdict: every seq the simulator served against what each output holds, and every media object
//! against the bytes the simulator served.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};
use wecom_sim::{Fate, TruthItem};

use crate::drive::Entry;
use crate::readback::{Line, Outputs};

/// The key version the keyring lacks at first — the newest, which live items use too, as after a key
/// rotation the operator has not followed yet: its items are dead letters until the key is added mid-way,
/// then records (a redrive resolves the dead letters written before).
pub const LATE_ADDED_KEY: u32 = 3;

/// What an item must end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Record,
    /// An unresolved dead letter with this `reason_kind`.
    Dead(&'static str),
}

pub fn expect(t: &TruthItem) -> Expect {
    match t.fate {
        Fate::CorruptCiphertext => Expect::Dead("decrypt_failed"),
        // the late key (version 4) is never configured
        Fate::UnknownKeyVersion => Expect::Dead("unknown_key_version"),
        // the stand-in library aborts its worker on these, on the retry too
        Fate::Ok if t.sdk_crash => Expect::Dead("sdk_crashed"),
        Fate::Ok => Expect::Record,
    }
}

#[derive(Debug, Default)]
pub struct Verdict {
    pub records: usize,
    pub dead_letters: usize,
    pub lost: BTreeSet<u64>,
    pub duplicated: BTreeSet<u64>,
    /// Wrong fate or reason, msgid mismatch, unresolved or spurious dead letters, seqs never served.
    pub wrong: BTreeSet<u64>,
    pub media_checked: usize,
    /// Media of lost items, which cannot be checked.
    pub media_unchecked: usize,
    /// Media missing or not byte-identical, as (seq, what).
    pub media_bad: Vec<(u64, String)>,
    /// Kafka lines published slim (their full body in object storage).
    pub slim: usize,
    /// Slim lines whose full body is missing or is not the local line, as (seq, what).
    pub slim_bad: Vec<(u64, String)>,
    /// One line per problem, most telling first.
    pub problems: Vec<String>,
    /// Records a run (not a redrive) published to Kafka while the local files held only the item's dead
    /// letter: the local output had no record until a redrive wrote one.
    pub notes: Vec<u64>,
}

impl Verdict {
    /// One line per kind of failure, with the first offending seqs.
    pub fn failures(&self) -> Vec<String> {
        let first = |s: &BTreeSet<u64>| s.iter().take(12).copied().collect::<Vec<_>>();
        let mut out = Vec::new();
        for (set, what) in [
            (&self.lost, "lost"),
            (&self.duplicated, "duplicated"),
            (&self.wrong, "with a wrong fate"),
        ] {
            if !set.is_empty() {
                out.push(format!("{} seqs {what}, first {:?}", set.len(), first(set)));
            }
        }
        if !self.media_bad.is_empty() {
            out.push(format!(
                "{} media objects missing or altered, first of seq {:?}",
                self.media_bad.len(),
                self.media_bad
                    .iter()
                    .take(12)
                    .map(|m| m.0)
                    .collect::<Vec<_>>()
            ));
        }
        out
    }
}

type BySeq<'a> = BTreeMap<u64, Vec<&'a Line>>;

fn by_seq(lines: &[Line]) -> BySeq<'_> {
    let mut m: BySeq<'_> = BTreeMap::new();
    for l in lines {
        m.entry(l.seq).or_default().push(l);
    }
    m
}

/// `truth` is what must be in the outputs; `all` is everything the simulator has, which an output may hold
/// too (live items that came after).
pub fn judge(
    truth: &[TruthItem],
    all: &[TruthItem],
    out: &Outputs,
    objects: &Path,
    journal: &[Entry],
) -> Verdict {
    let outputs = [
        ("kafka messages", by_seq(&out.kafka_records)),
        ("kafka deadletter", by_seq(&out.kafka_dead)),
        ("local messages", by_seq(&out.local_records)),
        ("local deadletter", by_seq(&out.local_dead)),
    ];
    let mut v = Verdict {
        records: out.kafka_records.len(),
        dead_letters: out.kafka_dead.len(),
        ..Verdict::default()
    };
    let served: BTreeSet<u64> = all.iter().map(|t| t.seq).collect();
    let mut problems: Vec<(&TruthItem, String, String)> = Vec::new();
    let mut unreached = Vec::new();
    for t in truth {
        let got: Vec<Vec<&Line>> = outputs
            .iter()
            .map(|(_, m)| m.get(&t.seq).cloned().unwrap_or_default())
            .collect();
        let n: Vec<usize> = got.iter().map(Vec::len).collect();
        let resolved = out.resolved.contains(&t.seq);
        let mut why = Vec::new();
        for (i, (name, _)) in outputs.iter().enumerate() {
            if n[i] > 1 {
                v.duplicated.insert(t.seq);
                let at: Vec<&str> = got[i].iter().map(|l| l.at.as_str()).collect();
                why.push(format!("{} times in {name} at {at:?}", n[i]));
            }
            for l in &got[i] {
                if l.msgid != t.msgid {
                    v.wrong.insert(t.seq);
                    why.push(format!("{name} has msgid {} at {}", l.msgid, l.at));
                }
            }
        }
        match expect(t) {
            Expect::Record => {
                for i in [0, 2] {
                    if n[i] == 0 {
                        v.lost.insert(t.seq);
                        why.push(format!("no record in {}", outputs[i].0));
                    }
                }
                for i in [1, 3] {
                    for l in &got[i] {
                        let reason = l.reason.as_deref().unwrap_or("?");
                        if t.key_version != LATE_ADDED_KEY || reason != "unknown_key_version" {
                            v.wrong.insert(t.seq);
                            why.push(format!(
                                "spurious dead letter ({reason}) in {} at {}",
                                outputs[i].0, l.at
                            ));
                        }
                    }
                }
                if n[3] > 0 && !resolved {
                    v.wrong.insert(t.seq);
                    why.push("its local dead letter is not marked resolved".into());
                }
                if n[3] > 0 && got[0].iter().any(|l| !l.redriven) {
                    // a run published the record while the files held the dead letter only
                    v.notes.push(t.seq);
                }
            }
            Expect::Dead(reason) => {
                for i in [1, 3] {
                    if n[i] == 0 {
                        v.lost.insert(t.seq);
                        why.push(format!("no dead letter in {}", outputs[i].0));
                    }
                    for l in &got[i] {
                        // written before the key was added: a redrive that still fails leaves it as it is
                        let stale = t.key_version == LATE_ADDED_KEY
                            && l.reason.as_deref() == Some("unknown_key_version");
                        if l.reason.as_deref() != Some(reason) && !stale {
                            v.wrong.insert(t.seq);
                            why.push(format!(
                                "{} says {:?} at {}, expected {reason}",
                                outputs[i].0, l.reason, l.at
                            ));
                        }
                    }
                }
                for i in [0, 2] {
                    if n[i] > 0 {
                        v.wrong.insert(t.seq);
                        why.push(format!(
                            "a record in {} for an item that cannot be one",
                            outputs[i].0
                        ));
                    }
                }
                if resolved {
                    v.wrong.insert(t.seq);
                    why.push("marked resolved".into());
                }
            }
        }
        let passed = passed_in(journal, t.seq);
        if n.iter().all(|&k| k == 0) && passed.is_none() {
            // after a stall: one line for all of them
            unreached.push(t.seq);
        } else if !why.is_empty() {
            let passed = passed.map_or("no process".into(), |e| {
                format!("#{} ({}, {})", e.n, e.phase, e.outcome)
            });
            problems.push((t, why.join("; "), passed));
        }
    }
    v.problems = collapse(&problems);
    if let (Some(first), Some(last)) = (unreached.first(), unreached.last()) {
        let cursor = journal.last().map_or(0, |e| e.cursor_after);
        v.problems.insert(
            0,
            format!(
                "{} items between seq {first} and {last} are in no output: the cursor stopped at {cursor} \
                 (see the failing processes above)",
                unreached.len()
            ),
        );
    }
    for (name, m) in &outputs {
        for (seq, lines) in m.range(..) {
            if !served.contains(seq) {
                v.wrong.insert(*seq);
                v.problems.push(format!(
                    "seq {seq} in {name} at {}: never served",
                    lines[0].at
                ));
            }
        }
    }
    check_media(truth, &out.local_records, objects, &mut v);
    for (kafka, local) in [
        (&out.kafka_records, &outputs[2].1),
        (&out.kafka_dead, &outputs[3].1),
    ] {
        for l in kafka {
            if let Some(cr) = &l.content_ref {
                v.slim += 1;
                let full = local.get(&l.seq).and_then(|ls| ls[0].json.as_ref());
                if let Err(e) = check_slim(cr, full) {
                    v.slim_bad
                        .push((l.seq, format!("slim line at {}: {e}", l.at)));
                }
            }
        }
    }
    v
}

/// The full body a slim line refers to is there, with the size and sha256 it announces, and is the line the
/// local files hold for that seq.
fn check_slim(cr: &serde_json::Value, local: Option<&serde_json::Value>) -> Result<(), String> {
    let location = cr["location"].as_str().unwrap_or_default();
    let path = location
        .strip_prefix("file://")
        .ok_or_else(|| format!("content_ref {cr}: only file:// locations are checked here"))?;
    let mut path = std::path::PathBuf::from(path);
    if path.is_dir() {
        path = path.join(cr["object_key"].as_str().unwrap_or_default());
    }
    let body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sha = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body));
    if Some(body.len() as u64) != cr["size"].as_u64() || Some(sha.as_str()) != cr["sha256"].as_str()
    {
        return Err(format!(
            "{} holds {} bytes with sha256 {sha}, content_ref says {cr}",
            path.display(),
            body.len()
        ));
    }
    let full: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("{}: not JSON ({e})", path.display()))?;
    match local {
        None => Err("no local line to compare its full body with".into()),
        Some(l) if *l != full => Err(format!("{} differs from the local line", path.display())),
        Some(_) => Ok(()),
    }
}

/// One line per problem; consecutive items with the same problem (everything after a stall, everything a
/// redrive missed) are one line, with the processes that passed them.
fn collapse(problems: &[(&TruthItem, String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < problems.len() {
        let (first, what, _) = &problems[i];
        let mut j = i + 1;
        while j < problems.len() && problems[j].1 == *what {
            j += 1;
        }
        let mut passed: Vec<&str> = Vec::new();
        for (_, _, p) in &problems[i..j] {
            if !passed.contains(&p.as_str()) {
                passed.push(p);
            }
        }
        let more = passed.len().saturating_sub(6);
        passed.truncate(6);
        let mut passed = passed.join(", ");
        if more > 0 {
            passed.push_str(&format!(" and {more} more"));
        }
        if j - i == 1 {
            out.push(format!(
                "seq {} ({}): {what}; passed in {passed}",
                first.seq,
                describe(first)
            ));
        } else {
            out.push(format!(
                "seqs {}..={} ({} items, the first {}): {what}; passed in {passed}",
                first.seq,
                problems[j - 1].0.seq,
                j - i,
                describe(first)
            ));
        }
        i = j;
    }
    out
}

fn describe(t: &TruthItem) -> String {
    let mut s = format!(
        "{} key v{} fate {:?}",
        t.msgtype.as_deref().unwrap_or(&t.action),
        t.key_version,
        t.fate
    );
    if t.oversized {
        s.push_str(", oversized");
    }
    if t.sdk_crash {
        s.push_str(", sdk crash marker");
    }
    if !t.media.is_empty() {
        s.push_str(&format!(", {} media", t.media.len()));
    }
    s
}

/// The process whose committed cursor moved past `seq`.
fn passed_in(journal: &[Entry], seq: u64) -> Option<&Entry> {
    journal
        .iter()
        .find(|e| e.cursor_before < seq && seq <= e.cursor_after)
}

/// Every media file of every item that must be a record is stored under the object key its local record
/// names, with the simulator's size and md5.
fn check_media(truth: &[TruthItem], local_records: &[Line], objects: &Path, v: &mut Verdict) {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for l in local_records {
        let media = l.json.as_ref().and_then(|j| j["media"].as_array());
        for m in media.into_iter().flatten() {
            if let (Some(id), Some(key)) = (m["sdkfileid"].as_str(), m["object_key"].as_str()) {
                keys.insert(id.to_string(), key.to_string());
            }
        }
    }
    let recorded: BTreeSet<u64> = local_records.iter().map(|l| l.seq).collect();
    for t in truth.iter().filter(|t| expect(t) == Expect::Record) {
        if !recorded.contains(&t.seq) {
            // a lost item: counted as lost, its media cannot be expected
            v.media_unchecked += t.media.len();
            continue;
        }
        for m in &t.media {
            v.media_checked += 1;
            let Some(key) = keys.get(&m.sdkfileid) else {
                v.media_bad
                    .push((t.seq, format!("{}: no record references it", m.sdkfileid)));
                continue;
            };
            match md5_of(&objects.join(key)) {
                Err(e) => v.media_bad.push((t.seq, format!("object {key}: {e}"))),
                Ok((size, md5)) if size != m.size || md5 != m.md5 => v.media_bad.push((
                    t.seq,
                    format!(
                        "object {key}: {size} bytes md5 {md5}, served {} bytes md5 {}",
                        m.size, m.md5
                    ),
                )),
                Ok(_) => {}
            }
        }
    }
}

fn md5_of(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let (mut hasher, mut size, mut buf) = (Md5::new(), 0u64, vec![0u8; 1 << 16]);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hex::encode(hasher.finalize())));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}
