//! The frames between the supervisor and a worker process, over the worker's stdin and stdout.
//!
//! Binary, so 512 KiB media chunks travel as they are (no base64):
//!
//! ```text
//! frame    := len:u32be body                      (len = body length, at most MAX_FRAME)
//! body     := kind:u8 id:u64be payload
//! bytes    := len:u32be raw
//! requests (supervisor -> worker)
//!   0x01 GetChatData   seq:u64be limit:u32be timeout:i32be proxy:bytes passwd:bytes
//!   0x02 DecryptData   encrypt_key:bytes encrypt_msg:bytes
//!   0x03 GetMediaData  timeout:i32be indexbuf:bytes sdkfileid:bytes proxy:bytes passwd:bytes
//!   0x04 Ping
//!   0x05 DecryptBatch  count:u32be (encrypt_key:bytes encrypt_msg:bytes){count}
//! responses (worker -> supervisor)
//!   0x81 Ready         init_ret:i32be             (once, after NewSdk + Init; id 0)
//!   0x82 Reply         ret:i32be is_finish:u8 data:bytes outindexbuf:bytes
//!   0x83 Refused       reason:bytes               (the SDK was not called: e.g. a NUL in an argument)
//!   0x84 StartupFailed reason:bytes               (library or symbols missing; id 0; the worker exits)
//!   0x85 BatchReply    count:u32be item{count}    (to DecryptBatch, one item per request item, in order)
//!        item := 0x00 ret:i32be data:bytes        (DecryptData was called: its code and plaintext)
//!              | 0x01 reason:bytes                (this item was refused without calling the SDK)
//! ```
//! One request at a time per worker: a reply carries the id of its request as a consistency check.
//!
//! `DecryptBatch` exists for speed: one frame each way for many items instead of two context switches
//! per item. A worker that cannot fit a batch's answer into one frame answers `Refused`, and the
//! supervisor sends the items one by one.

use std::io::{self, Read};
use std::sync::Arc;

/// Largest frame accepted (a GetChatData page of 1000 items is a few MiB).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

const GET_CHAT_DATA: u8 = 0x01;
const DECRYPT_DATA: u8 = 0x02;
const GET_MEDIA_DATA: u8 = 0x03;
const PING: u8 = 0x04;
const DECRYPT_BATCH: u8 = 0x05;
const READY: u8 = 0x81;
const REPLY: u8 = 0x82;
const REFUSED: u8 = 0x83;
const STARTUP_FAILED: u8 = 0x84;
const BATCH_REPLY: u8 = 0x85;
const ITEM_DONE: u8 = 0x00;
const ITEM_REFUSED: u8 = 0x01;

/// Bytes of a frame around its payload: length prefix, kind and id.
pub const FRAME_OVERHEAD: usize = 4 + 1 + 8;

/// One `DecryptData` call of a batch.
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptItem {
    pub encrypt_key: Vec<u8>,
    pub encrypt_msg: Vec<u8>,
}

// The random key is key material: Debug shows lengths only.
impl std::fmt::Debug for DecryptItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptItem")
            .field("key_len", &self.encrypt_key.len())
            .field("msg_len", &self.encrypt_msg.len())
            .finish()
    }
}

impl DecryptItem {
    /// The bytes this item adds to a `DecryptBatch` frame.
    pub fn wire_len(&self) -> usize {
        8 + self.encrypt_key.len() + self.encrypt_msg.len()
    }
}

/// One item of a `BatchReply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemReply {
    /// `DecryptData` returned `ret` (0: `data` is the plaintext).
    Done { ret: i32, data: Vec<u8> },
    /// The SDK was not called for this item (e.g. a NUL byte in an argument).
    Refused { reason: String },
}

impl ItemReply {
    /// The bytes this item adds to a `BatchReply` frame.
    pub fn wire_len(&self) -> usize {
        match self {
            ItemReply::Done { data, .. } => 1 + 4 + 4 + data.len(),
            ItemReply::Refused { reason } => 1 + 4 + reason.len(),
        }
    }
}

