//! The console end to end with the binary: a small pipeline run on the simulator (2,000 messages with
//! media), then `wecom-archive serve` over its output, checked by a real browser (Debian's chromium driven
//! by playwright-core: sign in, open a room, a picture renders, a voice message plays, a Chinese search
//! highlights its hits, an export downloads) and by schemathesis against `/api/openapi.json` (no 5xx).
//!
//! Each part skips with a note when its tools are missing; `scripts/console-test-deps.sh` installs them
//! and prints the variables (`WECOM_TEST_CHROMIUM`, `WECOM_TEST_PLAYWRIGHT_DIR`, `WECOM_TEST_SCHEMATHESIS`,
//! `WECOM_TEST_FFMPEG`). Screenshots go to `<target>/tmp/console-browser/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const REVIEWER: &str = "e2e-reviewer-token-0123456789";
const API: &str = "e2e-api-token-0123456789abcdef";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_config(data: &Path) -> String {
    let keys = repo().join("config/sim-keys");
    let key = |v: u32| {
        format!(
            "{{ version = {v}, path = {:?} }}",
            keys.join(format!("v{v}.pem")).display().to_string()
        )
    };
    format!(
        r#"[corp]
corp_id = "wwsimcorp0001"
[source]
kind = "sim"
[source.sim]
seed = 7
messages = 2000
[source.sim.media]
max_bytes = 1048576
big_every = 0
[fetch]
poll_interval_ms = 200
[keys]
allow_insecure_permissions = true
files = [{}, {}, {}, {}]
[sink]
data_dir = {:?}
[media]
concurrency = 4
fsync = false
"#,
        key(1),
        key(2),
        key(3),
        key(4),
        data.display().to_string()
    )
}

/// `kill -TERM`, then waits.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn records(data: &Path) -> Vec<serde_json::Value> {
    let dir = data.join("wwsimcorp0001/corp/messages");
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("messages dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(f).expect("segment").lines() {
            out.push(serde_json::from_str(line).expect("record"));
        }
    }
    out
}

/// The first record of `msgtype` whose first media object is stored.
fn stored<'a>(
    recs: &'a [serde_json::Value],
    data: &Path,
    msgtype: &str,
) -> Option<&'a serde_json::Value> {
    recs.iter().find(|r| {
        r["msgtype"] == msgtype
            && r["media"][0]["object_key"]
                .as_str()
                .is_some_and(|k| data.join("objects").join(k).is_file())
    })
}

