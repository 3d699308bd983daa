//! `GET /cgi-bin/media/get`: streamed media bytes with `Range`, and the media faults.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{ERR_BAD_FILEID, ERR_INVALID_PARAM, ERR_MEDIA_EXPIRED, Q, S};
use crate::corpus::now_ms;
use crate::media::{self, MediaGen, Variant};

/// `bytes=N-` or `bytes=N-M` → (start, end exclusive); `Err(())` when unsatisfiable; `None` when absent
/// or not understood (the whole file is served, as many servers do).
fn parse_range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let raw = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = raw.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        size
    } else {
        b.trim().parse::<u64>().ok()?.saturating_add(1).min(size)
    };
    if start >= size || end <= start {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

pub(super) async fn media_get(State(s): S, Query(q): Q, headers: HeaderMap) -> Response {
    let d = s.draw();
    s.count_request("media_get");
    if d.slow {
        s.count_fault("slow_response");
        tokio::time::sleep(Duration::from_millis(d.slow_ms)).await;
    }
    if d.media_5xx {
        s.count_fault("media_5xx");
        return (StatusCode::BAD_GATEWAY, "simulated media server error").into_response();
    }
    if let Err((code, msg)) = s.check_token(&q) {
        return s.envelope(code, msg);
    }
    if d.expire {
        s.count_fault("token_expire_early");
        s.expire_token(&q);
        return s.envelope(42001, "access_token expired");
    }
    let Some(fileid) = q.get("sdkfileid").filter(|v| !v.is_empty()) else {
        return s.envelope(ERR_INVALID_PARAM, "sdkfileid missing");
    };
    let seed = s.corpus.seed();
    let Some((media_id, size)) = media::decode_sdkfileid(seed, fileid) else {
        return s.envelope(ERR_BAD_FILEID, "invalid sdkfileid");
    };
    let Some((msgtime, format)) = s.corpus.media_owner(media_id) else {
        return s.envelope(ERR_BAD_FILEID, "invalid sdkfileid");
    };
    if msgtime < now_ms().saturating_sub(s.corpus.retention_ms()) {
        return s.envelope(ERR_MEDIA_EXPIRED, "media expired");
    }
    let (start, end, partial) = match parse_range(&headers, size) {
        None => (0, size, false),
        Some(Ok((a, b))) => (a, b, true),
        Some(Err(())) => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let variant = {
        // After wrong bytes, the media is served correctly until one response goes out whole: a
        // response cut short by another fault does not use the promise up, or the next request
        // could be wrong again and two complete downloads in a row could carry the same wrong bytes
        // (corruption does not repeat itself byte for byte; only a check of two downloads catches it
        // for media without an md5).
        let mut retry_ok = s.md5_retry_ok.lock().unwrap_or_else(|p| p.into_inner());
        if retry_ok.contains(&media_id) {
            if !d.media_truncate && !d.media_reset {
                retry_ok.remove(&media_id);
            }
            Variant::Correct
        } else if !d.media_md5 {
            Variant::Correct
        } else {
            retry_ok.insert(media_id);
            s.count_fault("media_md5_mismatch");
            Variant::Wrong
        }
    };
    let len = end - start;
    s.with_stats(|st| st.media_bytes += len);
    let cut_at = ((len as f64 * d.cut) as u64).min(len.saturating_sub(1));
    let gen_end = if d.media_truncate {
        s.count_fault("media_truncate");
        start + cut_at
    } else {
        end
    };
    let abort_after = if d.media_reset && !d.media_truncate {
        s.count_fault("media_reset");
        Some(cut_at)
    } else {
        None
    };
    let gen = MediaGen::new(seed, media_id, format, variant, start, gen_end);
    let stream = futures::stream::unfold(
        (gen, 0u64, abort_after, false),
        |(mut gen, sent, abort, done)| async move {
            if done {
                return None;
            }
            if let Some(a) = abort {
                if sent >= a {
                    let err = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "simulated media reset",
                    );
                    return Some((Err(err), (gen, sent, abort, true)));
                }
            }
            let mut chunk = gen.next_chunk()?;
            if let Some(a) = abort {
                if sent + chunk.len() as u64 > a {
                    chunk.truncate((a - sent) as usize);
                }
            }
            let n = chunk.len() as u64;
            Some((
                Ok::<Bytes, std::io::Error>(chunk),
                (gen, sent + n, abort, false),
            ))
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if !d.media_truncate {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if partial {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}
