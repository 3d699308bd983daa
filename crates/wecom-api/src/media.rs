//! Media streaming: `media/get` with `Range` resume, an error envelope told apart from media bytes,
//! and the body handed to the caller as a stream (never buffered whole).

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::calls::check_nonempty;
use crate::client::{ArchiveClient, Inner};
use crate::endpoint;
use crate::error::ApiError;
use crate::stats::EventKind;
use crate::Secret;

/// Largest body read whole when a media answer may be an error envelope.
const ENVELOPE_SNIFF_LIMIT: usize = 64 * 1024;

/// A media body being streamed.
pub struct MediaBody {
    /// Size of the whole object (not of the remaining part): the `Content-Range` total, else
    /// `Content-Length` (+ the offset for a partial answer). `None` when the server sent neither.
    pub total_len: Option<u64>,
    /// The bytes from the requested offset on. A mid-body error is yielded as `Err` (class
    /// `Retriable`); the caller resumes with a new `media` call at the offset it reached.
    pub stream: Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>,
}

impl fmt::Debug for MediaBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaBody")
            .field("total_len", &self.total_len)
            .finish_non_exhaustive()
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>;

impl ArchiveClient {
    /// Starts streaming a media object from byte `offset`. Retries cover obtaining the response
    /// (status, headers, and telling a media body from an error envelope); the body itself is
    /// streamed, never buffered whole.
    pub async fn media(&self, sdkfileid: &str, offset: u64) -> Result<MediaBody, ApiError> {
        check_nonempty("sdkfileid", sdkfileid)?;
        let inner = &*self.inner;
        if offset > 0 {
            inner.stats.event(EventKind::MediaResumed);
            tracing::debug!(corp_id = %inner.corp_id, offset, "resuming a media download");
        }
        inner
            .with_retry(endpoint::MEDIA, move |token| {
                inner.media_once(sdkfileid, offset, token)
            })
            .await
    }
}

impl Inner {
    async fn media_once(
        &self,
        sdkfileid: &str,
        offset: u64,
        token: Secret,
    ) -> Result<MediaBody, ApiError> {
        let ep = endpoint::MEDIA;
        self.stats.call(ep);
        let mut req = self
            .http
            .get(self.url("/cgi-bin/media/get"))
            .query(&[("access_token", token.expose()), ("sdkfileid", sdkfileid)]);
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        let mut resp = self.send(ep, req).await?;
        let status = resp.status();
        let headers = resp.headers();
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        let content_len = header_u64(headers.get(CONTENT_LENGTH));
        let content_range = headers
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);

        if !status.is_success() || is_json {
            let (body, complete) = read_limited(&mut resp, ENVELOPE_SNIFF_LIMIT).await?;
            if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                if let Some(err) = self.envelope_error(ep, &value, Some(&token)) {
                    return Err(err);
                }
            }
            if !status.is_success() {
                return Err(ApiError::Http {
                    endpoint: ep,
                    status: status.as_u16(),
                });
            }
            let reason = if complete {
                "a json body without an error in place of media bytes"
            } else {
                "an oversized json body in place of media bytes"
            };
            return Err(ApiError::Contract {
                endpoint: ep,
                reason: reason.into(),
            });
        }

        let (skip, total_len) = if status == StatusCode::PARTIAL_CONTENT {
            let Some((start, total)) = content_range else {
                return Err(ApiError::Contract {
                    endpoint: ep,
                    reason: "206 without a usable content-range".into(),
                });
            };
            if start != offset {
                return Err(ApiError::Contract {
                    endpoint: ep,
                    reason: format!("asked for bytes from {offset}, got a range from {start}"),
                });
            }
            (0, total.or(content_len.map(|l| l + offset)))
        } else {
            // A full answer: either no range was asked, or the server ignored it; skip to the offset.
            (
                offset,
                content_range.and_then(|(_, total)| total).or(content_len),
            )
        };

        // A body that starts like JSON and is small may be an error envelope sent as octet-stream.
        let mut prefix: Vec<Bytes> = Vec::new();
        let mut ended = false;
        let first = resp
            .chunk()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        match first {
            None => ended = true,
            Some(chunk) => {
                let looks_json = chunk.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let mut buffered = chunk.len();
                prefix.push(chunk);
                let small = content_len.is_none_or(|l| l <= ENVELOPE_SNIFF_LIMIT as u64);
                if looks_json && small {
                    while buffered <= ENVELOPE_SNIFF_LIMIT {
                        match resp
                            .chunk()
                            .await
                            .map_err(|e| ApiError::from_reqwest(ep, e))?
                        {
                            Some(chunk) => {
                                buffered += chunk.len();
                                prefix.push(chunk);
                            }
                            None => {
                                ended = true;
                                break;
                            }
                        }
                    }
                    if ended {
                        let whole: Vec<u8> =
                            prefix.iter().flat_map(|c| c.iter().copied()).collect();
                        if let Ok(value) = serde_json::from_slice::<Value>(&whole) {
                            if let Some(err) = self.envelope_error(ep, &value, Some(&token)) {
                                return Err(err);
                            }
                        }
                    }
                }
            }
        }

        let head = futures::stream::iter(prefix.into_iter().map(Ok));
        let stream: ByteStream = if ended {
            Box::pin(head)
        } else {
            let rest = resp
                .bytes_stream()
                .map(move |r| r.map_err(|e| ApiError::from_reqwest(ep, e)));
            Box::pin(head.chain(rest))
        };
        Ok(MediaBody {
            total_len,
            stream: skip_bytes(stream, skip),
        })
    }
}

fn header_u64(value: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    value?.to_str().ok()?.trim().parse().ok()
}

/// `bytes START-END/TOTAL` -> (START, TOTAL if not `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Reads at most about `limit` bytes of a (presumably small, error) body. The flag tells whether the
/// body ended within the limit.
async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), ApiError> {
    let mut out = Vec::new();
    while out.len() <= limit {
        match resp
            .chunk()
            .await
            .map_err(|e| ApiError::from_reqwest(endpoint::MEDIA, e))?
        {
            Some(chunk) => out.extend_from_slice(&chunk),
            None => return Ok((out, true)),
        }
    }
    Ok((out, false))
}

/// Drops the first `skip` bytes of a stream.
fn skip_bytes(stream: ByteStream, mut skip: u64) -> ByteStream {
    if skip == 0 {
        return stream;
    }
    Box::pin(stream.filter_map(move |item| {
        let out = match item {
            Ok(chunk) => {
                let len = chunk.len() as u64;
                if skip >= len {
                    skip -= len;
                    None
                } else {
                    // skip < len <= usize::MAX here
                    let cut = usize::try_from(skip).unwrap_or(0);
                    skip = 0;
                    Some(Ok(chunk.slice(cut..)))
                }
            }
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[tokio::test]
    async fn skipping_bytes_across_chunks() {
        let chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"h"),
        ];
        let s: ByteStream = Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
        let out: Vec<Bytes> = skip_bytes(s, 5).map(|r| r.unwrap()).collect().await;
        assert_eq!(out.concat(), b"fgh");
    }
}
