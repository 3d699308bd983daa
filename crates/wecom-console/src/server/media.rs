//! Media objects for reviewers: originals (downloads, with `Range`), image thumbnails, and voice
//! transcoded for browsers.
//!
//! - **Thumbnails** are made with the `image` crate (JPEG, PNG, GIF, WebP decoded; the longest side scaled
//!   to `thumbnail_px`), cached under `cache_dir/thumbs/`. Serving originals scaled by the browser would
//!   send megabytes per timeline page.
//! - **Voice** is AMR-NB, which no browser plays. It is transcoded once with Debian's `ffmpeg` (its
//!   native AMR-NB decoder) to Opus in Ogg (a few KB per minute, played by every current browser) and
//!   cached under `cache_dir/voice/`. No pure-Rust AMR decoder is mature enough to trust with evidence.
//! - An archived file is served as an attachment with a sandboxing CSP, never rendered in the console's
//!   origin (an archived `.html` or `.svg` must not run as the console).

use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::{GetOptions, GetRange, ObjectStore as _};
use tracing::debug;

use super::http::{blocking, AppError, Params};
use super::Shared;
use crate::error::ConsoleError;

/// Voice objects larger than this are not transcoded (a voice message is at most a minute).
const VOICE_MAX_BYTES: u64 = 16 * 1024 * 1024;
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `key` is a media object key (`media/…`, no empty, `.` or `..` segment).
fn valid_key(key: &str) -> bool {
    key.starts_with("media/")
        && key.len() <= 1024
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.chars().any(char::is_control))
}

