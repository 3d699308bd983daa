//! What the campaign does: its size (short for CI, long on demand), the simulator it runs against, and the
//! pipeline config it gives the binary.

use std::path::{Path, PathBuf};

use wecom_sim::{BigMessagesConfig, FaultConfig, MediaConfig, SimConfig};

/// The campaign's size and pace.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub long: bool,
    /// Items in the simulator's corpus at start.
    pub messages: u64,
    /// Live items appearing per second after that, so that runs have work whenever they are killed.
    pub live_rate: f64,
    /// SIGKILLs of `wecom-archive run` before the final, uninterrupted runs.
    pub kills: u32,
    /// Broker restarts, spread over the kills.
    pub broker_restarts: u32,
    /// A run lives this long (ms, uniform) before its SIGKILL; 5 s longer (up to a minute) for each run in a
    /// row that committed nothing (a slow page, a slow broker, a loaded machine), so the campaign moves on.
    pub run_ms: (u64, u64),
    /// Items per `get_chat_data` page: small pages mean many commits between kills.
    pub page_limit: u32,
    /// One item in `big_every` is oversized.
    pub big_every: u64,
    pub big_text_bytes: u64,
    pub big_chatrecord_bytes: u64,
    pub big_markdown_bytes: u64,
    /// The whole chaos phase ends after this many seconds even if fewer kills happened.
    pub chaos_deadline_secs: u64,
}

const MIB: u64 = 1024 * 1024;

impl Plan {
    /// Short mode by default; `WECOM_CHAOS_LONG=1` for the long one; `WECOM_CHAOS_SEED` to reproduce a run.
    pub fn from_env() -> Plan {
        let seed = std::env::var("WECOM_CHAOS_SEED")
            .ok()
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("WECOM_CHAOS_SEED={s:?} is not a u64"))
            })
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
            });
        let long = std::env::var("WECOM_CHAOS_LONG").is_ok_and(|v| v == "1" || v == "true");
        if long {
            // tansu's SQLite storage slows down as it grows: at ~45,000 records (80 MB) its fetches and even
            // metadata requests time out, so the long mode stays well below that
            Plan {
                seed,
                long,
                messages: 8_000,
                live_rate: 5.0,
                kills: 100,
                broker_restarts: 6,
                run_ms: (300, 6_000),
                page_limit: 100,
                big_every: 1_000,
                big_text_bytes: 5 * MIB,
                big_chatrecord_bytes: 3 * MIB / 2,
                big_markdown_bytes: 2 * MIB,
                chaos_deadline_secs: 1_500,
            }
        } else {
            Plan {
                seed,
                long,
                messages: 1_000,
                live_rate: 15.0,
                kills: 20,
                broker_restarts: 2,
                run_ms: (300, 4_500),
                page_limit: 100,
                big_every: 300,
                // just over the 1 MB record limit (a text's record holds it twice): the tests run a debug
                // build, where every MiB of an item costs a second of its page's time
                big_text_bytes: 700 * 1024,
                big_chatrecord_bytes: 9 * MIB / 8,
                big_markdown_bytes: 600 * 1024,
                chaos_deadline_secs: 110,
            }
        }
    }

    /// Every fault the simulator has, at rates a run survives, and oversized items.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            messages: self.messages,
            live_rate_per_sec: self.live_rate,
            media: MediaConfig {
                // small media: the truth hashes every file, and each is fetched again after a kill
                max_bytes: 256 * 1024,
                big_every: 50,
                huge_media: Vec::new(),
            },
            faults: FaultConfig {
                token_expire_early: 0.02,
                rate_limit_45009: 0.02,
                system_busy: 0.02,
                http_5xx: 0.02,
                connection_reset: 0.02,
                slow_response: 0.02,
                slow_ms: 300,
                media_truncate: 0.03,
                media_reset: 0.03,
                media_5xx: 0.03,
                media_md5_mismatch: 0.03,
                corrupt_ciphertext: 0.003,
                unknown_key_version: 0.003,
                duplicate_items: 0.1,
                seq_gaps: 0.1,
                control_chars: 0.05,
                sdk_crash_marker: 0.004,
            },
            big_messages: BigMessagesConfig {
                every: self.big_every,
                text_bytes: self.big_text_bytes,
                chatrecord_bytes: self.big_chatrecord_bytes,
                markdown_bytes: self.big_markdown_bytes,
            },
            ..SimConfig::default()
        }
    }
}

/// `<target>/<profile>/libwecom_sdk_standin.so`, next to this test binary's `deps/` directory.
pub fn standin_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let lib = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .join("libwecom_sdk_standin.so");
    assert!(
        lib.is_file(),
        "{} is missing: run `cargo build -p wecom-sdk-standin` first (scripts/test.sh does)",
        lib.display()
    );
    lib
}

/// Where the pipeline config's variable parts come from.
pub struct Setup {
    pub sim_url: String,
    pub broker: String,
    pub topic_prefix: String,
    pub data_dir: PathBuf,
    pub standin: PathBuf,
    pub page_limit: u32,
}

/// The pipeline config: the simulator over HTTP, the SDK cipher through the stand-in library (its marked
/// items crash the worker), records to local files and Kafka, media on, and a keyring with every key
/// version of the corpus except those in `missing` (the late key 4 is never configured).
pub fn pipeline_config(s: &Setup, missing: &[u32]) -> String {
    let keys_dir = Path::new(wecom_sim::REPO_ROOT).join("config/sim-keys");
    let keys: Vec<String> = [1u32, 2, 3]
        .iter()
        .filter(|v| !missing.contains(v))
        .map(|v| {
            format!(
                "  {{ version = {v}, path = \"{}\" }},",
                keys_dir.join(format!("v{v}.pem")).display()
            )
        })
        .collect();
    format!(
        r#"
[corp]
corp_id = "wwsimcorp0001"
corp_secret = "sim-secret"

[source]
kind = "http"
base_url = "{sim}"

[fetch]
limit = {limit}
poll_interval_ms = 200
request_timeout_ms = 5000

[fetch.retry]
max_attempts = 30
initial_backoff_ms = 5
max_backoff_ms = 100
rate_limited_backoff_ms = 20

[keys]
files = [
{keys}
]

[cipher]
kind = "sdk"

[sink]
kind = "both"
data_dir = "{data}"
segment_max_bytes = 1048576

[kafka]
brokers = "{broker}"
partitions = 3
message_timeout_ms = 20000
max_record_bytes = 1000000

[kafka.topics]
messages = "{prefix}.messages"
media = "{prefix}.media"
deadletter = "{prefix}.deadletter"

[media]
concurrency = 4
max_attempts = 10
initial_backoff_ms = 10
max_backoff_ms = 200
poll_interval_ms = 200

[sdk]
library = "{lib}"
workers = 2
request_timeout_ms = 30000
sdk_timeout_secs = 10

[sdk.worker_env]
WECOM_STANDIN_BASE_URL = "{sim}"
"#,
        sim = s.sim_url,
        limit = s.page_limit,
        keys = keys.join("\n"),
        data = s.data_dir.display(),
        broker = s.broker,
        prefix = s.topic_prefix,
        lib = s.standin.display(),
    )
}
