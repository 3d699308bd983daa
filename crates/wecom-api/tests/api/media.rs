//! Media streaming: bytes as served, ranges, error envelopes, total length, mid-body failures.

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use wecom_api::{ApiError, ErrorClass, MediaBody};

use crate::support::*;

const MEDIA: &str = "/cgi-bin/media/get";

fn object(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn collect(body: MediaBody) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut stream = body.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Serves `object(len)` honouring `Range: bytes=N-` with a 206 when `ranges` is true.
async fn media_server(len: usize, ranges: bool) -> Fake {
    let data = object(len);
    Fake::start(move |r| {
        if r.path != MEDIA {
            return ok_token(1, 7200);
        }
        let range = r
            .headers
            .get("range")
            .map(|v| v.to_str().unwrap().to_owned());
        match range {
            Some(range) if ranges => {
                let start: usize = range
                    .strip_prefix("bytes=")
                    .unwrap()
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                Reply::Raw {
                    status: 206,
                    headers: vec![
                        ("content-type", "application/octet-stream".into()),
                        ("content-range", format!("bytes {start}-{}/{len}", len - 1)),
                    ],
                    body: data.slice(start..),
                }
            }
            _ => Reply::Raw {
                status: 200,
                headers: vec![("content-type", "application/octet-stream".into())],
                body: data.clone(),
            },
        }
    })
    .await
}

#[tokio::test]
async fn streamed_body_equals_served_bytes() {
    let len = 700 * 1024 + 3;
    let fake = media_server(len, true).await;
    let c = client(&fake.base_url);
    let body = c.media("FILE-ID/with+odd=chars", 0).await.unwrap();
    assert_eq!(body.total_len, Some(len as u64));
    assert_eq!(collect(body).await.unwrap(), object(len).to_vec());
    let req = &fake.requests(MEDIA)[0];
    assert_eq!(req.query["sdkfileid"], "FILE-ID/with+odd=chars");
    assert_eq!(req.token(), token(1));
    assert!(req.headers.get("range").is_none());
}

#[tokio::test]
async fn offset_sends_a_range_and_total_comes_from_content_range() {
    let len = 100_000;
    let fake = media_server(len, true).await;
    let c = client(&fake.base_url);
    let body = c.media("f1", 1000).await.unwrap();
    assert_eq!(body.total_len, Some(len as u64));
    assert_eq!(collect(body).await.unwrap(), object(len)[1000..].to_vec());
    assert_eq!(fake.requests(MEDIA)[0].headers["range"], "bytes=1000-");
}

#[tokio::test]
async fn a_server_ignoring_the_range_is_skipped_to_the_offset() {
    let len = 50_000;
    let fake = media_server(len, false).await;
    let body = client(&fake.base_url).media("f1", 12_345).await.unwrap();
    assert_eq!(body.total_len, Some(len as u64));
    assert_eq!(collect(body).await.unwrap(), object(len)[12_345..].to_vec());
}

#[tokio::test]
async fn json_error_envelopes_become_api_errors() {
    let fake = Fake::start(|r| {
        match (
            r.path.as_str(),
            r.query.get("sdkfileid").map(String::as_str),
        ) {
            ("/cgi-bin/gettoken", _) => ok_token(1, 7200),
            (_, Some("expired")) => err(10010),
            // an envelope mislabelled as octet-stream
            (_, Some("bad")) => Reply::Raw {
                status: 200,
                headers: vec![("content-type", "application/octet-stream".into())],
                body: Bytes::from(json!({"errcode":10005,"errmsg":"bad fileid"}).to_string()),
            },
            // a real media object that happens to be JSON
            (_, Some("json-file")) => Reply::Raw {
                status: 200,
                headers: vec![("content-type", "application/octet-stream".into())],
                body: Bytes::from_static(b"{\"a\":1}"),
            },
            _ => err(-3),
        }
    })
    .await;
    let c = client(&fake.base_url);
    let e = c.media("expired", 0).await.unwrap_err();
    assert_clean(&e);
    assert!(matches!(e, ApiError::Api { errcode: 10010, .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Item);
    assert!(e.to_string().contains("media/get") && e.to_string().contains(CORP));
    let e = c.media("bad", 0).await.unwrap_err();
    assert_clean(&e);
    assert!(matches!(e, ApiError::Api { errcode: 10005, .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Item);
    let body = c.media("json-file", 0).await.unwrap();
    assert_eq!(body.total_len, Some(7));
    assert_eq!(collect(body).await.unwrap(), b"{\"a\":1}".to_vec());
}

#[tokio::test]
async fn a_mid_body_failure_reaches_the_caller() {
    let fake = Fake::start(|r| match r.path.as_str() {
        MEDIA => Reply::DropMidBody {
            prefix: object(80_000),
            declared_len: 200_000,
        },
        _ => ok_token(1, 7200),
    })
    .await;
    let body = client(&fake.base_url).media("f1", 0).await.unwrap();
    assert_eq!(body.total_len, Some(200_000));
    let mut stream = body.stream;
    let mut got = 0;
    let e = loop {
        match stream.next().await {
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error after {got} bytes"),
        }
    };
    assert_eq!(got, 80_000);
    assert_clean(&e);
    assert_eq!(e.class(), ErrorClass::Retriable);
    assert_eq!(fake.count(MEDIA), 1);
}

#[tokio::test]
async fn media_token_errors_refresh_and_server_errors_retry() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fake = {
        let calls = calls.clone();
        Fake::start(move |r| match r.path.as_str() {
            MEDIA => match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => err(42001),
                1 => Reply::Raw {
                    status: 502,
                    headers: vec![],
                    body: Bytes::new(),
                },
                _ => Reply::Raw {
                    status: 200,
                    headers: vec![("content-type", "application/octet-stream".into())],
                    body: object(10),
                },
            },
            _ => ok_token(calls.load(std::sync::atomic::Ordering::SeqCst) + 1, 7200),
        })
        .await
    };
    let c = client(&fake.base_url);
    let body = c.media("f1", 0).await.unwrap();
    assert_eq!(collect(body).await.unwrap(), object(10).to_vec());
    assert_eq!(fake.count("/cgi-bin/gettoken"), 2);
    assert_eq!(fake.count(MEDIA), 3);
}
