//! S3 through a real S3-compatible server (moto). `scripts/test-services.sh start` starts it and
//! exports `WECOM_TEST_S3_ENDPOINT`; without it this test is skipped with a note (CI sets it).

use futures::TryStreamExt;
use wecom_media::{read_events, MediaStoreConfig};

use crate::common::*;

fn endpoint() -> Option<String> {
    let endpoint = std::env::var("WECOM_TEST_S3_ENDPOINT").ok();
    if endpoint.is_none() {
        eprintln!(
            "skipped: WECOM_TEST_S3_ENDPOINT is not set (run `eval \"$(scripts/test-services.sh start)\"` \
             first: it starts moto_server on loopback)"
        );
    }
    endpoint
}

async fn create_bucket(endpoint: &str, bucket: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("the S3 server at WECOM_TEST_S3_ENDPOINT answers");
    assert!(
        resp.status().is_success(),
        "creating bucket {bucket}: {}",
        resp.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_gets_every_media_object_intact_despite_faults() {
    let Some(endpoint) = endpoint() else {
        return;
    };
    let bucket = format!("wecom-media-it-{}", std::process::id());
    create_bucket(&endpoint, &bucket).await;

    let mut config = sim_config(400);
    // A few objects larger than one 5 MiB part, so multipart uploads with several parts are used.
    config.media.max_bytes = 12 * 1024 * 1024;
    config.media.big_every = 30;
    let sim = start_sim(config.clone()).await;
    let mut lines = fetch_records(&sim, &config).await;
    let next = lines.iter().map(|l| l.seq).max().unwrap() + 1;
    lines.push(duplicate_of(&lines, next));
    let data = tempfile::tempdir().unwrap();
    write_records(data.path(), &lines);

    let mut mc = media_config(wecom_media::S3_MIN_PART_SIZE);
    mc.store = toml::from_str::<MediaStoreConfig>(&format!(
        "kind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nallow_http = true\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\nprefix = \"archive\"\n"
    ))
    .unwrap();
    let store = mc.build_store(data.path()).unwrap();
    assert_eq!(store.prefix(), "archive/");
    let w = worker(data.path(), &mc, store.clone(), client(&sim, &config));
    let stats = w.run_until_caught_up().await.unwrap();

    assert_eq!(stats.objects_failed_total, 0);
    assert!(
        stats.resumes_total > 0 && stats.verify_failures_total > 0,
        "{stats:?}"
    );
    assert_faults_injected(&sim);
    verify(data.path(), &sim, &store, &lines, Events::ExactlyOnce).await;
    assert_eq!(
        read_events(&layout(data.path()).media_events_dir())
            .unwrap()
            .len(),
        media_refs(&lines)
    );
    let events = read_events(&layout(data.path()).media_events_dir()).unwrap();
    assert!(events.iter().all(|e| e
        .location
        .as_deref()
        .unwrap()
        .starts_with(&format!("s3://{bucket}/archive/media/"))));
    // At least one object spans several parts.
    let os = store.object_store();
    let sizes: Vec<u64> = os
        .list(None)
        .map_ok(|m| m.size)
        .try_collect()
        .await
        .unwrap();
    assert!(
        sizes
            .iter()
            .any(|s| *s > wecom_media::S3_MIN_PART_SIZE as u64),
        "no multi-part object: {sizes:?}"
    );
    sim.shutdown().await;
}
