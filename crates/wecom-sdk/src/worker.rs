//! The worker process: loads the SDK library, creates one SDK instance, and serves frames
//! ([`crate::protocol`]) on stdin/stdout until stdin closes.
//!
//! Started by the pool as `wecom-sdk-worker --library PATH --corp-id ID` with the corp secret in the
//! environment variable [`SECRET_ENV`] (never on the command line, where `ps` shows it). The worker is
//! single-threaded and disposable: if the library aborts or segfaults, only this process dies. It logs
//! to stderr only, and never the secret.

use std::ffi::{CString, OsString};
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::ffi::{Sdk, SdkLibrary};
use crate::protocol::{self, DecryptItem, ItemReply, Request, Response, MAX_FRAME};

/// Environment variable carrying the corp secret to the worker.
pub const SECRET_ENV: &str = "WECOM_SDK_CORP_SECRET";

/// Exit codes of the worker (a signal means the library killed it).
pub mod exit {
    /// Bad command line or environment.
    pub const USAGE: u8 = 2;
    /// The library could not be loaded or lacks symbols, or `NewSdk` failed.
    pub const LIBRARY: u8 = 3;
    /// `Init` returned non-zero.
    pub const INIT: u8 = 4;
    /// The protocol stream broke (malformed frame, write error).
    pub const PROTOCOL: u8 = 5;
}

fn log(msg: &str) {
    eprintln!("wecom-sdk-worker[{}]: {msg}", std::process::id());
}

struct Args {
    library: PathBuf,
    corp_id: String,
}

fn parse_args(args: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut library = None;
    let mut corp_id = None;
    let mut it = args;
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--library") => library = it.next().map(PathBuf::from),
            Some("--corp-id") => corp_id = it.next().and_then(|v| v.into_string().ok()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Args {
        library: library.ok_or("--library PATH is required")?,
        corp_id: corp_id.ok_or("--corp-id ID is required")?,
    })
}

/// The worker binary's `main`: arguments from the command line.
pub fn worker_main() -> ExitCode {
    worker_main_with_args(std::env::args_os().skip(1))
}

/// The worker's `main` for another binary (a hidden subcommand): `args` are the ones after the
/// subcommand (`--library PATH --corp-id ID`). Call it first thing in `main`, before logging or a
/// runtime is set up: stdout belongs to the protocol.
pub fn worker_main_with_args(args: impl Iterator<Item = OsString>) -> ExitCode {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            log(&format!("{e}; usage: wecom-sdk-worker --library PATH --corp-id ID (secret in ${SECRET_ENV})"));
            return ExitCode::from(exit::USAGE);
        }
    };
    let secret = std::env::var(SECRET_ENV).unwrap_or_default();
    // Not needed in the environment any more (nothing the library spawns should inherit it).
    std::env::remove_var(SECRET_ENV);
    let (Ok(corp_id), Ok(secret)) = (CString::new(args.corp_id), CString::new(secret)) else {
        log("corp id or secret contains a NUL byte");
        return ExitCode::from(exit::USAGE);
    };

    let out = match crate::ffi::take_stdout_for_protocol() {
        Ok(f) => f,
        Err(e) => {
            log(&format!("cannot set up the protocol stream: {e}"));
            return ExitCode::from(exit::PROTOCOL);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());

    let loaded = SdkLibrary::load(&args.library).and_then(Sdk::new);
    let mut sdk = match loaded {
        Ok(sdk) => sdk,
        Err(e) => {
            let reason = e.to_string();
            log(&reason);
            let _ = send(&mut out, 0, &Response::StartupFailed { reason });
            return ExitCode::from(exit::LIBRARY);
        }
    };
    let init_ret = sdk.init(&corp_id, &secret);
    drop(secret);
    if send(&mut out, 0, &Response::Ready { init_ret }).is_err() {
        return ExitCode::from(exit::PROTOCOL);
    }
    if init_ret != 0 {
        log(&format!("Init returned {init_ret}"));
        return ExitCode::from(exit::INIT);
    }
    log(&format!("ready: {}", args.library.display()));

    loop {
        let body = match protocol::read_frame_blocking(&mut input) {
            Ok(Some(b)) => b,
            Ok(None) => return ExitCode::SUCCESS, // the supervisor closed stdin: shut down
            Err(e) => {
                log(&format!("reading a request: {e}"));
                return ExitCode::from(exit::PROTOCOL);
            }
        };
        let (id, req) = match protocol::decode_request(&body) {
            Ok(r) => r,
            Err(e) => {
                log(&format!("malformed request: {e}"));
                return ExitCode::from(exit::PROTOCOL);
            }
        };
        let resp = handle(&sdk, req);
        if let Err(e) = send(&mut out, id, &resp) {
            log(&format!("writing a reply: {e}"));
            return ExitCode::from(exit::PROTOCOL);
        }
    }
}

