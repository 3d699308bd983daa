//! A console over a temporary data directory that the test writes records into, as the pipeline does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wecom_console::{Console, ConsoleConfig, Role, ServeSettings, SourceSpec, User};
use wecom_model::{Record, Secret};

pub const REVIEWER_TOKEN: &str = "reviewer-token-0123456789abcdef";
pub const API_TOKEN: &str = "api-token-0123456789abcdef0123";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub corp: String,
}

impl Env {
    pub fn new(corp: &str) -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            corp: corp.to_owned(),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn messages_dir(&self, stream_dir: &str) -> PathBuf {
        self.data()
            .join(&self.corp)
            .join(stream_dir)
            .join("messages")
    }

    /// Appends record lines to segment `seg` of a stream directory (`corp`, `room-<id>`).
    pub fn append(&self, stream_dir: &str, seg: u64, records: &[Record]) {
        let dir = self.messages_dir(stream_dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("seg-{seg:020}.ndjson")))
            .expect("open segment");
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).expect("serialize");
            buf.push(b'\n');
        }
        f.write_all(&buf).expect("append");
    }

    pub fn objects_root(&self) -> PathBuf {
        self.data().join("objects")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.data().join("console").join("audit.ndjson")
    }

    pub fn config(&self) -> ConsoleConfig {
        ConsoleConfig {
            commit_interval_ms: 50,
            index_memory_mb: 32,
            page_size: 20,
            ..ConsoleConfig::default()
        }
    }

    pub fn settings(&self, source: SourceSpec) -> ServeSettings {
        let objects = wecom_store::ObjectStoreConfig::default()
            .build("media.store", &self.objects_root(), false)
            .expect("objects");
        ServeSettings {
            corp_id: self.corp.clone(),
            data_dir: self.data(),
            source,
            objects,
            console: self.config(),
            users: vec![
                User {
                    name: "alice".into(),
                    role: Role::Reviewer,
                    token: Secret::new(REVIEWER_TOKEN),
                },
                User {
                    name: "llm-bot".into(),
                    role: Role::Api,
                    token: Secret::new(API_TOKEN),
                },
            ],
        }
    }

    pub async fn start(&self) -> Console {
        let s = self.settings(SourceSpec::Local {
            data_dir: self.data(),
        });
        Console::start(s, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("console starts")
    }
}

/// Waits until the console has indexed `n` records.
pub async fn wait_records(c: &Console, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = c.archive().status();
        assert_eq!(status.last_error, None, "indexing failed");
        let got = status.records;
        if got >= n {
            assert_eq!(got, n, "more records indexed than written");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "indexed {got} of {n} records in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn url(c: &Console, path: &str) -> String {
    format!("http://{}{path}", c.local_addr())
}

pub async fn get_json(c: &Console, path: &str, token: &str) -> serde_json::Value {
    let r = client()
        .get(url(c, path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert!(status.is_success(), "GET {path}: {status}: {text}");
    serde_json::from_str(&text).expect("json")
}

/// A path segment, percent-encoded.
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn query(s: &str) -> String {
    seg(s)
}

pub fn read_audit(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}
