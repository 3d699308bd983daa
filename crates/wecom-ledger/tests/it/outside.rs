//! The documented canonical bytes can be rebuilt from the stored JSON by anyone, and checked with
//! standard tools: `sha256sum` for an entry's hash, `openssl pkeyutl -verify -rawin` for a checkpoint's
//! signature with the published public key. Skipped (with a note) when openssl is not installed.

use std::process::Command;

use wecom_ledger::{Checkpoint, Ledger, ManifestEntry};

use crate::common::*;

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: openssl is not installed");
    }
    ok
}

/// The module docs' template, written out independently of the crate's code.
fn entry_text(e: &ManifestEntry) -> String {
    format!(
        "wecom-archive.raw-manifest.v2\ncorp {}\nstream {}\nindex {}\nkey {}\nfirst_seq {}\nlast_seq {}\n\
         items {}\nitems_total {}\nbytes {}\nsha256 {}\nwritten_at_ms {}\nprev {}\n",
        e.corp_id, "room%3Awr7", e.index, e.key, e.first_seq, e.last_seq, e.items, e.items_total,
        e.bytes, e.sha256, e.written_at_ms, e.prev
    )
}

fn checkpoint_text(c: &Checkpoint) -> String {
    format!(
        "wecom-archive.raw-checkpoint.v1\ncorp {}\nstream {}\nentries {}\nhead {}\nfirst_seq {}\n\
         last_seq {}\nitems {}\nsigned_at_ms {}\nkey_id {}\n",
        c.corp_id,
        "room%3Awr7",
        c.entries,
        c.head,
        c.first_seq,
        c.last_seq,
        c.items,
        c.signed_at_ms,
        c.key_id
    )
}

#[tokio::test]
async fn hashes_and_signatures_check_out_with_standard_tools() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let objects = wecom_store::ObjectStoreConfig::Local {
        root: Some(root.clone()),
        prefix: String::new(),
    }
    .build("archive.store", dir.path(), false)
    .expect("store");
    let (s, public) = signing();
    let ledger = Ledger::new(objects, CORP, Some(s)).expect("ledger");
    write_pages(&ledger, "room:wr7", &[(1, 4), (5, 9)]).await;
    ledger
        .checkpoint("room:wr7")
        .await
        .expect("checkpoint")
        .expect("signed");

    let stream_dir = root.join("raw").join(CORP).join("room%3Awr7");
    let read_json = |p: std::path::PathBuf| {
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let e2: ManifestEntry = serde_json::from_slice(&read_json(
        stream_dir.join("manifest/00000000000000000005-00000000000000000009.json"),
    ))
    .expect("entry");
    let e1: ManifestEntry = serde_json::from_slice(&read_json(
        stream_dir.join("manifest/00000000000000000001-00000000000000000004.json"),
    ))
    .expect("entry");

    // sha256sum of the rebuilt text is the entry's hash, and the next entry's prev.
    let text = dir.path().join("entry.txt");
    std::fs::write(&text, entry_text(&e1)).expect("write");
    let out = Command::new("sha256sum")
        .arg(&text)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&out.stdout);
    assert_eq!(sum.split_whitespace().next(), Some(e1.hash.as_str()));
    assert_eq!(e2.prev, e1.hash);
    // ... and of the segment file, its sha256.
    let out = Command::new("sha256sum")
        .arg(root.join(&e1.key))
        .output()
        .expect("sha256sum");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next(),
        Some(e1.sha256.as_str())
    );

    // openssl verifies the newest checkpoint with the published key file.
    let cps = std::fs::read_dir(stream_dir.join("checkpoints")).expect("checkpoints");
    let newest = cps
        .filter_map(Result::ok)
        .map(|d| d.path())
        .max()
        .expect("one");
    let cp: Checkpoint = serde_json::from_slice(&read_json(newest)).expect("checkpoint");
    assert_eq!((cp.entries, cp.head.as_str()), (2, e2.hash.as_str()));
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&cp.signature)
        .expect("base64");
    let (msg, sig_file) = (dir.path().join("cp.txt"), dir.path().join("cp.sig"));
    std::fs::write(&msg, checkpoint_text(&cp)).expect("write");
    std::fs::write(&sig_file, &sig).expect("write");
    let key_file = root
        .join("keys")
        .join(CORP)
        .join(format!("ed25519-{}.pem", public.key_id()));
    let verify = |msg: &std::path::Path| {
        Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(&key_file)
            .arg("-in")
            .arg(msg)
            .arg("-sigfile")
            .arg(&sig_file)
            .output()
            .expect("openssl")
    };
    let ok = verify(&msg);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(&msg, checkpoint_text(&cp).replace("items 9", "items 8")).expect("write");
    assert!(
        !verify(&msg).status.success(),
        "an edited checkpoint must not verify"
    );
}
