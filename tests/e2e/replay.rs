//! Replay: byte-identical ranges, beside a live run without touching it, per-room backfill (room paging and
//! the roomid filter agree), and the raw archive outliving the service's retention.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use wecom_pipeline::config::{KeyFile, Validated};
use wecom_pipeline::replay::{replay, ReplayRequest, ReplaySummary};
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

use crate::support::{assert_conserved, fetch_faults, read_output, repo_root, sim, write_config};

fn opts(follow: bool) -> RunOptions {
    RunOptions {
        stream: StreamSel::Corp,
        follow,
        progress: false,
    }
}

fn req(from: u64, to: Option<u64>, name: &str) -> ReplayRequest {
    ReplayRequest {
        from_seq: from,
        to_seq: to,
        name: Some(name.to_string()),
        ..ReplayRequest::default()
    }
}

/// The raw lines (bytes) of a stream directory's `sub` output (`messages` or `deadletter`), by seq. A revoke
/// record's `recalls` link is left out: a replay's recall index starts at its first seq, so its links to
/// earlier messages say "not found" where the live run's found them (tests/e2e/recalls.rs checks both).
fn lines(stream_dir: &Path, sub: &str) -> BTreeMap<u64, Vec<u8>> {
    lines_without(stream_dir, sub, &["recalls"])
}

/// [`lines`] of a replay from the service, without `consent` either: such a replay looks consent up
/// itself and sees only the agree / disagree messages of its range, so its statuses start from what it
/// walks, like its recall links (tests/e2e/consent.rs checks consent; an archive replay keeps it whole).
fn service_lines(stream_dir: &Path, sub: &str) -> BTreeMap<u64, Vec<u8>> {
    lines_without(stream_dir, sub, &["recalls", "consent"])
}

fn lines_without(stream_dir: &Path, sub: &str, fields: &[&str]) -> BTreeMap<u64, Vec<u8>> {
    let dir = stream_dir.join(sub);
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for line in wecom_store::read_lines(&dir).expect("read lines") {
        let mut line = line.expect("line");
        let mut v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        let seq = v["seq"].as_u64().expect("seq");
        if let Some(obj) = v.as_object_mut() {
            let mut removed = false;
            for f in fields {
                removed |= obj.remove(*f).is_some();
            }
            if removed {
                line = serde_json::to_vec(&v).expect("json");
            }
        }
        assert!(
            out.insert(seq, line).is_none(),
            "seq {seq} twice in {}",
            dir.display()
        );
    }
    out
}

fn range(m: &BTreeMap<u64, Vec<u8>>, from: u64, to: u64) -> BTreeMap<u64, Vec<u8>> {
    m.range(from..=to).map(|(k, v)| (*k, v.clone())).collect()
}

/// The simulator's stats without its clock (`now_ms`): equal before and after a step when the step never
/// called the service.
fn without_clock(stats: &impl serde::Serialize) -> serde_json::Value {
    let mut v = serde_json::to_value(stats).expect("stats");
    if let Some(o) = v.as_object_mut() {
        o.remove("now_ms");
    }
    v
}

fn live_dir(data: &Path) -> PathBuf {
    data.join("wwsimcorp0001").join("corp")
}

fn replay_dir(s: &ReplaySummary, stream: &str) -> PathBuf {
    s.dir.join(stream)
}

