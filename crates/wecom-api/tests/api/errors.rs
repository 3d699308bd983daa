//! Error messages as an operator reads them: the chain printed outermost first says each cause once,
//! and the causes an operator can fix say what to do.

use std::error::Error;
use std::time::Duration;

use serde_json::json;
use wecom_api::ApiError;

use crate::support::*;

const GETTOKEN: &str = "/cgi-bin/gettoken";

/// The chain as the program prints it: each error, then its sources, joined by ": ".
fn render(err: &(dyn Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// Fails when a phrase of three words appears twice in the rendered chain, or when an error exposes
/// a source whose text it already printed.
#[track_caller]
fn assert_said_once(err: &ApiError) {
    let mut level: &(dyn Error + 'static) = err;
    while let Some(source) = level.source() {
        assert!(
            !level.to_string().contains(&source.to_string()),
            "{level} prints its source and exposes it"
        );
        level = source;
    }
    let text = render(err);
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    for phrase in words.windows(3) {
        assert!(
            seen.insert(phrase.to_vec()),
            "{phrase:?} repeats in {text:?}"
        );
    }
}

/// The error of one `get_chat_data` against a server that answers gettoken with `token_reply` and
/// data calls with `data_reply`.
async fn error_of(token_reply: fn() -> Reply, data_reply: fn() -> Reply) -> ApiError {
    let fake = Fake::start(move |r| match r.path.as_str() {
        GETTOKEN => token_reply(),
        _ => data_reply(),
    })
    .await;
    let mut cfg = config(&fake.base_url);
    cfg.retry.max_attempts = 2;
    cfg.request_timeout = Duration::from_millis(200);
    let c = wecom_api::ArchiveClient::new(cfg).unwrap();
    c.get_chat_data(0, 2).await.unwrap_err()
}

fn ok() -> Reply {
    ok_token(1, 7200)
}

#[tokio::test]
async fn every_cause_is_said_once_and_fixable_ones_say_what_to_do() {
    let cases: Vec<(ApiError, &str)> = vec![
        (
            error_of(|| err(40001), || items(1..=1)).await,
            "check WECOM_CORP_SECRET",
        ),
        (
            error_of(|| err(40013), || items(1..=1)).await,
            "check corp.corp_id",
        ),
        (
            error_of(|| err(42001), || items(1..=1)).await,
            "check WECOM_CORP_SECRET and corp.corp_id",
        ),
        (
            error_of(ok, || err(301052)).await,
            "subscription has expired",
        ),
        (error_of(ok, || err(301053)).await, "enable it"),
        (error_of(ok, || err(-1)).await, "gave up after 2 attempts"),
        (error_of(ok, || items(1..=3)).await, "3 items"),
        (
            error_of(ok, || {
                Reply::Delay(Duration::from_secs(3), Box::new(items(1..=1)))
            })
            .await,
            "timed out",
        ),
        (
            error_of(ok, || Reply::Raw {
                status: 200,
                headers: vec![],
                body: bytes::Bytes::from_static(b"{\"errcode\":0,\"chat"),
            })
            .await,
            "undecodable body",
        ),
        (
            error_of(ok, || Reply::Json(json!({"errcode":0,"chatdata":7}))).await,
            "does not match the contract",
        ),
    ];
    for (e, expected) in &cases {
        assert_clean(e);
        assert_said_once(e);
        let msg = render(e);
        assert!(
            msg.contains(expected),
            "{msg:?} should contain {expected:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_names_the_server_once() {
    let base = dead_address();
    let mut cfg = config(&base);
    cfg.retry.max_attempts = 2;
    let e = wecom_api::ArchiveClient::new(cfg)
        .unwrap()
        .room_info("wr1")
        .await
        .unwrap_err();
    assert_said_once(&e);
    let msg = render(&e);
    assert_eq!(msg.matches(base.as_str()).count(), 1, "{msg}");
    assert!(msg.contains("refused"), "{msg}");
    assert!(msg.contains("is the archive source running"), "{msg}");
}
