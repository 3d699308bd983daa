//! Retriable failures are retried with backoff until the call succeeds or the policy runs out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use wecom_api::{endpoint, ApiError, ErrorClass, EventKind};

use crate::support::*;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const CHAT: &str = "/cgi-bin/msgaudit/get_chat_data";

/// Serves `script` in order for data calls, then `items(7..=9)`.
async fn scripted(script: Vec<fn() -> Reply>) -> Fake {
    let i = Arc::new(AtomicUsize::new(0));
    Fake::start(move |r| {
        if r.path == GETTOKEN {
            return ok_token(1, 7200);
        }
        let k = i.fetch_add(1, Ordering::SeqCst);
        script.get(k).map_or_else(|| items(7..=9), |f| f())
    })
    .await
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let fake = scripted(vec![
        || err(-1),
        || err(45009),
        || Reply::Raw {
            status: 503,
            headers: vec![],
            body: Bytes::from_static(b"busy"),
        },
        || Reply::DropMidBody {
            prefix: Bytes::from_static(b"{\"errcode\":0,\"chat"),
            declared_len: 4000,
        },
        // a 200 whose JSON was cut short
        || Reply::Raw {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from_static(b"{\"errcode\":0,\"chatdata\":[{\"seq\":7"),
        },
    ])
    .await;
    let c = client(&fake.base_url);
    let got = c.get_chat_data(6, 3).await.unwrap();
    assert_eq!(seqs(&got), vec![7, 8, 9]);
    assert_eq!(got[0].msgid, "msg7");
    assert_eq!(fake.count(CHAT), 6);
    let stats = c.stats();
    assert_eq!(stats.retries.get(endpoint::GET_CHAT_DATA), Some(&5));
    assert_eq!(stats.api_errors.get(&-1), Some(&1));
    assert_eq!(stats.api_errors.get(&45009), Some(&1));
    assert_eq!(stats.http_errors.get(&503), Some(&1));
    assert_eq!(stats.calls.get(endpoint::GET_CHAT_DATA), Some(&6));
}

#[tokio::test]
async fn retries_exhausted_names_the_endpoint() {
    let fake = Fake::start(|r| {
        if r.path == GETTOKEN {
            ok_token(1, 7200)
        } else {
            err(-1)
        }
    })
    .await;
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 3;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    let e = c.get_chat_data(0, 10).await.unwrap_err();
    assert_clean(&e);
    match &e {
        ApiError::RetriesExhausted {
            endpoint,
            attempts,
            last,
        } => {
            assert_eq!(*endpoint, endpoint::GET_CHAT_DATA);
            assert_eq!(*attempts, 3);
            assert_eq!(last.errcode(), Some(-1));
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("msgaudit/get_chat_data") && msg.contains("3 attempts"),
        "{msg}"
    );
    assert!(msg.contains(CORP) && msg.contains("-1"), "{msg}");
    assert_eq!(e.class(), ErrorClass::Retriable);
    assert_eq!(fake.count(CHAT), 3);
}

#[tokio::test]
async fn connect_failures_are_retried_name_the_server_and_carry_no_secret() {
    let base = dead_address();
    let mut cfg = config(&base);
    cfg.retry.max_attempts = 2;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    let e = c.get_chat_data(0, 10).await.unwrap_err();
    assert_clean(&e);
    let ApiError::RetriesExhausted {
        endpoint: "gettoken",
        attempts: 2,
        last,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(matches!(**last, ApiError::Connect { .. }), "{last:?}");
    assert_eq!(e.class(), ErrorClass::Retriable);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("cannot connect to {base}"))
            && msg.contains("is the archive source running"),
        "{msg}"
    );
    let events = c.events();
    assert_eq!(events.get(EventKind::ConnectFailed), 2);
    assert_eq!(events.get(EventKind::RetriesExhausted), 1);
}

#[tokio::test]
async fn the_base_url_in_errors_carries_no_user_info() {
    let base = dead_address().replace("http://", "http://admin:pa55word@");
    let mut cfg = config(&base);
    cfg.retry.max_attempts = 1;
    let e = wecom_api::ArchiveClient::new(cfg)
        .unwrap()
        .permit_users()
        .await
        .unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(!msg.contains("pa55word") && !msg.contains("admin"), "{msg}");
    assert!(msg.contains("cannot connect to http://127.0.0.1:"), "{msg}");
}

#[tokio::test]
async fn each_kind_of_retried_fault_is_counted_once() {
    let fake = scripted(vec![
        || err(-1),
        || err(-1),
        || err(45009),
        || Reply::Raw {
            status: 502,
            headers: vec![],
            body: Bytes::new(),
        },
        || Reply::Raw {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from_static(b"{\"errcode\":0,\"chat"),
        },
    ])
    .await;
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 10;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    let before = c.events();
    assert_eq!(before.get(EventKind::TokenFetched), 0);
    c.get_chat_data(6, 3).await.unwrap();
    let delta = c.events().since(&before);
    assert_eq!(
        delta.nonzero().collect::<Vec<_>>(),
        vec![
            ("token_fetched", 1),
            ("busy", 2),
            ("rate_limited", 1),
            ("server_error", 1),
            ("truncated_body", 1),
            ("retried", 5),
        ]
    );
    assert_eq!(c.stats().events, c.events());
    // nothing new happened since
    let again = c.events();
    c.get_chat_data(6, 3).await.unwrap();
    assert!(c.events().since(&again).is_empty());
}

#[tokio::test]
async fn a_persisting_token_error_backs_off_and_exhausts() {
    let n = Arc::new(AtomicUsize::new(0));
    let fake = {
        let n = n.clone();
        Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => ok_token(n.fetch_add(1, Ordering::SeqCst) + 1, 7200),
            _ => err(40014),
        })
        .await
    };
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 3;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    let e = c.get_chat_data(0, 10).await.unwrap_err();
    assert_clean(&e);
    assert_eq!(e.errcode(), Some(40014));
    // one free retry after the first refresh, then 3 counted attempts
    assert_eq!(fake.count(CHAT), 4);
    assert_eq!(fake.count(GETTOKEN), 4);
}
