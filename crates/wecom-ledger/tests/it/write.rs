//! Writing pages and reading them back: local disk through the config, restarts, crash overlaps,
//! orphan segments, the write contract.

use futures::TryStreamExt;
use wecom_ledger::{ArchiveConfig, Ledger, LedgerError, NoticeKind, PublicKey, SigningKey};

use crate::common::*;

fn local_config(root: &std::path::Path, key_file: Option<&std::path::Path>) -> ArchiveConfig {
    let mut text = format!(
        "[store]\nkind = \"local\"\nroot = {:?}\n",
        root.join("archive")
    );
    if let Some(k) = key_file {
        text.push_str(&format!(
            "[signing]\nkey_file = {k:?}\ncheckpoint_interval_secs = 3600\n"
        ));
    }
    toml::from_str(&text).expect("config")
}

#[tokio::test]
async fn local_round_trip_across_restarts_verifies_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("signing.pem");
    let pem = SigningKey::generate_pem().expect("key");
    std::fs::write(&key_file, pem.as_bytes()).expect("key file");
    let cfg = local_config(dir.path(), Some(&key_file));
    let stream = "room:wr1";

    let ledger = Ledger::open(&cfg, dir.path(), CORP).expect("open");
    let secret_line = pem.lines().nth(1).expect("pem body");
    let debug = format!("{ledger:?} {cfg:?}");
    assert!(!debug.contains(secret_line), "{debug}");
    assert!(
        debug.contains(&ledger.public_key().expect("signed").key_id()),
        "{debug}"
    );
    let first = ledger
        .write_page(stream, &page(1, 10))
        .await
        .expect("write")
        .expect("entry");
    assert_eq!(first.index, 0);
    assert_eq!(
        first.key,
        format!("raw/{CORP}/room%3Awr1/00000000000000000001-00000000000000000010.ndjson.gz")
    );
    write_pages(&ledger, stream, &[(11, 25)]).await;
    assert!(ledger
        .checkpoint(stream)
        .await
        .expect("checkpoint")
        .is_some());
    assert!(
        ledger.checkpoint(stream).await.expect("again").is_none(),
        "the head is already covered"
    );
    drop(ledger);

    // A new process continues the chain where the store says it ends; its first write is signed at
    // once, later ones after the interval or when the run ends.
    let ledger = Ledger::open(&cfg, dir.path(), CORP).expect("reopen");
    let third = ledger
        .write_page(stream, &page(26, 30))
        .await
        .expect("write")
        .expect("entry");
    assert_eq!((third.index, third.items_total), (2, 30));
    write_pages(&ledger, stream, &[(31, 35)]).await;
    let checkpoints = ledger.checkpoint_all().await.expect("checkpoint all");
    assert_eq!(checkpoints.len(), 1);
    assert_eq!((checkpoints[0].entries, checkpoints[0].last_seq), (4, 35));

    let report = ledger.verify(stream, None, None).await.expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.entries, report.segments, report.items), (4, 4, 35));
    assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(35)));
    assert_eq!((report.checkpoints, report.checkpoints_verified), (4, 4));
    assert_eq!(
        (report.signed_entries, report.signed_last_seq),
        (4, Some(35))
    );
    assert!(
        report
            .notices
            .iter()
            .all(|n| n.kind == NoticeKind::KeysNotPinned),
        "{report}"
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["checkpoints_verified"], 4);
    assert!(report.to_string().contains("CLEAN"), "{report}");

    // Read back: every item as received (unknown fields kept), from any seq.
    let pages: Vec<_> = ledger.pages(stream, 0).try_collect().await.expect("pages");
    let items: Vec<_> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(items, page(1, 35));
    let after: Vec<_> = ledger.pages(stream, 12).try_collect().await.expect("pages");
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].items, page(13, 25));
    assert_eq!(
        ledger.entries_after(stream, 25).await.expect("entries")[0].first_seq,
        26
    );
    assert_eq!(
        ledger.streams().await.expect("streams"),
        vec![stream.to_owned()]
    );

    // The public key is published beside the archive, as a verifier without the secret needs it.
    let public = ledger.public_key().expect("signing").clone();
    let published = dir
        .path()
        .join("archive/keys")
        .join(CORP)
        .join(format!("ed25519-{}.pem", public.key_id()));
    let pem = std::fs::read_to_string(&published).expect("published key file");
    assert_eq!(PublicKey::from_pem(&pem).expect("pem"), public);
}