/// A request to a worker.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
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
    /// Several `DecryptData` calls in one frame (shared, so that the supervisor can replay them one by
    /// one without copying when a batch kills its worker).
    DecryptBatch {
        items: Arc<[DecryptItem]>,
    },
}

// Requests carry the random key and the proxy password: Debug names the operation only.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.op())
    }
}

impl Request {
    /// The SDK function this request calls.
    pub fn op(&self) -> &'static str {
        match self {
            Request::GetChatData { .. } => "GetChatData",
            Request::DecryptData { .. } => "DecryptData",
            Request::GetMediaData { .. } => "GetMediaData",
            Request::Ping => "Ping",
            Request::DecryptBatch { .. } => "DecryptData",
        }
    }
}

/// A worker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
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
        items: Vec<ItemReply>,
    },
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths and counts beyond u32 cannot occur: frames are capped far below that.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn frame(kind: u8, id: u64, payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    payload(&mut out);
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Encodes a request as a whole frame (length prefix included).
pub fn encode_request(id: u64, req: &Request) -> Vec<u8> {
    match req {
        Request::GetChatData {
            seq,
            limit,
            proxy,
            passwd,
            timeout,
        } => frame(GET_CHAT_DATA, id, |o| {
            o.extend_from_slice(&seq.to_be_bytes());
            o.extend_from_slice(&limit.to_be_bytes());
            o.extend_from_slice(&timeout.to_be_bytes());
            put_bytes(o, proxy);
            put_bytes(o, passwd);
        }),
        Request::DecryptData {
            encrypt_key,
            encrypt_msg,
        } => frame(DECRYPT_DATA, id, |o| {
            put_bytes(o, encrypt_key);
            put_bytes(o, encrypt_msg);
        }),
        Request::GetMediaData {
            indexbuf,
            sdkfileid,
            proxy,
            passwd,
            timeout,
        } => frame(GET_MEDIA_DATA, id, |o| {
            o.extend_from_slice(&timeout.to_be_bytes());
            put_bytes(o, indexbuf);
            put_bytes(o, sdkfileid);
            put_bytes(o, proxy);
            put_bytes(o, passwd);
        }),
        Request::Ping => frame(PING, id, |_| {}),
        Request::DecryptBatch { items } => frame(DECRYPT_BATCH, id, |o| {
            o.reserve(4 + items.iter().map(DecryptItem::wire_len).sum::<usize>());
            put_len(o, items.len());
            for item in items.iter() {
                put_bytes(o, &item.encrypt_key);
                put_bytes(o, &item.encrypt_msg);
            }
        }),
    }
}

/// Encodes a response as a whole frame (length prefix included).
pub fn encode_response(id: u64, resp: &Response) -> Vec<u8> {
    match resp {
        Response::Ready { init_ret } => frame(READY, id, |o| {
            o.extend_from_slice(&init_ret.to_be_bytes());
        }),
        Response::Reply {
            ret,
            data,
            outindexbuf,
            is_finish,
        } => frame(REPLY, id, |o| {
            o.extend_from_slice(&ret.to_be_bytes());
            o.push(u8::from(*is_finish));
            put_bytes(o, data);
            put_bytes(o, outindexbuf);
        }),
        Response::Refused { reason } => frame(REFUSED, id, |o| put_bytes(o, reason.as_bytes())),
        Response::StartupFailed { reason } => {
            frame(STARTUP_FAILED, id, |o| put_bytes(o, reason.as_bytes()))
        }
        Response::BatchReply { items } => frame(BATCH_REPLY, id, |o| {
            o.reserve(4 + items.iter().map(ItemReply::wire_len).sum::<usize>());
            put_len(o, items.len());
            for item in items {
                match item {
                    ItemReply::Done { ret, data } => {
                        o.push(ITEM_DONE);
                        o.extend_from_slice(&ret.to_be_bytes());
                        put_bytes(o, data);
                    }
                    ItemReply::Refused { reason } => {
                        o.push(ITEM_REFUSED);
                        put_bytes(o, reason.as_bytes());
                    }
                }
            }
        }),
    }
}

/// A cursor over a frame body.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "frame too short: need {n} more bytes, have {}",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn text(&mut self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
    /// A count of entries that need at least `min_entry` bytes each (so a corrupt count cannot make
    /// the decoder reserve more than the frame could hold).
    fn count(&mut self, min_entry: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_entry) > self.0.len() {
            return Err(format!(
                "count {n} does not fit the {} bytes left",
                self.0.len()
            ));
        }
        Ok(n)
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes in frame", self.0.len()))
        }
    }
}

