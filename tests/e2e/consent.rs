//! Consent on records: every record of a conversation with an external contact carries the status the
//! simulator's consent model gives it — looked up once (`Agree`, `Disagree`, `Default_Agree`, or
//! `Unanswered` for a contact that never answered), then changed by the agree / disagree messages of the
//! stream for the records after them — and `wecom-archive consent` reports each contact's history.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};
use wecom_sim::ConsentTruth;

use crate::support::{assert_conserved, read_output, sim, write_config};

/// (external, Some(userid) | None, Some(roomid) | None): whose consent a record's is about.
type Key = (String, Option<String>, Option<String>);

fn records(data: &Path) -> Vec<serde_json::Value> {
    let dir = data.join("wwsimcorp0001").join("corp").join("messages");
    wecom_store::read_lines(&dir)
        .expect("read lines")
        .map(|l| serde_json::from_slice(&l.expect("line")).expect("json"))
        .collect()
}

fn is_external(id: &str) -> bool {
    (id.starts_with("wm") || id.starts_with("wo")) && id.len() >= 24
}

/// The subject of a record, as the module docs of `wecom_pipeline::consent` define it.
fn subject(r: &serde_json::Value) -> Option<Key> {
    let from = r["from"].as_str().unwrap_or_default();
    let to: Vec<&str> = r["to"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    match r["roomid"].as_str().filter(|s| !s.is_empty()) {
        Some(room) => is_external(from).then(|| (from.to_owned(), None, Some(room.to_owned()))),
        None if is_external(from) => {
            let member = to.iter().find(|t| !is_external(t))?;
            Some((from.to_owned(), Some((*member).to_owned()), None))
        }
        None => {
            let ext = to.iter().find(|t| is_external(t))?;
            Some(((*ext).to_owned(), Some(from.to_owned()), None))
        }
    }
}

/// A subject's changes recorded by stream messages (seq, status), and its status now.
type History = (Vec<(u64, String)>, Option<String>);

fn truth_by_subject(truth: &ConsentTruth) -> BTreeMap<Key, History> {
    let mut out = BTreeMap::new();
    let mut add = |key: Key, changes: &[wecom_sim::ConsentChange]| {
        let in_stream = changes
            .iter()
            .filter_map(|c| Some((c.seq?, c.status.as_str().to_owned())))
            .collect();
        let now = changes.last().map(|c| c.status.as_str().to_owned());
        out.insert(key, (in_stream, now));
    };
    for p in &truth.pairs {
        add(
            (p.external.clone(), Some(p.userid.clone()), None),
            &p.changes,
        );
    }
    for r in &truth.rooms {
        add(
            (r.external.clone(), None, Some(r.roomid.clone())),
            &r.changes,
        );
    }
    out
}

async fn run(
    seed: u64,
    messages: u64,
) -> (wecom_sim::SimServer, tempfile::TempDir, std::path::PathBuf) {
    let server = sim(seed, messages, wecom_sim::FaultConfig::default()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    let opts = RunOptions {
        stream: StreamSel::Corp,
        follow: false,
        progress: false,
    };
    wecom_pipeline::run(&cfg, &source, &opts, CancellationToken::new())
        .await
        .expect("run");
    source.shutdown().await;
    assert_conserved(&server.truth(), &read_output(&data));
    (server, tmp, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_the_consent_the_service_and_the_stream_say() {
    let (server, tmp, _config) = run(61, 4_000).await;
    let truth = truth_by_subject(&server.consent());
    let recs = records(&tmp.path().join("data"));

    let mut with_consent = 0;
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    // Subjects whose records changed status at one of their stream messages.
    let mut changed_by_message = 0;
    let mut last_status: BTreeMap<Key, String> = BTreeMap::new();
    for r in &recs {
        let seq = r["seq"].as_u64().expect("seq");
        let Some(key) = subject(r) else {
            assert!(
                r.get("consent").is_none(),
                "seq {seq}: consent without an external contact: {r}"
            );
            continue;
        };
        let consent = r
            .get("consent")
            .unwrap_or_else(|| panic!("seq {seq}: no consent on a record with {key:?}"));
        let got = consent["status"].as_str().expect("status").to_owned();
        assert!(consent["checked_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        let want = match truth.get(&key) {
            // Not a subject of the model: the service has no answer for it.
            None => "Unanswered".to_owned(),
            Some((in_stream, now)) => match in_stream.iter().rev().find(|(s, _)| *s <= seq) {
                Some((_, status)) => status.clone(),
                None => now.clone().unwrap_or_else(|| "Unanswered".to_owned()),
            },
        };
        assert_eq!(got, want, "seq {seq} ({key:?})");
        if let Some(before) = last_status.insert(key.clone(), got.clone()) {
            let at_message = truth
                .get(&key)
                .is_some_and(|(m, _)| m.iter().any(|(s, _)| *s == seq));
            if before != got && at_message {
                changed_by_message += 1;
            }
        }
        with_consent += 1;
        *statuses.entry(got).or_default() += 1;
    }
    for s in ["Agree", "Disagree", "Unanswered"] {
        assert!(statuses.contains_key(s), "no record with {s}: {statuses:?}");
    }
    assert!(
        changed_by_message > 0,
        "no agree / disagree message changed the status of its subject's later records"
    );
    // Looked up once per subject, in batches: far fewer calls than records.
    let stats = server.stats();
    let calls = stats
        .requests
        .get("check_single_agree")
        .copied()
        .unwrap_or(0)
        + stats.requests.get("check_room_agree").copied().unwrap_or(0);
    assert!(calls >= 1, "no consent lookup at all");
    assert!(
        calls * 4 < with_consent,
        "{calls} consent calls for {with_consent} records with consent"
    );
    server.shutdown().await;
}

fn consent_cmd(config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["consent", "--json", "--config"])
        .arg(config)
        .output()
        .expect("consent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_command_reports_each_contacts_history() {
    let (server, tmp, config) = run(62, 3_000).await;
    let truth = truth_by_subject(&server.consent());
    let recs = records(&tmp.path().join("data"));
    let out = consent_cmd(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["stream"], "corp");

    // Every subject seen in the records is in the report, with the status of its last record.
    let mut last: BTreeMap<Key, String> = BTreeMap::new();
    for r in &recs {
        if let (Some(key), Some(c)) = (subject(r), r.get("consent")) {
            last.insert(key, c["status"].as_str().expect("status").to_owned());
        }
    }
    let mut reported: BTreeMap<Key, serde_json::Value> = BTreeMap::new();
    for x in report["externals"].as_array().expect("externals") {
        let external = x["external"].as_str().expect("external").to_owned();
        for s in x["subjects"].as_array().expect("subjects") {
            let key = (
                external.clone(),
                s["userid"].as_str().map(str::to_owned),
                s["roomid"].as_str().map(str::to_owned),
            );
            reported.insert(key, s.clone());
        }
    }
    assert_eq!(
        reported.keys().collect::<Vec<_>>(),
        last.keys().collect::<Vec<_>>(),
        "the report's subjects are those of the records"
    );
    let mut messages = 0;
    for (key, s) in &reported {
        assert_eq!(s["status"].as_str(), Some(last[key].as_str()), "{key:?}");
        let changes = s["changes"].as_array().expect("changes");
        assert!(!changes.is_empty());
        // Every stream message that changed the status is in the history, at its seq.
        let Some((in_stream, _)) = truth.get(key) else {
            continue;
        };
        let mut before: Option<&str> = None;
        for c in changes {
            let (seq, status) = (c["seq"].as_u64().expect("seq"), c["status"].as_str());
            if c["source"] == "message" {
                messages += 1;
                assert!(
                    in_stream
                        .iter()
                        .any(|(s, st)| *s == seq && Some(st.as_str()) == status),
                    "{key:?}: a message change at seq {seq} the stream does not have"
                );
            }
            assert_ne!(before, status, "{key:?}: a change to the same status");
            before = status;
        }
    }
    assert!(
        messages > 0,
        "no change came from an agree / disagree message"
    );

    // Text output names the contacts too.
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["consent", "--config"])
        .arg(&config)
        .output()
        .expect("consent text");
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    let (first, _) = reported.first_key_value().expect("a subject");
    assert!(text.contains(&first.0), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_consent_command_says_what_is_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), "http://127.0.0.1:9", &data, "");
    let out = consent_cmd(&config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&config.display().to_string())
            && err.contains("stream corp")
            && err.contains("no consent history"),
        "{err}"
    );
}
