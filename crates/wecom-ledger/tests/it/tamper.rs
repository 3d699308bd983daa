//! Every kind of tampering an auditor must see is detected, and named with its location. Each test
//! starts from a clean, signed archive of six segments (seqs 1-60, ten items each).

use futures::TryStreamExt;
use wecom_ledger::{BreakKind, Ledger, LedgerError, ManifestEntry, PublicKey, VerifyOptions};
use wecom_store::Objects;

use crate::common::*;

const PAGES: [(u64, u64); 6] = [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 60)];

fn pinned(public: &PublicKey) -> VerifyOptions {
    VerifyOptions {
        pinned_keys: vec![public.clone()],
    }
}

async fn archive() -> (Ledger, Objects, PublicKey) {
    let (ledger, objects, public) = signed_memory_ledger();
    write_pages(&ledger, "corp", &PAGES).await;
    ledger
        .checkpoint("corp")
        .await
        .expect("checkpoint")
        .expect("signed");
    let clean = ledger
        .verify_with("corp", None, None, &pinned(&public))
        .await
        .expect("verify");
    assert!(clean.is_clean() && clean.notices.is_empty(), "{clean}");
    assert_eq!((clean.signed_entries, clean.items), (6, 60));
    (ledger, objects, public)
}

async fn verify(ledger: &Ledger, public: &PublicKey) -> wecom_ledger::VerifyReport {
    let r = ledger
        .verify_with("corp", None, None, &pinned(public))
        .await
        .expect("verify");
    assert!(!r.is_clean(), "tampering went unnoticed:\n{r}");
    r
}

async fn entry(objects: &Objects, first: u64, last: u64) -> ManifestEntry {
    serde_json::from_slice(&get(objects, &entry_key("corp", first, last)).await).expect("entry")
}

async fn put_entry(objects: &Objects, e: &ManifestEntry) {
    let key = entry_key("corp", e.first_seq, e.last_seq);
    overwrite(objects, &key, serde_json::to_vec(e).expect("json")).await;
}

/// What an attacker who can write to the store but does not have the signing key does: a segment
/// with other items for the same range, and an entry that matches it (hash recomputed), in place.
async fn replace_segment_and_entry(objects: &Objects, first: u64, last: u64) {
    let scratch = Objects::in_memory();
    let forger = Ledger::new(scratch.clone(), CORP, None).expect("ledger");
    let forged_items: Vec<_> = (first..=last).map(|s| item_with(s, "forged")).collect();
    let forged = forger
        .write_page("corp", &forged_items)
        .await
        .expect("forge")
        .expect("entry");
    let mut e = entry(objects, first, last).await;
    assert_ne!(e.sha256, forged.sha256);
    e.sha256 = forged.sha256.clone();
    e.bytes = forged.bytes;
    e.hash = e.compute_hash();
    overwrite(objects, &e.key, get(&scratch, &forged.key).await).await;
    put_entry(objects, &e).await;
}

#[tokio::test]
async fn one_flipped_byte_in_a_segment() {
    let (ledger, objects, public) = archive().await;
    let key = segment_key("corp", 21, 30);
    let mut bytes = get(&objects, &key).await.to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    overwrite(&objects, &key, bytes).await;

    let r = verify(&ledger, &public).await;
    let b = the_break(&r, BreakKind::SegmentAltered);
    assert_eq!(
        (b.key.as_str(), b.first_seq, b.last_seq),
        (key.as_str(), Some(21), Some(30))
    );
    assert!(b.detail.contains("sha256"), "{r}");
    assert_eq!(r.breaks.len(), 1, "{r}");
    assert!(
        r.to_string()
            .contains(&format!("BREAK segment_altered {key} (seqs 21-30)")),
        "{r}"
    );

    // A replay refuses it too, and still reads what comes after it.
    let err = ledger
        .pages("corp", 0)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("altered segment");
    assert!(
        matches!(err, LedgerError::Corrupt { .. }) && err.to_string().contains(&key),
        "{err}"
    );
    let after: Vec<_> = ledger
        .pages("corp", 30)
        .try_collect()
        .await
        .expect("later pages");
    assert_eq!(after.len(), 3);
}