fn send(out: &mut impl Write, id: u64, resp: &Response) -> std::io::Result<()> {
    out.write_all(&protocol::encode_response(id, resp))?;
    out.flush()
}

fn cstr(what: &str, bytes: Vec<u8>) -> Result<CString, Response> {
    CString::new(bytes).map_err(|_| Response::Refused {
        reason: format!("{what} contains a NUL byte"),
    })
}

/// One `DecryptData` call of a batch.
fn decrypt_item(sdk: &Sdk, item: &DecryptItem) -> ItemReply {
    let (Ok(key), Ok(msg)) = (
        CString::new(item.encrypt_key.as_slice()),
        CString::new(item.encrypt_msg.as_slice()),
    ) else {
        return ItemReply::Refused {
            reason: "encrypt_key or encrypt_msg contains a NUL byte".into(),
        };
    };
    let (ret, data) = sdk.decrypt_data(&key, &msg);
    ItemReply::Done { ret, data }
}

/// Every item of a batch, in order. If the answer would not fit one frame the whole batch is refused
/// (the supervisor then sends its items one by one).
fn decrypt_batch(sdk: &Sdk, items: &[DecryptItem]) -> Response {
    let mut replies = Vec::with_capacity(items.len());
    let mut size = protocol::FRAME_OVERHEAD + 4;
    for item in items {
        let reply = decrypt_item(sdk, item);
        size += reply.wire_len();
        if size > MAX_FRAME {
            return Response::Refused {
                reason: format!(
                    "the answer to a batch of {} items exceeds the {MAX_FRAME} byte frame limit",
                    items.len()
                ),
            };
        }
        replies.push(reply);
    }
    Response::BatchReply { items: replies }
}

fn handle(sdk: &Sdk, req: Request) -> Response {
    let run = || -> Result<Response, Response> {
        Ok(match req {
            Request::Ping => Response::Reply {
                ret: 0,
                data: Vec::new(),
                outindexbuf: Vec::new(),
                is_finish: true,
            },
            Request::GetChatData {
                seq,
                limit,
                proxy,
                passwd,
                timeout,
            } => {
                let (proxy, passwd) = (cstr("proxy", proxy)?, cstr("passwd", passwd)?);
                let (ret, data) = sdk.get_chat_data(seq, limit, &proxy, &passwd, timeout);
                Response::Reply {
                    ret,
                    data,
                    outindexbuf: Vec::new(),
                    is_finish: true,
                }
            }
            Request::DecryptData {
                encrypt_key,
                encrypt_msg,
            } => {
                let key = cstr("encrypt_key", encrypt_key)?;
                let msg = cstr("encrypt_msg", encrypt_msg)?;
                let (ret, data) = sdk.decrypt_data(&key, &msg);
                Response::Reply {
                    ret,
                    data,
                    outindexbuf: Vec::new(),
                    is_finish: true,
                }
            }
            Request::DecryptBatch { items } => decrypt_batch(sdk, &items),
            Request::GetMediaData {
                indexbuf,
                sdkfileid,
                proxy,
                passwd,
                timeout,
            } => {
                let indexbuf = cstr("indexbuf", indexbuf)?;
                let sdkfileid = cstr("sdkfileid", sdkfileid)?;
                let (proxy, passwd) = (cstr("proxy", proxy)?, cstr("passwd", passwd)?);
                let (ret, m) = sdk.get_media_data(&indexbuf, &sdkfileid, &proxy, &passwd, timeout);
                Response::Reply {
                    ret,
                    data: m.data,
                    outindexbuf: m.outindexbuf,
                    is_finish: m.is_finish,
                }
            }
        })
    };
    run().unwrap_or_else(|refused| refused)
}
