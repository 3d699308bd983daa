//! Running it like a service: `/metrics` scraped during and after a run of the binary against the simulator
//! (checked against the ground truth), `/health` and `/ready`, `status --json`, `check`, no secret in a
//! TRACE log, and the compose file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wecom_sim::{Fate, FaultConfig, SimConfig};

use crate::support::{fetch_faults, repo_root, sim, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Prometheus text → (series with labels, e.g. `name{a="b"}`) → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of `name` whose labels contain each of `labels` (`key="value"`).
fn sum(m: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| {
            let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let r = client.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "run exited with {status} after SIGTERM");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("run did not stop within 20 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scraped_during_a_run_match_the_ground_truth_and_status_agrees() {
    let server = sim(31, 8_000, fetch_faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let port = free_port();
    let extra = format!("\n[ops]\nlisten = \"127.0.0.1:{port}\"\nstuck_after_secs = 60\n");
    let path = write_config(tmp.path(), &server.base_url(), &data, &extra);
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wecom-archive run");

    let truth = tokio::task::spawn_blocking({
        let t = server.truth();
        move || t
    })
    .await
    .expect("truth");
    let max_seq = truth.iter().map(|t| t.seq).max().expect("truth not empty");
    let fate = |f: Fate| truth.iter().filter(|t| t.fate == f).count() as f64;

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut fetched_seen = Vec::new();
    let last = loop {
        assert!(
            Instant::now() < deadline,
            "the run did not catch up in time"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("run exited early with {status}");
        }
        if let Some((200, text)) = get(&http, &format!("{base}/metrics")).await {
            let m = parse_metrics(&text);
            let fetched = sum(&m, "wecom_items_fetched_total", &["stream=\"corp\""]);
            if fetched_seen.last() != Some(&fetched) {
                fetched_seen.push(fetched);
            }
            let committed = sum(&m, "wecom_committed_seq", &["stream=\"corp\""]);
            if committed as u64 == max_seq {
                // The run keeps polling once caught up: no more faults from here, so the simulator's
                // counts stop moving. The client's counters are polled once a second: give them one
                // more poll after the last fault.
                server.set_faults(wecom_sim::FaultConfig::default());
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let (_, text) = get(&http, &format!("{base}/metrics"))
                    .await
                    .expect("scrape");
                break parse_metrics(&text);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Counters moved during the run, never backwards.
    assert!(
        fetched_seen.len() >= 2,
        "expected to see the fetch counter move: {fetched_seen:?}"
    );
    assert!(
        fetched_seen.windows(2).all(|w| w[0] <= w[1]),
        "{fetched_seen:?}"
    );

    let m = &last;
    let n = truth.len() as f64;
    assert_eq!(sum(m, "wecom_items_fetched_total", &[]), n, "items fetched");
    assert_eq!(
        sum(m, "wecom_records_published_total", &[]),
        fate(Fate::Ok),
        "records"
    );
    assert_eq!(
        sum(m, "wecom_items_decrypted_total", &[]),
        fate(Fate::Ok),
        "decrypted"
    );
    assert_eq!(
        sum(
            m,
            "wecom_dead_letters_total",
            &["reason=\"decrypt_failed\""]
        ),
        fate(Fate::CorruptCiphertext)
    );
    assert_eq!(
        sum(
            m,
            "wecom_dead_letters_total",
            &["reason=\"unknown_key_version\""]
        ),
        fate(Fate::UnknownKeyVersion)
    );
    assert_eq!(
        sum(m, "wecom_dead_letters_total", &[]),
        fate(Fate::CorruptCiphertext) + fate(Fate::UnknownKeyVersion)
    );
    // Records are labelled by msgtype, and the labels match the truth's msgtypes.
    let mut by_type: BTreeMap<String, f64> = BTreeMap::new();
    for t in truth.iter().filter(|t| t.fate == Fate::Ok) {
        *by_type
            // A switch has no msgtype in the archive; its record (and so its label) says "switch".
            .entry(t.msgtype.clone().unwrap_or_else(|| "switch".into()))
            .or_default() += 1.0;
    }
    for (t, count) in &by_type {
        let label = format!("msgtype=\"{t}\"");
        assert_eq!(
            sum(m, "wecom_records_published_total", &[&label]),
            *count,
            "records of msgtype {t}"
        );
    }
    assert_eq!(sum(m, "wecom_commit_lag_seqs", &[]), 0.0);
    assert_eq!(sum(m, "wecom_newest_seq_seen", &[]), max_seq as f64);
    let latency_count = sum(m, "wecom_e2e_latency_seconds_count", &[]);
    assert!(
        latency_count > 0.0 && latency_count <= fate(Fate::Ok),
        "latency observations: {latency_count}"
    );
    assert!(sum(m, "wecom_stage_queue_capacity", &["stage=\"fetch_pages\""]) >= 1.0);
    assert!(sum(m, "process_resident_memory_bytes", &[]) > 1e6);

    // The API client's counters match what the simulator saw.
    let stats = server.stats();
    assert!(sum(m, "wecom_api_calls_total", &[]) > 0.0);
    let refreshes = sum(m, "wecom_api_token_refreshes_total", &[]);
    let gettoken = *stats.requests.get("gettoken").unwrap_or(&0) as f64;
    assert!(
        refreshes >= 1.0 && refreshes <= gettoken,
        "token refreshes {refreshes}, gettoken requests {gettoken}"
    );
    for (code, count) in stats.errcodes.iter().filter(|(c, _)| c.as_str() != "0") {
        let label = format!("errcode=\"{code}\"");
        assert_eq!(
            sum(m, "wecom_api_errors_total", &[&label]),
            *count as f64,
            "errcode {code}: simulator sent {count}; all: {:?}",
            stats.errcodes
        );
    }
    assert!(
        sum(m, "wecom_api_retries_total", &[]) > 0.0,
        "faults cause retries"
    );

    // Alive and ready once caught up.
    let (health, _) = get(&http, &format!("{base}/health")).await.expect("health");
    assert_eq!(health, 200);
    let (ready, body) = get(&http, &format!("{base}/ready")).await.expect("ready");
    assert_eq!(ready, 200, "{body}");

    terminate(&mut child);

    // `status --json` after the run: committed = truth's max, dead letters = the failing fates.
    let v = crate::support::status_json(&path);
    assert_eq!(v["corp_id"], "wwsimcorp0001");
    let corp = v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["stream"] == "corp")
        .expect("corp stream in status");
    assert_eq!(corp["committed_seq"].as_u64(), Some(max_seq));
    assert_eq!(corp["newest_seq_known"].as_u64(), Some(max_seq));
    assert_eq!(corp["lag"].as_u64(), Some(0));
    assert_eq!(
        corp["dead_letters"].as_f64(),
        Some(fate(Fate::CorruptCiphertext) + fate(Fate::UnknownKeyVersion))
    );
    assert!(corp["last_error"].is_null() || corp["last_error"]["seq"].is_u64());
    assert!(corp["updated_at"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));

    // The table names the stream and its committed seq.
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(&path)
        .output()
        .expect("status table");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains("corp") && table.contains(&max_seq.to_string()),
        "{table}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_key_material_in_a_trace_log() {
    const SECRET: &str = "Zq7-corp-secret-XYLOPHONE-4417";
    let cfg = SimConfig {
        seed: 5,
        messages: 3_000,
        corp_secret: SECRET.to_string(),
        faults: FaultConfig {
            token_expire_early: 0.15,
            ..fetch_faults()
        },
        ..SimConfig::default()
    };
    let server = wecom_sim::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    let mut logs = String::new();
    for json in [false, true] {
        let mut cmd = Command::new(BIN);
        if json {
            cmd.arg("--log-json");
        }
        let out = cmd
            .args(["run", "--until-caught-up", "--config"])
            .arg(&path)
            .env("WECOM_LOG", "trace")
            .env("WECOM_CORP_SECRET", SECRET)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "run failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
        logs.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let tokens = server.issued_tokens();
    assert!(
        tokens.len() >= 2,
        "token expiry should force refreshes: {tokens:?}"
    );

    // The capture is real: it holds TRACE and DEBUG lines, including the HTTP stack's.
    assert!(
        logs.len() > 10_000,
        "capture too small: {} bytes",
        logs.len()
    );
    assert!(
        logs.contains("TRACE") && logs.contains("DEBUG"),
        "no TRACE/DEBUG lines captured"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("hyper") || l.contains("reqwest")),
        "no reqwest/hyper lines captured"
    );

    assert!(!logs.contains(SECRET), "the corp secret reached the log");
    for t in &tokens {
        assert!(
            !logs.contains(t.as_str()),
            "an access token reached the log"
        );
    }
    for v in 1..=3 {
        let pem = std::fs::read_to_string(repo_root().join(format!("config/sim-keys/v{v}.pem")))
            .expect("pem");
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        {
            assert!(
                !logs.contains(line),
                "private key v{v} material reached the log"
            );
        }
    }
    server.shutdown().await;
}

fn copy_keys(to: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("keys dir");
    for v in 1..=3 {
        let dst = to.join(format!("v{v}.pem"));
        std::fs::copy(repo_root().join(format!("config/sim-keys/v{v}.pem")), &dst)
            .expect("copy key");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_keys_token_and_sink_and_refuses_open_key_files() {
    let server = sim(3, 50, FaultConfig::default()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    let keys = tmp.path().join("keys");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace(
        &repo_root().join("config/sim-keys").display().to_string(),
        &keys.display().to_string(),
    );
    std::fs::write(&path, &text).expect("config");
    let check = || {
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("check");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };

    copy_keys(&keys, 0o600);
    let (ok, out) = check();
    assert!(ok, "{out}");
    for v in 1..=3 {
        assert!(out.contains(&format!("PASS  key v{v}")), "{out}");
    }
    assert!(
        out.contains("-bit RSA") && out.contains("PASS  token") && out.contains("PASS  sink"),
        "{out}"
    );

    copy_keys(&keys, 0o644);
    let (ok, out) = check();
    assert!(!ok, "group/other-readable keys must fail: {out}");
    assert!(
        out.contains("FAIL  key v1") && out.contains("readable by group/other"),
        "{out}"
    );

    let allowed = text.replace("[keys]", "[keys]\nallow_insecure_permissions = true");
    std::fs::write(&path, allowed).expect("config");
    let (ok, out) = check();
    assert!(ok, "{out}");
    assert!(
        !out.contains("sim-secret"),
        "check printed the secret: {out}"
    );
    server.shutdown().await;
}

#[test]
fn compose_file_is_valid_yaml_and_its_pipeline_config_parses() {
    let root = repo_root();
    let text =
        std::fs::read_to_string(root.join("docker-compose.yml")).expect("docker-compose.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("compose YAML parses");
    let services = doc["services"].as_mapping().expect("services mapping");
    for name in ["kafka", "minio", "minio-init", "sim", "pipeline"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    assert!(
        doc["services"]["kafka"]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("apache/kafka")),
        "kafka uses the apache/kafka image"
    );
    let cmd = |svc: &str| -> String {
        match &doc["services"][svc]["command"] {
            serde_yaml::Value::Sequence(s) => s
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            serde_yaml::Value::String(s) => s.clone(),
            _ => String::new(),
        }
    };
    assert!(
        cmd("sim").contains("sim") && cmd("sim").contains("0.0.0.0:8700"),
        "{}",
        cmd("sim")
    );
    assert!(
        cmd("minio-init").contains("mb"),
        "minio-init creates the bucket"
    );
    let pipeline_cmd = cmd("pipeline");
    assert!(pipeline_cmd.contains("run"), "{pipeline_cmd}");
    // The config the pipeline container runs with exists in the repo (mounted at /app/config) and parses.
    assert!(
        pipeline_cmd.contains("/app/config/compose.toml"),
        "{pipeline_cmd}"
    );
    let compose_toml = root.join("config/compose.toml");
    let toml_text = std::fs::read_to_string(&compose_toml).expect("config/compose.toml");
    let cfg =
        wecom_pipeline::Config::parse(&toml_text, &compose_toml).expect("compose.toml parses");
    let env = wecom_pipeline::config::EnvOverrides {
        corp_secret: Some("x".into()),
        key_files: None,
    };
    cfg.validate(&compose_toml, &env)
        .expect("compose.toml validates");
    let volumes = format!("{:?}", doc["services"]["pipeline"]["volumes"]);
    assert!(volumes.contains("./config:/app/config"), "{volumes}");
    assert!(root.join("Dockerfile").is_file(), "Dockerfile");
}

#[test]
fn compose_cluster_workers_run_the_cluster_config_and_its_corps_validate() {
    let root = repo_root();
    let text =
        std::fs::read_to_string(root.join("docker-compose.yml")).expect("docker-compose.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("compose YAML parses");
    let worker = &doc["services"]["worker"];
    let cmd: Vec<&str> = worker["command"]
        .as_sequence()
        .expect("worker command")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        cmd,
        ["cluster", "--config", "/app/config/cluster-compose.toml"]
    );
    // scaled with --scale worker=N: no fixed host port may be published
    assert!(
        worker["ports"].is_null(),
        "a scaled service publishes no port"
    );
    let file =
        wecom_pipeline::cluster::ClusterFile::load(&root.join("config/cluster-compose.toml"))
            .expect("cluster-compose.toml loads");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "x").unwrap();
    let mut corps = 0;
    for entry in std::fs::read_dir(root.join("config/corps")).expect("config/corps") {
        let path = entry.unwrap().path();
        let mut def = wecom_pipeline::cluster::CorpDef::load(&path).expect("corp definition");
        def.secret_file = Some(secret.clone());
        let cfg = file.corp_config(&def).expect("the corp's config validates");
        assert_eq!(cfg.corp_id, def.corp_id);
        let env = format!("{:?}", worker["environment"]);
        assert!(
            env.contains(&def.secret_env()),
            "the worker service sets {}",
            def.secret_env()
        );
        corps += 1;
    }
    assert!(corps > 0, "config/corps holds the compose stack's corps");
}
