//! The consent calls: bodies as the service spells them, batches of at most 100 pairs, answers kept
//! verbatim, and the same token handling and retries as every call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use wecom_api::{endpoint, AgreeStatus, ApiError, ErrorClass, MAX_AGREE_PAIRS};

use crate::support::*;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const SINGLE: &str = "/cgi-bin/msgaudit/check_single_agree";
const ROOM: &str = "/cgi-bin/msgaudit/check_room_agree";

fn pairs(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("user{i}"), format!("wm{i:04}")))
        .collect()
}

/// Answers every asked pair except those whose user number is divisible by 7, with a status that
/// cycles through the known ones and one the client does not know.
fn answer_single(req: &Value) -> Reply {
    let statuses = ["Agree", "Disagree", "Default_Agree", "Pending_Later"];
    let info: Vec<Value> = req["info"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let user = p["userid"].as_str().unwrap();
            let n: usize = user.trim_start_matches("user").parse().unwrap();
            (!n.is_multiple_of(7)).then(|| {
                json!({"status_change_time": 1_562_766_651 + n as i64, "userid": user,
                       "exteranalopenid": p["exteranalopenid"], "agree_status": statuses[n % 4]})
            })
        })
        .collect();
    Reply::Json(json!({"errcode":0,"errmsg":"ok","agreeinfo":info}))
}

#[tokio::test]
async fn single_agree_is_asked_in_batches_of_at_most_100() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        SINGLE => answer_single(&r.json()),
        _ => err(404),
    })
    .await;
    let c = client(&fake.base_url);
    let asked = pairs(250);
    let got = c.check_single_agree(&asked).await.unwrap();

    let reqs = fake.requests(SINGLE);
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| r.json()["info"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![MAX_AGREE_PAIRS, MAX_AGREE_PAIRS, 50]);
    assert!(reqs.iter().all(|r| r.token() == token(1)));
    assert_eq!(
        reqs[0].json()["info"][3],
        json!({"userid":"user3","exteranalopenid":"wm0003"})
    );

    let expected: Vec<usize> = (0..250usize).filter(|n| !n.is_multiple_of(7)).collect();
    assert_eq!(got.len(), expected.len());
    for (info, n) in got.iter().zip(expected) {
        assert_eq!(info.userid, format!("user{n}"));
        assert_eq!(info.external_openid, format!("wm{n:04}"));
        assert_eq!(info.status_change_time, 1_562_766_651 + n as i64);
        let status = match n % 4 {
            0 => AgreeStatus::Agree,
            1 => AgreeStatus::Disagree,
            2 => AgreeStatus::DefaultAgree,
            _ => AgreeStatus::Other("Pending_Later".into()),
        };
        assert_eq!(info.agree_status, status);
    }
}

#[tokio::test]
async fn room_agree_reads_the_vote_list() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        ROOM => Reply::Json(json!({"errcode":0,"errmsg":"ok","voteinfo":[
            {"status_change_time":1562766651,"exteranalopenid":"wmA","agree_status":"Agree"},
            {"status_change_time":1562766652,"exteranalopenid":"wmB","agree_status":"Disagree"}]})),
        _ => err(404),
    })
    .await;
    let c = client(&fake.base_url);
    let got = c.check_room_agree("wrROOM").await.unwrap();
    assert_eq!(fake.requests(ROOM)[0].json(), json!({"roomid":"wrROOM"}));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (
            got[1].external_openid.as_str(),
            &got[1].agree_status,
            got[1].status_change_time
        ),
        ("wmB", &AgreeStatus::Disagree, 1_562_766_652)
    );
}

#[tokio::test]
async fn empty_answers_and_invalid_arguments() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        // a caught-up style answer without the list key
        _ => Reply::Json(json!({"errcode":0,"errmsg":"ok"})),
    })
    .await;
    let c = client(&fake.base_url);
    assert!(c.check_single_agree(&[]).await.unwrap().is_empty());
    assert_eq!(fake.count(SINGLE), 0, "an empty input sends nothing");
    assert!(c.check_single_agree(&pairs(3)).await.unwrap().is_empty());
    assert!(c.check_room_agree("wr1").await.unwrap().is_empty());
    let mut bad = pairs(150);
    bad[120].1.clear();
    assert!(matches!(
        c.check_single_agree(&bad).await.unwrap_err(),
        ApiError::InvalidArgument(_)
    ));
    assert!(matches!(
        c.check_room_agree("").await.unwrap_err(),
        ApiError::InvalidArgument(_)
    ));
    assert_eq!(fake.count(SINGLE), 1, "nothing of an invalid input is sent");
}

#[tokio::test]
async fn consent_calls_refresh_tokens_retry_and_fail_like_the_others() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let room_calls = Arc::new(AtomicUsize::new(0));
    let fake = {
        let tokens = tokens.clone();
        Fake::start(move |r| match r.path.as_str() {
            GETTOKEN => ok_token(tokens.fetch_add(1, Ordering::SeqCst) + 1, 7200),
            SINGLE if r.token() == token(1) => err(42001),
            SINGLE => answer_single(&r.json()),
            ROOM => match room_calls.fetch_add(1, Ordering::SeqCst) {
                0 => err(-1),
                1 => err(45009),
                _ => err(301053),
            },
            _ => err(404),
        })
        .await
    };
    let c = client(&fake.base_url);
    assert_eq!(c.check_single_agree(&pairs(3)).await.unwrap().len(), 2);
    assert_eq!(fake.count(GETTOKEN), 2);
    let e = c.check_room_agree("wr1").await.unwrap_err();
    assert_clean(&e);
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert_eq!(e.endpoint(), Some(endpoint::CHECK_ROOM_AGREE));
    assert!(e.to_string().contains("msgaudit/check_room_agree"), "{e}");
    assert_eq!(fake.count(ROOM), 3);
    let stats = c.stats();
    assert_eq!(stats.retries.get(endpoint::CHECK_ROOM_AGREE), Some(&2));
    assert_eq!(stats.calls.get(endpoint::CHECK_SINGLE_AGREE), Some(&2));
}

#[tokio::test]
async fn a_status_of_the_wrong_type_breaks_the_contract() {
    let fake = Fake::start(|r| match r.path.as_str() {
        GETTOKEN => ok_token(1, 7200),
        _ => Reply::Json(json!({"errcode":0,"errmsg":"ok","voteinfo":[
            {"status_change_time":1,"exteranalopenid":"wmA","agree_status":3}]})),
    })
    .await;
    let e = client(&fake.base_url)
        .check_room_agree("wr1")
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Contract { .. }), "{e:?}");
}
