//! The media worker as `wecom-archive run` starts it (`[media]`): beside the pipeline, on the same HTTP
//! client, through the simulator's media faults. Every attachment of the corpus ends up stored once with the
//! simulator's exact bytes (md5 and size), media nested in chatrecord / mixed items included.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use md5::{Digest, Md5};
use wecom_sim::{Fate, FaultConfig, SimConfig};

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wecom_media::{MediaEvent, MediaEventStatus, MediaWorker};
use wecom_sim::TruthItem;

use crate::kafka::{consume_all, header, kafka_section, unique};
use crate::support::{assert_conserved, read_output, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_media_stores_every_attachment_with_the_served_bytes() {
    let cfg = SimConfig {
        seed: 53,
        messages: 600,
        faults: FaultConfig {
            media_truncate: 0.1,
            media_reset: 0.1,
            media_5xx: 0.1,
            media_md5_mismatch: 0.1,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let server = wecom_sim::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let media = "\n[media]\nconcurrency = 4\nmax_attempts = 10\ninitial_backoff_ms = 10\nmax_backoff_ms = 200\n";
    let path = write_config(tmp.path(), &server.base_url(), &data, media);
    let status = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["run", "--until-caught-up", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "run exited with {status}");

    let truth = server.truth();
    assert_conserved(&truth, &read_output(&data));
    let events =
        wecom_media::read_events(&data.join("wwsimcorp0001/corp/media-events")).expect("events");
    let checked = assert_stored(&truth, &events, &data.join("objects"));
    assert!(checked > 50, "only {checked} media objects in the corpus");

    // `status` shows the media side: nothing pending, every object stored, the bytes they hold.
    let v = crate::support::status_json(&path);
    let media = &v["streams"][0]["media"];
    let stored = events
        .iter()
        .filter(|e| e.status == MediaEventStatus::Stored)
        .count() as u64;
    assert_eq!(media["objects_stored"].as_u64(), Some(stored), "{v}");
    assert_eq!(media["objects_failed"].as_u64(), Some(0), "{v}");
    assert_eq!(media["backlog"].as_u64(), Some(0), "{v}");
    let bytes: u64 = crate::support::files_under(&data.join("objects"))
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    assert!(
        media["bytes_stored"]
            .as_u64()
            .is_some_and(|b| b > 0 && b <= bytes),
        "{v}: {bytes} bytes under objects/"
    );
    server.shutdown().await;
}

/// No failed event, and every media reference of an ok item has a stored event whose object under `objects`
/// has the simulator's md5 and size. Returns the references checked.
fn assert_stored(truth: &[TruthItem], events: &[MediaEvent], objects: &Path) -> usize {
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for e in events {
        assert_ne!(
            e.status,
            MediaEventStatus::Failed,
            "media {} failed: {:?}",
            e.sdkfileid,
            e.reason
        );
        stored.insert(e.sdkfileid.clone(), e.object_key.clone());
    }
    let mut checked = 0;
    for t in truth.iter().filter(|t| t.fate == Fate::Ok) {
        for m in &t.media {
            let key = stored
                .get(&m.sdkfileid)
                .unwrap_or_else(|| panic!("no media event for {} of seq {}", m.sdkfileid, t.seq));
            let mut file = std::fs::File::open(objects.join(key))
                .unwrap_or_else(|e| panic!("object {key} of seq {}: {e}", t.seq));
            let (mut hasher, mut size, mut buf) = (Md5::new(), 0u64, vec![0u8; 1 << 16]);
            loop {
                let n = file.read(&mut buf).expect("read object");
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            assert_eq!(size, m.size, "size of {key}");
            assert_eq!(hex::encode(hasher.finalize()), m.md5, "md5 of {key}");
            checked += 1;
        }
    }
    checked
}

/// Media references of the ok items: (seq, sdkfileid).
fn truth_refs(truth: &[TruthItem]) -> Vec<(u64, String)> {
    truth
        .iter()
        .filter(|t| t.fate == Fate::Ok)
        .flat_map(|t| t.media.iter().map(move |m| (t.seq, m.sdkfileid.clone())))
        .collect()
}

fn media_faults() -> FaultConfig {
    FaultConfig {
        media_truncate: 0.05,
        media_reset: 0.05,
        media_5xx: 0.05,
        media_md5_mismatch: 0.05,
        ..FaultConfig::default()
    }
}

fn with_sink_kind(path: &Path, kind: &str) {
    let text = std::fs::read_to_string(path)
        .expect("config")
        .replace("[sink]", &format!("[sink]\nkind = \"{kind}\""));
    std::fs::write(path, text).expect("config");
}

/// tansu answers a fetch at an offset inside a record batch with the batches after it, so a consumer that
/// resumes from a committed offset in the middle of a batch would never see the rest of that batch (real
/// Kafka returns the whole batch and the client skips the records before the offset). One record per
/// batch keeps every committed offset on a batch boundary in the consumer-group tests.
const ONE_RECORD_PER_BATCH: &str = "\n[kafka.properties]\n\"batch.num.messages\" = \"1\"\n";

const MEDIA_SECTION: &str = "\n[media]\nconcurrency = 4\nmax_attempts = 10\ninitial_backoff_ms = 10\nmax_backoff_ms = 200\npoll_interval_ms = 200\n";

/// `sink.kind = "both"`: the worker follows the local records and publishes every media event to the media
/// topic too, keyed and with the headers of the other topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_events_are_published_to_kafka_with_sink_both() {
    let server = wecom_sim::start(
        SimConfig {
            seed: 71,
            messages: 300,
            faults: media_faults(),
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let prefix = unique("media-both");
    let extra = format!("{}{MEDIA_SECTION}", kafka_section(&prefix));
    let path = write_config(tmp.path(), &server.base_url(), &data, &extra);
    with_sink_kind(&path, "both");
    let status = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["run", "--until-caught-up", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "run exited with {status}");

    let truth = server.truth();
    let refs = truth_refs(&truth);
    assert!(refs.len() > 20, "only {} media references", refs.len());
    let local =
        wecom_media::read_events(&data.join("wwsimcorp0001/corp/media-events")).expect("events");
    assert_stored(&truth, &local, &data.join("objects"));

    let msgs = consume_all(&format!("{prefix}.media"), refs.len()).await;
    assert_eq!(msgs.len(), local.len(), "kafka media events vs local ones");
    let mut stored: BTreeMap<(u64, String), u32> = BTreeMap::new();
    for m in &msgs {
        use rdkafka::Message;
        let e: MediaEvent = serde_json::from_slice(m.payload().expect("payload")).expect("event");
        assert_eq!(e.status, MediaEventStatus::Stored, "{e:?}");
        assert_eq!(header(m, "schema"), Some("wecom-archive.media.v1"));
        assert_eq!(header(m, "corp_id"), Some("wwsimcorp0001"));
        assert_eq!(header(m, "stream"), Some("corp"));
        assert_eq!(header(m, "msgid"), Some(e.msgid.as_str()));
        assert_eq!(header(m, "seq"), Some(e.seq.to_string().as_str()));
        assert!(
            !m.key().unwrap_or_default().is_empty(),
            "unkeyed media event"
        );
        *stored.entry((e.seq, e.sdkfileid)).or_default() += 1;
    }
    for r in &refs {
        assert_eq!(stored.get(r), Some(&1), "stored events in kafka for {r:?}");
    }
    assert_eq!(
        stored.len(),
        refs.len(),
        "events for media the truth does not have"
    );
    server.shutdown().await;
}

/// `sink.kind = "kafka"`: no local records, so the worker beside the pipeline consumes the messages topic in
/// its consumer group and stores every attachment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_worker_consumes_the_messages_topic_with_sink_kafka() {
    let server = wecom_sim::start(
        SimConfig {
            seed: 73,
            messages: 300,
            faults: media_faults(),
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let prefix = unique("media-kafka");
    let extra = format!(
        "{}{ONE_RECORD_PER_BATCH}{MEDIA_SECTION}kafka_group_id = \"{}\"\n",
        kafka_section(&prefix),
        unique("media-group")
    );
    let path = write_config(tmp.path(), &server.base_url(), &data, &extra);
    with_sink_kind(&path, "kafka");
    let status = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["run", "--until-caught-up", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "run exited with {status}");
    let truth = server.truth();
    let events =
        wecom_media::read_events(&data.join("wwsimcorp0001/corp/media-events")).expect("events");
    let checked = assert_stored(&truth, &events, &data.join("objects"));
    assert_eq!(checked, truth_refs(&truth).len());
    assert!(checked > 20, "only {checked} media references");
    server.shutdown().await;
}

/// Two workers of one consumer group share the messages topic: the second joins mid-way, every media
/// reference gets a stored event, duplicates are bounded by the jobs in flight at the rebalances, and a third
/// worker started afterwards finds every offset committed (nothing redone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_one_group_share_the_messages_topic() {
    let server = wecom_sim::start(
        SimConfig {
            seed: 79,
            messages: 600,
            faults: media_faults(),
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = unique("media-group");
    let path = write_config(
        tmp.path(),
        &server.base_url(),
        &tmp.path().join("data"),
        &format!("{}{ONE_RECORD_PER_BATCH}", kafka_section(&prefix)),
    );
    with_sink_kind(&path, "kafka");
    let cfg = wecom_pipeline::Config::load(&path).expect("config");
    let source = wecom_pipeline::Source::connect(&cfg).await.expect("source");
    let opts = wecom_pipeline::RunOptions {
        stream: wecom_pipeline::StreamSel::Corp,
        follow: false,
        progress: false,
    };
    let summary = wecom_pipeline::run(&cfg, &source, &opts, CancellationToken::new())
        .await
        .expect("pipeline run");
    let truth = server.truth();
    eprintln!(
        "pipeline: {} records {} dead letters; truth {} items, {} ok",
        summary.records,
        summary.dead_letters,
        truth.len(),
        truth.iter().filter(|t| t.fate == Fate::Ok).count()
    );
    let refs = truth_refs(&truth);
    // slow media downloads, so the first worker is still busy when the second one joins
    server.set_faults(FaultConfig {
        slow_response: 1.0,
        slow_ms: 150,
        ..media_faults()
    });

    let kcfg = cfg.kafka.clone().expect("[kafka]");
    let group = unique("media-workers");
    const CONCURRENCY: usize = 2;
    let objects = tmp.path().join("objects");
    let worker = |name: &str| {
        let mc = wecom_media::MediaConfig {
            concurrency: CONCURRENCY,
            max_attempts: 10,
            initial_backoff_ms: 10,
            max_backoff_ms: 200,
            poll_interval_ms: 200,
            fsync: false,
            store: wecom_media::MediaStoreConfig::Local {
                root: Some(objects.clone()),
                prefix: String::new(),
            },
            ..wecom_media::MediaConfig::default()
        };
        let store = mc.build_store(tmp.path()).expect("store");
        MediaWorker::new(
            mc.worker_config().expect("media config"),
            store,
            source.client.clone(),
            wecom_store::StreamLayout::at(tmp.path().join(name), "corp"),
        )
        .expect("worker")
        .with_kafka_records(kcfg.clone(), group.clone())
    };
    let events_of = |name: &str| {
        wecom_media::read_events(&tmp.path().join(name).join("media-events")).expect("events")
    };

    let (a, b) = (worker("a"), worker("b"));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let run_a = {
        let (a, s) = (a.clone(), stop_a.clone());
        tokio::spawn(async move { a.run(s).await })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while a.stats().objects_stored_total < 3 {
        assert!(Instant::now() < deadline, "worker a stored nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run_b = {
        let (b, s) = (b.clone(), stop_b.clone());
        tokio::spawn(async move { b.run(s).await })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let want: std::collections::BTreeSet<(u64, String)> = refs.iter().cloned().collect();
    loop {
        let have: std::collections::BTreeSet<(u64, String)> = events_of("a")
            .into_iter()
            .chain(events_of("b"))
            .map(|e| (e.seq, e.sdkfileid))
            .collect();
        if want.is_subset(&have) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} media references have an event; missing {:?}; a {:?} pending {}; b {:?} pending {}",
            want.intersection(&have).count(),
            want.len(),
            want.difference(&have).collect::<Vec<_>>(),
            a.stats(),
            a.pending_jobs(),
            b.stats(),
            b.pending_jobs(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // let the last acknowledgements land, then stop both (final synchronous commits)
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_b.cancel();
    stop_a.cancel();
    run_a.await.expect("join a").expect("worker a");
    run_b.await.expect("join b").expect("worker b");

    let (ea, eb) = (events_of("a"), events_of("b"));
    let all: Vec<MediaEvent> = ea.iter().chain(eb.iter()).cloned().collect();
    let checked = assert_stored(&truth, &all, &objects);
    assert_eq!(checked, refs.len());
    let mut count: BTreeMap<(u64, String), u32> = BTreeMap::new();
    for e in &all {
        *count.entry((e.seq, e.sdkfileid.clone())).or_default() += 1;
    }
    assert_eq!(
        count.len(),
        refs.len(),
        "events for media the truth does not have"
    );
    let duplicates = all.len() - refs.len();
    eprintln!(
        "media group: {} references, worker a {} events, worker b {} events, {duplicates} duplicates",
        refs.len(),
        ea.len(),
        eb.len()
    );
    assert!(!ea.is_empty() && !eb.is_empty(), "the load was not shared");
    // at-least-once: only jobs in flight when a partition moved may be done twice (b's join, and the stops)
    assert!(
        duplicates <= 3 * CONCURRENCY,
        "{duplicates} duplicate events (more than the jobs in flight at the rebalances)"
    );

    // a restart of the group resumes from the committed offsets: nothing left to do
    let c = worker("c");
    let stats = c.run_until_caught_up().await.expect("worker c");
    assert_eq!(stats.records_read_total, 0, "worker c re-read records");
    assert!(events_of("c").is_empty());
    source.shutdown().await;
    server.shutdown().await;
}
