use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use wecom_ledger::{BreakKind, Ledger, PublicKey, Signing, SigningKey, VerifyReport};
use wecom_model::api::ChatDataItem;
use wecom_store::Objects;

pub const CORP: &str = "wwcorp1";

/// An archive item as the service serves it, with a field the model does not know.
pub fn item(seq: u64) -> ChatDataItem {
    item_with(seq, "c")
}

pub fn item_with(seq: u64, cipher: &str) -> ChatDataItem {
    serde_json::from_value(serde_json::json!({
        "seq": seq, "msgid": format!("msg{seq}"), "publickey_ver": 2,
        "encrypt_random_key": format!("key{seq}"), "encrypt_chat_msg": format!("{cipher}{seq}"),
        "unknown_field": {"kept": seq}
    }))
    .expect("item json")
}

pub fn page(first: u64, last: u64) -> Vec<ChatDataItem> {
    (first..=last).map(item).collect()
}

pub fn signing() -> (Signing, PublicKey) {
    let pem = SigningKey::generate_pem().expect("generate");
    let key = SigningKey::from_pkcs8_pem(&pem).expect("parse");
    let public = key.public_key().clone();
    (
        Signing {
            key,
            checkpoint_every: Duration::from_secs(3600),
        },
        public,
    )
}

/// A signed archive in memory and a handle on its raw objects.
pub fn signed_memory_ledger() -> (Ledger, Objects, PublicKey) {
    let objects = Objects::in_memory();
    let (s, public) = signing();
    let ledger = Ledger::new(objects.clone(), CORP, Some(s)).expect("ledger");
    (ledger, objects, public)
}

pub async fn write_pages(ledger: &Ledger, stream: &str, ranges: &[(u64, u64)]) {
    for (a, b) in ranges {
        ledger
            .write_page(stream, &page(*a, *b))
            .await
            .expect("write page")
            .expect("new items");
    }
}

pub fn kinds(r: &VerifyReport) -> Vec<BreakKind> {
    r.breaks.iter().map(|b| b.kind).collect()
}

/// The one break of `kind`, with its location; fails showing the report otherwise.
pub fn the_break(r: &VerifyReport, kind: BreakKind) -> &wecom_ledger::Break {
    let found: Vec<_> = r.breaks.iter().filter(|b| b.kind == kind).collect();
    assert_eq!(found.len(), 1, "one {kind:?} expected:\n{r}");
    found[0]
}

pub async fn get(objects: &Objects, key: &str) -> Bytes {
    objects
        .object_store()
        .get(&objects.path(key).expect("path"))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
}

/// Replaces an object's bytes behind the archive's back.
pub async fn overwrite(objects: &Objects, key: &str, bytes: impl Into<Bytes>) {
    objects
        .object_store()
        .put(
            &objects.path(key).expect("path"),
            PutPayload::from(bytes.into()),
        )
        .await
        .expect("overwrite");
}

pub async fn delete(objects: &Objects, key: &str) {
    objects
        .object_store()
        .delete(&objects.path(key).expect("path"))
        .await
        .expect("delete");
}

/// The object key of a stream's manifest entry.
pub fn entry_key(stream_dir: &str, first: u64, last: u64) -> String {
    format!("raw/{CORP}/{stream_dir}/manifest/{first:020}-{last:020}.json")
}

pub fn segment_key(stream_dir: &str, first: u64, last: u64) -> String {
    format!("raw/{CORP}/{stream_dir}/{first:020}-{last:020}.ndjson.gz")
}
