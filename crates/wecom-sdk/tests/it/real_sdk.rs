//! Against Tencent's real `libWeWorkFinanceSdk_C.so` (x86-64, PyPI pyweworkfinance 1.1.0), offline.
//!
//! All network traffic the library attempts goes to a closed port on loopback (the SDK's `proxy`
//! argument), which is how "no network" looks to it: GetChatData answers 10001.

use std::path::PathBuf;

use wecom_sdk::{SdkError, SdkErrorClass, SdkPool};

use crate::common::{pool_config, real_lib};

const CORP: &str = "wwtestcorp0000001";

async fn real_pool(workers: usize) -> SdkPool {
    let mut cfg = pool_config(real_lib(), CORP, "not-a-real-secret", workers);
    cfg.proxy = Some("http://127.0.0.1:9".into());
    SdkPool::start(cfg)
        .await
        .expect("the real library loads, resolves every symbol and Inits")
}

#[tokio::test]
async fn real_library_loads_and_init_succeeds() {
    let pool = real_pool(1).await;
    pool.ping().await.expect("ping");
    assert_eq!(pool.stats().spawns, 1);
    pool.shutdown().await;
    assert!(matches!(pool.ping().await, Err(SdkError::Closed)));
    // `wecom-archive check`: load, resolve every symbol, Init, ping, stop.
    let mut cfg = pool_config(real_lib(), CORP, "not-a-real-secret", 3);
    cfg.proxy = Some("http://127.0.0.1:9".into());
    SdkPool::check(cfg).await.expect("check passes");
}

#[tokio::test]
async fn get_chat_data_without_network_is_10001_and_transient() {
    let pool = real_pool(1).await;
    let err = pool
        .get_chat_data(0, 10)
        .await
        .expect_err("no network here");
    assert!(matches!(err, SdkError::Sdk { code: 10001, .. }), "{err}");
    assert_eq!(err.class(), SdkErrorClass::Transient);
    pool.shutdown().await;
}

#[tokio::test]
async fn decrypt_garbage_is_10008_and_item_level() {
    let pool = real_pool(1).await;
    let err = pool
        .decrypt("not-a-random-key", "bm90IGEgbWVzc2FnZQ==")
        .await
        .expect_err("garbage");
    assert!(matches!(err, SdkError::Sdk { code: 10008, .. }), "{err}");
    assert_eq!(err.class(), SdkErrorClass::Item);
    pool.shutdown().await;
}

