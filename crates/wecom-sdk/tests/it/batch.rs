//! Batched `DecryptData` through stand-in workers: every item gets its own result, and an item that
//! kills its worker (crash or hang) fails alone while the rest of its batch decrypts.

use std::time::Duration;

use rand::SeedableRng as _;
use wecom_crypto::{random_message_key, CipherFailure, CryptoError, MessageCipher as _, SimCipher};
use wecom_sdk::{SdkCipher, SdkError, SdkErrorClass, SdkPool, STANDIN_ABORT_MARKER};

use crate::common::{pool_config, standin_lib};

/// `Init` of the stand-in only records the base URL; decryption never uses the network.
const NO_SIMULATOR: &str = "http://127.0.0.1:9";

async fn standin_pool(workers: usize, request_timeout: Duration) -> SdkPool {
    let mut cfg = pool_config(standin_lib(), "wwbatchcorp", "secret", workers);
    cfg.worker_env
        .push(("WECOM_STANDIN_BASE_URL".into(), NO_SIMULATOR.into()));
    cfg.request_timeout = request_timeout;
    cfg.sdk_timeout = Duration::from_secs(1);
    SdkPool::start(cfg).await.expect("pool over the stand-in")
}

/// `n` items encrypted with the simulator's cipher: (random key, encrypt_chat_msg, plaintext).
fn corpus(n: usize, seed: u64) -> Vec<(Vec<u8>, String, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let key = random_message_key(&mut rng).to_vec();
            let plain =
                format!(r#"{{"msgid":"m{i}","msgtype":"text","text":{{"content":"item {i}"}}}}"#)
                    .into_bytes();
            let msg = SimCipher::encrypt(&key, &plain).expect("encrypt");
            (key, msg, plain)
        })
        .collect()
}

