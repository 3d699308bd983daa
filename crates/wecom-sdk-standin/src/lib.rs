//! A test-only stand-in for Tencent's `libWeWorkFinanceSdk_C.so`: the same C symbols and struct
//! layouts as `WeWorkFinanceSdk_C.h`, implemented over the simulator's HTTP contract and cipher, so the
//! whole SDK path (worker process, pool, cipher, gateway) runs end to end in tests.
//!
//! - The simulator's base URL comes from `WECOM_STANDIN_BASE_URL` (read by `Init`; unset → 10000).
//! - `GetChatData`: `gettoken` (cached) + `POST /cgi-bin/msgaudit/get_chat_data`; the server's JSON is
//!   returned as it is (an error envelope too, as the real SDK returns the server's answer); transport
//!   failures and HTTP 5xx are 10001.
//! - `DecryptData(random_key, msg)`: `wecom_crypto::SimCipher` (the simulator's scheme, not Tencent's);
//!   a key that is not 32 bytes is 10008, a ciphertext that does not decrypt 10006.
//! - `GetMediaData`: `GET /cgi-bin/media/get` with `Range: bytes=N-M`, 512 KiB per call, `outindexbuf`
//!   `Range:bytes=N-M` as the real SDK's; errcodes 10005 / 10010 of the server pass through.
//! - Crash and hang triggers, as the real library has them: `DecryptData("", "")` calls `abort()`
//!   (SIGABRT, like the real one's uncaught C++ exception), and so does a `DecryptData` whose plaintext
//!   contains [`ABORT_MARKER`] (so that a marked message in the simulator's corpus crashes its worker
//!   wherever it travels, alone or in a batch); `DecryptData("hang", "hang")` sleeps for an hour (the
//!   supervisor's timeout test).
//!
//! Memory: `Slice_t` / `MediaData_t` and their buffers are allocated here and freed only by
//! `FreeSlice` / `FreeMediaData`; every buffer has a NUL after its announced length.
#![allow(clippy::missing_safety_doc, non_camel_case_types)]

mod http;

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, CStr};
use std::sync::Mutex;
use std::time::Duration;

use wecom_crypto::MessageCipher as _;

/// Largest chunk `GetMediaData` returns.
const CHUNK: u64 = 512 * 1024;

/// A plaintext containing this makes `DecryptData` abort (`wecom_sdk::STANDIN_ABORT_MARKER`, which
/// the SDK crate's tests check against this behaviour).
pub const ABORT_MARKER: &[u8] = b"WECOM-STANDIN-ABORT";

#[repr(C)]
pub struct Slice_t {
    pub buf: *mut c_char,
    pub len: c_int,
}

#[repr(C)]
pub struct MediaData_t {
    pub outindexbuf: *mut c_char,
    pub out_len: c_int,
    pub data: *mut c_char,
    pub data_len: c_int,
    pub is_finish: c_int,
}

/// The opaque `WeWorkFinanceSdk_t`.
pub struct WeWorkFinanceSdk_t {
    base_url: Option<String>,
    corp_id: String,
    secret: String,
    token: Mutex<Option<String>>,
}

const OK: c_int = 0;
const ERR_PARAM: c_int = 10000;
const ERR_NETWORK: c_int = 10001;
const ERR_PARSE: c_int = 10002;
const ERR_SYSTEM: c_int = 10003;
const ERR_DECRYPT: c_int = 10006;
const ERR_KEY: c_int = 10008;

fn log(msg: &str) {
    eprintln!("wecom-sdk-standin: {msg}");
}

/// A NUL-terminated copy of `bytes` as a raw buffer of `len + 1` bytes (freed by [`free_buf`]).
fn alloc_buf(bytes: &[u8]) -> (*mut c_char, c_int) {
    let Ok(len) = c_int::try_from(bytes.len()) else {
        log("buffer larger than c_int");
        std::process::abort();
    };
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    let raw = Box::into_raw(v.into_boxed_slice());
    (raw.cast::<c_char>(), len)
}

/// Frees a buffer from [`alloc_buf`] with its announced length.
unsafe fn free_buf(buf: *mut c_char, len: c_int) {
    if buf.is_null() {
        return;
    }
    let total = usize::try_from(len).unwrap_or(0) + 1;
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf.cast::<u8>(), total)) });
}

unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

unsafe fn bytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

#[no_mangle]
pub extern "C" fn NewSdk() -> *mut WeWorkFinanceSdk_t {
    Box::into_raw(Box::new(WeWorkFinanceSdk_t {
        base_url: None,
        corp_id: String::new(),
        secret: String::new(),
        token: Mutex::new(None),
    }))
}

