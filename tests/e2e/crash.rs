//! The binary killed with SIGKILL at random moments, restarted each time: the output is still exactly once.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::support::{assert_conserved, fetch_faults, read_output, sim, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let server = sim(23, 20_000, fetch_faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    let bin = env!("CARGO_BIN_EXE_wecom-archive");
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut kills = 0;
    let mut attempts = 0;
    while kills < 6 && attempts < 40 {
        attempts += 1;
        let mut child = Command::new(bin)
            .args(["run", "--until-caught-up", "--config"])
            .arg(&path)
            .env("WECOM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wecom-archive");
        let wait_ms = rng.gen_range(200..2500);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
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
        kills >= 5,
        "only {kills} kills happened before the run finished"
    );
    // Finish the job without interruption.
    let status = Command::new(bin)
        .args(["run", "--until-caught-up", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("final run");
    assert!(status.success());
    assert_conserved(&server.truth(), &read_output(&data));
    server.shutdown().await;
}