#[tokio::test]
async fn empty_decrypt_kills_the_worker_and_the_pool_carries_on() {
    let pool = real_pool(2).await;
    // Requests around the killer, in flight at the same time on the other worker and queued behind it.
    let mut others = Vec::new();
    for i in 0..8 {
        let p = pool.clone();
        others.push(tokio::spawn(async move {
            if i % 2 == 0 {
                p.ping().await.map(|()| Vec::new())
            } else {
                p.decrypt("garbage-key", "bm90IGEgbWVzc2FnZQ==").await
            }
        }));
    }
    let crash = pool.decrypt("", "").await.expect_err("the library aborts");
    assert!(
        matches!(&crash, SdkError::WorkerCrashed { reason } if reason == "sdk worker crashed: SIGABRT"),
        "{crash:?}"
    );
    assert_eq!(crash.to_string(), "sdk worker crashed: SIGABRT");
    assert_eq!(crash.class(), SdkErrorClass::Crashed);
    for (i, h) in others.into_iter().enumerate() {
        let r = h.await.unwrap();
        if i % 2 == 0 {
            r.expect("ping around the crash");
        } else {
            let e = r.expect_err("garbage");
            assert!(matches!(e, SdkError::Sdk { code: 10008, .. }), "{e}");
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.crashes, 2, "{stats:?}");
    assert_eq!(stats.retries, 1, "{stats:?}");
    // The slot restarts its worker for the next request.
    for _ in 0..4 {
        pool.ping().await.expect("ping after the crash");
    }
    let e = pool
        .decrypt("garbage-key", "bm90IGEgbWVzc2FnZQ==")
        .await
        .expect_err("garbage");
    assert!(matches!(e, SdkError::Sdk { code: 10008, .. }), "{e}");
    assert!(pool.stats().spawns >= 4, "{:?}", pool.stats());
    pool.shutdown().await;
}

#[tokio::test]
async fn a_library_without_the_symbols_is_refused_by_name() {
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("a libc to load");
    let err = SdkPool::start(pool_config(libc, CORP, "x", 1))
        .await
        .expect_err("not the sdk");
    assert!(matches!(err, SdkError::Library { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("NewSdk") && msg.contains("IsMediaDataFinish"),
        "{msg}"
    );
    assert_eq!(err.class(), SdkErrorClass::Fatal);

    assert!(msg.contains("check [sdk] library"), "{msg}");

    let err = SdkPool::start(pool_config("/nonexistent/libsdk.so".into(), CORP, "x", 1))
        .await
        .expect_err("no such file");
    let msg = err.to_string();
    assert_eq!(
        msg.matches("/nonexistent/libsdk.so").count(),
        1,
        "the path is said once: {msg}"
    );
    assert!(msg.contains("check [sdk] library"), "{msg}");
    assert_eq!(err.class(), SdkErrorClass::Fatal);
}

/// What the real library does with odd inputs, one request each on a 1-worker pool (a crash costs the
/// crash plus its confirming retry, and the pool answers the next request on a fresh worker).
/// Found while writing these tests: not only `("", "")` but any short non-base64 message aborts it.
#[tokio::test]
async fn odd_inputs_table() {
    const CRASH: i32 = -1;
    let pool = real_pool(1).await;
    let b64 = "bm90IGEgbWVzc2FnZQ==";
    for (key, msg, want) in [
        ("garbage-key", b64, 10008),
        ("", b64, 10008),
        ("0123456789abcdef0123456789abcdef", b64, 10008),
        ("", "", CRASH),
        ("abc", "", CRASH),
        ("garbage-key", "garbage", CRASH),
        ("0123456789abcdef0123456789abcdef", "garbage", CRASH),
    ] {
        let got = match pool.decrypt(key, msg).await {
            Ok(_) => 0,
            Err(SdkError::Sdk { code, .. }) => code,
            Err(SdkError::WorkerCrashed { reason }) => {
                assert_eq!(reason, "sdk worker crashed: SIGABRT");
                CRASH
            }
            Err(e) => panic!("DecryptData({key:?}, {msg:?}): unexpected {e:?}"),
        };
        assert_eq!(got, want, "DecryptData({key:?}, {msg:?})");
    }
    pool.ping().await.expect("the pool survives all of it");
    pool.shutdown().await;
}

/// A batch through the real library: an input that aborts it fails alone; its neighbours keep their
/// own answers.
#[tokio::test]
async fn a_batch_with_an_aborting_input_isolates_it() {
    let pool = real_pool(1).await;
    let b64 = "bm90IGEgbWVzc2FnZQ==";
    let mut items: Vec<(&str, &str)> = vec![("garbage-key", b64); 9];
    items[4] = ("abc", "");
    let out = pool.decrypt_batch(&items).await;
    for (i, r) in out.iter().enumerate() {
        match r {
            Err(SdkError::WorkerCrashed { reason }) if i == 4 => {
                assert_eq!(reason, "sdk worker crashed: SIGABRT");
            }
            Err(SdkError::Sdk { code: 10008, .. }) if i != 4 => {}
            other => panic!("item {i}: {other:?}"),
        }
    }
    let stats = pool.stats();
    assert_eq!((stats.replayed_batches, stats.crashes), (1, 3), "{stats:?}");
    pool.ping().await.expect("the pool survives");
    pool.shutdown().await;
}