/// Decodes a request body (the frame without its length prefix).
pub fn decode_request(body: &[u8]) -> Result<(u64, Request), String> {
    let mut c = Cur(body);
    let kind = c.u8()?;
    let id = c.u64()?;
    let req = match kind {
        GET_CHAT_DATA => {
            let seq = c.u64()?;
            let limit = c.u32()?;
            let timeout = c.i32()?;
            Request::GetChatData {
                seq,
                limit,
                timeout,
                proxy: c.bytes()?,
                passwd: c.bytes()?,
            }
        }
        DECRYPT_DATA => Request::DecryptData {
            encrypt_key: c.bytes()?,
            encrypt_msg: c.bytes()?,
        },
        GET_MEDIA_DATA => {
            let timeout = c.i32()?;
            Request::GetMediaData {
                timeout,
                indexbuf: c.bytes()?,
                sdkfileid: c.bytes()?,
                proxy: c.bytes()?,
                passwd: c.bytes()?,
            }
        }
        PING => Request::Ping,
        DECRYPT_BATCH => {
            let n = c.count(8)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(DecryptItem {
                    encrypt_key: c.bytes()?,
                    encrypt_msg: c.bytes()?,
                });
            }
            Request::DecryptBatch {
                items: items.into(),
            }
        }
        other => return Err(format!("unknown request kind {other:#04x}")),
    };
    c.end()?;
    Ok((id, req))
}

/// Decodes a response body (the frame without its length prefix).
pub fn decode_response(body: &[u8]) -> Result<(u64, Response), String> {
    let mut c = Cur(body);
    let kind = c.u8()?;
    let id = c.u64()?;
    let resp = match kind {
        READY => Response::Ready { init_ret: c.i32()? },
        REPLY => {
            let ret = c.i32()?;
            let is_finish = c.u8()? != 0;
            Response::Reply {
                ret,
                is_finish,
                data: c.bytes()?,
                outindexbuf: c.bytes()?,
            }
        }
        REFUSED => Response::Refused { reason: c.text()? },
        STARTUP_FAILED => Response::StartupFailed { reason: c.text()? },
        BATCH_REPLY => {
            let n = c.count(5)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(match c.u8()? {
                    ITEM_DONE => ItemReply::Done {
                        ret: c.i32()?,
                        data: c.bytes()?,
                    },
                    ITEM_REFUSED => ItemReply::Refused { reason: c.text()? },
                    other => return Err(format!("unknown batch item kind {other:#04x}")),
                });
            }
            Response::BatchReply { items }
        }
        other => return Err(format!("unknown response kind {other:#04x}")),
    };
    c.end()?;
    Ok((id, resp))
}

fn check_len(len: u32) -> io::Result<usize> {
    let len = len as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME} byte limit"),
        ));
    }
    Ok(len)
}