/// Replaces item `at` with one whose plaintext carries the stand-in's abort marker.
fn mark(items: &mut [(Vec<u8>, String, Vec<u8>)], at: usize) {
    let plain = format!(r#"{{"msgtype":"text","text":{{"content":"{STANDIN_ABORT_MARKER}"}}}}"#);
    items[at].1 = SimCipher::encrypt(&items[at].0, plain.as_bytes()).expect("encrypt");
}

fn pairs(items: &[(Vec<u8>, String, Vec<u8>)]) -> Vec<(&[u8], &str)> {
    items
        .iter()
        .map(|(k, m, _)| (k.as_slice(), m.as_str()))
        .collect()
}

fn assert_all_ok(items: &[(Vec<u8>, String, Vec<u8>)], out: &[Result<Vec<u8>, SdkError>]) {
    assert_eq!(out.len(), items.len());
    for (i, (r, (_, _, plain))) in out.iter().zip(items).enumerate() {
        assert_eq!(r.as_ref().expect("decrypts"), plain, "item {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_item_fails_alone_and_the_rest_of_its_batch_decrypts() {
    let pool = standin_pool(2, Duration::from_secs(30)).await;
    let mut items = corpus(64, 1);
    let marked = 16;
    mark(&mut items, marked);

    let out = pool.decrypt_batch(&pairs(&items)).await;
    assert_eq!(out.len(), 64);
    for (i, r) in out.iter().enumerate() {
        if i == marked {
            let e = r.as_ref().expect_err("the marked item crashes the sdk");
            assert!(
                matches!(e, SdkError::WorkerCrashed { reason } if reason == "sdk worker crashed: SIGABRT"),
                "{e:?}"
            );
            assert_eq!(e.class(), SdkErrorClass::Crashed);
        } else {
            assert_eq!(r.as_ref().expect("decrypts"), &items[i].2, "item {i}");
        }
    }
    let stats = pool.stats();
    // The batch's worker, the marked item alone, and its confirming retry.
    assert_eq!(stats.crashes, 3, "{stats:?}");
    assert_eq!(stats.replayed_batches, 1, "{stats:?}");
    assert_eq!(stats.retries, 1, "{stats:?}");

    // The pool keeps serving, batched and not.
    let clean = corpus(100, 2);
    assert_all_ok(&clean, &pool.decrypt_batch(&pairs(&clean)).await);
    pool.ping().await.expect("ping after the crash");

    // The same through the cipher the pipeline uses, from a blocking thread: the crash is classified.
    let cipher = SdkCipher::new(pool.clone());
    let out = tokio::task::spawn_blocking(move || {
        let out = cipher.decrypt_batch(&pairs(&items));
        (items, out)
    })
    .await
    .expect("blocking task");
    let (items, out) = out;
    for (i, r) in out.iter().enumerate() {
        match r {
            Err(CryptoError::Cipher { reason, class }) if i == marked => {
                assert_eq!(*class, CipherFailure::Crashed);
                assert!(reason.contains("SIGABRT"), "{reason}");
            }
            Ok(plain) if i != marked => assert_eq!(plain, &items[i].2, "item {i}"),
            other => panic!("item {i}: {other:?}"),
        }
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_hung_mid_batch_is_killed_and_only_the_hanging_item_fails() {
    let pool = standin_pool(1, Duration::from_secs(2)).await;
    let items = corpus(16, 3);
    let mut input = pairs(&items);
    let hang = 7;
    input[hang] = (&b"hang"[..], "hang");

    let out = pool.decrypt_batch(&input).await;
    for (i, r) in out.iter().enumerate() {
        if i == hang {
            let e = r.as_ref().expect_err("hangs");
            assert!(
                matches!(e, SdkError::WorkerCrashed { reason } if reason.contains("hung") && reason.contains("DecryptData")),
                "{e:?}"
            );
            assert_eq!(e.class(), SdkErrorClass::Crashed);
        } else {
            assert_eq!(r.as_ref().expect("decrypts"), &items[i].2, "item {i}");
        }
    }
    let stats = pool.stats();
    // The batch, the hanging item alone, and its confirming retry: each killed by the timeout.
    assert_eq!(
        (stats.timeouts, stats.replayed_batches),
        (3, 1),
        "{stats:?}"
    );
    let again = corpus(8, 4);
    assert_all_ok(&again, &pool.decrypt_batch(&pairs(&again)).await);
    pool.shutdown().await;
}

/// Items the SDK rejects keep their own code or reason inside a batch; their neighbours decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_inside_a_batch_belong_to_their_items() {
    let pool = standin_pool(1, Duration::from_secs(30)).await;
    let items = corpus(6, 5);
    let mut input = pairs(&items);
    input[1] = (
        &b"key\0with-a-nul-byte-0123456789ab"[..],
        items[1].1.as_str(),
    );
    input[2] = (&b"short-key"[..], items[2].1.as_str());
    input[3] = (items[3].0.as_slice(), "QUJD"); // three bytes: no AES block
    let out = pool.decrypt_batch(&input).await;
    assert!(
        matches!(&out[1], Err(e @ SdkError::InvalidArgument(_)) if e.class() == SdkErrorClass::Item),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(&out[2], Err(SdkError::Sdk { code: 10008, .. })),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(&out[3], Err(SdkError::Sdk { code: 10006, .. })),
        "{:?}",
        out[3]
    );
    for i in [0, 4, 5] {
        assert_eq!(out[i].as_ref().expect("decrypts"), &items[i].2, "item {i}");
    }
    assert_eq!(pool.stats().crashes, 0);
    assert!(pool.decrypt_batch::<&[u8], &str>(&[]).await.is_empty());

    // A pool that is shut down fails every item as transient: the pipeline retries, never
    // dead-letters them.
    pool.shutdown().await;
    let out = pool.decrypt_batch(&pairs(&items)).await;
    assert_eq!(out.len(), items.len());
    for r in out {
        let e = r.expect_err("closed");
        assert!(matches!(e, SdkError::Closed), "{e:?}");
        assert_eq!(wecom_sdk::cipher_failure(&e), CipherFailure::Transient);
    }
}
