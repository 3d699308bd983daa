//! Consent: the agree / disagree items of the stream, the ground truth and the two check APIs tell
//! the same story.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use wecom_sim::{status_at, AgreeStatus, ConsentChange, FaultConfig};

use crate::common::*;

fn status(s: &str) -> AgreeStatus {
    match s {
        "Agree" => AgreeStatus::Agree,
        "Disagree" => AgreeStatus::Disagree,
        "Default_Agree" => AgreeStatus::DefaultAgree,
        other => panic!("unknown agree_status {other}"),
    }
}

/// (status, msgtime ms, seq) of every consent item, by (scope, external): scope is the user of a 1:1
/// item or the roomid.
type Recorded = BTreeMap<(String, String), Vec<(AgreeStatus, i64, u64)>>;

fn recorded_from_stream(messages: &BTreeMap<u64, Value>) -> Recorded {
    let mut out = Recorded::new();
    for (seq, m) in messages {
        let (st, key, time_key) = match m["msgtype"].as_str() {
            Some("agree") => (AgreeStatus::Agree, "agree", "agree_time"),
            Some("disagree") => (AgreeStatus::Disagree, "disagree", "disagree_time"),
            _ => continue,
        };
        let from = m["from"].as_str().unwrap().to_owned();
        assert!(
            from.starts_with("wm") || from.starts_with("wo"),
            "sent by the external: {m}"
        );
        assert_eq!(
            m[key]["userid"],
            from.as_str(),
            "payload names the external: {m}"
        );
        assert_eq!(m[key][time_key], m["msgtime"], "{m}");
        let scope = match m["roomid"].as_str().filter(|r| !r.is_empty()) {
            Some(room) => room.to_owned(),
            None => {
                let to = m["tolist"].as_array().unwrap();
                assert_eq!(to.len(), 1, "{m}");
                to[0].as_str().unwrap().to_owned()
            }
        };
        out.entry((scope, from))
            .or_default()
            .push((st, m["msgtime"].as_i64().unwrap(), *seq));
    }
    out
}

