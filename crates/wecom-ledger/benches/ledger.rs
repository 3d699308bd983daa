//! Raw archive bench: what archiving costs the fetcher per page, and how fast `verify` and a replay
//! read it back. Pages of 1,000 items shaped like real ones (a 344-character wrapped key and about
//! 1 KB of base64 ciphertext each), signed checkpoints on; in memory and on local disk with fsync.
//! Prints items/s and MB/s (uncompressed item JSON) for each step.
//!
//! Run: `cargo bench -p wecom-ledger --bench ledger` (`WECOM_BENCH_LEDGER_PAGES`, default 50)

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use wecom_ledger::{Ledger, Signing, SigningKey};
use wecom_model::api::ChatDataItem;
use wecom_store::{ObjectStoreConfig, Objects};

const PAGE: u64 = 1000;
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn main() {
    let pages: u64 = std::env::var("WECOM_BENCH_LEDGER_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let local = ObjectStoreConfig::Local {
        root: Some(dir.path().join("archive")),
        prefix: String::new(),
    }
    .build("archive.store", dir.path(), true)
    .expect("local store");
    rt.block_on(async {
        run("memory", Objects::in_memory(), pages).await;
        run("local+fsync", local, pages).await;
    });
}

fn signing() -> Signing {
    let pem = SigningKey::generate_pem().expect("key");
    Signing {
        key: SigningKey::from_pkcs8_pem(&pem).expect("key"),
        checkpoint_every: Duration::from_secs(3600),
    }
}

/// Pseudo-random base64 (as incompressible as real ciphertext), deterministic.
fn noise(state: &mut u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(B64[(*state >> 58) as usize])
        })
        .collect()
}

fn page(first: u64, state: &mut u64) -> Vec<ChatDataItem> {
    (first..first + PAGE)
        .map(|seq| ChatDataItem {
            seq,
            msgid: format!("{}_external", noise(state, 24)),
            publickey_ver: 3,
            encrypt_random_key: noise(state, 344),
            encrypt_chat_msg: noise(state, 1024),
            extra: serde_json::Map::new(),
        })
        .collect()
}

async fn run(name: &str, objects: Objects, pages: u64) {
    let ledger = Ledger::new(objects, "wwbench", Some(signing())).expect("ledger");
    let mut state = 7;
    let input: Vec<Vec<ChatDataItem>> =
        (0..pages).map(|p| page(1 + p * PAGE, &mut state)).collect();
    let json_bytes: usize = input
        .iter()
        .flatten()
        .map(|i| serde_json::to_vec(i).map_or(0, |v| v.len() + 1))
        .sum();
    let items = pages * PAGE;
    let report = |step: &str, took: Duration| {
        let s = took.as_secs_f64();
        println!(
            "ledger {name:12} {step:22} {items} items in {s:7.3} s: {:>9.0} items/s {:>7.1} MB/s, {:.2} ms/page",
            items as f64 / s,
            json_bytes as f64 / s / 1e6,
            s * 1e3 / pages as f64
        );
    };

    let t = Instant::now();
    for p in &input {
        ledger
            .write_page("corp", p)
            .await
            .expect("write")
            .expect("entry");
    }
    ledger.checkpoint("corp").await.expect("checkpoint");
    report("write_page", t.elapsed());

    let t = Instant::now();
    let r = ledger.verify("corp", None, None).await.expect("verify");
    assert!(r.is_clean() && r.items == items, "{r}");
    report("verify", t.elapsed());

    let t = Instant::now();
    let n: usize = ledger
        .pages("corp", 0)
        .map_ok(|p| p.items.len())
        .try_fold(0, |a, b| async move { Ok(a + b) })
        .await
        .expect("pages");
    assert_eq!(n as u64, items);
    report("pages (replay read)", t.elapsed());
}