/// Reads one frame body (blocking). `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame_blocking(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = check_len(u32::from_be_bytes(len))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Reads one frame body (async). End of stream is an `UnexpectedEof` error.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let len = check_len(r.read_u32().await?)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &[u8]) -> &[u8] {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::GetChatData {
                seq: u64::MAX,
                limit: 1000,
                proxy: b"http://p:1".to_vec(),
                passwd: b"u:p".to_vec(),
                timeout: 5,
            },
            Request::DecryptData {
                encrypt_key: b"k".to_vec(),
                encrypt_msg: vec![0xff; 3],
            },
            Request::GetMediaData {
                indexbuf: b"Range:bytes=524288-1048575".to_vec(),
                sdkfileid: b"id".to_vec(),
                proxy: Vec::new(),
                passwd: Vec::new(),
                timeout: -1,
            },
            Request::Ping,
            Request::DecryptBatch {
                items: vec![
                    DecryptItem {
                        encrypt_key: b"k1".to_vec(),
                        encrypt_msg: b"m1".to_vec(),
                    },
                    DecryptItem {
                        encrypt_key: Vec::new(),
                        encrypt_msg: vec![0; 5],
                    },
                ]
                .into(),
            },
            Request::DecryptBatch {
                items: Vec::new().into(),
            },
        ];
        for (i, req) in reqs.iter().enumerate() {
            let f = encode_request(i as u64, req);
            assert_eq!(decode_request(body(&f)).unwrap(), (i as u64, req.clone()));
        }
    }

    #[test]
    fn responses_round_trip() {
        let resps = [
            Response::Ready { init_ret: 0 },
            Response::Reply {
                ret: 10008,
                data: (0..=255).collect(),
                outindexbuf: b"Range:bytes=0-1".to_vec(),
                is_finish: true,
            },
            Response::Refused {
                reason: "nul byte".into(),
            },
            Response::StartupFailed {
                reason: "missing NewSdk".into(),
            },
            Response::BatchReply {
                items: vec![
                    ItemReply::Done {
                        ret: 0,
                        data: b"{}".to_vec(),
                    },
                    ItemReply::Refused {
                        reason: "nul".into(),
                    },
                    ItemReply::Done {
                        ret: 10006,
                        data: Vec::new(),
                    },
                ],
            },
        ];
        for resp in resps {
            let f = encode_response(7, &resp);
            assert_eq!(decode_response(body(&f)).unwrap(), (7, resp));
        }
    }

    #[test]
    fn truncated_and_oversized_frames_are_rejected() {
        let f = encode_request(1, &Request::Ping);
        assert!(decode_request(&body(&f)[..5]).is_err());
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame_blocking(&mut r).is_err());
        let mut empty: &[u8] = &[];
        assert!(read_frame_blocking(&mut empty).unwrap().is_none());
        let mut both = f.clone();
        both.extend_from_slice(&f);
        let mut r: &[u8] = &both;
        assert!(read_frame_blocking(&mut r).unwrap().is_some());
        assert!(read_frame_blocking(&mut r).unwrap().is_some());
        assert!(read_frame_blocking(&mut r).unwrap().is_none());
    }

    #[test]
    fn wire_lengths_match_the_encoding() {
        let items: Vec<DecryptItem> = (0..5)
            .map(|i| DecryptItem {
                encrypt_key: vec![b'k'; 32 + i],
                encrypt_msg: vec![b'm'; 100 * i],
            })
            .collect();
        let want = FRAME_OVERHEAD + 4 + items.iter().map(DecryptItem::wire_len).sum::<usize>();
        let f = encode_request(
            1,
            &Request::DecryptBatch {
                items: items.into(),
            },
        );
        assert_eq!(f.len(), want);
        let replies = vec![
            ItemReply::Done {
                ret: 0,
                data: vec![1; 77],
            },
            ItemReply::Refused { reason: "r".into() },
        ];
        let want = FRAME_OVERHEAD + 4 + replies.iter().map(ItemReply::wire_len).sum::<usize>();
        assert_eq!(
            encode_response(1, &Response::BatchReply { items: replies }).len(),
            want
        );
    }

    #[test]
    fn a_corrupt_batch_count_is_rejected_without_allocating() {
        let mut f = encode_request(
            3,
            &Request::DecryptBatch {
                items: Vec::new().into(),
            },
        );
        let n = f.len();
        f[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_request(body(&f)).is_err());
        let mut f = encode_response(3, &Response::BatchReply { items: Vec::new() });
        let n = f.len();
        f[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_response(body(&f)).is_err());
    }
}