fn chinese_phrase(recs: &[serde_json::Value]) -> String {
    for want in ["报价", "开会", "收到"] {
        if recs
            .iter()
            .any(|r| r["text"].as_str().is_some_and(|t| t.contains(want)))
        {
            return want.to_owned();
        }
    }
    panic!("the simulator's texts have no Chinese phrase to search");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser_and_under_schemathesis() {
    let chromium = std::env::var("WECOM_TEST_CHROMIUM").ok();
    let playwright = std::env::var("WECOM_TEST_PLAYWRIGHT_DIR").ok();
    let schemathesis = std::env::var("WECOM_TEST_SCHEMATHESIS").ok();
    if chromium.is_none() && schemathesis.is_none() {
        eprintln!("skipped: run scripts/console-test-deps.sh (WECOM_TEST_CHROMIUM, WECOM_TEST_PLAYWRIGHT_DIR, WECOM_TEST_SCHEMATHESIS)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let run_toml = tmp.path().join("run.toml");
    std::fs::write(&run_toml, run_config(&data)).expect("config");
    let started = Instant::now();
    let status = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&run_toml)
        .arg("--until-caught-up")
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run starts");
    assert!(status.success(), "the pipeline run on the simulator");
    eprintln!("pipeline run: {:.1} s", started.elapsed().as_secs_f64());

    // The same file with a [console] section (the pipeline does not know the section yet).
    let serve_toml = tmp.path().join("serve.toml");
    let ffmpeg = std::env::var("WECOM_TEST_FFMPEG").unwrap_or_else(|_| "ffmpeg".into());
    std::fs::write(
        &serve_toml,
        format!(
            "{}\n[console]\ncommit_interval_ms = 200\nffmpeg = {ffmpeg:?}\n",
            run_config(&data)
        ),
    )
    .expect("config");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&serve_toml)
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "WECOM_CONSOLE_TOKENS",
            format!("alice:reviewer:{REVIEWER},bot:api:{API}"),
        )
        .env("WECOM_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let serve = Serve(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let base = line
        .trim()
        .strip_prefix("console listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let recs = records(&data);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: serde_json::Value = http
            .get(format!("{base}/api/status"))
            .bearer_auth(API)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        let unique: std::collections::HashSet<&str> =
            recs.iter().filter_map(|r| r["msgid"].as_str()).collect();
        if status["records"].as_u64() == Some(unique.len() as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "indexing did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    match (&chromium, &playwright) {
        (Some(chromium), Some(playwright)) => {
            let image = stored(&recs, &data, "image").expect("a stored picture");
            let voice = stored(&recs, &data, "voice").expect("a stored voice message");
            let room = recs
                .iter()
                .find_map(|r| r["roomid"].as_str().filter(|s| !s.is_empty()))
                .expect("a room");
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
            let _ = std::fs::remove_dir_all(&out);
            let result = Command::new("node")
                .arg(repo().join("tests/console/browser.mjs"))
                .env("CONSOLE_URL", &base)
                .env("CONSOLE_TOKEN", REVIEWER)
                .env("CHROMIUM", chromium)
                .env("PLAYWRIGHT_DIR", playwright)
                .env("OUT_DIR", &out)
                .env("IMAGE_MSGID", image["msgid"].as_str().expect("msgid"))
                .env("VOICE_MSGID", voice["msgid"].as_str().expect("msgid"))
                .env("ROOM_ID", room)
                .env("EXPORT_CONV", room)
                .env("PHRASE", chinese_phrase(&recs))
                .output()
                .expect("node runs");
            let stdout = String::from_utf8_lossy(&result.stdout);
            eprintln!("browser: {}\nscreenshots: {}", stdout.trim(), out.display());
            assert!(
                result.status.success(),
                "browser steps failed: {stdout}\n{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
        _ => {
            eprintln!("browser part skipped: set WECOM_TEST_CHROMIUM and WECOM_TEST_PLAYWRIGHT_DIR")
        }
    }

    match &schemathesis {
        Some(st) => {
            // The document needs a token too: fetch it, then point schemathesis at the file.
            let doc = http
                .get(format!("{base}/api/openapi.json"))
                .bearer_auth(API)
                .send()
                .await
                .expect("openapi")
                .text()
                .await
                .expect("body");
            let spec = tmp.path().join("openapi.json");
            std::fs::write(&spec, doc).expect("write spec");
            let result = Command::new(st)
                .arg("run")
                .arg(&spec)
                .args(["--url", &base])
                .args(["--header", &format!("Authorization: Bearer {API}")])
                .args(["--checks", "not_a_server_error"])
                .args(["--max-examples", "40", "--workers", "1"])
                .env("SCHEMATHESIS_HOOKS", "")
                // it keeps a `.schemathesis/` cache in its working directory
                .current_dir(tmp.path())
                .output()
                .expect("schemathesis runs");
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&result.stdout),
                String::from_utf8_lossy(&result.stderr)
            );
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!(
                "schemathesis:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            assert!(
                result.status.success(),
                "schemathesis found failures:\n{text}"
            );
        }
        None => eprintln!("schemathesis part skipped: set WECOM_TEST_SCHEMATHESIS"),
    }

    // Every request above is in the audit log, none with a token.
    let audit = std::fs::read_to_string(data.join("console/audit.ndjson")).expect("audit log");
    assert!(audit.lines().count() > 5);
    assert!(!audit.contains(REVIEWER) && !audit.contains(API));
    drop(serve);
}