fn from_truth(changes: &[ConsentChange]) -> Vec<(AgreeStatus, i64, u64)> {
    changes
        .iter()
        .filter_map(|c| c.seq.map(|seq| (c.status, c.time_ms, seq)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_truth_and_check_apis_agree() {
    let mut cfg = config(21, 4000);
    cfg.faults = FaultConfig {
        rate_limit_45009: 0.1,
        system_busy: 0.1,
        http_5xx: 0.05,
        connection_reset: 0.05,
        token_expire_early: 0.05,
        ..FaultConfig::default()
    };
    let sim = serve(cfg).await;
    let messages = decrypted_messages(&sim).await;
    let recorded = recorded_from_stream(&messages);
    assert!(!recorded.is_empty());
    let truth = sim.consent();
    let first_msgtime = sim.truth()[0].msgtime_ms;

    // Every change in the truth is an item of the stream at its time, and every consent item is a
    // change in the truth.
    let mut in_truth = 0;
    let mut flipped_twice = 0;
    let subjects = truth
        .pairs
        .iter()
        .map(|p| ((p.userid.clone(), p.external.clone()), &p.changes))
        .chain(
            truth
                .rooms
                .iter()
                .map(|r| ((r.roomid.clone(), r.external.clone()), &r.changes)),
        );
    for (key, changes) in subjects {
        let got = recorded.get(&key).cloned().unwrap_or_default();
        assert_eq!(got, from_truth(changes), "{key:?}");
        in_truth += got.len();
        for c in changes.iter().filter(|c| c.seq.is_none()) {
            assert_eq!(c.status, AgreeStatus::DefaultAgree);
            assert!(
                c.time_ms < first_msgtime,
                "Default_Agree predates the corpus"
            );
        }
        // Statuses change: never the same explicit answer twice in a row.
        assert!(got.windows(2).all(|w| w[0].0 != w[1].0), "{key:?}: {got:?}");
        if got.len() >= 3 {
            flipped_twice += 1;
        }
    }
    assert_eq!(in_truth, recorded.values().map(Vec::len).sum::<usize>());
    assert!(flipped_twice > 0, "some consent changes back and forth");
    let silent: Vec<_> = truth
        .pairs
        .iter()
        .filter(|p| p.changes.is_empty())
        .collect();
    assert!(!silent.is_empty(), "some externals never answer");
    assert!(truth.rooms.iter().any(|r| !r.changes.is_empty()));
    let statuses: BTreeSet<AgreeStatus> = truth
        .pairs
        .iter()
        .flat_map(|p| &p.changes)
        .chain(truth.rooms.iter().flat_map(|r| &r.changes))
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses.len(), 3, "all three statuses occur: {statuses:?}");

    // check_single_agree answers the status as of now (nothing changes later in a static corpus).
    let http = client();
    let base = sim.base_url();
    let mut token = String::new();
    let now = now_ms();
    for chunk in truth.pairs.chunks(100) {
        let info: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"userid": p.userid, "exteranalopenid": p.external}))
            .collect();
        let resp = call(
            &http,
            &base,
            &mut token,
            "/cgi-bin/msgaudit/check_single_agree",
            &json!({ "info": info }),
        )
        .await;
        let answered: BTreeMap<(String, String), (AgreeStatus, i64)> = resp["agreeinfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    (
                        a["userid"].as_str().unwrap().to_owned(),
                        a["exteranalopenid"].as_str().unwrap().to_owned(),
                    ),
                    (
                        status(a["agree_status"].as_str().unwrap()),
                        a["status_change_time"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        for p in chunk {
            let want = status_at(&p.changes, now).map(|c| (c.status, c.time_ms.div_euclid(1000)));
            let got = answered
                .get(&(p.userid.clone(), p.external.clone()))
                .copied();
            assert_eq!(got, want, "{} / {}", p.userid, p.external);
        }
    }
    // check_room_agree: the answered external members of each room.
    let mut rooms: BTreeMap<&str, BTreeMap<String, (AgreeStatus, i64)>> = BTreeMap::new();
    for r in &truth.rooms {
        let entry = rooms.entry(&r.roomid).or_default();
        if let Some(c) = status_at(&r.changes, now) {
            entry.insert(r.external.clone(), (c.status, c.time_ms.div_euclid(1000)));
        }
    }
    assert!(rooms.values().any(|m| !m.is_empty()));
    for (roomid, want) in rooms {
        let resp = call(
            &http,
            &base,
            &mut token,
            "/cgi-bin/msgaudit/check_room_agree",
            &json!({ "roomid": roomid }),
        )
        .await;
        let got: BTreeMap<String, (AgreeStatus, i64)> = resp["voteinfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["exteranalopenid"].as_str().unwrap().to_owned(),
                    (
                        status(v["agree_status"].as_str().unwrap()),
                        v["status_change_time"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        assert_eq!(got, want, "room {roomid}");
    }
    let stats = sim.stats();
    assert!(stats.requests["check_single_agree"] > 0 && stats.requests["check_room_agree"] > 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_apis_reject_bad_requests_like_the_other_endpoints() {
    let sim = serve(config(22, 200)).await;
    let http = client();
    let base = sim.base_url();
    let token = fetch_token(&http, &base).await;
    let post = |path: &str, tok: &str, body: Value| {
        let url = format!("{base}/cgi-bin/msgaudit/{path}?access_token={tok}");
        let http = http.clone();
        async move {
            let v: Value = http
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["errcode"].as_i64().unwrap()
        }
    };
    let pair = json!({"userid": "zhangsan", "exteranalopenid": "wmnobody"});
    let many: Vec<Value> = (0..101).map(|_| pair.clone()).collect();
    assert_eq!(
        post("check_single_agree", &token, json!({"info": many})).await,
        40058
    );
    assert_eq!(
        post("check_single_agree", &token, json!({"info": []})).await,
        40058
    );
    assert_eq!(
        post(
            "check_single_agree",
            &token,
            json!({"info": [{"userid": "zhangsan", "externalopenid": "wm1"}]})
        )
        .await,
        40058,
        "the field is spelled exteranalopenid"
    );
    assert_eq!(
        post("check_single_agree", "bogus", json!({"info": [pair]})).await,
        40014
    );
    assert_eq!(
        post("check_single_agree", "", json!({"info": [pair]})).await,
        41001
    );
    assert_eq!(
        post("check_room_agree", &token, json!({"roomid": "wrnope"})).await,
        40058
    );
    // An unknown pair is simply not answered.
    let v: Value = http
        .post(format!(
            "{base}/cgi-bin/msgaudit/check_single_agree?access_token={token}"
        ))
        .json(&json!({"info": [pair]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"errcode": 0, "errmsg": "ok", "agreeinfo": []}));
    let served: Value = http
        .get(format!("{base}/_sim/truth/consent"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(sim.consent()).unwrap(), served);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_deterministic_per_seed() {
    let cfg = config(23, 1500);
    let mut other = cfg.clone();
    other.seed = 24;
    let (a, b, c) = (
        serve(cfg.clone()).await,
        serve(cfg).await,
        serve(other).await,
    );
    assert_eq!(a.consent(), b.consent());
    assert_ne!(a.consent(), c.consent());
    for s in [a, b, c] {
        s.shutdown().await;
    }
}
