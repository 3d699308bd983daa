//! End to end through the real code path (worker process, pool, cipher, gateway) with the stand-in
//! library, which implements the SDK's C interface over the simulator's HTTP contract and cipher.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use wecom_api::{ArchiveClient, ClientConfig, ErrorClass, Secret};
use wecom_crypto::{CipherFailure, CryptoError, Keyring, MessageCipher as _, RsaBackendKind};
use wecom_model::api::ChatDataItem;
use wecom_sdk::{
    start_gateway, GatewayConfig, SdkCipher, SdkError, SdkErrorClass, SdkPool, MEDIA_CHUNK_BYTES,
};
use wecom_sim::{Fate, SimConfig, SimServer, TruthItem, TruthMedia};

use crate::common::{pool_config, standin_lib};

const BEARER: &str = "gateway-bearer-token";

struct Env {
    sim: SimServer,
    truth: Vec<TruthItem>,
    pool: SdkPool,
    corp_id: String,
}

fn sim_config() -> SimConfig {
    let mut cfg = SimConfig::default();
    // Per-item faults: a few undecryptable items and a few of a key version the keyring lacks.
    cfg.faults.corrupt_ciphertext = 0.02;
    cfg.faults.unknown_key_version = 0.01;
    cfg
}

async fn setup(workers: usize) -> Env {
    let cfg = sim_config();
    let corp_id = cfg.corp_id.clone();
    let secret = cfg.corp_secret.clone();
    let sim = wecom_sim::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts");
    let truth = sim.truth();
    let mut pcfg = pool_config(standin_lib(), &corp_id, &secret, workers);
    pcfg.worker_env
        .push(("WECOM_STANDIN_BASE_URL".into(), sim.base_url()));
    let pool = SdkPool::start(pcfg).await.expect("pool over the stand-in");
    Env {
        sim,
        truth,
        pool,
        corp_id,
    }
}

fn keyring() -> Keyring {
    let mut k = Keyring::new(RsaBackendKind::default());
    let dir = std::path::Path::new(wecom_sim::REPO_ROOT).join("config/sim-keys");
    for v in 1..=3 {
        k.load_pem_file(v, &dir.join(format!("v{v}.pem")))
            .expect("sim key");
    }
    k
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Decrypts every item as the pipeline does with `cipher = "sdk"`: RSA unwrap with the keyring in
/// Rust, then `SdkCipher` (DecryptData in a worker) on blocking threads, item by item (`batched =
/// false`) or in chunks of 128 through `decrypt_batch`. Checks each against the truth.
async fn decrypt_and_check(
    pool: &SdkPool,
    items: Vec<ChatDataItem>,
    truth: &[TruthItem],
    batched: bool,
) {
    let cipher = SdkCipher::new(pool.clone());
    let keyring = keyring();
    let mut tasks = Vec::new();
    for chunk in items.chunks(items.len().div_ceil(4).max(1)) {
        let chunk = chunk.to_vec();
        let (cipher, keyring) = (cipher.clone(), keyring.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let keys: Vec<_> = chunk
                .iter()
                .map(|item| keyring.unwrap_random_key(item.publickey_ver, &item.encrypt_random_key))
                .collect();
            let outs: Vec<Option<Result<Vec<u8>, CryptoError>>> = if batched {
                let mut slots: Vec<_> = (0..chunk.len()).map(|_| None).collect();
                let ok: Vec<usize> = (0..chunk.len()).filter(|&i| keys[i].is_ok()).collect();
                for part in ok.chunks(128) {
                    let pairs: Vec<(&[u8], &str)> = part
                        .iter()
                        .filter_map(|&i| {
                            let key = keys[i].as_ref().ok()?;
                            Some((&key[..], chunk[i].encrypt_chat_msg.as_str()))
                        })
                        .collect();
                    for (&i, out) in part.iter().zip(cipher.decrypt_batch(&pairs)) {
                        slots[i] = Some(out);
                    }
                }
                slots
            } else {
                keys.iter()
                    .zip(&chunk)
                    .map(|(key, item)| {
                        key.as_ref()
                            .ok()
                            .map(|k| cipher.decrypt(k, &item.encrypt_chat_msg))
                    })
                    .collect()
            };
            chunk
                .into_iter()
                .zip(keys)
                .zip(outs)
                .map(|((item, key), out)| {
                    let out = match (key, out) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Some(out)) => out,
                        (Ok(_), None) => panic!("seq {}: no result", item.seq),
                    };
                    (item, out)
                })
                .collect::<Vec<_>>()
        }));
    }
    let by_seq: BTreeMap<u64, &TruthItem> = truth.iter().map(|t| (t.seq, t)).collect();
    let mut fates: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tasks {
        for (item, out) in t.await.unwrap() {
            let t = by_seq[&item.seq];
            assert_eq!(item.msgid, t.msgid, "seq {}", item.seq);
            match (t.fate, out) {
                (Fate::Ok, Ok(plain)) => {
                    let msgid = t.msgid.as_bytes();
                    assert!(
                        plain.windows(msgid.len()).any(|w| w == msgid),
                        "seq {}: plaintext lacks its msgid",
                        item.seq
                    );
                    *fates.entry("ok").or_default() += 1;
                }
                (Fate::CorruptCiphertext, Err(CryptoError::Cipher { reason, class })) => {
                    assert!(reason.contains("10006"), "seq {}: {reason}", item.seq);
                    assert_eq!(class, CipherFailure::Item, "seq {}", item.seq);
                    *fates.entry("corrupt").or_default() += 1;
                }
                (Fate::UnknownKeyVersion, Err(CryptoError::UnknownKeyVersion { .. })) => {
                    *fates.entry("unknown_key").or_default() += 1;
                }
                (fate, out) => panic!("seq {}: truth {fate:?}, got {out:?}", item.seq),
            }
        }
    }
    assert!(
        fates.get("ok").copied().unwrap_or(0) > truth.len() / 2,
        "{fates:?}"
    );
    assert!(
        fates.contains_key("corrupt") && fates.contains_key("unknown_key"),
        "{fates:?}"
    );
}

