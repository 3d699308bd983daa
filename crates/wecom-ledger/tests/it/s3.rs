//! The archive on a real S3-compatible server (moto): a plain bucket, and a bucket with Object Lock
//! where every object is written under compliance retention. Skipped (with a note) when
//! `WECOM_TEST_S3_ENDPOINT` is unset; CI always sets it.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::ObjectStoreExt;
use wecom_ledger::{ArchiveConfig, Ledger, LedgerError, SigningKey};

use crate::common::*;

fn endpoint() -> Option<String> {
    let e = std::env::var("WECOM_TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    if e.is_none() {
        eprintln!("skipped: WECOM_TEST_S3_ENDPOINT is not set (scripts/test-services.sh start)");
    }
    e
}

fn bucket_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("wecom-ledger-{what}-{}-{nanos}", std::process::id())
}

/// moto answers anonymous requests on objects with 403, so requests carry a (unchecked) signature.
const MOTO_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

async fn create_bucket(endpoint: &str, bucket: &str, object_lock: bool) {
    let mut req = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .header("authorization", MOTO_AUTH);
    if object_lock {
        req = req.header("x-amz-bucket-object-lock-enabled", "true");
    }
    let resp = req.send().await.expect("the S3 server answers");
    assert!(
        resp.status().is_success(),
        "create bucket {bucket}: {}",
        resp.status()
    );
}

fn config(endpoint: &str, bucket: &str, extra: &str) -> ArchiveConfig {
    toml::from_str(&format!(
        "[store]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nallow_http = true\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\nprefix = \"archive\"\n{extra}"
    ))
    .expect("config")
}

fn key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("signing.pem");
    std::fs::write(&path, SigningKey::generate_pem().expect("key").as_bytes()).expect("write key");
    path
}

#[tokio::test]
async fn s3_round_trip_verifies_clean() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = bucket_name("plain");
    create_bucket(&endpoint, &bucket, false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let signing = format!("[signing]\nkey_file = {:?}\n", key_file(dir.path()));
    let cfg = config(&endpoint, &bucket, &signing);

    let ledger = Ledger::open(&cfg, dir.path(), CORP).expect("open");
    write_pages(&ledger, "room:wr9", &[(1, 10), (11, 20)]).await;
    // A re-fetch behind the head, as after a crash.
    let e = ledger
        .write_page("room:wr9", &page(15, 30))
        .await
        .expect("write")
        .expect("entry");
    assert_eq!((e.first_seq, e.index), (21, 2));
    ledger
        .checkpoint("room:wr9")
        .await
        .expect("checkpoint")
        .expect("signed");
    ledger
        .put_room_snapshot("wr9", 5, &serde_json::json!({"roomname": "n"}))
        .await
        .expect("snapshot");

    let restarted = Ledger::open(&cfg, dir.path(), CORP).expect("reopen");
    let r = restarted
        .verify("room:wr9", None, None)
        .await
        .expect("verify");
    assert!(r.is_clean(), "{r}");
    assert_eq!(
        (
            r.segments,
            r.items,
            r.checkpoints_verified,
            r.signed_entries
        ),
        (3, 30, 2, 3)
    );
    let items: Vec<_> = restarted
        .pages("room:wr9", 0)
        .map_ok(|p| p.items)
        .try_concat()
        .await
        .expect("pages");
    assert_eq!(items, page(1, 30));
    assert_eq!(restarted.streams().await.expect("streams"), ["room:wr9"]);
    assert!(restarted
        .room_as_of("wr9", 6)
        .await
        .expect("as of")
        .is_some());
    assert!(restarted.location().starts_with(&format!("s3://{bucket}")));
    // Without [archive.object_lock] nothing is asked of S3 about retention.
    assert_eq!(restarted.retention(&e.key).await.expect("retention"), None);
}

