//! Turning one HTTP answer into a value or an [`ApiError`]: sending (a connect failure names the
//! server), reading the body within its limit, then the error envelope, the HTTP status and the
//! contract's shape, in that order.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::Inner;
use crate::error::ApiError;
use crate::Secret;

impl Inner {
    /// Sends a request; a failure to reach the server names the configured base url.
    pub(crate) async fn send(
        &self,
        ep: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        req.send()
            .await
            .map_err(|e| ApiError::from_reqwest_at(ep, &self.base_display, e))
    }

    /// The whole body of `resp`, at most `limit` bytes. A declared `Content-Length` over the limit is
    /// refused before anything is read; an undeclared length is refused as soon as the bytes read pass
    /// the limit, so an oversized answer never sits in memory.
    pub(crate) async fn read_body(
        &self,
        ep: &'static str,
        resp: &mut reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let too_large = || ApiError::BodyTooLarge {
            endpoint: ep,
            limit,
        };
        let declared = resp.content_length();
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        // Preallocate what was declared (within the limit), but not more than a typical page.
        let hint = declared.unwrap_or(0).min(1024 * 1024);
        let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?
        {
            let len = u64::try_from(body.len() + chunk.len()).unwrap_or(u64::MAX);
            if len > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Reads (within `limit`) and decodes an answer. An oversized body with an error status is
    /// reported as that status: an error page says nothing more.
    pub(crate) async fn decode_response<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        mut resp: reqwest::Response,
        limit: u64,
        token: Option<&Secret>,
    ) -> Result<T, ApiError> {
        let status = resp.status();
        let body = match self.read_body(ep, &mut resp, limit).await {
            Ok(body) => body,
            Err(ApiError::BodyTooLarge { .. }) if !status.is_success() => {
                return Err(ApiError::Http {
                    endpoint: ep,
                    status: status.as_u16(),
                })
            }
            Err(e) => return Err(e),
        };
        self.decode(ep, status, &body, token)
    }

    /// An error envelope wins over the HTTP status (it says more); a success status with a body that
    /// is not JSON is a truncated body (retriable); JSON of the wrong shape breaks the contract.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        status: StatusCode,
        body: &[u8],
        token: Option<&Secret>,
    ) -> Result<T, ApiError> {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) if !status.is_success() => {
                return Err(ApiError::Http {
                    endpoint: ep,
                    status: status.as_u16(),
                })
            }
            Err(e) => {
                return Err(ApiError::Decode {
                    endpoint: ep,
                    reason: self.scrub(&e.to_string(), token),
                })
            }
        };
        if let Some(err) = self.envelope_error(ep, &value, token) {
            return Err(err);
        }
        if !status.is_success() {
            return Err(ApiError::Http {
                endpoint: ep,
                status: status.as_u16(),
            });
        }
        serde_json::from_value(value).map_err(|e| ApiError::Contract {
            endpoint: ep,
            reason: self.scrub(&e.to_string(), token),
        })
    }

    /// `Some` when `value` is an envelope with a nonzero errcode.
    pub(crate) fn envelope_error(
        &self,
        ep: &'static str,
        value: &Value,
        token: Option<&Secret>,
    ) -> Option<ApiError> {
        let errcode = value.get("errcode")?.as_i64()?;
        if errcode == 0 {
            return None;
        }
        let errmsg = value
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some(ApiError::Api {
            endpoint: ep,
            corp_id: self.corp_id.clone(),
            errcode,
            errmsg: self.scrub(errmsg, token),
        })
    }
}
