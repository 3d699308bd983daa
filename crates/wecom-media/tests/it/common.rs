//! Shared helpers: a simulator with media faults, record segments written the way the pipeline
//! writes them, and the conservation check against the simulator's ground truth.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::TryStreamExt;
use md5::{Digest, Md5};
use object_store::ObjectStoreExt;
use wecom_api::{ArchiveClient, ClientConfig, RetryPolicy, Secret};
use wecom_crypto::{Keyring, MessageCipher, RsaBackendKind, SimCipher};
use wecom_media::{
    read_events, MediaConfig, MediaEvent, MediaEventStatus, MediaStore, MediaWorker,
};
use wecom_model::{NormalizeContext, Record};
use wecom_sim::{Fate, FaultConfig, SimConfig, SimServer, TruthItem};
use wecom_store::{LineKind, LocalSink, OutputLine, SinkOptions, StreamLayout};

pub const FAULT_RATE: f64 = 0.2;

/// A corpus with a few hundred media files, some MiB-sized, and every media fault at 20 %.
pub fn sim_config(messages: u64) -> SimConfig {
    let mut c = SimConfig {
        seed: 4,
        messages,
        ..SimConfig::default()
    };
    c.media.max_bytes = 3 * 1024 * 1024;
    c.media.big_every = 8;
    c.faults = FaultConfig {
        media_truncate: FAULT_RATE,
        media_reset: FAULT_RATE,
        media_5xx: FAULT_RATE,
        media_md5_mismatch: FAULT_RATE,
        ..FaultConfig::default()
    };
    c
}

pub async fn start_sim(config: SimConfig) -> SimServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    wecom_sim::start(config, addr)
        .await
        .expect("simulator starts")
}

pub fn client(sim: &SimServer, config: &SimConfig) -> ArchiveClient {
    let mut c = ClientConfig::new(
        sim.base_url(),
        config.corp_id.clone(),
        Secret::new(config.corp_secret.clone()),
    );
    c.retry = RetryPolicy {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(100),
        multiplier: 2.0,
        rate_limited_backoff: Duration::from_millis(100),
    };
    c.request_timeout = Duration::from_secs(20);
    ArchiveClient::new(c).expect("client")
}

/// Worker settings for tests: fast backoff, enough attempts that the 20 % faults practically never make an
/// object fail for good (the chance is below 1e-5 per object).
pub fn media_config(part_size: usize) -> MediaConfig {
    MediaConfig {
        concurrency: 4,
        part_size_bytes: part_size,
        max_attempts: 10,
        max_stalled_resumes: 12,
        initial_backoff_ms: 5,
        max_backoff_ms: 100,
        poll_interval_ms: 50,
        ..MediaConfig::default()
    }
}

/// Walks the simulator's corp stream with a plain loop and returns the record lines the pipeline
/// would write (decrypt with the repository's sim keys, parse, normalize).
pub async fn fetch_records(sim: &SimServer, config: &SimConfig) -> Vec<OutputLine> {
    let client = client(sim, config);
    let mut keyring = Keyring::new(RsaBackendKind::default());
    for k in &config.keys {
        keyring
            .load_pem_file(k.version, &k.pem_path)
            .expect("sim key");
    }
    let mut items = Vec::new();
    let mut seq = 0;
    loop {
        let page = client
            .get_chat_data(seq, 1000)
            .await
            .expect("get_chat_data");
        let Some(last) = page.iter().map(|i| i.seq).max() else {
            break;
        };
        seq = last;
        items.extend(page);
    }
    let corp_id = config.corp_id.clone();
    tokio::task::spawn_blocking(move || {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for item in items {
            if !seen.insert(item.seq) {
                continue;
            }
            let Ok(key) = keyring.unwrap_random_key(item.publickey_ver, &item.encrypt_random_key)
            else {
                continue;
            };
            let Ok(plain) = SimCipher.decrypt(&key, &item.encrypt_chat_msg) else {
                continue;
            };
            let msg = wecom_model::parse_message(&plain).expect("sim message parses");
            let ctx = NormalizeContext {
                corp_id: &corp_id,
                stream: "corp",
                seq: item.seq,
                key_version: item.publickey_ver,
            };
            let record = wecom_model::normalize(&ctx, &msg);
            out.push(OutputLine {
                kind: LineKind::Record,
                seq: item.seq,
                json: serde_json::to_vec(&record).unwrap(),
            });
        }
        out
    })
    .await
    .unwrap()
}

