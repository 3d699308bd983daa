//! Local disk (`LocalFileSystem`): one uninterrupted run, and a run killed mid-way while tailing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wecom_media::read_events;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_gets_every_media_object_intact_despite_faults() {
    let config = sim_config(500);
    let sim = start_sim(config.clone()).await;
    let mut lines = fetch_records(&sim, &config).await;
    let next = lines.iter().map(|l| l.seq).max().unwrap() + 1;
    lines.push(duplicate_of(&lines, next));
    let data = tempfile::tempdir().unwrap();
    write_records(data.path(), &lines);

    let mc = media_config(1024 * 1024);
    let store = mc.build_store(data.path()).unwrap();
    let w = worker(data.path(), &mc, store.clone(), client(&sim, &config));
    let stats = w.run_until_caught_up().await.unwrap();

    assert_eq!(stats.objects_failed_total, 0);
    assert!(
        stats.objects_skipped_total >= 1,
        "the duplicate media was stored again: {stats:?}"
    );
    assert!(
        stats.resumes_total > 0 && stats.verify_failures_total > 0,
        "{stats:?}"
    );
    assert_eq!(stats.records_read_total, lines.len() as u64);
    assert_eq!(w.oldest_pending_age(), None);
    assert_faults_injected(&sim);
    verify(data.path(), &sim, &store, &lines, Events::ExactlyOnce).await;
    assert!(partial_files(&data.path().join("objects")).is_empty());
    assert_eq!(
        read_events(&data.path().join("media-events"))
            .unwrap()
            .len(),
        media_refs(&lines)
    );

    // Idempotent: a second worker from scratch (position removed) stores nothing new.
    std::fs::remove_file(data.path().join("cursors").join(wecom_media::POSITION_FILE)).unwrap();
    let w2 = worker(data.path(), &mc, store.clone(), client(&sim, &config));
    let again = w2.run_until_caught_up().await.unwrap();
    assert_eq!(again.objects_stored_total, 0, "{again:?}");
    assert_eq!(again.objects_skipped_total, media_refs(&lines) as u64);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_resumes_and_tails_new_records() {
    let config = sim_config(400);
    let sim = start_sim(config.clone()).await;
    let lines = fetch_records(&sim, &config).await;
    let total = media_refs(&lines);
    let data = tempfile::tempdir().unwrap();
    let half = lines.len() / 2;
    write_records(data.path(), &lines[..half]);

    let mc = media_config(1024 * 1024);
    let store = mc.build_store(data.path()).unwrap();
    let events_dir = data.path().join("media-events");
    let count = || read_events(&events_dir).unwrap().len();

    // First worker: tails; the second half of the records arrives while it runs; then it is
    // dropped mid-way (no shutdown, as in a crash of its task).
    let w = worker(data.path(), &mc, store.clone(), client(&sim, &config));
    let task = tokio::spawn({
        let w = w.clone();
        async move { w.run(CancellationToken::new()).await }
    });
    wait_for(|| count() >= media_refs(&lines[..half]) / 3).await;
    write_records(data.path(), &lines[half..]);
    wait_for(|| count() >= total * 2 / 3).await;
    assert!(
        count() < total,
        "the worker finished before it could be killed"
    );
    task.abort();
    let _ = task.await;
    let committed = w.committed_seq().unwrap();
    assert!(committed.is_some(), "nothing committed before the kill");

    // Second worker: resumes after the committed position and completes the job.
    let w2 = worker(data.path(), &mc, store.clone(), client(&sim, &config));
    let stats = w2.run_until_caught_up().await.unwrap();
    assert!(
        stats.records_read_total < lines.len() as u64,
        "the restart read everything again: {stats:?}"
    );
    verify(data.path(), &sim, &store, &lines, Events::AtLeastOnce).await;

    // A graceful shutdown of a tailing worker returns promptly and commits.
    let w3 = worker(data.path(), &mc, store.clone(), client(&sim, &config));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (w3, stop) = (w3.clone(), stop.clone());
        async move { w3.run(stop).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(partial_files(&data.path().join("objects")).is_empty());
    sim.shutdown().await;
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for media events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
