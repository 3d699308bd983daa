//! Shared helpers: a simulator, a config file pointing at it, and the ground-truth check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wecom_sim::{Fate, FaultConfig, SimConfig, SimServer, TruthItem};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A simulator with `messages` items and the given faults, on a free loopback port.
pub async fn sim(seed: u64, messages: u64, faults: FaultConfig) -> SimServer {
    let cfg = SimConfig {
        seed,
        messages,
        faults,
        ..SimConfig::default()
    };
    wecom_sim::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator starts")
}

/// The faults of the fetch path that a client must survive without losing or repeating a seq.
pub fn fetch_faults() -> FaultConfig {
    FaultConfig {
        token_expire_early: 0.02,
        rate_limit_45009: 0.02,
        system_busy: 0.02,
        http_5xx: 0.02,
        connection_reset: 0.02,
        duplicate_items: 0.1,
        seq_gaps: 0.2,
        control_chars: 0.05,
        corrupt_ciphertext: 0.002,
        unknown_key_version: 0.002,
        ..FaultConfig::default()
    }
}

/// Writes a pipeline config for a simulator at `base_url`, writing under `data_dir`; returns its path.
pub fn write_config(dir: &Path, base_url: &str, data_dir: &Path, extra: &str) -> PathBuf {
    let keys = repo_root().join("config/sim-keys");
    let text = format!(
        r#"
[corp]
corp_id = "wwsimcorp0001"
corp_secret = "sim-secret"

[source]
kind = "http"
base_url = "{base_url}"

[fetch]
limit = 1000
poll_interval_ms = 200
request_timeout_ms = 5000

[fetch.retry]
max_attempts = 30
initial_backoff_ms = 5
max_backoff_ms = 100
rate_limited_backoff_ms = 20

[keys]
files = [
  {{ version = 1, path = "{k}/v1.pem" }},
  {{ version = 2, path = "{k}/v2.pem" }},
  {{ version = 3, path = "{k}/v3.pem" }},
]

[sink]
data_dir = "{data}"
segment_max_bytes = 1048576
{extra}
"#,
        k = keys.display(),
        data = data_dir.display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// One line of the output, as far as the conservation check cares.
#[derive(Debug)]
pub struct Seen {
    pub msgid: String,
    pub dead_reason: Option<String>,
}

/// Reads every output line of the corp stream: seq → what was written, failing on any seq written twice.
pub fn read_output(data_dir: &Path) -> BTreeMap<u64, Seen> {
    let stream = data_dir.join("wwsimcorp0001").join("corp");
    let mut out = BTreeMap::new();
    for (sub, dead) in [("messages", false), ("deadletter", true)] {
        let dir = stream.join(sub);
        if !dir.exists() {
            continue;
        }
        for line in wecom_store::read_lines(&dir).expect("read lines") {
            let line = line.expect("line");
            let v: serde_json::Value = serde_json::from_slice(&line).expect("json line");
            let seq = v["seq"].as_u64().expect("seq");
            let msgid = v["msgid"].as_str().expect("msgid").to_string();
            let dead_reason = dead.then(|| v["reason_kind"].as_str().unwrap_or("?").to_string());
            let prev = out.insert(seq, Seen { msgid, dead_reason });
            assert!(prev.is_none(), "seq {seq} written twice");
        }
    }
    out
}

/// Every served seq exactly once, dead letters exactly where the truth predicts them, nothing extra.
pub fn assert_conserved(truth: &[TruthItem], out: &BTreeMap<u64, Seen>) {
    assert!(!truth.is_empty(), "the simulator served nothing");
    let mut missing = Vec::new();
    for t in truth {
        match out.get(&t.seq) {
            None => missing.push(t.seq),
            Some(seen) => {
                assert_eq!(seen.msgid, t.msgid, "seq {} has the wrong msgid", t.seq);
                let expected = match t.fate {
                    Fate::Ok => None,
                    Fate::CorruptCiphertext => Some("decrypt_failed"),
                    Fate::UnknownKeyVersion => Some("unknown_key_version"),
                };
                assert_eq!(
                    seen.dead_reason.as_deref(),
                    expected,
                    "seq {} ({:?}) has the wrong fate",
                    t.seq,
                    t.fate
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} seqs missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let truth_seqs: std::collections::BTreeSet<u64> = truth.iter().map(|t| t.seq).collect();
    let extra: Vec<u64> = out
        .keys()
        .filter(|s| !truth_seqs.contains(s))
        .copied()
        .collect();
    assert!(
        extra.is_empty(),
        "seqs the simulator never served: {extra:?}"
    );
}

/// Runs `wecom-archive run --until-caught-up --config path` again and again, SIGKILLing it at random
/// moments (seeded), until at least `min_kills` kills happened; then lets one run finish uninterrupted.
pub async fn run_with_random_kills(path: &Path, seed: u64, min_kills: u32) {
    use rand::{Rng, SeedableRng};
    let bin = env!("CARGO_BIN_EXE_wecom-archive");
    let run = || {
        let mut c = std::process::Command::new(bin);
        c.args(["run", "--until-caught-up", "--config"])
            .arg(path)
            .env("WECOM_LOG", "warn")
            .stdout(std::process::Stdio::null());
        c
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    for _ in 0..40 {
        if kills > min_kills {
            break;
        }
        let mut child = run()
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn wecom-archive");
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(200..2500))).await;
        match child.try_wait().expect("try_wait") {
            Some(status) => {
                assert!(status.success(), "run exited with {status}");
                break;
            }
            None => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                kills += 1;
            }
        }
    }
    assert!(
        kills >= min_kills,
        "only {kills} kills happened before the run finished"
    );
    let status = run().status().expect("final run");
    assert!(status.success(), "final run exited with {status}");
}

/// `wecom-archive status --json --config <config>`, which must succeed, parsed.
pub fn status_json(config: &Path) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for p in rd.filter_map(Result::ok).map(|e| e.path()) {
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Sets `[sink] kind` (`local`, `kafka`, `both`) in the config file at `path`.
pub fn set_sink_kind(path: &Path, kind: &str) {
    let text = std::fs::read_to_string(path)
        .expect("config")
        .replace("[sink]", &format!("[sink]\nkind = \"{kind}\""));
    std::fs::write(path, text).expect("config");
}

/// The corp stream, walked once to its end.
pub fn until_caught_up() -> wecom_pipeline::RunOptions {
    wecom_pipeline::RunOptions {
        stream: wecom_pipeline::StreamSel::Corp,
        follow: false,
        progress: false,
    }
}

/// Loads the config at `path`, connects its source and runs the corp stream to its end.
pub async fn load_and_run(
    path: &Path,
) -> (
    wecom_pipeline::config::Validated,
    wecom_pipeline::Source,
    wecom_pipeline::stream::RunSummary,
) {
    let cfg = wecom_pipeline::Config::load(path).expect("config");
    let source = wecom_pipeline::Source::connect(&cfg).await.expect("source");
    let summary = wecom_pipeline::run(
        &cfg,
        &source,
        &until_caught_up(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("run");
    (cfg, source, summary)
}
