//! The room and permit-user calls send the contract's bodies and read its answers.

use serde_json::json;

use crate::support::*;

const ROOM: &str = "/cgi-bin/msgaudit/groupchat/get";

#[tokio::test]
async fn room_items_room_info_and_permit_users() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/cgi-bin/gettoken" => ok_token(1, 7200),
        ROOM if r.json().get("seq").is_some() => items(3..=4),
        ROOM => Reply::Json(
            json!({"errcode":0,"errmsg":"ok","roomname":"team","creator":"zhangsan",
            "room_create_time":1_600_000_000,"notice":"hi",
            "members":[{"memberid":"zhangsan","jointime":1_600_000_001}]}),
        ),
        "/cgi-bin/msgaudit/get_permit_user_list" => {
            Reply::Json(json!({"errcode":0,"errmsg":"ok","ids":["a","b"]}))
        }
        _ => err(404),
    })
    .await;
    let c = client(&fake.base_url);
    assert_eq!(
        seqs(&c.room_items("wrROOM", 2, 50).await.unwrap()),
        vec![3, 4]
    );
    let info = c.room_info("wrROOM").await.unwrap();
    assert_eq!(serde_json::to_value(&info).unwrap()["roomname"], "team");
    assert_eq!(
        c.permit_users().await.unwrap(),
        vec!["a".to_owned(), "b".to_owned()]
    );
    let room = fake.requests(ROOM);
    assert_eq!(
        room[0].json(),
        json!({"roomid":"wrROOM","seq":2,"limit":50})
    );
    assert_eq!(room[1].json(), json!({"roomid":"wrROOM"}));
    assert!(room.iter().all(|r| r.token() == token(1)));
}

#[tokio::test]
async fn unknown_item_fields_are_kept() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/cgi-bin/gettoken" => ok_token(1, 7200),
        _ => {
            let mut it = item(1);
            it["future_field"] = json!({"x": 1});
            Reply::Json(json!({"errcode":0,"errmsg":"ok","chatdata":[it]}))
        }
    })
    .await;
    let got = client(&fake.base_url).get_chat_data(0, 1).await.unwrap();
    assert_eq!(got[0].extra.get("future_field"), Some(&json!({"x": 1})));
}
