//! Cluster mode against tansu and the S3 server: worker processes of `wecom-archive cluster` share 12
//! simulated corps through the control topic's consumer group. One worker is killed, one added, one
//! paused past the session timeout (SIGSTOP, then SIGCONT); a corp is added and one removed while they
//! run; one corp has a wrong secret and one a missing key. At the end, per corp: every seq exactly once
//! in the topics (checked against its simulator's ground truth), no two owners publishing at once (the
//! fencing check), every media reference of the delivered records stored, byte-identical, in S3.
//!
//! `WECOM_CLUSTER_LONG=1` runs the long mode (more items, longer phases); CI runs the short one.
//!
//! A test binary of its own: its worker processes load the machine, and the end-to-end tests beside it
//! in one binary would run at the same time (cargo runs test binaries one after another).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use object_store::ObjectStoreExt as _;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use wecom_media::{MediaEvent, MediaEventStatus};
use wecom_pipeline::cluster::{read_cluster_status, CorpState, CorpStatus};
use wecom_sim::{Fate, SimConfig, SimServer, TruthItem};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn brokers() -> String {
    std::env::var("WECOM_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("WECOM_TEST_KAFKA_BROKERS is not set: run scripts/test.sh (it starts the broker)")
    })
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("e2e-{tag}-{}-{nanos:x}", std::process::id())
}

fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");
const CORPS: usize = 12;
/// Corp 9 has a wrong secret, corp 10 lacks two of its three keys, corp 11 is added while running and
/// corp 3 removed.
const WRONG_SECRET: usize = 9;
const MISSING_KEY: usize = 10;
const ADDED: usize = 11;
const REMOVED: usize = 3;
const SESSION_MS: u64 = 6_000;
const LEASE_MS: u64 = 1_000;

struct Setup {
    dir: tempfile::TempDir,
    prefix: String,
    endpoint: String,
    bucket: String,
    config: PathBuf,
    sims: Vec<SimServer>,
    corp_ids: Vec<String>,
}

impl Setup {
    fn kafka(&self) -> wecom_kafka::KafkaConfig {
        wecom_pipeline::cluster::ClusterFile::load(&self.config)
            .expect("cluster config")
            .kafka
    }

    fn corp_file(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("corp-{i}.toml"))
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .env("WECOM_LOG", "warn")
            .output()
            .expect("run wecom-archive");
        assert!(
            out.status.success(),
            "wecom-archive {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn worker(&self, n: usize) -> Worker {
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&self.prefix);
        std::fs::create_dir_all(&logs).expect("log dir");
        let log = logs.join(format!("worker-{n}.log"));
        let child = Command::new(BIN)
            .args(["cluster", "--config"])
            .arg(&self.config)
            .env(
                "WECOM_LOG",
                "info,wecom_media::kafka=debug,wecom_media::source=debug",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("worker log"))
            .spawn()
            .expect("start a worker");
        let id = format!("{}-{}", hostname(), child.id());
        Worker { child, id, log }
    }

    async fn status(&self) -> BTreeMap<String, CorpStatus> {
        let kafka = self.kafka();
        match read_cluster_status(&kafka, &format!("{}.status", self.prefix)).await {
            Ok(all) => all.into_iter().map(|s| (s.corp_id.clone(), s)).collect(),
            Err(_) => BTreeMap::new(),
        }
    }
}

struct Worker {
    child: Child,
    id: String,
    log: PathBuf,
}

