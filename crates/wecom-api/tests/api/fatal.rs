//! Fatal answers fail at once, name the corp and the errcode, and leak no secret.

use std::time::Duration;

use serde_json::json;
use wecom_api::{endpoint, ApiError, ErrorClass};

use crate::support::*;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const CHAT: &str = "/cgi-bin/msgaudit/get_chat_data";

#[tokio::test]
async fn bad_secret_on_gettoken_is_fatal() {
    let fake = Fake::start(|r| match r.path.as_str() {
        // the errmsg echoes the secret: it must be scrubbed
        GETTOKEN => {
            Reply::Json(json!({"errcode":40001,"errmsg":format!("invalid credential {SECRET}")}))
        }
        _ => items(1..=1),
    })
    .await;
    let c = client(&fake.base_url);
    let e = c.get_chat_data(0, 10).await.unwrap_err();
    assert_clean(&e);
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert!(
        matches!(
            e,
            ApiError::Api {
                endpoint: endpoint::GETTOKEN,
                errcode: 40001,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(CORP) && msg.contains("40001") && msg.contains("gettoken"),
        "{msg}"
    );
    assert_eq!(fake.count(GETTOKEN), 1);
    assert_eq!(fake.count(CHAT), 0);
}

#[tokio::test]
async fn subscription_expired_is_fatal_at_once() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Json(json!({"errcode":301052,"errmsg":format!("expired, token {}", token(1))})),
    })
    .await;
    let c = client(&fake.base_url);
    let started = std::time::Instant::now();
    let e = c.get_chat_data(0, 10).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_clean(&e);
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert_eq!(e.errcode(), Some(301052));
    let msg = e.to_string();
    assert!(
        msg.contains(CORP) && msg.contains("301052") && msg.contains("get_chat_data"),
        "{msg}"
    );
    assert_eq!(fake.count(CHAT), 1);
}

#[tokio::test]
async fn unknown_errcodes_and_client_errors_are_fatal() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        "/cgi-bin/msgaudit/get_permit_user_list" => err(654321),
        _ => Reply::Raw {
            status: 404,
            headers: vec![],
            body: bytes::Bytes::from_static(b"nope"),
        },
    })
    .await;
    let c = client(&fake.base_url);
    let e = c.permit_users().await.unwrap_err();
    assert_clean(&e);
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert!(e.to_string().contains("654321"));
    let e = c.room_info("wr1").await.unwrap_err();
    assert_clean(&e);
    assert!(matches!(e, ApiError::Http { status: 404, .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn invalid_arguments_send_nothing() {
    let fake = Fake::start(|_| ok_token(1, 7200)).await;
    let c = client(&fake.base_url);
    for limit in [0, 1001] {
        let e = c.get_chat_data(0, limit).await.unwrap_err();
        assert!(matches!(e, ApiError::InvalidArgument(_)), "{e:?}");
        assert_eq!(e.class(), ErrorClass::Fatal);
        let e = c.room_items("wr1", 0, limit).await.unwrap_err();
        assert!(matches!(e, ApiError::InvalidArgument(_)), "{e:?}");
    }
    assert!(matches!(
        c.media("", 0).await.unwrap_err(),
        ApiError::InvalidArgument(_)
    ));
    assert_eq!(fake.count(GETTOKEN), 0);
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 0;
    assert!(wecom_api::ArchiveClient::new(cfg).is_err());
    assert!(wecom_api::ArchiveClient::new(config("not a url")).is_err());
}

#[test]
fn config_debug_hides_the_secret() {
    let text = format!("{:?}", config("http://127.0.0.1:1"));
    assert!(!text.contains(SECRET), "{text}");
    let c = client("http://127.0.0.1:1");
    assert!(!format!("{c:?}").contains(SECRET));
}