fn check_served(items: &[ChatDataItem], truth: &[TruthItem]) {
    let served: Vec<u64> = items.iter().map(|i| i.seq).collect();
    let unique: BTreeSet<u64> = served.iter().copied().collect();
    assert_eq!(unique.len(), served.len(), "no seq twice");
    let expected: BTreeSet<u64> = truth.iter().map(|t| t.seq).collect();
    assert_eq!(unique, expected, "every truth item served");
}

/// The media to download: the largest file, the smallest, and a few in between.
fn media_sample(truth: &[TruthItem]) -> Vec<TruthMedia> {
    let mut all: Vec<TruthMedia> = truth.iter().flat_map(|t| t.media.clone()).collect();
    all.sort_by_key(|m| m.size);
    all.dedup_by(|a, b| a.sdkfileid == b.sdkfileid);
    assert!(all.len() > 8, "the corpus has media");
    let n = all.len();
    let mut pick = vec![all[0].clone(), all[n - 1].clone(), all[n - 2].clone()];
    pick.extend([n / 4, n / 2, 3 * n / 4].iter().map(|&i| all[i].clone()));
    assert!(
        pick[1].size > 2 * MEDIA_CHUNK_BYTES,
        "a multi-chunk file is in the sample"
    );
    pick
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_corpus_through_the_pool_and_sdk_cipher() {
    let env = setup(2).await;
    let mut items = Vec::new();
    let mut seq = 0;
    loop {
        let page = env.pool.get_chat_items(seq, 1000).await.expect("page");
        let Some(last) = page.iter().map(|i| i.seq).max() else {
            break;
        };
        seq = last;
        items.extend(page);
    }
    check_served(&items, &env.truth);
    decrypt_and_check(&env.pool, items, &env.truth, false).await;

    for m in media_sample(&env.truth) {
        let mut data = Vec::new();
        let mut index = String::new();
        let mut calls = 0;
        loop {
            let c = env
                .pool
                .media_chunk(&m.sdkfileid, &index)
                .await
                .expect("chunk");
            calls += 1;
            assert!(c.data.len() as u64 <= MEDIA_CHUNK_BYTES);
            data.extend_from_slice(&c.data);
            if c.is_finish {
                break;
            }
            assert!(
                c.outindexbuf.starts_with("Range:bytes="),
                "{}",
                c.outindexbuf
            );
            index = c.outindexbuf;
        }
        assert_eq!(data.len() as u64, m.size, "{}", m.sdkfileid);
        assert_eq!(md5_hex(&data), m.md5, "{}", m.sdkfileid);
        assert_eq!(
            calls,
            m.size.div_ceil(MEDIA_CHUNK_BYTES).max(1),
            "{}",
            m.sdkfileid
        );
    }
    let err = env
        .pool
        .media_chunk("not-a-file-id", "")
        .await
        .expect_err("bad id");
    assert!(matches!(err, SdkError::Sdk { code: 10005, .. }), "{err}");
    assert_eq!(err.class(), SdkErrorClass::Item);

    assert_eq!(env.pool.stats().crashes, 0);
    env.pool.shutdown().await;
    env.sim.shutdown().await;
}

async fn read_body(body: wecom_api::MediaBody, limit: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = body.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("media bytes"));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_serves_the_contract_to_a_plain_archive_client() {
    let env = setup(2).await;
    let mut gcfg = GatewayConfig::new(env.corp_id.clone(), Secret::new(BEARER));
    gcfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // The simulator stands in for Tencent's HTTP API too: room metadata and the permit list.
    gcfg.upstream_base_url = env.sim.base_url();
    let gw = start_gateway(env.pool.clone(), gcfg)
        .await
        .expect("gateway");
    let client = ArchiveClient::new(ClientConfig::new(
        gw.base_url(),
        env.corp_id.clone(),
        Secret::new(BEARER),
    ))
    .expect("client");

    let mut items = Vec::new();
    let mut seq = 0;
    loop {
        let page = client
            .get_chat_data(seq, 700)
            .await
            .expect("page via gateway");
        let Some(last) = page.iter().map(|i| i.seq).max() else {
            break;
        };
        seq = last;
        items.extend(page);
    }
    check_served(&items, &env.truth);
    // Items pass through still encrypted; the pipeline decrypts them locally with cipher = "sdk",
    // in batches.
    decrypt_and_check(&env.pool, items, &env.truth, true).await;

    // Media with a resume: stop part-way through the largest file, continue with Range.
    let sample = media_sample(&env.truth);
    let big = &sample[1];
    let first = client.media(&big.sdkfileid, 0).await.expect("media");
    let mut data = read_body(first, Some(700 * 1024)).await;
    let cut = 600 * 1024 + 13;
    data.truncate(cut);
    let rest = client
        .media(&big.sdkfileid, cut as u64)
        .await
        .expect("resume");
    data.extend(read_body(rest, None).await);
    assert_eq!(data.len() as u64, big.size);
    assert_eq!(md5_hex(&data), big.md5);
    // Small files come whole, with their length known.
    let small = &sample[0];
    let body = client.media(&small.sdkfileid, 0).await.expect("media");
    if small.size <= MEDIA_CHUNK_BYTES {
        assert_eq!(body.total_len, Some(small.size));
    }
    assert_eq!(md5_hex(&read_body(body, None).await), small.md5);

    // Errors keep their class through the gateway.
    let err = client.media("not-a-file-id", 0).await.expect_err("bad id");
    assert_eq!(
        (err.errcode(), err.class()),
        (Some(10005), ErrorClass::Item),
        "{err}"
    );
    let wrong = ArchiveClient::new(ClientConfig::new(
        gw.base_url(),
        env.corp_id.clone(),
        Secret::new("not-the-bearer"),
    ))
    .expect("client");
    let err = wrong.get_chat_data(0, 10).await.expect_err("bad bearer");
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    assert_eq!(err.errcode(), Some(40001), "{err}");
    // Room metadata and the permit list are forwarded upstream (the simulator) with the corp
    // secret the gateway holds; room paging is not something the SDK offers.
    let roomid = env
        .truth
        .iter()
        .find_map(|t| t.roomid.clone())
        .expect("the corpus has rooms");
    let sim_client = ArchiveClient::new(ClientConfig::new(
        env.sim.base_url(),
        env.corp_id.clone(),
        Secret::new(sim_config().corp_secret),
    ))
    .expect("client");
    let via_gateway = client.room_info(&roomid).await.expect("room via gateway");
    let direct = sim_client.room_info(&roomid).await.expect("room direct");
    assert_eq!(format!("{via_gateway:?}"), format!("{direct:?}"));
    assert_eq!(
        client
            .permit_users()
            .await
            .expect("permit list via gateway"),
        sim_client.permit_users().await.expect("permit list direct")
    );
    let err = client
        .room_items(&roomid, 0, 10)
        .await
        .expect_err("no room paging in the sdk");
    assert_eq!(err.errcode(), Some(48002), "{err}");

    gw.shutdown().await.expect("gateway stops");
    env.pool.shutdown().await;
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_worker_is_killed_and_crashing_input_is_confirmed() {
    let env = setup(1).await;
    env.pool.shutdown().await;
    let mut cfg = pool_config(standin_lib(), &env.corp_id, "sim-secret", 1);
    cfg.worker_env
        .push(("WECOM_STANDIN_BASE_URL".into(), env.sim.base_url()));
    cfg.sdk_timeout = Duration::from_secs(1);
    cfg.request_timeout = Duration::from_secs(2);
    let pool = SdkPool::start(cfg).await.expect("pool");

    // DecryptData depends on its input only: a hang is the item's, confirmed once like a crash.
    let err = pool.decrypt("hang", "hang").await.expect_err("hangs");
    assert!(
        matches!(&err, SdkError::WorkerCrashed { reason } if reason.contains("hung")),
        "{err:?}"
    );
    assert_eq!(err.class(), SdkErrorClass::Crashed);
    pool.ping().await.expect("a fresh worker answers");

    let err = pool.decrypt("", "").await.expect_err("aborts");
    assert_eq!(err.to_string(), "sdk worker crashed: SIGABRT");
    let page = pool.get_chat_items(0, 5).await.expect("still serving");
    assert_eq!(page.len(), 5);
    let stats = pool.stats();
    assert_eq!(
        (stats.timeouts, stats.crashes, stats.retries),
        (2, 2, 2),
        "{stats:?}"
    );
    pool.shutdown().await;
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_fatal_with_a_clear_message() {
    let env = setup(1).await;
    env.pool.shutdown().await;
    let mut cfg = pool_config(standin_lib(), &env.corp_id, "wrong-secret", 1);
    cfg.worker_env
        .push(("WECOM_STANDIN_BASE_URL".into(), env.sim.base_url()));
    let pool = SdkPool::start(cfg)
        .await
        .expect("Init does not check the secret");
    let err = pool.get_chat_items(0, 10).await.expect_err("bad secret");
    assert!(
        matches!(err, SdkError::Api { errcode: 40001, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), SdkErrorClass::Fatal);
    assert!(err.to_string().contains("corp secret is wrong"), "{err}");
    pool.shutdown().await;
    env.sim.shutdown().await;
}