/// Every file under `dir` with its bytes, but the lock and the live run's own `status.json` (the tailing
/// live run refreshes it itself).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n != ".lock" && n != "status.json")
            {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

async fn setup(
    seed: u64,
    messages: u64,
    faults: wecom_sim::FaultConfig,
    extra: &str,
) -> (
    wecom_sim::SimServer,
    tempfile::TempDir,
    PathBuf,
    Validated,
    Source,
) {
    let server = sim(seed, messages, faults).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, extra);
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    (server, tmp, data, cfg, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_range_is_byte_identical_and_leaves_the_live_run_alone() {
    let (server, _tmp, data, cfg, source) = setup(31, 6_000, fetch_faults(), "").await;
    let (from, to) = (2_000, 4_000);

    // A replay of a middle range while the live run ingests the same stream from scratch.
    let (once, mid) = (opts(false), req(from, Some(to), "mid"));
    let (live, rep) = tokio::join!(
        wecom_pipeline::run(&cfg, &source, &once, CancellationToken::new()),
        replay(&cfg, &source, &mid, CancellationToken::new()),
    );
    live.expect("live run");
    let rep = rep.expect("replay");
    let truth = server.truth();
    assert_conserved(&truth, &read_output(&data));
    assert!(
        rep.retention_warning.is_none(),
        "{:?}",
        rep.retention_warning
    );

    let live_dir = live_dir(&data);
    for sub in ["messages", "deadletter"] {
        let want = range(&service_lines(&live_dir, sub), from, to);
        let got = service_lines(&replay_dir(&rep, "corp"), sub);
        assert!(!want.is_empty() || sub == "deadletter");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{sub} seqs"
        );
        assert!(
            got == want,
            "{sub}: replayed lines differ from the live output's"
        );
    }
    let dead = lines(&replay_dir(&rep, "corp"), "deadletter").len() as u64;
    assert_eq!(rep.records + rep.dead_letters, rep.runs[0].items_fetched);
    assert!(dead > 0, "the range should hold dead letters too");

    // The same range again, under another name: the same bytes.
    let again = replay(
        &cfg,
        &source,
        &req(from, Some(to), "mid-again"),
        CancellationToken::new(),
    )
    .await
    .expect("replay again");
    for sub in ["messages", "deadletter"] {
        assert!(
            service_lines(&replay_dir(&rep, "corp"), sub)
                == service_lines(&replay_dir(&again, "corp"), sub),
            "{sub}: two replays of one range differ"
        );
    }
    // Resuming a finished replay does nothing; another request under the same name is refused.
    let resumed = replay(
        &cfg,
        &source,
        &req(from, Some(to), "mid"),
        CancellationToken::new(),
    )
    .await
    .expect("resume");
    assert_eq!(resumed.records + resumed.dead_letters, 0);
    assert!(replay(
        &cfg,
        &source,
        &req(from, Some(to + 1), "mid"),
        CancellationToken::new()
    )
    .await
    .is_err());

    // Beside a tailing live run: the live cursor and output do not change.
    let before = snapshot(&live_dir);
    let stop = CancellationToken::new();
    let follow = opts(true);
    let tail = wecom_pipeline::run(&cfg, &source, &follow, stop.clone());
    let side = async {
        let r = replay(
            &cfg,
            &source,
            &req(1, None, "all"),
            CancellationToken::new(),
        )
        .await;
        stop.cancel();
        r
    };
    let (tail, side) = tokio::join!(tail, side);
    tail.expect("tailing live run");
    let side = side.expect("replay of everything");
    assert_eq!(side.records + side.dead_letters, truth.len() as u64);
    let after = snapshot(&live_dir);
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, b)| before.get(*p) != Some(*b))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        changed.is_empty(),
        "the live stream's files changed: {changed:?}"
    );
    assert_conserved(&truth, &read_output(&data));
    server.shutdown().await;
}