#[no_mangle]
pub unsafe extern "C" fn Init(
    sdk: *mut WeWorkFinanceSdk_t,
    corpid: *const c_char,
    secret: *const c_char,
) -> c_int {
    let Some(sdk) = (unsafe { sdk.as_mut() }) else {
        return ERR_PARAM;
    };
    let (Some(corp), Some(secret)) = (unsafe { text(corpid) }, unsafe { text(secret) }) else {
        return ERR_PARAM;
    };
    let Ok(base) = std::env::var("WECOM_STANDIN_BASE_URL") else {
        log("WECOM_STANDIN_BASE_URL is not set (the simulator's base url)");
        return ERR_PARAM;
    };
    sdk.base_url = Some(base.trim_end_matches('/').to_owned());
    sdk.corp_id = corp.to_owned();
    sdk.secret = secret.to_owned();
    OK
}

#[no_mangle]
pub unsafe extern "C" fn DestroySdk(sdk: *mut WeWorkFinanceSdk_t) {
    if !sdk.is_null() {
        drop(unsafe { Box::from_raw(sdk) });
    }
}

fn timeout_of(secs: c_int) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0).max(1))
}

enum Fail {
    /// Return this SDK code.
    Code(c_int),
    /// The server answered an error envelope: hand it to the caller as the SDK would.
    Envelope(Vec<u8>),
}

fn errcode_of(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("errcode")?
        .as_i64()
}

impl WeWorkFinanceSdk_t {
    fn base(&self) -> Result<&str, Fail> {
        self.base_url.as_deref().ok_or(Fail::Code(ERR_SYSTEM))
    }

    fn token(&self, timeout: Duration) -> Result<String, Fail> {
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let path = format!(
            "/cgi-bin/gettoken?corpid={}&corpsecret={}",
            http::encode(&self.corp_id),
            http::encode(&self.secret)
        );
        let resp = http::request(self.base()?, "GET", &path, &[], None, timeout)
            .map_err(|_| Fail::Code(ERR_NETWORK))?;
        if resp.status >= 500 {
            return Err(Fail::Code(ERR_NETWORK));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|_| Fail::Code(ERR_NETWORK))?;
        match v.get("errcode").and_then(serde_json::Value::as_i64) {
            Some(0) | None => {}
            Some(-1 | 45009) => return Err(Fail::Code(ERR_NETWORK)),
            Some(_) => return Err(Fail::Envelope(resp.body)),
        }
        let token = v
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .ok_or(Fail::Code(ERR_PARSE))?
            .to_owned();
        *cached = Some(token.clone());
        Ok(token)
    }

