//! Bytes on a worker's pipe: what the supervisor reads from a worker's stdout (responses) and a
//! worker reads from its stdin (requests), `wecom_sdk::protocol`.
//!
//! Checks that
//! - reading frames from the stream (blocking and async readers alike) never panics, never yields a
//!   frame larger than `MAX_FRAME` or than the bytes actually there, and both readers agree;
//! - decoding a frame body as a request or a response never panics, and what decodes encodes to a
//!   frame that decodes to the same value (the encoding is canonical from then on).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wecom_sdk::protocol::{
    decode_request, decode_response, encode_request, encode_response, read_frame,
    read_frame_blocking, MAX_FRAME,
};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
});

fuzz_target!(|data: &[u8]| {
    // The whole input as one body, as the decoders see it after the reader.
    check_body(data);

    // The input as a stream of frames.
    let mut rest = data;
    let mut bodies = Vec::new();
    loop {
        let before = rest.len();
        match read_frame_blocking(&mut rest) {
            Ok(Some(body)) => {
                assert!(body.len() <= MAX_FRAME, "frame over the limit");
                assert_eq!(before - rest.len(), body.len() + 4, "frame length mismatch");
                check_body(&body);
                bodies.push(body);
            }
            Ok(None) => {
                assert_eq!(before, 0, "end of stream reported with bytes left");
                break;
            }
            Err(_) => break,
        }
    }

    let mut rest = data;
    let mut async_bodies = Vec::new();
    RUNTIME.block_on(async {
        while let Ok(body) = read_frame(&mut rest).await {
            async_bodies.push(body);
        }
    });
    assert_eq!(async_bodies, bodies, "blocking and async readers disagree");
});

fn check_body(body: &[u8]) {
    if let Ok((id, req)) = decode_request(body) {
        let frame = encode_request(id, &req);
        let again = decode_request(&frame[4..]).expect("an encoded request decodes");
        assert_eq!(again, (id, req), "request changed through encode/decode");
    }
    if let Ok((id, resp)) = decode_response(body) {
        let frame = encode_response(id, &resp);
        let again = decode_response(&frame[4..]).expect("an encoded response decodes");
        assert_eq!(again, (id, resp), "response changed through encode/decode");
    }
}
