//! Text exports for reviewers: one conversation, or every conversation over a time range, as Markdown
//! (one line per message, the transcript format) or JSON. Streamed page by page from a blocking thread
//! through a small channel, so an export of a year holds one page in memory.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use tokio::sync::mpsc;

use super::api::{api_message, transcript_line};
use super::http::{AppError, Params};
use super::Shared;
use crate::error::ConsoleError;
use crate::query::Filters;
use crate::view::TimeKey;

/// Messages read per step.
const CHUNK: usize = 500;
/// Chunks buffered between the reader and the client.
const BUFFERED: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Markdown,
    Json,
}

fn format(p: &Params) -> Result<Format, AppError> {
    match p.get("format") {
        None | Some("markdown") | Some("md") => Ok(Format::Markdown),
        Some("json") => Ok(Format::Json),
        Some(_) => Err(AppError::BadRequest(
            "format must be markdown or json".into(),
        )),
    }
}

fn range(st: &Shared, p: &Params) -> Result<(Option<u64>, Option<u64>), AppError> {
    let bad = |k: &str| AppError::BadRequest(format!("{k} must be a date (YYYY-MM-DD) or a time"));
    let from = p
        .get("from")
        .map(|v| st.clock.parse_instant(v).ok_or_else(|| bad("from")))
        .transpose()?;
    let to = p
        .get("to")
        .or_else(|| p.get("until"))
        .map(|v| st.clock.parse_end(v).ok_or_else(|| bad("to")))
        .transpose()?;
    Ok((from, to))
}

fn file_name(stem: &str, f: Format) -> String {
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let ext = if f == Format::Json { "json" } else { "md" };
    format!("{clean}.{ext}")
}

/// Writes the messages of each conversation, in time order, into `tx`.
fn produce(
    st: &Shared,
    convs: &[(String, String)],
    from: Option<u64>,
    to: Option<u64>,
    fmt: Format,
    tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> Result<(), ConsoleError> {
    let send = |bytes: Vec<u8>| tx.blocking_send(Ok(bytes)).is_ok();
    let mut first_json = true;
    for (id, title) in convs {
        let filters = Filters {
            conversation: Some(id.clone()),
            from_ms: from,
            until_ms: to,
            ..Filters::default()
        };
        let mut after: Option<TimeKey> = None;
        let mut header_done = false;
        loop {
            let page = st.archive.chronological(&filters, after, CHUNK)?;
            if page.msgs.is_empty() {
                break;
            }
            let ids: Vec<&str> = page.msgs.iter().map(|m| m.record.msgid.as_str()).collect();
            let recalled = st.archive.recalled(&ids)?;
            let mut buf = Vec::new();
            if fmt == Format::Markdown && !header_done {
                buf.extend_from_slice(format!("\n## {title} ({id})\n\n").as_bytes());
                header_done = true;
            }
            for m in &page.msgs {
                match fmt {
                    Format::Markdown => {
                        buf.extend_from_slice(transcript_line(m, &st.clock, &recalled).as_bytes());
                        buf.push(b'\n');
                    }
                    Format::Json => {
                        if !first_json {
                            buf.extend_from_slice(b",\n");
                        }
                        first_json = false;
                        let v = api_message(m, &st.clock, &recalled);
                        buf.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
                    }
                }
            }
            if !send(buf) {
                return Ok(()); // the client went away
            }
            after = page.msgs.last().map(TimeKey::of);
            if !page.has_newer {
                break;
            }
        }
    }
    Ok(())
}

/// One export: what to read and how to frame it.
struct Export {
    convs: Vec<(String, String)>,
    from: Option<u64>,
    to: Option<u64>,
    fmt: Format,
    head: String,
    tail: &'static str,
    name: String,
}

async fn stream(st: Shared, e: Export) -> Result<Response, AppError> {
    let Export {
        convs,
        from,
        to,
        fmt,
        head,
        tail,
        name,
    } = e;
    let permit = st
        .work
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::Unavailable("the console is stopping".into()))?;
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(BUFFERED);
    let _ = tx.send(Ok(head.into_bytes())).await;
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match produce(&st2, &convs, from, to, fmt, &tx) {
            Ok(()) => {
                let _ = tx.blocking_send(Ok(tail.as_bytes().to_vec()));
            }
            Err(e) => {
                tracing::error!(error = %super::http::chain(&e), "export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
            }
        }
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    let ctype = match fmt {
        Format::Markdown => "text/markdown; charset=utf-8",
        Format::Json => "application/json",
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `GET /c/{id}/export?format=markdown|json&from=&to=`.
pub(crate) async fn export_conversation(
    State(st): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let fmt = format(&p)?;
    let (from, to) = range(&st, &p)?;
    let summary = st
        .archive
        .convs
        .read()
        .ok()
        .and_then(|c| c.get(&id).cloned());
    let Some(summary) = summary else {
        return Err(AppError::NotFound(format!("no conversation {id:?}")));
    };
    let title = summary.title();
    let span = describe(&st, from, to);
    let (head, tail) = match fmt {
        Format::Markdown => (
            format!(
                "# {title}\n\nConversation `{id}` · {span} · times {}\n",
                st.clock.offset_label()
            ),
            "",
        ),
        Format::Json => (
            format!(
                "{{\"conversation\":{},\"title\":{},\"range\":{},\"messages\":[\n",
                serde_json::to_string(&id).unwrap_or_default(),
                serde_json::to_string(&title).unwrap_or_default(),
                serde_json::to_string(&span).unwrap_or_default()
            ),
            "\n]}\n",
        ),
    };
    let name = file_name(&format!("conversation-{id}"), fmt);
    let e = Export {
        convs: vec![(id, title)],
        from,
        to,
        fmt,
        head,
        tail,
        name,
    };
    stream(st, e).await
}

/// `GET /export?from=&to=&format=`: every conversation over a time range.
pub(crate) async fn export_range(
    State(st): State<Shared>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let fmt = format(&p)?;
    let (from, to) = range(&st, &p)?;
    if from.is_none() || to.is_none() {
        return Err(AppError::BadRequest("give from and to (YYYY-MM-DD)".into()));
    }
    let mut convs: Vec<(String, String)> = st
        .archive
        .convs
        .read()
        .map(|c| {
            c.list(crate::conversations::KindFilter::All, None, 0, usize::MAX)
                .0
                .into_iter()
                .filter(|s| {
                    let last = s.last_time_ms();
                    from.is_none_or(|f| last >= f) && to.is_none_or(|t| s.first_time_ms < t)
                })
                .map(|s| (s.id.clone(), s.title()))
                .collect()
        })
        .unwrap_or_default();
    convs.sort();
    let span = describe(&st, from, to);
    let (head, tail) = match fmt {
        Format::Markdown => (
            format!("# Export {span}\n\nTimes {}\n", st.clock.offset_label()),
            "",
        ),
        Format::Json => (
            format!(
                "{{\"range\":{},\"messages\":[\n",
                serde_json::to_string(&span).unwrap_or_default()
            ),
            "\n]}\n",
        ),
    };
    let name = file_name(&format!("export-{span}"), fmt);
    let e = Export {
        convs,
        from,
        to,
        fmt,
        head,
        tail,
        name,
    };
    stream(st, e).await
}

fn describe(st: &Shared, from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (None, None) => "all messages".to_owned(),
        (f, t) => format!(
            "{} to {}",
            f.map_or_else(|| "the start".to_owned(), |v| st.clock.datetime(v)),
            t.map_or_else(|| "now".to_owned(), |v| st.clock.datetime(v))
        ),
    }
}