#[tokio::test]
async fn a_refetch_behind_the_archived_head_skips_what_is_archived() {
    let (ledger, objects, _) = signed_memory_ledger();
    write_pages(&ledger, "corp", &[(1, 10)]).await;
    // After a crash the fetcher resumes from a committed cursor behind the archive.
    let entry = ledger
        .write_page("corp", &page(5, 15))
        .await
        .expect("write")
        .expect("new items");
    assert_eq!((entry.first_seq, entry.last_seq, entry.items), (11, 15, 5));
    assert!(ledger
        .write_page("corp", &page(1, 15))
        .await
        .expect("write")
        .is_none());

    // The same from a fresh process (head read from the store).
    let again = Ledger::new(objects, CORP, None).expect("ledger");
    let e = again
        .write_page("corp", &page(12, 20))
        .await
        .expect("write")
        .expect("new");
    assert_eq!((e.first_seq, e.index), (16, 2));

    let report = again.verify("corp", None, None).await.expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.items, 20);
}

#[tokio::test]
async fn an_interrupted_write_leaves_an_orphan_that_is_reused_or_reported() {
    let (ledger, objects, _) = signed_memory_ledger();
    write_pages(&ledger, "corp", &[(1, 10), (11, 20)]).await;
    // A crash between segment and entry: the segment of 11-20 is there, its entry is not.
    delete(&objects, &entry_key("corp", 11, 20)).await;
    let (s, _) = signing();
    let restarted = Ledger::new(objects.clone(), CORP, Some(s)).expect("ledger");
    let e = restarted
        .write_page("corp", &page(11, 20))
        .await
        .expect("rewrite")
        .expect("entry");
    assert_eq!(
        e.key,
        segment_key("corp", 11, 20),
        "identical bytes: the segment is reused"
    );
    let report = restarted.verify("corp", None, None).await.expect("verify");
    assert!(
        report
            .notices
            .iter()
            .all(|n| n.kind != NoticeKind::OrphanSegment),
        "{report}"
    );

    // The same crash, but the service serves the range with other bytes the second time.
    write_pages(&restarted, "corp", &[(21, 30)]).await;
    delete(&objects, &entry_key("corp", 21, 30)).await;
    let restarted = Ledger::new(objects.clone(), CORP, None).expect("ledger");
    let other: Vec<_> = (21..=30).map(|s| item_with(s, "other")).collect();
    let e = restarted
        .write_page("corp", &other)
        .await
        .expect("rewrite")
        .expect("entry");
    assert_ne!(
        e.key,
        segment_key("corp", 21, 30),
        "other bytes: a key of its own"
    );
    assert!(
        e.key.ends_with(".ndjson.gz") && e.key.contains(&e.sha256[..16]),
        "{}",
        e.key
    );
    let report = restarted.verify("corp", None, None).await.expect("verify");
    assert!(report.is_clean(), "{report}");
    let orphans: Vec<_> = report
        .notices
        .iter()
        .filter(|n| n.kind == NoticeKind::OrphanSegment)
        .collect();
    assert_eq!(orphans.len(), 1, "{report}");
    assert_eq!(
        orphans[0].key.as_deref(),
        Some(segment_key("corp", 21, 30).as_str())
    );
    assert_eq!(
        (orphans[0].first_seq, orphans[0].last_seq),
        (Some(21), Some(30))
    );
    let back = restarted.read_segment(&e).await.expect("read");
    assert_eq!(back, other);
}

#[tokio::test]
async fn pages_must_ascend_and_empty_pages_write_nothing() {
    let (ledger, _, _) = signed_memory_ledger();
    let err = ledger
        .write_page("corp", &[item(3), item(2)])
        .await
        .expect_err("descending");
    assert!(matches!(err, LedgerError::Page { .. }), "{err}");
    assert!(err.to_string().contains("seq 2 follows seq 3"), "{err}");
    assert!(ledger
        .write_page("corp", &[])
        .await
        .expect("empty")
        .is_none());
    assert!(ledger
        .checkpoint("corp")
        .await
        .expect("nothing to sign")
        .is_none());
    let report = ledger.verify("corp", None, None).await.expect("verify");
    assert!(report.is_clean() && report.entries == 0, "{report}");
}

#[tokio::test]
async fn a_range_reads_only_its_segments() {
    let (ledger, _, _) = signed_memory_ledger();
    write_pages(&ledger, "corp", &[(1, 10), (11, 20), (21, 30), (31, 40)]).await;
    let report = ledger
        .verify("corp", Some(15), Some(21))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.entries, report.segments, report.items), (4, 2, 20));
    assert_eq!((report.first_seq, report.last_seq), (Some(11), Some(30)));
}
