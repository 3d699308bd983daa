//! Turning one HTTP answer into a value or an [`ApiError`]: the error envelope, the HTTP status and the
//! contract's shape, in that order.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::Inner;
use crate::error::ApiError;
use crate::Secret;

impl Inner {
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