impl Drop for Worker {
    /// A failed test must not leave workers running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Worker {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {}", self.child.id());
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

fn long_mode() -> bool {
    std::env::var("WECOM_CLUSTER_LONG").is_ok_and(|v| v == "1")
}

async fn setup() -> Option<Setup> {
    let Ok(endpoint) = std::env::var("WECOM_TEST_S3_ENDPOINT") else {
        panic!("WECOM_TEST_S3_ENDPOINT is not set: run scripts/test.sh (it starts the S3 server)");
    };
    let prefix = unique("cluster");
    let bucket = prefix.to_lowercase().replace('.', "-");
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("the S3 server answers");
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (messages, rate) = if long_mode() { (600, 6.0) } else { (80, 2.0) };
    let mut sims = Vec::new();
    let mut corp_ids = Vec::new();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let keys = repo_root().join("config/sim-keys");
    for i in 0..CORPS {
        let corp_id = format!("wwcl{tag}c{i:02}");
        let mut cfg = SimConfig {
            seed: 7000 + i as u64,
            corp_id: corp_id.clone(),
            corp_secret: format!("secret-{i}"),
            messages,
            live_rate_per_sec: rate,
            ..SimConfig::default()
        };
        cfg.media.max_bytes = 256 * 1024;
        cfg.media.big_every = 25;
        let sim = wecom_sim::start(cfg, ([127, 0, 0, 1], 0).into())
            .await
            .expect("simulator starts");
        let secret = if i == WRONG_SECRET {
            "not-the-secret".to_string()
        } else {
            format!("secret-{i}")
        };
        std::fs::write(secrets.join(&corp_id), secret).unwrap();
        let versions: &[u32] = if i == MISSING_KEY { &[1] } else { &[1, 2, 3] };
        let mut def = format!(
            "corp_id = \"{corp_id}\"\n\n[source]\nkind = \"http\"\nbase_url = \"{}\"\n",
            sim.base_url()
        );
        for v in versions {
            def.push_str(&format!(
                "\n[[keys]]\nversion = {v}\npath = \"{}/v{v}.pem\"\n",
                keys.display()
            ));
        }
        std::fs::write(dir.path().join(format!("corp-{i}.toml")), def).unwrap();
        sims.push(sim);
        corp_ids.push(corp_id);
    }
    let store = |p: &str| {
        format!(
            "kind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nallow_http = true\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\nprefix = \"{p}\"\n"
        )
    };
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[cluster]
group_id = "{prefix}"
control_topic = "{prefix}.corps"
control_partitions = 12
status_topic = "{prefix}.status"
session_timeout_ms = {SESSION_MS}
lease_ms = {LEASE_MS}
scratch_dir = "{scratch}"
secrets_dir = "{secrets}"
retry_secs = 2

[fetch]
limit = 200
poll_interval_ms = 300
request_timeout_ms = 5000

[fetch.retry]
max_attempts = 30
initial_backoff_ms = 5
max_backoff_ms = 100
rate_limited_backoff_ms = 20

[sink]
segment_max_bytes = 1048576

[kafka]
brokers = "{brokers}"
partitions = 4
message_timeout_ms = 5000
cursor_topic = "{prefix}.cursors"

# One record per produce batch: tansu's in-memory engine answers a fetch from an offset inside a batch
# with the batches after it, so a consumer resuming from a committed offset in the middle of a batch (the
# media worker of a corp that moved) would never see the rest of that batch. Kafka returns the whole
# batch. With single-record batches every offset starts a batch, and the test checks this project's
# hand-over rather than that broker's. (Producer property: consumers log that they ignore it.)
[kafka.properties]
"batch.num.messages" = "1"

[kafka.topics]
messages = "{prefix}.messages"
media = "{prefix}.media"
deadletter = "{prefix}.deadletter"
recalls = "{prefix}.recalls"

[media]
enabled = true
concurrency = 2
max_attempts = 10
initial_backoff_ms = 10
max_backoff_ms = 200
poll_interval_ms = 200
kafka_group_id = "{prefix}-media"

[media.store]
{media_store}
[archive.store]
{archive_store}
"#,
            scratch = dir.path().join("scratch").display(),
            secrets = secrets.display(),
            brokers = brokers(),
            media_store = store("media"),
            archive_store = store("archive"),
        ),
    )
    .unwrap();
    Some(Setup {
        dir,
        prefix,
        endpoint,
        bucket,
        config,
        sims,
        corp_ids,
    })
}

/// Waits until `f` holds (checked every half second), failing with `what` after `secs`.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !f().await {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    started.elapsed()
}