#[tokio::test]
async fn a_deleted_segment() {
    let (ledger, objects, public) = archive().await;
    let key = segment_key("corp", 11, 20);
    delete(&objects, &key).await;
    let r = verify(&ledger, &public).await;
    let b = the_break(&r, BreakKind::SegmentMissing);
    assert_eq!(
        (b.key.as_str(), b.first_seq, b.last_seq),
        (key.as_str(), Some(11), Some(20))
    );
    assert_eq!(r.breaks.len(), 1, "{r}");
}

#[tokio::test]
async fn two_entries_reordered() {
    let (ledger, objects, public) = archive().await;
    // The attacker swaps the chain positions of two entries and fixes their own hashes.
    let (mut a, mut b) = (entry(&objects, 21, 30).await, entry(&objects, 31, 40).await);
    std::mem::swap(&mut a.index, &mut b.index);
    std::mem::swap(&mut a.prev, &mut b.prev);
    a.hash = a.compute_hash();
    b.hash = b.compute_hash();
    put_entry(&objects, &a).await;
    put_entry(&objects, &b).await;

    let r = verify(&ledger, &public).await;
    let out_of_order: Vec<&str> = r
        .breaks
        .iter()
        .filter(|b| b.kind == BreakKind::OutOfOrder)
        .map(|b| b.key.as_str())
        .collect();
    assert_eq!(
        out_of_order,
        [entry_key("corp", 21, 30), entry_key("corp", 31, 40)],
        "{r}"
    );
    assert!(
        r.breaks
            .iter()
            .all(|b| matches!(b.kind, BreakKind::OutOfOrder | BreakKind::ChainBroken)),
        "{r}"
    );
}

#[tokio::test]
async fn two_entry_objects_swapped() {
    let (ledger, objects, public) = archive().await;
    let (ka, kb) = (entry_key("corp", 21, 30), entry_key("corp", 31, 40));
    let (a, b) = (get(&objects, &ka).await, get(&objects, &kb).await);
    overwrite(&objects, &ka, b).await;
    overwrite(&objects, &kb, a).await;

    let r = verify(&ledger, &public).await;
    let misplaced: Vec<&str> = r
        .breaks
        .iter()
        .filter(|b| b.kind == BreakKind::EntryMisplaced)
        .map(|b| b.key.as_str())
        .collect();
    assert_eq!(misplaced, [ka.as_str(), kb.as_str()], "{r}");
}

#[tokio::test]
async fn the_newest_entries_dropped() {
    let (ledger, objects, public) = archive().await;
    for (a, b) in [(41, 50), (51, 60)] {
        delete(&objects, &entry_key("corp", a, b)).await;
        delete(&objects, &segment_key("corp", a, b)).await;
    }
    // What is left is a perfect chain: only the checkpoint can tell.
    let r = verify(&ledger, &public).await;
    let b = the_break(&r, BreakKind::Truncated);
    assert!(
        b.key.starts_with(&format!("raw/{CORP}/corp/checkpoints/")),
        "{r}"
    );
    assert_eq!((b.first_seq, b.last_seq), (Some(1), Some(60)));
    assert!(b.detail.contains("no manifest entry ends at seq 60"), "{r}");
    assert_eq!(r.breaks.len(), 1, "{r}");

    // A writer does not build on a truncated chain (that would hide the gap from the chain).
    let restarted = Ledger::new(objects.clone(), CORP, None).expect("ledger");
    let err = restarted
        .write_page("corp", &page(61, 70))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("entries were removed"), "{err}");
}

#[tokio::test]
async fn a_segment_replaced_with_its_entry_but_not_the_chain() {
    let (ledger, objects, public) = archive().await;
    replace_segment_and_entry(&objects, 21, 30).await;
    let r = verify(&ledger, &public).await;
    // The forged pair is consistent in itself; the next entry's link gives it away.
    let b = the_break(&r, BreakKind::ChainBroken);
    assert_eq!(b.key, entry_key("corp", 31, 40), "{r}");
    assert!(b.detail.contains(&entry_key("corp", 21, 30)), "{r}");
    assert_eq!(r.breaks.len(), 1, "{r}");
}

