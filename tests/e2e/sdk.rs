//! The SDK code path end to end: the pipeline binary with `source = "sdk"` and `cipher = "sdk"` drives its
//! supervised worker processes, which load the test-only stand-in library (same C symbols and layouts as
//! Tencent's, implemented over the simulator); then the same corpus through `wecom-archive gateway`.
//! Both must pass the same ground-truth check as the HTTP path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_conserved, read_output, sim, write_config};

/// `<target>/<profile>/libwecom_sdk_standin.so`, next to this test binary's `deps/` directory.
fn standin_lib() -> PathBuf {
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

fn faults() -> wecom_sim::FaultConfig {
    wecom_sim::FaultConfig {
        corrupt_ciphertext: 0.005,
        unknown_key_version: 0.005,
        control_chars: 0.05,
        duplicate_items: 0.05,
        seq_gaps: 0.2,
        ..wecom_sim::FaultConfig::default()
    }
}

/// The stand-in reads the simulator's address from `WECOM_STANDIN_BASE_URL`; workers inherit no `WECOM_*`
/// variable, so it travels in `[sdk.worker_env]`.
fn sdk_section(lib: &Path, sim_url: &str) -> String {
    format!(
        "\n[sdk]\nlibrary = \"{}\"\nworkers = 2\nrequest_timeout_ms = 30000\nsdk_timeout_secs = 10\n\
         [sdk.worker_env]\nWECOM_STANDIN_BASE_URL = \"{sim_url}\"\n",
        lib.display()
    )
}

fn run_bin(path: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["run", "--until-caught-up", "--config"])
        .arg(path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "run exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_source_and_cipher_deliver_every_seq_exactly_once() {
    let server = sim(41, 3_000, faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(
        tmp.path(),
        "http://unused.invalid",
        &data,
        &sdk_section(&standin_lib(), &server.base_url()),
    );
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(
            "kind = \"http\"\nbase_url = \"http://unused.invalid\"",
            "kind = \"sdk\"",
        )
        .replace("[keys]", "[cipher]\nkind = \"sdk\"\n\n[keys]");
    std::fs::write(&path, text).expect("config");
    run_bin(&path);
    assert_conserved(&server.truth(), &read_output(&data));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_contract_from_the_sdk() {
    let server = sim(43, 3_000, faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    // The gateway's own config: the corp secret and the library, no keys.
    let gw_cfg = tmp.path().join("gateway.toml");
    std::fs::write(
        &gw_cfg,
        format!(
            "[corp]\ncorp_id = \"wwsimcorp0001\"\ncorp_secret = \"sim-secret\"\n[source]\nkind = \"sdk\"\n[keys]\nfiles = [{{ version = 1, path = \"unused.pem\" }}]\n[sink]\ndata_dir = \"{}\"\n{}",
            tmp.path().join("gw-data").display(),
            sdk_section(&standin_lib(), &server.base_url())
        ),
    )
    .expect("gateway config");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args([
            "gateway",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&gw_cfg)
        .env("WECOM_GATEWAY_TOKEN", "gateway-bearer-token")
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("gateway");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start listening");
        assert!(
            gateway.try_wait().expect("try_wait").is_none(),
            "gateway exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The pipeline elsewhere: plain HTTP source at the gateway, the bearer token as its secret, the keys here.
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &format!("http://127.0.0.1:{port}"), &data, "");
    let text = std::fs::read_to_string(&path).expect("config").replace(
        "corp_secret = \"sim-secret\"",
        "corp_secret = \"gateway-bearer-token\"",
    );
    std::fs::write(&path, text).expect("config");
    run_bin(&path);
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert_conserved(&server.truth(), &read_output(&data));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_loads_the_real_sdk_library_in_a_worker() {
    let lib = std::env::var("WECOM_TEST_SDK_LIB").unwrap_or_else(|_| {
        panic!("WECOM_TEST_SDK_LIB is not set: run `eval \"$(scripts/fetch-sdk.sh)\"` first (scripts/test.sh does)")
    });
    let server = sim(47, 200, wecom_sim::FaultConfig::default()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &tmp.path().join("data"),
        &sdk_section(Path::new(&lib), &server.base_url()),
    );
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("[keys]\n", "[keys]\nallow_insecure_permissions = true\n");
    std::fs::write(&path, text).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["check", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .output()
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Init returned 0"), "{stdout}");

    // A library that is not the SDK is reported by name, and check fails.
    let bogus = tmp.path().join("libnot-the-sdk.so");
    std::fs::write(&bogus, b"not a shared object").expect("write");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(&lib, &bogus.display().to_string());
    std::fs::write(&path, text).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "check passed with a bogus library:\n{stdout}"
    );
    assert!(stdout.contains("libnot-the-sdk.so"), "{stdout}");
    server.shutdown().await;
}

/// The decrypt stage sends a chunk per SDK call (one batch frame to a worker). An item that aborts the
/// worker mid-batch is dead-lettered as `sdk_crashed`, alone: every other item of its batch is a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_that_crashes_the_sdk_mid_batch_is_the_only_dead_letter() {
    let faults = wecom_sim::FaultConfig {
        sdk_crash_marker: 0.01,
        ..wecom_sim::FaultConfig::default()
    };
    let server = sim(47, 800, faults).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &data,
        &sdk_section(&standin_lib(), &server.base_url()),
    );
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("[keys]", "[cipher]\nkind = \"sdk\"\n\n[keys]");
    std::fs::write(&path, text).expect("config");
    run_bin(&path);
    let truth = server.truth();
    let crashing: Vec<u64> = truth
        .iter()
        .filter(|t| t.sdk_crash)
        .map(|t| t.seq)
        .collect();
    assert!(
        crashing.len() >= 3,
        "the corpus should mark items: {crashing:?}"
    );
    let out = read_output(&data);
    assert_eq!(out.len(), truth.len(), "every seq once");
    for t in &truth {
        let seen = &out[&t.seq];
        let want = if t.sdk_crash {
            Some("sdk_crashed")
        } else {
            None
        };
        assert_eq!(seen.dead_reason.as_deref(), want, "seq {}", t.seq);
    }
    server.shutdown().await;
}