fn placement(status: &BTreeMap<String, CorpStatus>) -> BTreeMap<String, usize> {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for s in status.values().filter(|s| s.state == CorpState::Running) {
        *per.entry(s.worker.clone()).or_default() += 1;
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_share_corps_move_them_on_failure_and_never_lose_or_repeat_a_seq() {
    let Some(s) = setup().await else { return };
    let cfg = s.config.to_str().unwrap().to_string();
    let mut workers: Vec<Worker> = (0..3).map(|n| s.worker(n)).collect();
    for i in (0..CORPS).filter(|&i| i != ADDED) {
        s.cli(&[
            "cluster",
            "add",
            "--config",
            &cfg,
            "--corp",
            s.corp_file(i).to_str().unwrap(),
        ]);
    }
    let listed = s.cli(&["cluster", "list", "--config", &cfg]);
    assert_eq!(listed.lines().count(), CORPS - 1, "{listed}");

    // Every healthy corp runs and commits.
    let healthy: Vec<usize> = (0..CORPS)
        .filter(|&i| i != WRONG_SECRET && i != ADDED)
        .collect();
    wait_for(180, "every healthy corp running and committing", || async {
        let st = s.status().await;
        healthy.iter().all(|&i| {
            st.get(&s.corp_ids[i])
                .is_some_and(|c| c.state == CorpState::Running && c.committed_seq > 0)
        })
    })
    .await;
    let st = s.status().await;
    let spread_3 = placement(&st);
    eprintln!("cluster: spread over 3 workers: {spread_3:?}");
    assert!(
        spread_3.len() == 3,
        "corps are spread over every worker: {spread_3:?}"
    );
    let wrong = &st[&s.corp_ids[WRONG_SECRET]];
    assert_eq!(wrong.state, CorpState::Failing, "{wrong:?}");
    assert!(
        wrong
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("40001") && !e.contains("not-the-secret")),
        "the error names the cause and never the secret: {wrong:?}"
    );

    // Kill a worker: its corps move to the others and go on.
    let victim = workers.remove(0);
    let moved: Vec<(String, u64)> = st
        .values()
        .filter(|c| c.worker == victim.id && c.state == CorpState::Running)
        .map(|c| (c.corp_id.clone(), c.committed_seq))
        .collect();
    assert!(!moved.is_empty(), "the victim ran no corp: {st:?}");
    victim.signal("-KILL");
    let mut victim = victim;
    let _ = victim.child.wait();
    let move_time = wait_for(
        120,
        "the killed worker's corps running elsewhere",
        || async {
            let st = s.status().await;
            moved.iter().all(|(c, before)| {
                st.get(c).is_some_and(|x| {
                    x.worker != victim.id
                        && x.state == CorpState::Running
                        && x.committed_seq > *before
                })
            })
        },
    )
    .await;
    eprintln!(
        "cluster: {} corps moved after a worker was killed, within {:.1}s (session timeout {}s)",
        moved.len(),
        move_time.as_secs_f64(),
        SESSION_MS / 1000
    );

    // Add a worker: some corps move to it.
    workers.push(s.worker(3));
    let newcomer = workers.last().map(|w| w.id.clone()).unwrap_or_default();
    wait_for(120, "a corp running on the added worker", || async {
        s.status()
            .await
            .values()
            .any(|c| c.worker == newcomer && c.state == CorpState::Running)
    })
    .await;
    wait_for(120, "every healthy corp running again", || async {
        let st = s.status().await;
        healthy.iter().all(|&i| {
            st.get(&s.corp_ids[i])
                .is_some_and(|c| c.state == CorpState::Running)
        })
    })
    .await;
    eprintln!(
        "cluster: spread after adding a worker: {:?}",
        placement(&s.status().await)
    );

    // Pause a worker past the session timeout, then let it go on.
    let paused = &workers[0];
    paused.signal("-STOP");
    tokio::time::sleep(Duration::from_millis(SESSION_MS + 6_000)).await;
    paused.signal("-CONT");
    eprintln!(
        "cluster: worker {} paused {}s and resumed",
        paused.id,
        (SESSION_MS + 6_000) / 1000
    );

    // Add a corp, remove one.
    s.cli(&[
        "cluster",
        "add",
        "--config",
        &cfg,
        "--corp",
        s.corp_file(ADDED).to_str().unwrap(),
    ]);
    s.cli(&[
        "cluster",
        "remove",
        "--config",
        &cfg,
        "--corp-id",
        &s.corp_ids[REMOVED],
    ]);
    let removed_at = Instant::now();
    eprintln!("cluster: corp added and corp removed");

    // Everything the simulators served by now must arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let truths: Vec<Vec<TruthItem>> = s
        .sims
        .iter()
        .map(|sim| tokio::task::block_in_place(|| sim.truth()))
        .collect();
    let target: Vec<u64> = truths
        .iter()
        .map(|t| t.iter().map(|i| i.seq).max().unwrap_or(0))
        .collect();
    let complete: Vec<usize> = (0..CORPS)
        .filter(|&i| i != WRONG_SECRET && i != REMOVED)
        .collect();
    wait_for(
        300,
        "every running corp caught up with its simulator",
        || async {
            let st = s.status().await;
            complete.iter().all(|&i| {
                st.get(&s.corp_ids[i])
                    .is_some_and(|c| c.state == CorpState::Running && c.committed_seq >= target[i])
            })
        },
    )
    .await;
    eprintln!("cluster: every corp caught up with its simulator");
    let status_out = s.cli(&["status", "--cluster", "--json", "--config", &cfg]);
    let status_json: serde_json::Value = serde_json::from_str(&status_out).expect("status json");
    let corps = status_json["corps"].as_array().expect("corps");
    assert!(
        corps
            .iter()
            .all(|c| c["corp_id"] != serde_json::json!(s.corp_ids[REMOVED])),
        "the removed corp has no status: {status_out}"
    );
    assert!(
        corps.iter().any(
            |c| c["corp_id"] == serde_json::json!(s.corp_ids[WRONG_SECRET])
                && c["last_error"].is_string()
        ),
        "the failing corp shows its error: {status_out}"
    );

    // Media: every attachment served up to the target is stored, byte-identical.
    // (the corp missing keys dead-letters what it cannot decrypt, media included)
    let with_media: Vec<usize> = complete
        .iter()
        .copied()
        .filter(|&i| i != MISSING_KEY)
        .collect();
    let (media, unstored) = wait_for_media(&s, &truths, &target, &with_media).await;

    eprintln!("cluster: {media} media objects stored, byte-identical; missing: {unstored:?}");
    // Stop the workers cleanly.
    for w in &workers {
        w.signal("-TERM");
    }
    for w in &mut workers {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if w.child.try_wait().expect("wait").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not stop; log {}",
                w.id,
                w.log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(removed_at.elapsed() > Duration::from_secs(10));

    // Exactly once, per corp, against the ground truth.
    let msgs = read_topic(&format!("{}.messages", s.prefix)).await;
    let dead = read_topic(&format!("{}.deadletter", s.prefix)).await;
    let cursor = read_topic(&format!("{}.cursors", s.prefix)).await;
    let seen = count_by_corp(&msgs);
    let dead_seen = count_by_corp(&dead);
    for i in 0..CORPS {
        let corp = s.corp_ids[i].as_str();
        let recs = seen.get(corp).cloned().unwrap_or_default();
        let dls = dead_seen.get(corp).cloned().unwrap_or_default();
        let twice: Vec<u64> = recs
            .iter()
            .chain(dls.iter())
            .filter(|(_, n)| **n > 1)
            .map(|(s, _)| *s)
            .collect();
        assert!(
            twice.is_empty(),
            "corp {i} ({corp}): seqs published twice: {twice:?}"
        );
        let both: BTreeSet<u64> = recs.keys().chain(dls.keys()).copied().collect();
        assert_eq!(
            both.len(),
            recs.len() + dls.len(),
            "corp {i}: a seq both record and dead letter"
        );
        if i == WRONG_SECRET {
            assert!(both.is_empty(), "the corp with a wrong secret published");
            continue;
        }
        let truth: BTreeSet<u64> = truths[i].iter().map(|t| t.seq).collect();
        let upto = if i == REMOVED {
            both.iter().max().copied().unwrap_or(0)
        } else {
            target[i]
        };
        let want: BTreeSet<u64> = truth.range(..=upto).copied().collect();
        let got: BTreeSet<u64> = both.range(..=upto).copied().collect();
        assert_eq!(
            got, want,
            "corp {i} ({corp}): seqs up to {upto} against the ground truth"
        );
        assert!(
            both.iter().all(|s| truth.contains(s) || *s > target[i]),
            "corp {i}: a seq the simulator never served"
        );
        let ok: BTreeSet<u64> = truths[i]
            .iter()
            .filter(|t| t.fate == Fate::Ok)
            .map(|t| t.seq)
            .collect();
        if i == MISSING_KEY {
            assert!(
                !dls.is_empty(),
                "the corp missing a key has no dead letters"
            );
        } else {
            let want_records: BTreeSet<u64> = ok.range(..=upto).copied().collect();
            let got_records: BTreeSet<u64> = recs.keys().copied().filter(|s| *s <= upto).collect();
            assert_eq!(got_records, want_records, "corp {i}: records");
        }
    }
    let removed_count = seen
        .get(s.corp_ids[REMOVED].as_str())
        .map_or(0, BTreeMap::len);
    assert!(removed_count > 0, "the removed corp ran before its removal");

    // Fencing: per corp, per partition, the owner epochs never go back (two owners publishing at once
    // would interleave), and no record of an epoch was created after the next epoch's claim plus the lease.
    let mut claims: BTreeMap<(String, u64), i64> = BTreeMap::new();
    for m in &cursor {
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        if let Some(rest) = key.strip_prefix("claim/") {
            let corp = rest.trim_end_matches("/corp").to_string();
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("claim json");
            let epoch = v["epoch"].as_u64().expect("epoch");
            claims.insert((corp, epoch), m.timestamp().to_millis().unwrap_or(0));
        }
    }
    let mut last_epoch: BTreeMap<(&str, String, i32), (u64, i64)> = BTreeMap::new();
    let mut sorted: Vec<&OwnedMessage> = msgs.iter().chain(dead.iter()).collect();
    sorted.sort_by_key(|m| (m.topic().to_string(), m.partition(), m.offset()));
    let mut epochs_used: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for m in sorted {
        let corp = header(m, "corp_id").unwrap();
        let epoch: u64 = header(m, "owner_epoch")
            .and_then(|e| e.parse().ok())
            .expect("owner_epoch header");
        epochs_used.entry(corp).or_default().insert(epoch);
        let created = m.timestamp().to_millis().unwrap_or(0);
        if let Some(next) = claims.get(&(corp.to_string(), epoch + 1)) {
            assert!(
                created <= next + LEASE_MS as i64 + 1_000,
                "corp {corp}: a record of epoch {epoch} created {}ms after the claim of epoch {}",
                created - next,
                epoch + 1
            );
        }
        let slot = last_epoch
            .entry((corp, m.topic().to_string(), m.partition()))
            .or_insert((epoch, m.offset()));
        assert!(
            epoch >= slot.0,
            "corp {corp}: epoch {epoch} at offset {} after epoch {} at offset {} (partition {}): two owners at once",
            m.offset(),
            slot.0,
            slot.1,
            m.partition()
        );
        *slot = (epoch, m.offset());
    }
    let moved_corps = epochs_used.values().filter(|e| e.len() > 1).count();
    assert!(
        moved_corps >= moved.len(),
        "corps that changed owner: {moved_corps}, epochs {epochs_used:?}"
    );
    eprintln!("cluster: {media} media objects checked byte for byte; {moved_corps} corps published under more than one owner");
    // asserted last, so that a failure here comes with the record and fencing checks already passed
    assert!(unstored.is_none(), "{}", unstored.unwrap_or_default());
}

/// Waits until every media reference of the ok items up to the target is stored, then checks each object
/// against the simulator's md5 and size. Returns how many were checked.
async fn wait_for_media(
    s: &Setup,
    truths: &[Vec<TruthItem>],
    target: &[u64],
    corps: &[usize],
) -> (usize, Option<String>) {
    let mut wanted: BTreeMap<(String, u64, String), (String, u64)> = BTreeMap::new();
    for &i in corps {
        for t in truths[i]
            .iter()
            .filter(|t| t.fate == Fate::Ok && t.seq <= target[i])
        {
            for m in &t.media {
                wanted.insert(
                    (s.corp_ids[i].clone(), t.seq, m.sdkfileid.clone()),
                    (m.md5.clone(), m.size),
                );
            }
        }
    }
    assert!(
        wanted.len() >= 50,
        "only {} media references: too few to mean anything",
        wanted.len()
    );
    let topic = format!("{}.media", s.prefix);
    let mut stored: BTreeMap<(String, u64, String), String> = BTreeMap::new();
    let mut unstored = None;
    let started = Instant::now();
    loop {
        for m in read_topic(&topic).await {
            let e: MediaEvent =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("media event");
            assert_ne!(e.status, MediaEventStatus::Failed, "media failed: {e:?}");
            stored.insert(
                (e.corp_id.clone(), e.seq, e.sdkfileid.clone()),
                e.object_key.clone(),
            );
        }
        let missing: Vec<&(String, u64, String)> =
            wanted.keys().filter(|k| !stored.contains_key(*k)).collect();
        if missing.is_empty() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            // reported after the record checks, which tell whether the records themselves are there
            let mut per: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for (c, seq, _) in &missing {
                per.entry(c.clone()).or_default().push(*seq);
            }
            let n = missing.len();
            for k in missing.into_iter().cloned().collect::<Vec<_>>() {
                wanted.remove(&k);
            }
            unstored = Some(format!("{n} media objects never stored: {per:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mc: wecom_media::MediaConfig = toml::from_str(&format!(
        "[store]\nkind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\nallow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nprefix = \"media\"\n",
        s.bucket, s.endpoint
    ))
    .expect("media config");
    let store = mc.build_store(Path::new("/nonexistent")).expect("s3 store");
    for (k, (md5, size)) in &wanted {
        let key = &stored[k];
        let path = store.path(key).expect("object path");
        let bytes = store
            .object_store()
            .get(&path)
            .await
            .unwrap_or_else(|e| panic!("object {key}: {e}"))
            .bytes()
            .await
            .expect("object bytes");
        assert_eq!(bytes.len() as u64, *size, "size of {key}");
        assert_eq!(hex::encode(Md5::digest(&bytes)), *md5, "md5 of {key}");
    }
    (wanted.len(), unstored)
}

/// How often each seq of each corp is in `records` (by the `corp_id` and `seq` headers).
fn count_by_corp(records: &[OwnedMessage]) -> BTreeMap<&str, BTreeMap<u64, u32>> {
    let mut seen: BTreeMap<&str, BTreeMap<u64, u32>> = BTreeMap::new();
    for m in records {
        let (Some(corp), Some(seq)) = (header(m, "corp_id"), header(m, "seq")) else {
            panic!("a record of {} without corp_id/seq headers", m.topic());
        };
        *seen
            .entry(corp)
            .or_default()
            .entry(seq.parse().expect("seq header"))
            .or_default() += 1;
    }
    seen
}

/// Every record of `topic`, from the beginning until a quiet two seconds (or 45 s of reading, for a topic
/// that is still being written).
async fn read_topic(topic: &str) -> Vec<OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("cluster-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    // the first records may take a moment (group join)
    let mut quiet = Duration::from_secs(6);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(45) {
        let Ok(r) = tokio::time::timeout(quiet, consumer.recv()).await else {
            break;
        };
        out.push(r.expect("consume").detach());
        quiet = Duration::from_secs(2);
    }
    out
}