#[tokio::test]
async fn the_newest_segment_replaced_with_its_entry() {
    let (ledger, objects, public) = archive().await;
    replace_segment_and_entry(&objects, 51, 60).await;
    // No entry follows it: the checkpoint's signed head gives it away.
    let r = verify(&ledger, &public).await;
    let b = the_break(&r, BreakKind::CheckpointMismatch);
    assert_eq!(b.key, entry_key("corp", 51, 60), "{r}");
    assert_eq!(r.breaks.len(), 1, "{r}");
}

#[tokio::test]
async fn checkpoints_with_a_wrong_key_or_signature_are_refused() {
    let (ledger, objects, public) = archive().await;

    // A key the verifier did not pin.
    let (_, other) = signing();
    let r = ledger
        .verify_with("corp", None, None, &pinned(&other))
        .await
        .expect("verify");
    assert_eq!(kinds(&r), [BreakKind::CheckpointUntrusted; 2], "{r}");
    assert_eq!((r.checkpoints_verified, r.signed_entries), (0, 0), "{r}");

    // An edited checkpoint, and one with someone else's signature under the right key id.
    let listed = list_checkpoints(&objects).await;
    assert_eq!(listed.len(), 2, "one after the first write, one explicit");
    let mut cp: wecom_ledger::Checkpoint =
        serde_json::from_slice(&get(&objects, &listed[1]).await).expect("checkpoint");
    cp.items += 1;
    overwrite(&objects, &listed[1], serde_json::to_vec(&cp).expect("json")).await;
    let r = verify(&ledger, &public).await;
    assert_eq!(the_break(&r, BreakKind::CheckpointSignature).key, listed[1]);

    cp.items -= 1;
    use base64::Engine;
    cp.signature = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    overwrite(&objects, &listed[1], serde_json::to_vec(&cp).expect("json")).await;
    let r = verify(&ledger, &public).await;
    assert_eq!(the_break(&r, BreakKind::CheckpointSignature).key, listed[1]);
    assert_eq!(
        (r.checkpoints, r.checkpoints_verified, r.signed_entries),
        (2, 1, 1),
        "{r}"
    );
}

#[tokio::test]
async fn a_re_signed_archive_passes_only_an_unpinned_verify() {
    let (_, objects, public) = archive().await;
    // Someone with write access drops the newest entries and every checkpoint, then signs the
    // shortened chain with a key of their own and publishes it.
    for (a, b) in [(41, 50), (51, 60)] {
        delete(&objects, &entry_key("corp", a, b)).await;
        delete(&objects, &segment_key("corp", a, b)).await;
    }
    for key in list_checkpoints(&objects).await {
        delete(&objects, &key).await;
    }
    let (theirs, _) = signing();
    let forger = Ledger::new(objects.clone(), CORP, Some(theirs)).expect("ledger");
    forger
        .checkpoint("corp")
        .await
        .expect("sign")
        .expect("checkpoint");

    let unpinned = forger.verify("corp", None, None).await.expect("verify");
    assert!(unpinned.is_clean(), "{unpinned}");
    assert!(
        unpinned
            .notices
            .iter()
            .any(|n| n.kind == wecom_ledger::NoticeKind::KeysNotPinned),
        "{unpinned}"
    );
    let r = verify(&forger, &public).await;
    the_break(&r, BreakKind::CheckpointUntrusted);
    assert_eq!(r.signed_entries, 0);
}

async fn list_checkpoints(objects: &Objects) -> Vec<String> {
    use futures::StreamExt;
    let prefix = objects
        .path(&format!("raw/{CORP}/corp/checkpoints"))
        .expect("path");
    let mut keys: Vec<String> = objects
        .object_store()
        .list(Some(&prefix))
        .map(|m| m.expect("list").location.to_string())
        .collect()
        .await;
    keys.sort();
    keys
}
