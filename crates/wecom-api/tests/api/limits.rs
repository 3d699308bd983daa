//! What the client refuses to take from a server: answers over the body limit (never read whole),
//! pages with more items than asked for, and token lifetimes that would overflow the clock.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use wecom_api::{endpoint, ApiError, ErrorClass, EventKind};

use crate::support::*;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const CHAT: &str = "/cgi-bin/msgaudit/get_chat_data";
const ROOM: &str = "/cgi-bin/msgaudit/groupchat/get";

/// Fails the test instead of hanging when the client reads an endless body.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the call did not finish: the body was read without a limit")
}

fn padding_chunk() -> Bytes {
    Bytes::from(vec![b' '; 64 * 1024])
}

#[tokio::test]
async fn an_endless_page_is_refused_at_the_limit() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Endless {
            chunk: padding_chunk(),
            declared: None,
        },
    })
    .await;
    let mut cfg = config(&fake.base_url);
    cfg.page_body_limit = 1024 * 1024;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    let e = within(c.get_chat_data(0, 10)).await.unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::BodyTooLarge {
                endpoint: endpoint::GET_CHAT_DATA,
                limit: 1_048_576
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);
    let msg = e.to_string();
    assert!(
        msg.contains("msgaudit/get_chat_data") && msg.contains("1048576 bytes"),
        "{msg}"
    );
    assert_eq!(fake.count(CHAT), 1, "an oversized answer is not retried");
    assert_eq!(c.events().get(EventKind::BodyTooLarge), 1);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    // Declares 100 MiB, then sends forever: only the declaration can end the call quickly.
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Endless {
            chunk: padding_chunk(),
            declared: Some(100 * 1024 * 1024),
        },
    })
    .await;
    let c = client(&fake.base_url);
    let e = within(c.get_chat_data(0, 10)).await.unwrap_err();
    assert!(
        matches!(e, ApiError::BodyTooLarge { limit, .. } if limit == wecom_api::DEFAULT_PAGE_BODY_LIMIT),
        "{e:?}"
    );
}

#[tokio::test]
async fn small_calls_have_the_small_limit() {
    let members: Vec<_> = (0..20_000)
        .map(|i| json!({"memberid": format!("member-{i:08}"), "jointime": 1_600_000_000}))
        .collect();
    let big_room = json!({"errcode":0,"errmsg":"ok","roomname":"r","members":members});
    assert!(big_room.to_string().len() > 1024 * 1024);
    let fake = Fake::start(move |r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Json(big_room.clone()),
    })
    .await;
    let c = client(&fake.base_url);
    let e = within(c.room_info("wr1")).await.unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::BodyTooLarge {
                endpoint: endpoint::GROUPCHAT_GET,
                limit: wecom_api::DEFAULT_SMALL_BODY_LIMIT
            }
        ),
        "{e:?}"
    );
    // the same room fits when the limit is raised
    let mut cfg = config(&fake.base_url);
    cfg.small_body_limit = 8 * 1024 * 1024;
    let info = wecom_api::ArchiveClient::new(cfg)
        .unwrap()
        .room_info("wr1")
        .await
        .unwrap();
    assert_eq!(info.members.len(), 20_000);
}

#[tokio::test]
async fn an_oversized_token_answer_is_refused() {
    let fake = Fake::start(|_| Reply::Endless {
        chunk: padding_chunk(),
        declared: None,
    })
    .await;
    let e = within(client(&fake.base_url).permit_users())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::BodyTooLarge {
                endpoint: endpoint::GETTOKEN,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_oversized_error_page_is_reported_as_its_status() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Raw {
            status: 503,
            headers: vec![],
            body: Bytes::from(vec![b'x'; 2 * 1024 * 1024]),
        },
    })
    .await;
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 1;
    let e = wecom_api::ArchiveClient::new(cfg)
        .unwrap()
        .room_info("wr1")
        .await
        .unwrap_err();
    let ApiError::RetriesExhausted { last, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        matches!(**last, ApiError::Http { status: 503, .. }),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_page_with_more_items_than_asked_is_a_retriable_protocol_error() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => items(1..=5),
    })
    .await;
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 2;
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    for (e, ep) in [
        (
            c.get_chat_data(0, 3).await.unwrap_err(),
            endpoint::GET_CHAT_DATA,
        ),
        (
            c.room_items("wr1", 0, 4).await.unwrap_err(),
            endpoint::GROUPCHAT_GET,
        ),
    ] {
        assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
        let ApiError::RetriesExhausted {
            last, attempts: 2, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        let ApiError::TooManyItems {
            endpoint,
            limit,
            count: 5,
        } = **last
        else {
            panic!("{last:?}")
        };
        assert_eq!(endpoint, ep);
        let msg = e.to_string();
        assert!(
            msg.contains(ep)
                && msg.contains(&format!("at most {limit}"))
                && msg.contains("5 items"),
            "{msg}"
        );
    }
    assert_eq!(fake.count(CHAT), 2);
    assert_eq!(fake.count(ROOM), 2);
    assert_eq!(c.events().get(EventKind::TooManyItems), 4);
    // exactly the limit is fine
    assert_eq!(
        seqs(&c.get_chat_data(0, 5).await.unwrap()),
        vec![1, 2, 3, 4, 5]
    );
}

/// Repeats (one seq twice, items at or below the requested seq) do not count against the limit: they reach
/// the fetcher, which drops them.
#[tokio::test]
async fn repeated_seqs_do_not_count_against_the_limit() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Json(
            json!({"errcode":0,"errmsg":"ok","chatdata":[item(1), item(2), item(3), item(3), item(4)]}),
        ),
    })
    .await;
    let c = wecom_api::ArchiveClient::new(config(&fake.base_url)).unwrap();
    assert_eq!(
        seqs(&c.get_chat_data(1, 3).await.unwrap()),
        vec![1, 2, 3, 3, 4]
    );
    assert_eq!(fake.count(CHAT), 1);
}

#[tokio::test]
async fn a_page_over_the_limit_once_is_retried_and_then_served() {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fake = {
        let n = n.clone();
        Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => ok_token(1, 7200),
            _ if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => items(1..=4),
            _ => items(1..=2),
        })
        .await
    };
    let c = client(&fake.base_url);
    assert_eq!(seqs(&c.get_chat_data(0, 2).await.unwrap()), vec![1, 2]);
    assert_eq!(fake.count(CHAT), 2);
}

#[tokio::test]
async fn huge_expires_in_values_do_not_panic() {
    for expires_in in [
        json!(1u64 << 63),
        json!(u64::MAX),
        json!(1e30),
        json!(18446744073709551616.0),
    ] {
        let fake = Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => Reply::Json(
                json!({"errcode":0,"errmsg":"ok","access_token":token(1),"expires_in":expires_in}),
            ),
            _ => items(1..=1),
        })
        .await;
        let c = client(&fake.base_url);
        for _ in 0..2 {
            assert_eq!(seqs(&c.get_chat_data(0, 10).await.unwrap()), vec![1]);
        }
        assert_eq!(fake.count(GETTOKEN), 1, "the clamped token is cached");
    }
}

#[tokio::test]
async fn a_negative_expires_in_breaks_the_contract() {
    let fake = Fake::start(|_| {
        Reply::Json(json!({"errcode":0,"errmsg":"ok","access_token":token(1),"expires_in":-5}))
    })
    .await;
    let e = client(&fake.base_url).permit_users().await.unwrap_err();
    assert!(matches!(e, ApiError::Contract { .. }), "{e:?}");
    assert!(e.to_string().contains("expires_in"), "{e}");
}