fn ext(key: &str) -> String {
    key.rsplit('/')
        .next()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Content type by extension, and whether a browser may show it inline.
fn content_type(ext: &str) -> (&'static str, bool) {
    match ext {
        "jpg" | "jpeg" => ("image/jpeg", true),
        "png" => ("image/png", true),
        "gif" => ("image/gif", true),
        "webp" => ("image/webp", true),
        "amr" => ("audio/amr", false),
        "mp4" => ("video/mp4", true),
        "mp3" => ("audio/mpeg", true),
        "pdf" => ("application/pdf", false),
        "txt" => ("text/plain; charset=utf-8", false),
        _ => ("application/octet-stream", false),
    }
}

/// A single `bytes=a-b` / `bytes=a-` range.
fn parse_range(h: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = h.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => None,
        b => Some(b.parse::<u64>().ok()?),
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some((start, end))
}

fn not_stored(key: &str) -> AppError {
    AppError::NotFound(format!(
        "{key} is not in the media store (not fetched yet, or its download failed)"
    ))
}

fn object_error(key: &str, e: object_store::Error) -> AppError {
    match e {
        object_store::Error::NotFound { .. } => not_stored(key),
        other => AppError::Internal(ConsoleError::Source(format!(
            "media object {key}: {}",
            super::http::chain(&other)
        ))),
    }
}

fn disposition(name: &str, attachment: bool) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let enc = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    let kind = if attachment { "attachment" } else { "inline" };
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{enc}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /media/{key}`: the original object.
pub(crate) async fn original(
    State(st): State<Shared>,
    Path(key): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !valid_key(&key) {
        return Err(AppError::BadRequest("not a media object key".into()));
    }
    let path = st
        .objects
        .path(&key)
        .map_err(|_| AppError::BadRequest("not a media object key".into()))?;
    let range = parse_range(&headers);
    let opts = GetOptions {
        range: range.map(|(a, b)| match b {
            Some(b) => GetRange::Bounded(a..b + 1),
            None => GetRange::Offset(a),
        }),
        ..GetOptions::default()
    };
    let got = match st.objects.object_store().get_opts(&path, opts).await {
        Ok(g) => g,
        Err(object_store::Error::NotModified { .. })
        | Err(object_store::Error::Precondition { .. }) => {
            return Err(AppError::BadRequest("unsatisfiable range".into()))
        }
        Err(e) if range.is_some() && !matches!(e, object_store::Error::NotFound { .. }) => {
            debug!(%key, error = %e, "range not satisfiable");
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(r);
        }
        Err(e) => return Err(object_error(&key, e)),
    };
    let total = got.meta.size;
    let served = got.range.clone();
    let e = ext(&key);
    let (ctype, inline_ok) = content_type(&e);
    let download = p.get("download").is_some() || !inline_ok;
    let name = p
        .get("name")
        .map(str::to_owned)
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or("media").to_owned());
    let stream = got.into_stream().map_err(std::io::Error::other);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_DISPOSITION, disposition(&name, download));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if let Ok(v) = HeaderValue::from_str(&(served.end - served.start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if range.is_some() {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{total}",
            served.start,
            served.end.saturating_sub(1)
        )) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

/// Reads a whole object, refusing ones larger than `max`.
async fn fetch(st: &Shared, key: &str, max: u64) -> Result<Bytes, AppError> {
    let path = st
        .objects
        .path(key)
        .map_err(|_| AppError::BadRequest("not a media object key".into()))?;
    let got = st
        .objects
        .object_store()
        .get_opts(&path, GetOptions::default())
        .await
        .map_err(|e| object_error(key, e))?;
    if got.meta.size > max {
        return Err(AppError::Unsupported(format!(
            "{key} is {} bytes: too large to preview, download it instead",
            got.meta.size
        )));
    }
    got.bytes().await.map_err(|e| object_error(key, e))
}

fn cache_name(key: &str, suffix: &str) -> String {
    // FNV-1a 128 of the key: fixed length, no path characters.
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in key.as_bytes() {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    format!("{h:032x}{suffix}")
}

/// Writes `bytes` to `path` through a temp file and a rename, so a reader never sees half a file.
fn write_cache(path: &FsPath, bytes: &[u8]) -> Result<(), ConsoleError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(ConsoleError::io(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(ConsoleError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(ConsoleError::io(path))
}

fn cached(ctype: &'static str, bytes: Vec<u8>, headers: &HeaderMap) -> Response {
    let total = bytes.len() as u64;
    let mut status = StatusCode::OK;
    let mut body = bytes;
    let mut content_range = None;
    if let Some((a, b)) = parse_range(headers) {
        let end = b
            .unwrap_or(total.saturating_sub(1))
            .min(total.saturating_sub(1));
        if a >= total || end < a {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        body = body[a as usize..=end as usize].to_vec();
        status = StatusCode::PARTIAL_CONTENT;
        content_range = Some(format!("bytes {a}-{end}/{total}"));
    }
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(cr) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    r
}

/// `GET /thumb/{key}`: a JPEG whose longest side is at most `thumbnail_px`.
pub(crate) async fn thumbnail(
    State(st): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !valid_key(&key) {
        return Err(AppError::BadRequest("not a media object key".into()));
    }
    let px = st.cfg.thumbnail_px;
    let path = st
        .cache_dir
        .join("thumbs")
        .join(cache_name(&key, &format!("-{px}.jpg")));
    if let Ok(bytes) = tokio::fs::read(&path).await {
        return Ok(cached("image/jpeg", bytes, &headers));
    }
    let original = fetch(&st, &key, st.cfg.thumbnail_source_max_bytes).await?;
    let k = key.clone();
    let out = path.clone();
    let jpeg = blocking(&st, move || {
        let jpeg = make_thumbnail(&original, px).map_err(|why| {
            AppError::Unsupported(format!(
                "{k} is not a picture the console can decode: {why}"
            ))
        })?;
        write_cache(&out, &jpeg)?;
        Ok(jpeg)
    })
    .await?;
    Ok(cached("image/jpeg", jpeg, &headers))
}

/// Decodes a picture and scales it to fit `px`×`px`, as a JPEG.
pub fn make_thumbnail(bytes: &[u8], px: u32) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    let thumb = img.thumbnail(px, px).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(&thumb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// `GET /voice/{key}`: the voice message as Opus in Ogg.
pub(crate) async fn voice(
    State(st): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !valid_key(&key) {
        return Err(AppError::BadRequest("not a media object key".into()));
    }
    let path = st.cache_dir.join("voice").join(cache_name(&key, ".ogg"));
    if let Ok(bytes) = tokio::fs::read(&path).await {
        return Ok(cached("audio/ogg", bytes, &headers));
    }
    let amr = fetch(&st, &key, VOICE_MAX_BYTES).await?;
    let _permit = st
        .transcode
        .acquire()
        .await
        .map_err(|_| AppError::Unavailable("the console is stopping".into()))?;
    let ogg = transcode(&st.cfg.ffmpeg, &amr, &path, &key).await?;
    Ok(cached("audio/ogg", ogg, &headers))
}

async fn transcode(
    ffmpeg: &FsPath,
    input: &[u8],
    out: &FsPath,
    key: &str,
) -> Result<Vec<u8>, AppError> {
    let dir = out.parent().map(FsPath::to_path_buf).unwrap_or_default();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| AppError::Internal(ConsoleError::io(&dir)(e)))?;
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("voice")
        .to_owned();
    let pid = std::process::id();
    let src: PathBuf = dir.join(format!("{stem}.{pid}.amr"));
    let dst: PathBuf = dir.join(format!("{stem}.{pid}.ogg"));
    tokio::fs::write(&src, input)
        .await
        .map_err(|e| AppError::Internal(ConsoleError::io(&src)(e)))?;
    let run = tokio::process::Command::new(ffmpeg)
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "amr",
            "-i",
        ])
        .arg(&src)
        .args([
            "-vn", "-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-f", "ogg",
        ])
        .arg(&dst)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let result = tokio::time::timeout(FFMPEG_TIMEOUT, run).await;
    let _ = tokio::fs::remove_file(&src).await;
    let output = match result {
        Err(_) => {
            let _ = tokio::fs::remove_file(&dst).await;
            return Err(AppError::Unavailable(format!("transcoding {key} took too long")));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::Unavailable(format!(
                "voice playback needs ffmpeg ({} not found): apt-get install ffmpeg, or set console.ffmpeg",
                ffmpeg.display()
            )))
        }
        Ok(Err(e)) => {
            return Err(AppError::Internal(ConsoleError::Source(format!(
                "running {}: {e}",
                ffmpeg.display()
            ))))
        }
        Ok(Ok(o)) => o,
    };
    if !output.status.success() {
        let _ = tokio::fs::remove_file(&dst).await;
        let why = String::from_utf8_lossy(&output.stderr);
        debug!(%key, stderr = %why.trim(), "ffmpeg could not decode a voice object");
        return Err(AppError::Unsupported(format!(
            "{key} is not AMR voice the console can decode"
        )));
    }
    tokio::fs::rename(&dst, out)
        .await
        .map_err(|e| AppError::Internal(ConsoleError::io(out)(e)))?;
    tokio::fs::read(out)
        .await
        .map_err(|e| AppError::Internal(ConsoleError::io(out)(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ranges_and_names() {
        assert!(valid_key("media/ww1/md5/abc.jpg"));
        assert!(!valid_key("media/../etc/passwd"));
        assert!(!valid_key("raw/ww1/x"));
        assert!(!valid_key("media//x"));
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=10-"));
        assert_eq!(parse_range(&h), Some((10, None)));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=5-2"));
        assert_eq!(parse_range(&h), None);
        assert!(!content_type("svg").1, "never inline svg");
        let d = disposition("报告 a.pdf", true);
        assert!(d
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename=\"___a.pdf\""));
    }

    #[test]
    fn thumbnails_of_real_pictures_and_refusals() {
        let img = image::RgbImage::from_fn(800, 400, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("png");
        let jpeg = make_thumbnail(&png, 200).expect("thumbnail");
        let back = image::load_from_memory(&jpeg).expect("decodes");
        assert_eq!((back.width(), back.height()), (200, 100));
        assert!(make_thumbnail(b"WSIM not a picture", 200).is_err());
    }
}
