//! An answer of the archive service (`gettoken`, `get_chat_data`, `groupchat/get`, the permit list)
//! or of the SDK's `GetChatData`, as raw bytes.
//!
//! Checks, for every response type of `wecom_model::api`:
//! - decoding never panics, directly from bytes (as `wecom_sdk::parse_chat_data` does) or through a
//!   `serde_json::Value` first (as the HTTP client does), and both agree when the direct one succeeds;
//! - what decodes survives a JSON round trip unchanged;
//! - an archive item keeps everything the server sent: serializing it gives back every key of the
//!   served object with the same value (the raw archive and the dead-letter output rely on it);
//! - `wecom_sdk::parse_chat_data` accepts exactly the pages with errcode 0 and returns their items.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use wecom_model::api::{
    ChatDataResponse, ErrorEnvelope, PermitUserListResponse, RoomInfo, TokenResponse,
};

fuzz_target!(|data: &[u8]| {
    let value = serde_json::from_slice::<Value>(data).ok();
    decode::<TokenResponse>(data, value.as_ref());
    decode::<RoomInfo>(data, value.as_ref());
    decode::<PermitUserListResponse>(data, value.as_ref());
    decode::<ErrorEnvelope>(data, value.as_ref());
    let page = decode::<ChatDataResponse>(data, value.as_ref());

    if let (Some(page), Some(served)) = (&page, &value) {
        let served_items = served.get("chatdata").and_then(Value::as_array);
        for (i, item) in page.chatdata.iter().enumerate() {
            let served = served_items
                .and_then(|items| items.get(i))
                .expect("a decoded item was served");
            let again = serde_json::to_value(item).expect("an item serializes");
            for (key, v) in served.as_object().expect("a decoded item was an object") {
                assert_eq!(
                    again.get(key),
                    Some(v),
                    "item {i}: key {key:?} lost or changed"
                );
            }
        }
    }

    match (wecom_sdk::parse_chat_data(data), page) {
        (Ok(items), Some(page)) => {
            assert_eq!(page.errcode, 0, "a page with an errcode was accepted");
            assert_eq!(items, page.chatdata);
        }
        (Ok(_), None) => panic!("parse_chat_data accepted what ChatDataResponse rejects"),
        (Err(_), Some(page)) => assert_ne!(page.errcode, 0, "a good page was refused"),
        (Err(_), None) => {}
    }
});

/// Decodes `data` as `T` both ways and checks the round trip; returns the direct decoding.
fn decode<T>(data: &[u8], value: Option<&Value>) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let direct = serde_json::from_slice::<T>(data).ok();
    let via_value = value.and_then(|v| T::deserialize(v).ok());
    if let Some(direct) = &direct {
        assert_eq!(
            via_value.as_ref(),
            Some(direct),
            "decoding through a Value disagrees"
        );
        let json = serde_json::to_vec(direct).expect("a decoded response serializes");
        let back: T = serde_json::from_slice(&json).expect("a serialized response decodes");
        assert_eq!(&back, direct, "json round trip changed the response");
    }
    direct
}
