//! `GET /cgi-bin/media/get`: a media file streamed from `GetMediaData` chunk by chunk, with `Range`
//! mapped onto the SDK's index buffers.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{envelope, sdk_error_response, ERR_INVALID_PARAM, Q, S};
use crate::pool::{index_for_offset, MediaChunk};
use crate::SdkPool;

/// `bytes=N-` / `bytes=N-M` → (start, inclusive end). Anything else: `None` (whole file).
fn parse_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let raw = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = raw.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse::<u64>().ok()?)
    };
    Some((start, end))
}

enum Next {
    First(MediaChunk),
    Index(String),
    Done,
}

struct MediaState {
    pool: SdkPool,
    sdkfileid: String,
    next: Next,
    /// Bytes still to send when the client asked for a bounded range.
    remaining: Option<u64>,
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// The chunks from `first` on, fetched one at a time as the body is consumed.
fn media_body(state: MediaState) -> Body {
    let stream = futures::stream::unfold(state, |mut st| async move {
        let chunk = match std::mem::replace(&mut st.next, Next::Done) {
            Next::Done => return None,
            Next::First(c) => c,
            Next::Index(idx) => match st.pool.media_chunk(&st.sdkfileid, &idx).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "sdk gateway media stream failed mid-body");
                    return Some((Err(io_err(e.to_string())), st));
                }
            },
        };
        if !chunk.is_finish {
            if chunk.outindexbuf.is_empty() || chunk.data.is_empty() {
                let e = io_err("GetMediaData made no progress".into());
                return Some((Err(e), st));
            }
            st.next = Next::Index(chunk.outindexbuf);
        }
        let mut data = Bytes::from(chunk.data);
        if let Some(rem) = st.remaining.as_mut() {
            if data.len() as u64 >= *rem {
                data.truncate(usize::try_from(*rem).unwrap_or(usize::MAX));
                st.next = Next::Done;
            }
            *rem -= data.len() as u64;
        }
        Some((Ok::<Bytes, std::io::Error>(data), st))
    });
    Body::from_stream(stream)
}

pub(super) async fn media_get(State(s): S, Query(q): Q, headers: HeaderMap) -> Response {
    if let Some(resp) = s.authorize(&headers, &q) {
        return resp;
    }
    let Some(sdkfileid) = q.get("sdkfileid").filter(|v| !v.is_empty()).cloned() else {
        return envelope(ERR_INVALID_PARAM, "sdkfileid missing");
    };
    let range = parse_range(&headers);
    let (start, end) = range.unwrap_or((0, None));
    if end.is_some_and(|e| e < start) {
        return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    }
    // The first chunk is fetched before answering, so that a failure is an error envelope.
    let first = match s
        .pool
        .media_chunk(&sdkfileid, &index_for_offset(start))
        .await
    {
        Ok(c) => c,
        Err(e) => return sdk_error_response("media/get", &e, true),
    };
    if start > 0 && first.data.is_empty() && first.is_finish {
        return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    }
    let remaining = end.map(|e| e - start + 1);
    // When the first chunk completes the file (and no bounded range cuts it), its size is known.
    let known_total = (first.is_finish && remaining.is_none_or(|r| r >= first.data.len() as u64))
        .then(|| start + first.data.len() as u64);
    let body = media_body(MediaState {
        pool: s.pool.clone(),
        sdkfileid,
        next: Next::First(first),
        remaining,
    });
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(total) = known_total {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(total - start));
    }
    if range.is_some() {
        let content_range = match known_total {
            Some(total) if total > start => format!("bytes {start}-{}/{total}", total - 1),
            _ => format!("bytes {start}-*/*"),
        };
        if let Ok(v) = HeaderValue::from_str(&content_range) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            parse_range(&m)
        };
        assert_eq!(h("bytes=10-"), Some((10, None)));
        assert_eq!(h("bytes=10-19"), Some((10, Some(19))));
        assert_eq!(h("bytes=1-2,5-6"), None);
        assert_eq!(h("items=1-2"), None);
    }
}
