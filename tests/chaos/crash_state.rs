//! One state the campaign reaches only by chance, set up on purpose: a page of dead letters written to
//! both outputs, the process killed before its cursor commit, the missing key added before the restart.
//! The restart must write those items as records to the local files too (not only to Kafka), and the
//! redrive that follows must not publish them a second time.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::readback::{read_local, read_topic};

const PAGE: u64 = 50;
const ITEMS: u64 = 300;

fn config(sim_url: &str, brokers: &str, prefix: &str, data: &Path, with_v3: bool) -> String {
    let keys = Path::new(wecom_sim::REPO_ROOT).join("config/sim-keys");
    let versions: &[u32] = if with_v3 { &[1, 2, 3] } else { &[1, 2] };
    let files: Vec<String> = versions
        .iter()
        .map(|v| {
            format!(
                "{{ version = {v}, path = \"{}\" }}",
                keys.join(format!("v{v}.pem")).display()
            )
        })
        .collect();
    format!(
        "[corp]\ncorp_id = \"wwsimcorp0001\"\ncorp_secret = \"sim-secret\"\n\
         [source]\nkind = \"http\"\nbase_url = \"{sim_url}\"\n\
         [fetch]\nlimit = {PAGE}\npoll_interval_ms = 200\nrequest_timeout_ms = 5000\n\
         [keys]\nfiles = [{}]\n\
         [sink]\nkind = \"both\"\ndata_dir = \"{}\"\n\
         [kafka]\nbrokers = \"{brokers}\"\npartitions = 2\nmessage_timeout_ms = 20000\n\
         [kafka.topics]\nmessages = \"{prefix}.messages\"\nmedia = \"{prefix}.media\"\n\
         deadletter = \"{prefix}.deadletter\"\n",
        files.join(", "),
        data.display()
    )
}

fn wecom_archive(args: &[&str], config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("WECOM_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("wecom-archive");
    assert!(
        out.status.success(),
        "wecom-archive {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How often each seq is in `lines`.
fn counts(lines: &[crate::readback::Line]) -> std::collections::BTreeMap<u64, usize> {
    let mut m = std::collections::BTreeMap::new();
    for l in lines {
        *m.entry(l.seq).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_written_before_a_crash_become_records_in_every_output_once() {
    let Ok(brokers) = std::env::var("WECOM_TEST_KAFKA_BROKERS") else {
        eprintln!("chaos: skipped: WECOM_TEST_KAFKA_BROKERS is not set");
        return;
    };
    // No faults: seqs 1..=300 in pages of 50; keys v1, v2, v3 from 0%, 40%, 70%: the last page is all v3.
    let server = wecom_sim::start(
        wecom_sim::SimConfig {
            seed: 7,
            messages: ITEMS,
            ..wecom_sim::SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("simulator");
    let truth = tokio::task::block_in_place(|| server.truth());
    let last_page: Vec<u64> = truth
        .iter()
        .map(|t| t.seq)
        .filter(|s| *s > ITEMS - PAGE)
        .collect();
    assert!(
        truth.iter().map(|t| t.seq).eq(1..=ITEMS)
            && truth
                .iter()
                .filter(|t| last_page.contains(&t.seq))
                .all(|t| t.key_version == 3),
        "the corpus is not laid out as this test assumes"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let prefix = format!("chaos-crash-state-{}", std::process::id());
    let path = tmp.path().join("pipeline.toml");
    let write = |with_v3| {
        let text = config(&server.base_url(), &brokers, &prefix, &data, with_v3);
        std::fs::write(&path, text).expect("config");
    };

    // Without key 3 every v3 item is a dead letter, in the files and in the dead-letter topic.
    write(false);
    wecom_archive(&["run", "--until-caught-up"], &path);
    // The crash: the last page's lines are written, its cursor commit is not.
    let stream_dir = data.join("wwsimcorp0001/corp");
    wecom_store::CursorStore::open(&stream_dir)
        .and_then(|c| c.commit("corp", ITEMS - PAGE))
        .expect("roll the cursor back one page");
    // The operator adds the key and restarts.
    write(true);
    wecom_archive(&["run", "--until-caught-up"], &path);

    let local = counts(&read_local(&stream_dir.join("messages")).expect("local records"));
    let missing_locally: Vec<u64> = last_page
        .iter()
        .copied()
        .filter(|s| !local.contains_key(s))
        .collect();
    let kafka = counts(
        &tokio::task::block_in_place(|| read_topic(&brokers, &format!("{prefix}.messages")))
            .expect("messages topic"),
    );
    let in_kafka = last_page.iter().filter(|s| kafka.contains_key(s)).count();

    // Whatever the restart left undone, a redrive must complete without writing anything twice.
    let redrive = wecom_archive(&["redrive"], &path);
    let local_after = counts(&read_local(&stream_dir.join("messages")).expect("local records"));
    let kafka_after = counts(
        &tokio::task::block_in_place(|| read_topic(&brokers, &format!("{prefix}.messages")))
            .expect("messages topic"),
    );
    server.shutdown().await;

    let twice = |m: &std::collections::BTreeMap<u64, usize>| -> Vec<u64> {
        m.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect()
    };
    let absent = |m: &std::collections::BTreeMap<u64, usize>| -> Vec<u64> {
        (1..=ITEMS).filter(|s| !m.contains_key(s)).collect()
    };
    let mut failures = Vec::new();
    if !missing_locally.is_empty() {
        failures.push(format!(
            "after the restart with the key, {} of the last page's {} items are records in kafka ({in_kafka}) but \
             not in the local files (their dead letters were counted as already written): {:?}",
            missing_locally.len(),
            last_page.len(),
            missing_locally
        ));
    }
    for (what, seqs) in [
        (
            "twice in the messages topic after the redrive",
            twice(&kafka_after),
        ),
        (
            "twice in the local files after the redrive",
            twice(&local_after),
        ),
        (
            "missing from the messages topic after the redrive",
            absent(&kafka_after),
        ),
        (
            "missing from the local files after the redrive",
            absent(&local_after),
        ),
    ] {
        if !seqs.is_empty() {
            failures.push(format!("{} seqs {what}: {seqs:?}", seqs.len()));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(redrive said {})",
        failures.join("\n"),
        redrive.trim()
    );
}
