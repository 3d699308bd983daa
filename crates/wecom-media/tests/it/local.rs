//! Local disk (`LocalFileSystem`): one uninterrupted run, and a run killed mid-way while tailing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wecom_media::{read_events, read_status, MediaEventStatus, MediaRunState, MediaSourceKind};
use wecom_model::{MediaRef, Record};
use wecom_store::{LineKind, OutputLine};

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
        read_events(&layout(data.path()).media_events_dir())
            .unwrap()
            .len(),
        media_refs(&lines)
    );

    let status = read_status(&layout(data.path()))
        .unwrap()
        .expect("the worker wrote its status");
    assert_eq!(status.source, MediaSourceKind::Files);
    assert_eq!(status.state, MediaRunState::Stopped);
    assert_eq!(
        (
            status.records_pending,
            status.media_pending,
            status.unread_bytes
        ),
        (0, 0, Some(0))
    );
    assert_eq!(status.committed_seq, Some(next));
    assert_eq!(status.stats, stats);
    assert_eq!(status.last_error, None);

    // Idempotent: a second worker from scratch (position removed) stores nothing new.
    std::fs::remove_file(
        layout(data.path())
            .media_cursors_dir()
            .join(wecom_media::POSITION_FILE),
    )
    .unwrap();
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
    let events_dir = layout(data.path()).media_events_dir();
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
    let status = read_status(&layout(data.path())).unwrap().expect("status");
    assert_eq!(status.state, MediaRunState::Running);
    assert!(status.unread_bytes.is_some());
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

/// An object the archive refuses for good becomes a `failed` event naming it, the status says
/// which, and the position still passes its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_object_is_a_failed_event_and_the_status_names_it() {
    let config = sim_config(40);
    let sim = start_sim(config.clone()).await;
    let lines = fetch_records(&sim, &config).await;
    let src = lines
        .iter()
        .find(|l| {
            !serde_json::from_slice::<Record>(&l.json)
                .unwrap()
                .media
                .is_empty()
        })
        .expect("a record with media");
    let mut r: Record = serde_json::from_slice(&src.json).unwrap();
    r.seq = lines.iter().map(|l| l.seq).max().unwrap() + 1;
    r.media = vec![MediaRef {
        kind: "file".into(),
        sdkfileid: "no-such-file".into(),
        md5sum: None,
        size: Some(10),
        fileext: Some("bin".into()),
        object_key: Some("media/x/no-such-file.bin".into()),
        status: None,
    }];
    let data = tempfile::tempdir().unwrap();
    write_records(
        data.path(),
        &[OutputLine {
            kind: LineKind::Record,
            seq: r.seq,
            json: serde_json::to_vec(&r).unwrap(),
        }],
    );
    let mc = media_config(1024 * 1024);
    let store = mc.build_store(data.path()).unwrap();
    let w = worker(data.path(), &mc, store, client(&sim, &config));
    let stats = w.run_until_caught_up().await.unwrap();
    assert_eq!(stats.objects_failed_total, 1, "{stats:?}");
    let events = read_events(&layout(data.path()).media_events_dir()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, MediaEventStatus::Failed);
    assert!(events[0].errcode.is_some(), "{:?}", events[0]);
    let status = read_status(&layout(data.path())).unwrap().unwrap();
    let last = status.last_error.expect("last error");
    assert_eq!(last.seq, Some(r.seq));
    assert!(
        last.message.contains("no-such-file") && last.message.contains("media/x/no-such-file.bin"),
        "{}",
        last.message
    );
    assert_eq!(w.committed_seq().unwrap(), Some(r.seq));
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