/// Appends record lines to `<data>/messages` through the pipeline's sink (small segments, so the
/// worker crosses segment boundaries).
pub fn write_records(data: &Path, lines: &[OutputLine]) {
    let mut sink = LocalSink::open(
        data,
        SinkOptions {
            segment_max_bytes: 64 * 1024,
            fsync: false,
        },
    )
    .unwrap();
    sink.recover(0).unwrap();
    for chunk in lines.chunks(50) {
        sink.write_batch(chunk).unwrap();
    }
}

/// A copy of a record with media under a new seq and msgid: identical media sent twice.
pub fn duplicate_of(lines: &[OutputLine], new_seq: u64) -> OutputLine {
    let src = lines
        .iter()
        .find(|l| {
            serde_json::from_slice::<Record>(&l.json)
                .unwrap()
                .media
                .len()
                == 1
        })
        .expect("a record with one media reference");
    let mut r: Record = serde_json::from_slice(&src.json).unwrap();
    r.seq = new_seq;
    r.msgid = format!("{}-dup", r.msgid);
    OutputLine {
        kind: LineKind::Record,
        seq: new_seq,
        json: serde_json::to_vec(&r).unwrap(),
    }
}

pub fn media_refs(lines: &[OutputLine]) -> usize {
    lines
        .iter()
        .map(|l| {
            serde_json::from_slice::<Record>(&l.json)
                .unwrap()
                .media
                .len()
        })
        .sum()
}

pub fn worker(
    data: &Path,
    config: &MediaConfig,
    store: MediaStore,
    client: ArchiveClient,
) -> MediaWorker {
    MediaWorker::new(config.worker_config().unwrap(), store, client, layout(data)).unwrap()
}

/// The corp stream whose directory is `data` (as the pipeline lays it out).
pub fn layout(data: &Path) -> StreamLayout {
    StreamLayout::at(data, "corp")
}

/// How strict the event count check is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// One event per media reference (an uninterrupted run).
    ExactlyOnce,
    /// At least one, all agreeing (a run that was killed and restarted).
    AtLeastOnce,
}

/// The conservation check: every media reference of every ok-fate item of the truth has a
/// terminal event; each stored object, read back, has exactly the truth's md5 and size; nothing
/// else (no partial object) is in the store; the worker's position reached the end.
pub async fn verify(
    data: &Path,
    sim: &SimServer,
    store: &MediaStore,
    lines: &[OutputLine],
    events_mode: Events,
) {
    verify_media(data, sim, store, lines, events_mode).await;
    // The position reached the last record.
    let max_seq = lines.iter().map(|l| l.seq).max();
    let cursor = wecom_store::CursorStore::open(&layout(data).media_cursors_dir())
        .unwrap()
        .load("media")
        .unwrap();
    assert_eq!(cursor.map(|c| c.seq), max_seq);
}

