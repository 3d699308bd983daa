//! Structured requests and responses of the worker protocol (`wecom_sdk::protocol`), built with
//! `arbitrary`: every one encodes to a frame whose length prefix is right and that decodes to the
//! same id and value, also when several frames share one stream; a batch frame is exactly as long as
//! its items' `wire_len` say.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wecom_sdk::protocol::{
    decode_request, decode_response, encode_request, encode_response, read_frame_blocking,
    DecryptItem, ItemReply, Request, Response, FRAME_OVERHEAD,
};

/// Mirrors `Request` (the crate does not derive `Arbitrary`): add a variant here when one is added.
#[derive(Debug, Arbitrary)]
enum Req {
    GetChatData {
        seq: u64,
        limit: u32,
        proxy: Vec<u8>,
        passwd: Vec<u8>,
        timeout: i32,
    },
    DecryptData {
        encrypt_key: Vec<u8>,
        encrypt_msg: Vec<u8>,
    },
    GetMediaData {
        indexbuf: Vec<u8>,
        sdkfileid: Vec<u8>,
        proxy: Vec<u8>,
        passwd: Vec<u8>,
        timeout: i32,
    },
    Ping,
    DecryptBatch {
        items: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

impl From<Req> for Request {
    fn from(r: Req) -> Self {
        match r {
            Req::GetChatData {
                seq,
                limit,
                proxy,
                passwd,
                timeout,
            } => Request::GetChatData {
                seq,
                limit,
                proxy,
                passwd,
                timeout,
            },
            Req::DecryptData {
                encrypt_key,
                encrypt_msg,
            } => Request::DecryptData {
                encrypt_key,
                encrypt_msg,
            },
            Req::GetMediaData {
                indexbuf,
                sdkfileid,
                proxy,
                passwd,
                timeout,
            } => Request::GetMediaData {
                indexbuf,
                sdkfileid,
                proxy,
                passwd,
                timeout,
            },
            Req::Ping => Request::Ping,
            Req::DecryptBatch { items } => Request::DecryptBatch {
                items: items
                    .into_iter()
                    .map(|(encrypt_key, encrypt_msg)| DecryptItem {
                        encrypt_key,
                        encrypt_msg,
                    })
                    .collect(),
            },
        }
    }
}

/// Mirrors `Response`.
#[derive(Debug, Arbitrary)]
enum Resp {
    Ready {
        init_ret: i32,
    },
    Reply {
        ret: i32,
        data: Vec<u8>,
        outindexbuf: Vec<u8>,
        is_finish: bool,
    },
    Refused {
        reason: String,
    },
    StartupFailed {
        reason: String,
    },
    BatchReply {
        items: Vec<Item>,
    },
}

/// Mirrors `ItemReply`.
#[derive(Debug, Arbitrary)]
enum Item {
    Done { ret: i32, data: Vec<u8> },
    Refused { reason: String },
}

impl From<Item> for ItemReply {
    fn from(i: Item) -> Self {
        match i {
            Item::Done { ret, data } => ItemReply::Done { ret, data },
            Item::Refused { reason } => ItemReply::Refused { reason },
        }
    }
}

impl From<Resp> for Response {
    fn from(r: Resp) -> Self {
        match r {
            Resp::Ready { init_ret } => Response::Ready { init_ret },
            Resp::Reply {
                ret,
                data,
                outindexbuf,
                is_finish,
            } => Response::Reply {
                ret,
                data,
                outindexbuf,
                is_finish,
            },
            Resp::Refused { reason } => Response::Refused { reason },
            Resp::StartupFailed { reason } => Response::StartupFailed { reason },
            Resp::BatchReply { items } => Response::BatchReply {
                items: items.into_iter().map(ItemReply::from).collect(),
            },
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Frame {
    Request(u64, Req),
    Response(u64, Resp),
}

/// What a frame must decode to.
enum Want {
    Request(u64, Request),
    Response(u64, Response),
}

fuzz_target!(|frames: Vec<Frame>| {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for frame in frames {
        let (bytes, want) = match frame {
            Frame::Request(id, req) => {
                let req = Request::from(req);
                (encode_request(id, &req), Want::Request(id, req))
            }
            Frame::Response(id, resp) => {
                let resp = Response::from(resp);
                (encode_response(id, &resp), Want::Response(id, resp))
            }
        };
        let len = u32::from_be_bytes(bytes[..4].try_into().expect("a frame has a prefix"));
        assert_eq!(len as usize, bytes.len() - 4, "length prefix is wrong");
        // The batcher sizes batches by these lengths before encoding them.
        let batch_len = match &want {
            Want::Request(_, Request::DecryptBatch { items }) => {
                Some(items.iter().map(DecryptItem::wire_len).sum::<usize>())
            }
            Want::Response(_, Response::BatchReply { items }) => {
                Some(items.iter().map(ItemReply::wire_len).sum::<usize>())
            }
            _ => None,
        };
        if let Some(items_len) = batch_len {
            assert_eq!(
                bytes.len(),
                FRAME_OVERHEAD + 4 + items_len,
                "a batch frame's size is not what wire_len predicts"
            );
        }
        stream.extend_from_slice(&bytes);
        expected.push(want);
    }

    let mut r = stream.as_slice();
    for want in expected {
        let body = read_frame_blocking(&mut r)
            .expect("an encoded frame reads")
            .expect("an encoded frame is there");
        match want {
            Want::Request(id, req) => {
                assert_eq!(decode_request(&body).expect("request decodes"), (id, req));
            }
            Want::Response(id, resp) => {
                assert_eq!(
                    decode_response(&body).expect("response decodes"),
                    (id, resp)
                );
            }
        }
    }
    assert!(
        read_frame_blocking(&mut r)
            .expect("clean end of stream")
            .is_none(),
        "bytes left after the last frame"
    );
});