/// msgid → the record without the fields that name the walked stream (`stream`, `seq`).
fn records_by_msgid(dirs: &[PathBuf]) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for d in dirs {
        for line in service_lines(d, "messages").into_values() {
            let mut v: serde_json::Value = serde_json::from_slice(&line).expect("json");
            let obj = v.as_object_mut().expect("object");
            obj.remove("stream");
            obj.remove("seq");
            let msgid = obj["msgid"].as_str().expect("msgid").to_string();
            assert!(
                out.insert(msgid.clone(), v).is_none(),
                "msgid {msgid} twice"
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_backfill_by_room_paging_and_by_filter_agree_with_the_truth() {
    let (server, _tmp, _data, cfg, source) =
        setup(37, 3_000, wecom_sim::FaultConfig::default(), "").await;
    let truth = server.truth();
    let mut per_room: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in &truth {
        if let Some(r) = &t.roomid {
            per_room
                .entry(r.clone())
                .or_default()
                .insert(t.msgid.clone());
        }
    }
    let rooms: Vec<String> = per_room.keys().take(2).cloned().collect();
    assert_eq!(rooms.len(), 2, "the corpus should have rooms");
    let want: BTreeSet<String> = rooms.iter().flat_map(|r| per_room[r].clone()).collect();

    let mut paged = req(1, None, "rooms-paged");
    paged.rooms = rooms.clone();
    let paged = replay(&cfg, &source, &paged, CancellationToken::new())
        .await
        .expect("room paging");
    assert_eq!(paged.mode, "room-paging");
    let paged_dirs: Vec<PathBuf> = rooms
        .iter()
        .map(|r| replay_dir(&paged, &format!("room-{r}")))
        .collect();
    let by_paging = records_by_msgid(&paged_dirs);

    let mut cfg_nopaging = cfg.clone();
    cfg_nopaging.rooms.paging = false;
    let mut filtered = req(1, None, "rooms-filtered");
    filtered.rooms = rooms.clone();
    let filtered = replay(&cfg_nopaging, &source, &filtered, CancellationToken::new())
        .await
        .expect("room filter");
    assert_eq!(filtered.mode, "room-filter");
    let by_filter = records_by_msgid(&[replay_dir(&filtered, "corp")]);

    let got: BTreeSet<String> = by_paging.keys().cloned().collect();
    assert_eq!(got, want, "room paging: exactly the rooms' messages");
    assert!(
        by_paging == by_filter,
        "room paging and the roomid filter disagree"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_archive_replays_history_past_the_retention_floor_and_recovers_late_keys() {
    let faults = wecom_sim::FaultConfig {
        unknown_key_version: 0.03,
        ..fetch_faults()
    };
    let (server, _tmp, data, cfg, source) = setup(41, 5_000, faults, "").await;
    wecom_pipeline::run(&cfg, &source, &opts(false), CancellationToken::new())
        .await
        .expect("live run");
    let truth = server.truth();
    assert_conserved(&truth, &read_output(&data));
    let live_dir = live_dir(&data);
    let (from, to) = (500, 1_500);

    // Those seqs age out of the service.
    server.set_retention_floor_seq(3_000);
    let plain = replay(
        &cfg,
        &source,
        &req(from, Some(to), "svc"),
        CancellationToken::new(),
    )
    .await
    .expect("replay from the service");
    let warning = plain.retention_warning.expect("a retention warning");
    assert!(warning.contains("--from-archive"), "{warning}");
    assert!(plain.first_seq_served.expect("first seq") >= 3_000);
    assert_eq!(plain.records + plain.dead_letters, 0);

    let stats_before = server.stats();
    let mut arch = req(from, Some(to), "arch");
    arch.from_archive = true;
    let arch = replay(&cfg, &source, &arch, CancellationToken::new())
        .await
        .expect("replay from the archive");
    assert_eq!(
        without_clock(&server.stats()),
        without_clock(&stats_before),
        "the archive replay called the service"
    );
    for sub in ["messages", "deadletter"] {
        let want = range(&lines(&live_dir, sub), from, to);
        assert!(!want.is_empty(), "{sub} empty");
        assert!(
            lines(&replay_dir(&arch, "corp"), sub) == want,
            "{sub}: archive replay differs from the original run"
        );
    }

    // A key added later: the archive turns the range's late-key dead letters into records.
    let late: BTreeSet<u64> = truth
        .iter()
        .filter(|t| t.fate == wecom_sim::Fate::UnknownKeyVersion && (from..=to).contains(&t.seq))
        .map(|t| t.seq)
        .collect();
    assert!(!late.is_empty());
    let mut cfg4 = cfg.clone();
    cfg4.key_files.push(KeyFile {
        version: 4,
        path: repo_root().join("config/sim-keys/v4.pem"),
    });
    let mut again = req(from, Some(to), "arch-v4");
    again.from_archive = true;
    let again = replay(&cfg4, &source, &again, CancellationToken::new())
        .await
        .expect("archive replay with v4");
    let recs = lines(&replay_dir(&again, "corp"), "messages");
    assert!(
        late.iter().all(|s| recs.contains_key(s)),
        "late-key items not recovered"
    );
    let dead: BTreeSet<u64> = lines(&replay_dir(&again, "corp"), "deadletter")
        .into_keys()
        .collect();
    assert!(dead.is_disjoint(&late));
    server.shutdown().await;
}

/// The records of a replay from the raw archive by a process that never saw the live run (no cache of
/// rooms or consent) are the live run's bytes, `room` and `consent` included: both come from what the live
/// run recorded (the archive's room snapshots, the stream's consent history), not from the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_replay_in_a_fresh_process_is_byte_identical_room_and_consent_included() {
    let (server, tmp, data, cfg, source) = setup(43, 4_000, fetch_faults(), "").await;
    wecom_pipeline::run(&cfg, &source, &opts(false), CancellationToken::new())
        .await
        .expect("live run");
    source.shutdown().await;
    assert_conserved(&server.truth(), &read_output(&data));
    let stats_before = server.stats();

    let config = tmp.path().join("pipeline.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args([
            "replay",
            "--from-seq",
            "1",
            "--from-archive",
            "--name",
            "fresh",
            "--config",
        ])
        .arg(&config)
        .env("WECOM_LOG", "warn")
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary json");
    let dir = PathBuf::from(summary["dir"].as_str().expect("dir")).join("corp");

    assert_eq!(
        without_clock(&server.stats()),
        without_clock(&stats_before),
        "the archive replay called the service"
    );
    let live_dir = live_dir(&data);
    for sub in ["messages", "deadletter"] {
        let want = lines(&live_dir, sub);
        let got = lines(&dir, sub);
        assert!(!want.is_empty() || sub == "deadletter");
        assert_eq!(got.len(), want.len(), "{sub}: line count");
        for (seq, line) in &want {
            assert!(
                got.get(seq) == Some(line),
                "{sub} seq {seq}: the replay wrote\n{}\nthe live run\n{}",
                got.get(seq)
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .unwrap_or_default(),
                String::from_utf8_lossy(line)
            );
        }
    }
    let recs: Vec<serde_json::Value> = lines(&live_dir, "messages")
        .values()
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect();
    assert!(
        recs.iter().any(|r| r.get("room").is_some()),
        "no record has a room"
    );
    assert!(
        recs.iter().any(|r| r.get("consent").is_some()),
        "no record has consent"
    );
    server.shutdown().await;
}

/// Redrive has no service either: the records it recovers get `room` and `consent` from what the live run
/// recorded, the same bytes an archive replay with the same keyring writes for those seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_enriches_like_an_archive_replay_without_calling_the_service() {
    let faults = wecom_sim::FaultConfig {
        unknown_key_version: 0.05,
        ..wecom_sim::FaultConfig::default()
    };
    let (server, _tmp, data, cfg, source) = setup(44, 4_000, faults, "").await;
    wecom_pipeline::run(&cfg, &source, &opts(false), CancellationToken::new())
        .await
        .expect("live run");
    source.shutdown().await;
    let late: BTreeSet<u64> = server
        .truth()
        .iter()
        .filter(|t| t.fate == wecom_sim::Fate::UnknownKeyVersion)
        .map(|t| t.seq)
        .collect();
    assert!(!late.is_empty());

    let mut cfg4 = cfg.clone();
    cfg4.key_files.push(KeyFile {
        version: 4,
        path: repo_root().join("config/sim-keys/v4.pem"),
    });
    let fresh = Source::connect(&cfg4).await.expect("source");
    let stats_before = server.stats();
    let redriven = wecom_pipeline::redrive::redrive(&cfg4, &StreamSel::Corp)
        .await
        .expect("redrive");
    assert_eq!(redriven.recovered, late.len() as u64);
    let mut arch = req(1, None, "arch-v4");
    arch.from_archive = true;
    let arch = replay(&cfg4, &fresh, &arch, CancellationToken::new())
        .await
        .expect("archive replay");
    assert_eq!(
        without_clock(&server.stats()),
        without_clock(&stats_before),
        "redrive or the archive replay called the service"
    );

    let live = lines(&live_dir(&data), "messages");
    let replayed = lines(&replay_dir(&arch, "corp"), "messages");
    let mut rooms = 0;
    let mut consents = 0;
    for seq in &late {
        let got = live.get(seq).expect("a redriven record");
        assert!(
            replayed.get(seq) == Some(got),
            "seq {seq}: redrive wrote\n{}\nthe archive replay\n{}",
            String::from_utf8_lossy(got),
            replayed
                .get(seq)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .unwrap_or_default()
        );
        let v: serde_json::Value = serde_json::from_slice(got).expect("json");
        rooms += u32::from(v.get("room").is_some());
        consents += u32::from(v.get("consent").is_some());
    }
    assert!(rooms > 0, "no redriven record has a room");
    assert!(consents > 0, "no redriven record has consent");
    fresh.shutdown().await;
    server.shutdown().await;
}
