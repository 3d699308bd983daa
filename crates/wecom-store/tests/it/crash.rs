//! Crash simulation with real SIGKILLs: a child process (this test binary, running only
//! `crash_writer_child`) writes batches and commits the cursor after each; the parent kills it
//! at random moments, restarts it, and finally checks every seq is on disk exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wecom_store::{CursorStore, LocalSink, SinkOptions};

use crate::common::{assert_exactly_once, lines, Rng};

const DIR_VAR: &str = "WECOM_STORE_CRASH_DIR";
const N_VAR: &str = "WECOM_STORE_CRASH_N";
const SEED_VAR: &str = "WECOM_STORE_CRASH_SEED";
const STREAM: &str = "corp";
const N: u64 = 3_000;
const KILLS: u32 = 6;
const SEGMENT_MAX: u64 = 8 * 1024;

fn sink_opts() -> SinkOptions {
    SinkOptions {
        segment_max_bytes: SEGMENT_MAX,
        fsync: true,
    }
}

/// The pipeline's restart protocol, in miniature: load cursor, recover, skip present seqs,
/// write, commit.
fn run_writer(dir: &Path, n: u64) {
    let cursors = CursorStore::open(&dir.join("cursors")).unwrap();
    let mut sink = LocalSink::open(&dir.join("sink"), sink_opts()).unwrap();
    let cursor = cursors.load(STREAM).unwrap().map_or(0, |c| c.seq);
    let present = sink.recover(cursor).unwrap().present;
    let mut next = cursor + 1;
    while next <= n {
        // Batch sizes vary so kills land on different shapes of batch.
        let end = (next + next.wrapping_mul(7919) % 23).min(n);
        let batch = lines((next..=end).filter(|s| !present.contains(s)));
        sink.write_batch(&batch).unwrap();
        cursors.commit(STREAM, end).unwrap();
        next = end + 1;
    }
}

/// Not a test on its own: the writer the parent spawns. Does nothing without the env var.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let n = std::env::var(N_VAR).unwrap().parse().unwrap();
    run_writer(Path::new(&dir), n);
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_writer_child", "--exact", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(N_VAR, N.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_at_random_moments_keeps_exactly_once() {
    let (mut rng, seed) = Rng::from_env_or_time(SEED_VAR);
    eprintln!("crash test seed: {seed} (rerun with {SEED_VAR}={seed})");
    let tmp = tempfile::tempdir().unwrap();
    let cursors = CursorStore::open(&tmp.path().join("cursors")).unwrap();
    let load = || cursors.load(STREAM).unwrap().map_or(0, |c| c.seq);

    let mut kills = 0;
    let mut last_seen = 0;
    while kills < KILLS {
        let mut child = spawn_child(tmp.path());
        // Kill once the writer is demonstrably under way, then a random moment later, so the
        // kill lands inside write, fsync, or commit rather than in process start-up.
        let deadline = Instant::now() + Duration::from_secs(60);
        while load() <= last_seen && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(rng.below(4_000)));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            still_running,
            "writer exited before kill {kills} (status {status}); make N larger"
        );
        kills += 1;
        last_seen = load();
        eprintln!("kill {kills}: cursor at {last_seen}");
        assert!(
            last_seen < N,
            "writer finished before kill {kills}; make N larger"
        );
    }

    let status = spawn_child(tmp.path()).wait().unwrap();
    assert!(status.success(), "final writer run failed: {status}");
    assert_eq!(load(), N);
    let sink = tmp.path().join("sink");
    assert_exactly_once(&sink.join("messages"), &sink.join("deadletter"), N);
}
