//! Writes under S3 Object Lock retention.
//!
//! object_store 0.14 cannot send `x-amz-object-lock-mode` / `x-amz-object-lock-retain-until-date` with a
//! put: its attributes map to fixed headers (content type, `x-amz-meta-*`, …), `PutOptions::extensions`
//! only reach a custom HTTP connector (which `ObjectStoreConfig::build` does not install), and a header
//! added after signing is refused by S3 ("There were headers present in the request which were not
//! signed"). What it does offer is SigV4 presigning with headers bound into the signature
//! (`Signer::signed_url_opts` with `SignedUrlOptions::with_signed_header`). So a locked put is a
//! presigned `PUT` whose signature covers the lock headers, `If-None-Match: *` (the object is created,
//! never replaced) and `Content-MD5` (S3 requires an integrity header with Object Lock), sent with
//! reqwest with exactly those headers. The URL carries a signature and the access key id: it is never
//! logged and is stripped from errors. Reads and listings go through the ordinary store.

use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::signer::{SignedUrlOptions, Signer};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use wecom_store::{ObjectStoreConfig, S3_ACCESS_KEY_ENV, S3_SECRET_ENV};

use crate::config::ObjectLockConfig;
use crate::error::LedgerError;

/// How long a presigned request stays valid (it is sent at once).
const PRESIGN_TTL: Duration = Duration::from_secs(300);
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// The retention S3 reports for an object (HEAD `x-amz-object-lock-*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// RFC 3339, as S3 reports it.
    pub retain_until: String,
}

/// Puts objects with Object Lock retention; see the module docs.
pub(crate) struct LockedPuts {
    s3: AmazonS3,
    http: reqwest::Client,
    lock: ObjectLockConfig,
}

impl LockedPuts {
    /// A signer for the bucket of `store` (an `s3` section, same credentials as the ordinary store).
    pub(crate) fn new(
        store: &ObjectStoreConfig,
        lock: &ObjectLockConfig,
    ) -> Result<Self, LedgerError> {
        let ObjectStoreConfig::S3 {
            bucket,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            allow_http,
            ..
        } = store
        else {
            return Err(LedgerError::Config {
                key: "archive.object_lock".into(),
                reason: "needs archive.store.kind = \"s3\"".into(),
            });
        };
        // The same precedence as wecom_store's builder: environment first for the secret, the file
        // first for the key id.
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_allow_http(*allow_http);
        if let Some(ep) = endpoint.as_deref().filter(|e| !e.is_empty()) {
            b = b.with_endpoint(ep);
        }
        if let Some(k) = access_key_id
            .clone()
            .filter(|k| !k.is_empty())
            .or_else(|| first_env(&S3_ACCESS_KEY_ENV))
        {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = first_env(&S3_SECRET_ENV).or_else(|| {
            secret_access_key
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| s.expose().to_owned())
        }) {
            b = b.with_secret_access_key(s);
        }
        let s3 = b.build().map_err(|source| LedgerError::Object {
            op: "build the object lock signer for",
            location: format!("s3://{bucket}/"),
            source,
        })?;
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| LedgerError::LockRequest {
                location: format!("s3://{bucket}/"),
                source: e.without_url(),
            })?;
        Ok(LockedPuts {
            s3,
            http,
            lock: lock.clone(),
        })
    }

    /// Creates `path` with retention; `Ok(false)` when it already exists (nothing is written).
    pub(crate) async fn put_create(
        &self,
        path: &ObjPath,
        bytes: Bytes,
        location: &str,
    ) -> Result<bool, LedgerError> {
        let until = retain_until(self.lock.retain_days)?;
        let md5 = base64_md5(&bytes);
        let headers = [
            (
                "x-amz-object-lock-mode",
                self.lock.mode.as_header().to_owned(),
            ),
            ("x-amz-object-lock-retain-until-date", until),
            ("if-none-match", "*".to_owned()),
            ("content-md5", md5),
        ];
        let mut opts = SignedUrlOptions::new();
        for (name, value) in &headers {
            opts = opts.with_signed_header(HeaderName::from_static(name), header_value(value)?);
        }
        let url = self
            .s3
            .signed_url_opts(Method::PUT, path, PRESIGN_TTL, &opts)
            .await
            .map_err(|source| LedgerError::Object {
                op: "sign put",
                location: location.to_owned(),
                source,
            })?;
        let mut req = self.http.put(url.as_str()).body(bytes);
        for (name, value) in &headers {
            req = req.header(*name, value.as_str());
        }
        let resp = req.send().await.map_err(|e| LedgerError::LockRequest {
            location: location.to_owned(),
            source: e.without_url(),
        })?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::PRECONDITION_FAILED => Ok(false),
            status => Err(refused(location, status, resp).await),
        }
    }

    /// The retention S3 reports for `path` (`None`: the object has none).
    pub(crate) async fn retention(
        &self,
        path: &ObjPath,
        location: &str,
    ) -> Result<Option<Retention>, LedgerError> {
        let url = self
            .s3
            .signed_url(Method::HEAD, path, PRESIGN_TTL)
            .await
            .map_err(|source| LedgerError::Object {
                op: "sign head",
                location: location.to_owned(),
                source,
            })?;
        let resp =
            self.http
                .head(url.as_str())
                .send()
                .await
                .map_err(|e| LedgerError::LockRequest {
                    location: location.to_owned(),
                    source: e.without_url(),
                })?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(refused(location, status, resp).await);
        }
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(
            match (
                h("x-amz-object-lock-mode"),
                h("x-amz-object-lock-retain-until-date"),
            ) {
                (Some(mode), Some(retain_until)) => Some(Retention { mode, retain_until }),
                _ => None,
            },
        )
    }
}

async fn refused(location: &str, status: StatusCode, resp: reqwest::Response) -> LedgerError {
    let body = resp.text().await.unwrap_or_default();
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&format!("</{t}>"))?;
        Some(body[start..start + len].to_owned())
    };
    let reason = match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
    };
    LedgerError::LockRefused {
        location: location.to_owned(),
        status: status.as_u16(),
        reason,
    }
}

fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn header_value(v: &str) -> Result<HeaderValue, LedgerError> {
    HeaderValue::from_str(v).map_err(|_| LedgerError::Config {
        key: "archive.object_lock".into(),
        reason: format!("cannot send header value {v:?}"),
    })
}

fn base64_md5(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// Now + `days`, to the second, as S3 wants it (`2031-01-01T00:00:00Z`).
fn retain_until(days: u32) -> Result<String, LedgerError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    (time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)))
        .format(&fmt)
        .map_err(|e| LedgerError::Config {
            key: "archive.object_lock.retain_days".into(),
            reason: format!("cannot format the retention date: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_date_and_md5_are_in_s3_form() {
        let d = retain_until(1).expect("date");
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.ends_with('Z') && d.as_bytes()[10] == b'T', "{d}");
        assert_eq!(base64_md5(b"hello"), "XUFAKrxLKna5cZ2REBfFkg==");
    }
}