#[tokio::test]
async fn s3_object_lock_retains_every_object_in_compliance_mode() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = bucket_name("locked");
    create_bucket(&endpoint, &bucket, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[object_lock]\nretain_days = 3\n[signing]\nkey_file = {:?}\n",
        key_file(dir.path())
    );
    let cfg = config(&endpoint, &bucket, &extra);
    let ledger = Ledger::open(&cfg, dir.path(), CORP).expect("open");
    write_pages(&ledger, "corp", &[(1, 10), (11, 20)]).await;
    // A crash-overlap rewrite: the create-only put of an existing object is refused by S3 (412).
    assert!(ledger
        .write_page("corp", &page(1, 20))
        .await
        .expect("rewrite")
        .is_none());
    let restarted = Ledger::open(&cfg, dir.path(), CORP).expect("reopen");
    write_pages(&restarted, "corp", &[(21, 30)]).await;
    restarted.checkpoint("corp").await.expect("checkpoint");
    let r = restarted.verify("corp", None, None).await.expect("verify");
    assert!(r.is_clean(), "{r}");

    // Every object carries compliance retention until about three days from now.
    let entries = restarted.entries_after("corp", 0).await.expect("entries");
    assert_eq!(entries.len(), 3);
    let in_3_days = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    for key in entries
        .iter()
        .flat_map(|e| [e.key.clone(), entry_key("corp", e.first_seq, e.last_seq)])
    {
        let ret = restarted
            .retention(&key)
            .await
            .expect("head")
            .expect("locked");
        assert_eq!(ret.mode, "COMPLIANCE", "{key}");
        let until = time::OffsetDateTime::parse(
            &ret.retain_until,
            &time::format_description::well_known::Rfc3339,
        )
        .expect("date");
        assert!(
            (until - in_3_days).abs() < time::Duration::minutes(10),
            "{key}: {until}"
        );
    }

    // The locked version cannot be deleted; an overwrite only adds a version (which verify reports),
    // and the original version is still there to be restored.
    let s3 = AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3");
    let seg = object_store::path::Path::from(format!("archive/{}", entries[0].key));
    let original = s3
        .get(&seg)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let version = s3
        .head(&seg)
        .await
        .expect("head")
        .version
        .expect("versioned bucket");
    let http = reqwest::Client::new();
    let opts = SignedUrlOptions::new().with_query([("versionId", version.as_str())]);
    let url = s3
        .signed_url_opts(
            reqwest::Method::DELETE,
            &seg,
            Duration::from_secs(60),
            &opts,
        )
        .await
        .expect("sign");
    let resp = http.delete(url.as_str()).send().await.expect("delete");
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::FORBIDDEN,
        "deleting a locked version"
    );

    s3.put(&seg, b"tampered".to_vec().into())
        .await
        .expect("overwrite adds a version");
    let r = restarted.verify("corp", None, None).await.expect("verify");
    assert_eq!(kinds(&r), [wecom_ledger::BreakKind::SegmentAltered], "{r}");
    let url = s3
        .signed_url_opts(reqwest::Method::GET, &seg, Duration::from_secs(60), &opts)
        .await
        .expect("sign");
    let kept = http.get(url.as_str()).send().await.expect("get version");
    assert_eq!(kept.bytes().await.expect("bytes"), original);
}

#[tokio::test]
async fn s3_object_lock_on_a_bucket_without_it_is_refused_with_the_reason() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = bucket_name("nolock");
    create_bucket(&endpoint, &bucket, false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&endpoint, &bucket, "[object_lock]\nretain_days = 1\n");
    let ledger = Ledger::open(&cfg, dir.path(), CORP).expect("open");
    let err = ledger
        .write_page("corp", &page(1, 3))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, LedgerError::LockRefused { status: 400, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("ObjectLockConfiguration") && msg.contains("Object Lock enabled"),
        "{msg}"
    );
    assert!(
        !msg.contains("X-Amz-Signature") && !msg.contains("Credential"),
        "{msg}"
    );
}