    fn drop_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `call` with a token; a token error (40014/42001/40001) refetches the token once.
    fn with_token(
        &self,
        timeout: Duration,
        call: impl Fn(&str) -> std::io::Result<http::Response>,
    ) -> Result<http::Response, Fail> {
        for attempt in 0..2 {
            let token = self.token(timeout)?;
            let resp = call(&token).map_err(|_| Fail::Code(ERR_NETWORK))?;
            if resp.status >= 500 {
                return Err(Fail::Code(ERR_NETWORK));
            }
            if resp.is_json() || resp.body.first() == Some(&b'{') {
                if let Some(40014 | 42001 | 40001) = errcode_of(&resp.body) {
                    self.drop_token();
                    if attempt == 0 {
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
        Err(Fail::Code(ERR_NETWORK))
    }

    fn get_chat_data(&self, seq: u64, limit: u32, timeout: Duration) -> Result<Vec<u8>, Fail> {
        let base = self.base()?;
        let body = format!(r#"{{"seq":{seq},"limit":{limit}}}"#);
        let resp = self.with_token(timeout, |token| {
            let path = format!(
                "/cgi-bin/msgaudit/get_chat_data?access_token={}",
                http::encode(token)
            );
            http::request(base, "POST", &path, &[], Some(body.as_bytes()), timeout)
        })?;
        match errcode_of(&resp.body) {
            None => Err(Fail::Code(ERR_NETWORK)), // not json: a body cut short
            Some(-1 | 45009) => Err(Fail::Code(ERR_NETWORK)),
            Some(_) => Ok(resp.body),
        }
    }

    /// One chunk from `start`: (data, next start, finished).
    fn media(
        &self,
        sdkfileid: &str,
        start: u64,
        timeout: Duration,
    ) -> Result<(Vec<u8>, bool), Fail> {
        let base = self.base()?;
        let range = format!("bytes={start}-{}", start + CHUNK - 1);
        let resp = self.with_token(timeout, |token| {
            let path = format!(
                "/cgi-bin/media/get?access_token={}&sdkfileid={}",
                http::encode(token),
                http::encode(sdkfileid)
            );
            http::request(
                base,
                "GET",
                &path,
                &[("Range", range.clone())],
                None,
                timeout,
            )
        })?;
        if resp.status == 416 {
            return Ok((Vec::new(), true));
        }
        if resp.is_json() {
            return Err(match errcode_of(&resp.body) {
                Some(code @ (10005 | 10010 | 10002)) => Fail::Code(code as c_int),
                Some(-1 | 45009) | None => Fail::Code(ERR_NETWORK),
                Some(_) => Fail::Code(ERR_SYSTEM),
            });
        }
        let total = match resp.status {
            206 => resp
                .header("content-range")
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, t)| t.trim().parse::<u64>().ok())
                .ok_or(Fail::Code(ERR_PARSE))?,
            200 => resp.body.len() as u64,
            _ => return Err(Fail::Code(ERR_NETWORK)),
        };
        let mut data = resp.body;
        if resp.status == 200 {
            // The server ignored the range: keep this chunk's part only.
            let from = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
            data.drain(..from);
            data.truncate(CHUNK as usize);
        }
        let finished = start + data.len() as u64 >= total;
        Ok((data, finished))
    }
}

#[no_mangle]
pub unsafe extern "C" fn GetChatData(
    sdk: *mut WeWorkFinanceSdk_t,
    seq: c_ulonglong,
    limit: c_uint,
    _proxy: *const c_char,
    _passwd: *const c_char,
    timeout: c_int,
    chat_datas: *mut Slice_t,
) -> c_int {
    let (Some(sdk), Some(out)) = (unsafe { sdk.as_ref() }, unsafe { chat_datas.as_mut() }) else {
        return ERR_PARAM;
    };
    match sdk.get_chat_data(seq, limit, timeout_of(timeout)) {
        Ok(json) | Err(Fail::Envelope(json)) => {
            unsafe { set_slice(out, &json) };
            OK
        }
        Err(Fail::Code(code)) => code,
    }
}

unsafe fn set_slice(out: &mut Slice_t, bytes: &[u8]) {
    unsafe { free_buf(out.buf, out.len) };
    let (buf, len) = alloc_buf(bytes);
    out.buf = buf;
    out.len = len;
}

#[no_mangle]
pub unsafe extern "C" fn DecryptData(
    encrypt_key: *const c_char,
    encrypt_msg: *const c_char,
    msg: *mut Slice_t,
) -> c_int {
    let (key, ciphertext) = unsafe { (bytes(encrypt_key), bytes(encrypt_msg)) };
    if key.is_empty() && ciphertext.is_empty() {
        // The real library throws an uncaught std::out_of_range here and dies the same way.
        log("DecryptData(\"\", \"\"): aborting like the real library");
        std::process::abort();
    }
    if key == b"hang" && ciphertext == b"hang" {
        std::thread::sleep(Duration::from_secs(3600));
    }
    let Some(out) = (unsafe { msg.as_mut() }) else {
        return ERR_PARAM;
    };
    if key.len() != 32 {
        return ERR_KEY;
    }
    let Ok(ciphertext) = std::str::from_utf8(ciphertext) else {
        return ERR_DECRYPT;
    };
    match wecom_crypto::SimCipher.decrypt(key, ciphertext) {
        Ok(plain) => {
            if plain.windows(ABORT_MARKER.len()).any(|w| w == ABORT_MARKER) {
                log("DecryptData: the plaintext carries the abort marker; aborting");
                std::process::abort();
            }
            unsafe { set_slice(out, &plain) };
            OK
        }
        Err(_) => ERR_DECRYPT,
    }
}

#[no_mangle]
pub unsafe extern "C" fn GetMediaData(
    sdk: *mut WeWorkFinanceSdk_t,
    indexbuf: *const c_char,
    sdk_fileid: *const c_char,
    _proxy: *const c_char,
    _passwd: *const c_char,
    timeout: c_int,
    media_data: *mut MediaData_t,
) -> c_int {
    let (Some(sdk), Some(out)) = (unsafe { sdk.as_ref() }, unsafe { media_data.as_mut() }) else {
        return ERR_PARAM;
    };
    let (Some(index), Some(fileid)) = (unsafe { text(indexbuf) }, unsafe { text(sdk_fileid) })
    else {
        return ERR_PARAM;
    };
    let Some(start) = parse_index(index) else {
        return ERR_PARAM;
    };
    if fileid.is_empty() {
        return ERR_PARAM;
    }
    match sdk.media(fileid, start, timeout_of(timeout)) {
        Ok((data, finished)) => {
            let next = start + data.len() as u64;
            let index = if finished {
                format!("Range:bytes={start}-{}", next.saturating_sub(1))
            } else {
                format!("Range:bytes={next}-{}", next + CHUNK - 1)
            };
            unsafe {
                free_buf(out.data, out.data_len);
                free_buf(out.outindexbuf, out.out_len);
            }
            (out.data, out.data_len) = alloc_buf(&data);
            (out.outindexbuf, out.out_len) = alloc_buf(index.as_bytes());
            out.is_finish = c_int::from(finished);
            OK
        }
        Err(Fail::Code(code)) => code,
        Err(Fail::Envelope(_)) => ERR_SYSTEM,
    }
}

/// `""` → 0; `Range:bytes=N-M` / `Range:bytes=N-` → N.
fn parse_index(index: &str) -> Option<u64> {
    let s = index.trim();
    if s.is_empty() {
        return Some(0);
    }
    let rest = s
        .strip_prefix("Range:")?
        .trim_start()
        .strip_prefix("bytes=")?;
    rest.split_once('-')?.0.trim().parse().ok()
}

#[no_mangle]
pub extern "C" fn NewSlice() -> *mut Slice_t {
    Box::into_raw(Box::new(Slice_t {
        buf: std::ptr::null_mut(),
        len: 0,
    }))
}

#[no_mangle]
pub unsafe extern "C" fn FreeSlice(slice: *mut Slice_t) {
    if slice.is_null() {
        return;
    }
    let slice = unsafe { Box::from_raw(slice) };
    unsafe { free_buf(slice.buf, slice.len) };
}

#[no_mangle]
pub unsafe extern "C" fn GetContentFromSlice(slice: *mut Slice_t) -> *mut c_char {
    unsafe { slice.as_ref() }.map_or(std::ptr::null_mut(), |s| s.buf)
}

#[no_mangle]
pub unsafe extern "C" fn GetSliceLen(slice: *mut Slice_t) -> c_int {
    unsafe { slice.as_ref() }.map_or(0, |s| s.len)
}

#[no_mangle]
pub extern "C" fn NewMediaData() -> *mut MediaData_t {
    Box::into_raw(Box::new(MediaData_t {
        outindexbuf: std::ptr::null_mut(),
        out_len: 0,
        data: std::ptr::null_mut(),
        data_len: 0,
        is_finish: 0,
    }))
}

#[no_mangle]
pub unsafe extern "C" fn FreeMediaData(media: *mut MediaData_t) {
    if media.is_null() {
        return;
    }
    let media = unsafe { Box::from_raw(media) };
    unsafe {
        free_buf(media.outindexbuf, media.out_len);
        free_buf(media.data, media.data_len);
    }
}

#[no_mangle]
pub unsafe extern "C" fn GetOutIndexBuf(media: *mut MediaData_t) -> *mut c_char {
    unsafe { media.as_ref() }.map_or(std::ptr::null_mut(), |m| m.outindexbuf)
}

#[no_mangle]
pub unsafe extern "C" fn GetData(media: *mut MediaData_t) -> *mut c_char {
    unsafe { media.as_ref() }.map_or(std::ptr::null_mut(), |m| m.data)
}

#[no_mangle]
pub unsafe extern "C" fn GetIndexLen(media: *mut MediaData_t) -> c_int {
    unsafe { media.as_ref() }.map_or(0, |m| m.out_len)
}

#[no_mangle]
pub unsafe extern "C" fn GetDataLen(media: *mut MediaData_t) -> c_int {
    unsafe { media.as_ref() }.map_or(0, |m| m.data_len)
}

#[no_mangle]
pub unsafe extern "C" fn IsMediaDataFinish(media: *mut MediaData_t) -> c_int {
    unsafe { media.as_ref() }.map_or(0, |m| m.is_finish)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_parsing() {
        assert_eq!(parse_index(""), Some(0));
        assert_eq!(parse_index("Range:bytes=524288-1048575"), Some(524288));
        assert_eq!(parse_index("Range:bytes=9-"), Some(9));
        assert_eq!(parse_index("nonsense"), None);
    }

    #[test]
    fn slices_round_trip_through_the_c_api() {
        let s = NewSlice();
        unsafe {
            set_slice(&mut *s, b"abc\0def");
            assert_eq!(GetSliceLen(s), 7);
            let p = GetContentFromSlice(s);
            assert_eq!(std::slice::from_raw_parts(p.cast::<u8>(), 7), b"abc\0def");
            FreeSlice(s);
        }
    }
}
