//! Media streaming bench: one huge simulated video (`WECOM_BENCH_MEDIA_BYTES`, default 1 GiB)
//! streamed by the media worker from the in-process simulator into local storage and, when
//! `WECOM_TEST_S3_ENDPOINT` is set (`scripts/test-services.sh start`), into S3. Prints throughput
//! and the process's peak RSS (`VmHWM`) after each. The simulator runs in this process, so the
//! peak covers both sides of the stream.
//!
//! Run: `/usr/bin/time -v cargo bench -p wecom-media --bench media_stream`

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use wecom_api::{ArchiveClient, ClientConfig, Secret};
use wecom_media::{MediaConfig, MediaStoreConfig, MediaWorker};
use wecom_model::{media_object_key, MediaRef, MediaStatus};
use wecom_store::{LineKind, LocalSink, OutputLine, SinkOptions, StreamLayout};

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let bytes: u64 = std::env::var("WECOM_BENCH_MEDIA_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(bytes));
}

async fn bench(bytes: u64) {
    let config = wecom_sim::SimConfig {
        messages: 50,
        media: wecom_sim::MediaConfig {
            max_bytes: 64 * 1024,
            big_every: 0,
            huge_media: vec![bytes],
        },
        ..wecom_sim::SimConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let sim = wecom_sim::start(config.clone(), addr)
        .await
        .expect("simulator");
    // Hashes the huge file once (CPU work): off the async workers.
    let truth = tokio::task::block_in_place(|| sim.truth());
    let (seq, msgid, media) = truth
        .iter()
        .find_map(|i| {
            i.media
                .iter()
                .find(|m| m.size == bytes)
                .map(|m| (i.seq, i.msgid.clone(), m.clone()))
        })
        .expect("the simulator serves the huge media");
    println!(
        "media_stream: one video of {bytes} bytes ({:.0} MiB), peak RSS before streaming {:.1} MiB",
        bytes as f64 / MIB,
        vm_hwm_kib() as f64 / 1024.0
    );

    let mut mref = MediaRef {
        kind: "video".to_owned(),
        sdkfileid: media.sdkfileid.clone(),
        md5sum: Some(media.md5.clone()),
        size: Some(media.size),
        fileext: Some("mp4".to_owned()),
        object_key: None,
        status: Some(MediaStatus::Pending),
    };
    mref.object_key = Some(media_object_key(&config.corp_id, &mref));
    let record = serde_json::json!({
        "schema": wecom_model::MESSAGE_SCHEMA_ID,
        "corp_id": config.corp_id,
        "stream": "corp",
        "seq": seq,
        "msgid": msgid,
        "msgtime_ms": null,
        "media": [mref],
    });
    let line = OutputLine {
        kind: LineKind::Record,
        seq,
        json: serde_json::to_vec(&record).expect("json"),
    };
    let client = ArchiveClient::new(ClientConfig::new(
        sim.base_url(),
        config.corp_id.clone(),
        Secret::new(config.corp_secret.clone()),
    ))
    .expect("client");

    let mut targets: Vec<(&str, MediaStoreConfig)> = vec![("local", MediaStoreConfig::default())];
    match std::env::var("WECOM_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let bucket = format!("wecom-media-bench-{}", std::process::id());
            let resp = reqwest::Client::new()
                .put(format!("{endpoint}/{bucket}"))
                .send()
                .await
                .expect("S3 endpoint answers");
            assert!(
                resp.status().is_success(),
                "create bucket: {}",
                resp.status()
            );
            let store: MediaStoreConfig = toml::from_str(&format!(
                "kind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n\
                 allow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
            ))
            .expect("s3 config");
            targets.push(("s3", store));
        }
        Err(_) => println!("media_stream: WECOM_TEST_S3_ENDPOINT not set, skipping S3"),
    }

    for (name, store_config) in targets {
        let data = tempfile::tempdir().expect("tempdir");
        write_record(data.path(), &line);
        let mc = MediaConfig {
            concurrency: 1,
            store: store_config,
            ..MediaConfig::default()
        };
        let store = mc.build_store(data.path()).expect("store");
        let worker = MediaWorker::new(
            mc.worker_config().expect("config"),
            store,
            client.clone(),
            StreamLayout::at(data.path(), "corp"),
        )
        .expect("worker");
        let start = Instant::now();
        let stats = worker.run_until_caught_up().await.expect("worker run");
        let took = start.elapsed();
        assert_eq!(stats.objects_stored_total, 1, "{name}: {stats:?}");
        assert_eq!(stats.bytes_stored_total, bytes);
        println!(
            "media_stream/{name}: {:.0} MiB in {:.2} s = {:.1} MiB/s; resumes {}, retries {}; \
             process peak RSS (VmHWM) {:.1} MiB",
            bytes as f64 / MIB,
            took.as_secs_f64(),
            bytes as f64 / MIB / took.as_secs_f64().max(1e-9),
            stats.resumes_total,
            stats.retries_total,
            vm_hwm_kib() as f64 / 1024.0
        );
    }
    tokio::time::timeout(Duration::from_secs(10), sim.shutdown())
        .await
        .ok();
}

fn write_record(data: &Path, line: &OutputLine) {
    let mut sink = LocalSink::open(data, SinkOptions::default()).expect("sink");
    sink.recover(0).expect("recover");
    sink.write_batch(std::slice::from_ref(line)).expect("write");
}

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
