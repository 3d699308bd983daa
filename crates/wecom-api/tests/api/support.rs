//! A scriptable fake contract server on 127.0.0.1:0 and helpers shared by the test modules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use wecom_api::{ApiError, ArchiveClient, ClientConfig, RetryPolicy, Secret};

pub const CORP: &str = "ww-test-corp";
pub const SECRET: &str = "s3cr3t-CORP-SECRET-value";
/// Every token the fakes hand out starts with this, so one substring check finds any of them.
pub const TOKEN_PREFIX: &str = "TOKEN-zq7";

pub fn token(n: usize) -> String {
    format!("{TOKEN_PREFIX}-{n}")
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn token(&self) -> &str {
        self.query
            .get("access_token")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// What the fake answers.
pub enum Reply {
    /// 200 with a JSON body.
    Json(Value),
    /// Any status and body, with extra headers.
    Raw {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    /// 200 headers, `prefix` of the body, a pause, then the connection is aborted.
    DropMidBody { prefix: Bytes, declared_len: usize },
    /// Sleep, then answer.
    Delay(Duration, Box<Reply>),
    /// 200 JSON headers (with `content-length: declared` if given), then `chunk` repeated without end:
    /// a client that reads the whole body never finishes.
    Endless { chunk: Bytes, declared: Option<u64> },
}

pub fn ok_token(n: usize, expires_in: u64) -> Reply {
    Reply::Json(json!({"errcode":0,"errmsg":"ok","access_token":token(n),"expires_in":expires_in}))
}

pub fn err(errcode: i64) -> Reply {
    Reply::Json(json!({"errcode":errcode,"errmsg":format!("fake error {errcode}")}))
}

pub fn item(seq: u64) -> Value {
    json!({"seq":seq,"msgid":format!("msg{seq}"),"publickey_ver":1,
           "encrypt_random_key":"a2V5","encrypt_chat_msg":"bXNn"})
}

pub fn items(seqs: std::ops::RangeInclusive<u64>) -> Reply {
    Reply::Json(json!({"errcode":0,"errmsg":"ok","chatdata":seqs.map(item).collect::<Vec<_>>()}))
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

pub struct Fake {
    pub base_url: String,
    log: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    pub async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Fake {
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = {
            let log = log.clone();
            Router::new().fallback(move |req: Request| {
                let handler = handler.clone();
                let log = log.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    let query = Query::<HashMap<String, String>>::try_from_uri(req.uri())
                        .map(|q| q.0)
                        .unwrap_or_default();
                    let headers = req.headers().clone();
                    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    let req = Req {
                        path,
                        query,
                        headers,
                        body,
                    };
                    let reply = handler(&req);
                    log.lock().unwrap().push(req);
                    render(reply).await
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake {
            base_url: format!("http://{addr}"),
            log,
            task,
        }
    }

    pub fn requests(&self, path: &str) -> Vec<Req> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests(path).len()
    }
}

async fn render(reply: Reply) -> Response {
    match reply {
        Reply::Json(v) => Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        Reply::Raw {
            status,
            headers,
            body,
        } => {
            let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap());
            for (k, v) in headers {
                b = b.header(k, HeaderValue::from_str(&v).unwrap());
            }
            b.body(Body::from(body)).unwrap()
        }
        Reply::DropMidBody {
            prefix,
            declared_len,
        } => {
            let parts: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(prefix), Err(std::io::Error::other("fake reset"))];
            let stream = futures::stream::iter(parts)
                .enumerate()
                .then(|(i, part)| async move {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    part
                });
            Response::builder()
                .header("content-type", "application/octet-stream")
                .header("content-length", declared_len.to_string())
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Reply::Endless { chunk, declared } => {
            let stream = futures::stream::repeat(chunk).then(|c| async move {
                tokio::task::yield_now().await;
                Ok::<_, std::io::Error>(c)
            });
            let mut b = Response::builder().header("content-type", "application/json");
            if let Some(len) = declared {
                b = b.header("content-length", len.to_string());
            }
            b.body(Body::from_stream(stream)).unwrap()
        }
        Reply::Delay(d, inner) => {
            tokio::time::sleep(d).await;
            Box::pin(render(*inner)).await
        }
    }
}

/// A config with fast retries for tests.
pub fn config(base_url: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(base_url, CORP, Secret::new(SECRET));
    cfg.request_timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.retry = RetryPolicy {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        multiplier: 2.0,
        rate_limited_backoff: Duration::from_millis(20),
    };
    cfg
}

pub fn client(base_url: &str) -> ArchiveClient {
    ArchiveClient::new(config(base_url)).unwrap()
}

/// An address where nothing listens.
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Neither the secret nor any token may appear in an error's Display or Debug.
#[track_caller]
pub fn assert_clean(err: &ApiError) {
    for text in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
        assert!(!text.contains(TOKEN_PREFIX), "token leaked: {text}");
        assert!(!text.contains("access_token="), "url query leaked: {text}");
        assert!(!text.contains("corpsecret="), "url query leaked: {text}");
    }
}

pub fn seqs(items: &[wecom_api::ChatDataItem]) -> Vec<u64> {
    items.iter().map(|i| i.seq).collect()
}
