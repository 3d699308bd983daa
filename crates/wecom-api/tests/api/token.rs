//! The access-token cache: fetched once, refreshed before expiry, refreshed once on rejection, and a
//! single refresh shared by concurrent callers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const CHAT: &str = "/cgi-bin/msgaudit/get_chat_data";

#[tokio::test]
async fn token_is_fetched_once_and_cached() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => items(1..=2),
    })
    .await;
    let c = client(&fake.base_url);
    for _ in 0..3 {
        assert_eq!(seqs(&c.get_chat_data(0, 100).await.unwrap()), vec![1, 2]);
    }
    assert_eq!(fake.count(GETTOKEN), 1);
    assert_eq!(c.token_refreshes(), 1);
    let gt = &fake.requests(GETTOKEN)[0];
    assert_eq!(gt.query["corpid"], CORP);
    assert_eq!(gt.query["corpsecret"], SECRET);
    let data = fake.requests(CHAT);
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|r| r.token() == token(1)));
    assert_eq!(data[0].json(), serde_json::json!({"seq":0,"limit":100}));
}

#[tokio::test]
async fn token_is_refreshed_after_the_margin() {
    let n = Arc::new(AtomicUsize::new(0));
    let fake = {
        let n = n.clone();
        Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => ok_token(n.fetch_add(1, Ordering::SeqCst) + 1, 2),
            _ => items(1..=1),
        })
        .await
    };
    let mut cfg = config(&fake.base_url);
    cfg.token_refresh_margin = Duration::from_secs(1);
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    c.get_chat_data(0, 10).await.unwrap();
    c.get_chat_data(0, 10).await.unwrap();
    assert_eq!(fake.count(GETTOKEN), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.get_chat_data(0, 10).await.unwrap();
    assert_eq!(fake.count(GETTOKEN), 2);
    let tokens: Vec<String> = fake
        .requests(CHAT)
        .iter()
        .map(|r| r.token().to_owned())
        .collect();
    assert_eq!(tokens, vec![token(1), token(1), token(2)]);
}

#[tokio::test]
async fn expired_token_error_refreshes_once_and_retries() {
    let n = Arc::new(AtomicUsize::new(0));
    let fake = {
        let n = n.clone();
        Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => ok_token(n.fetch_add(1, Ordering::SeqCst) + 1, 7200),
            _ if r.token() == token(1) => err(42001),
            _ => items(5..=6),
        })
        .await
    };
    let c = client(&fake.base_url);
    assert_eq!(seqs(&c.get_chat_data(4, 10).await.unwrap()), vec![5, 6]);
    assert_eq!(fake.count(GETTOKEN), 2);
    assert_eq!(fake.count(CHAT), 2);
    assert_eq!(c.token_refreshes(), 2);
    assert_eq!(c.stats().api_errors.get(&42001), Some(&1));
}

#[tokio::test]
async fn concurrent_callers_on_an_expired_token_share_one_refresh() {
    let n = Arc::new(AtomicUsize::new(0));
    let fake = {
        let n = n.clone();
        Fake::start(move |r| match r.path.as_str() {
            // slow enough that all callers pile up behind the refresh
            GETTOKEN => Reply::Delay(
                Duration::from_millis(100),
                Box::new(ok_token(n.fetch_add(1, Ordering::SeqCst) + 1, 1)),
            ),
            _ => items(1..=1),
        })
        .await
    };
    let mut cfg = config(&fake.base_url);
    cfg.token_refresh_margin = Duration::ZERO;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    c.get_chat_data(0, 10).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // expires_in = 1 s has run out
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get_chat_data(0, 10).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        fake.count(GETTOKEN),
        2,
        "exactly one refresh for 16 callers"
    );
    assert!(fake.requests(CHAT)[1..]
        .iter()
        .all(|r| r.token() == token(2)));
}

#[tokio::test]
async fn concurrent_rejections_of_one_token_cause_one_refresh() {
    let n = Arc::new(AtomicUsize::new(0));
    let fake = {
        let n = n.clone();
        Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => ok_token(n.fetch_add(1, Ordering::SeqCst) + 1, 7200),
            // the server "expired" token 1 early: every caller holding it is rejected
            _ if r.token() == token(1) => {
                Reply::Delay(Duration::from_millis(50), Box::new(err(42001)))
            }
            _ => items(1..=1),
        })
        .await
    };
    let c = client(&fake.base_url);
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get_chat_data(0, 10).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(fake.count(GETTOKEN), 2);
}