/// [`verify`] without the file position (a worker that consumes Kafka has none).
pub async fn verify_media(
    data: &Path,
    sim: &SimServer,
    store: &MediaStore,
    lines: &[OutputLine],
    events_mode: Events,
) {
    let truth: Vec<TruthItem> = tokio::task::block_in_place(|| sim.truth());
    let records: BTreeMap<u64, Record> = lines
        .iter()
        .map(|l| {
            let r: Record = serde_json::from_slice(&l.json).unwrap();
            (r.seq, r)
        })
        .collect();
    let events = read_events(&layout(data).media_events_dir()).unwrap();
    let mut by_ref: BTreeMap<(u64, String), Vec<&MediaEvent>> = BTreeMap::new();
    for e in &events {
        by_ref
            .entry((e.seq, e.sdkfileid.clone()))
            .or_default()
            .push(e);
    }

    // Truth -> records -> events.
    let mut expected_keys: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut checked = 0;
    for item in truth.iter().filter(|i| i.fate == Fate::Ok) {
        let record = records
            .get(&item.seq)
            .unwrap_or_else(|| panic!("seq {} missing from the records", item.seq));
        assert_eq!(
            record.media.len(),
            item.media.len(),
            "media refs of seq {}",
            item.seq
        );
        for tm in &item.media {
            let r = record
                .media
                .iter()
                .find(|m| m.sdkfileid == tm.sdkfileid)
                .expect("media ref in record");
            let key = r.object_key.clone().unwrap();
            let evs = by_ref
                .get(&(item.seq, tm.sdkfileid.clone()))
                .unwrap_or_else(|| panic!("no media event for seq {} ({})", item.seq, key));
            if events_mode == Events::ExactlyOnce {
                assert_eq!(evs.len(), 1, "events for seq {} ({key})", item.seq);
            }
            for e in evs {
                // With 20 % faults and 10 attempts nothing may fail for good here: there is no
                // expired or unknown media in this corpus, so any failure is a bug.
                assert_eq!(
                    e.status,
                    MediaEventStatus::Stored,
                    "seq {} failed: {:?}",
                    item.seq,
                    e.reason
                );
                assert_eq!(e.object_key, key);
                assert_eq!(e.size, Some(tm.size));
                // The md5 of the bytes stored; only an "already stored" event of md5-less media
                // has none (it was verified when it was stored).
                if e.md5.is_some() || !e.already_stored || tm.md5_in_message {
                    assert_eq!(
                        e.md5.as_deref(),
                        Some(tm.md5.as_str()),
                        "seq {} ({key})",
                        item.seq
                    );
                }
                assert!(
                    e.location.as_deref().is_some_and(|l| l.ends_with(&key)),
                    "{:?}",
                    e.location
                );
            }
            if let Some((md5, size)) = expected_keys.insert(key.clone(), (tm.md5.clone(), tm.size))
            {
                assert_eq!(
                    (md5.as_str(), size),
                    (tm.md5.as_str(), tm.size),
                    "one key, two contents: {key}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 100,
        "only {checked} media checked: the corpus is too small to mean anything"
    );
    // Every event belongs to a record's media reference (duplicates included).
    for e in &events {
        let r = records
            .get(&e.seq)
            .unwrap_or_else(|| panic!("event for unknown seq {}", e.seq));
        assert!(r.media.iter().any(|m| m.sdkfileid == e.sdkfileid));
        assert_eq!(e.status, MediaEventStatus::Stored, "{:?}", e.reason);
    }

    // The store holds exactly the expected objects, with the truth's bytes.
    let os = store.object_store();
    let listed: Vec<_> = os.list(None).try_collect().await.unwrap();
    let mut listed_keys = BTreeSet::new();
    for meta in listed {
        let full = meta.location.to_string();
        let key = full
            .strip_prefix(store.prefix())
            .unwrap_or_else(|| panic!("object outside the prefix: {full}"));
        let (md5, size) = expected_keys
            .get(key)
            .unwrap_or_else(|| panic!("unexpected object in the store: {full}"));
        assert_eq!(meta.size, *size, "{key}");
        let mut hasher = Md5::new();
        let mut stream = os.get(&meta.location).await.unwrap().into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.try_next().await.unwrap() {
            n += chunk.len() as u64;
            hasher.update(&chunk);
        }
        assert_eq!(n, *size, "{key}");
        assert_eq!(hex::encode(hasher.finalize()), *md5, "bytes of {key}");
        listed_keys.insert(key.to_owned());
    }
    let missing: Vec<_> = expected_keys
        .keys()
        .filter(|k| !listed_keys.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "stored events without objects: {missing:?}"
    );
}

/// Files a local store must not contain after a run: staged (partial) uploads are `name#N`.
pub fn partial_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains('#') {
                out.push(p);
            }
        }
    }
    out
}

/// The simulator really injected each media fault (otherwise the test proves little).
pub fn assert_faults_injected(sim: &SimServer) {
    let stats = sim.stats();
    for f in [
        "media_truncate",
        "media_reset",
        "media_5xx",
        "media_md5_mismatch",
    ] {
        assert!(
            stats.faults.get(f).copied().unwrap_or(0) > 0,
            "fault {f} never injected: {:?}",
            stats.faults
        );
    }
}
