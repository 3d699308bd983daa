//! The client's error type and the retry class the pipeline acts on.
//!
//! No variant ever holds the corp secret, the access token or a URL with its query string: reqwest
//! errors are stripped with `without_url()` before they are formatted, and `errmsg` texts from the
//! server are scrubbed of both secrets before they are stored.

use crate::endpoint;

/// What the caller should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: back off and try again later (the client already did, up to its policy).
    Retriable,
    /// Permanent for this one item (e.g. expired or unknown media): dead-letter it and move on.
    Item,
    /// Stop: configuration or subscription problem. Do not move the cursor.
    Fatal,
}

/// An error of one client call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error envelope (`errcode != 0`).
    #[error("{endpoint} failed for corp {corp_id}: errcode {errcode} ({errmsg})")]
    Api {
        endpoint: &'static str,
        corp_id: String,
        errcode: i64,
        errmsg: String,
    },
    /// A non-success HTTP status without an error envelope.
    #[error("{endpoint} returned http status {status}")]
    Http { endpoint: &'static str, status: u16 },
    /// Connect failures, timeouts, resets, a body cut short.
    #[error("{endpoint} transport error: {reason}")]
    Transport {
        endpoint: &'static str,
        reason: String,
    },
    /// The body is not JSON (typically a body cut by a connection reset): retriable.
    #[error("{endpoint} returned an undecodable body: {reason}")]
    Decode {
        endpoint: &'static str,
        reason: String,
    },
    /// The body is well-formed JSON whose shape does not match the contract: fatal, retrying would not
    /// change it.
    #[error("{endpoint} returned a body that does not match the contract: {reason}")]
    Contract {
        endpoint: &'static str,
        reason: String,
    },
    /// The caller (or the config) passed something the contract does not allow.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A retriable error persisted through every attempt of the retry policy.
    #[error("{endpoint} failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        endpoint: &'static str,
        attempts: u32,
        last: Box<ApiError>,
    },
}

impl ApiError {
    /// The retry class. Errcode mapping (documented choice: an errcode this table does not know is
    /// `Fatal`, with the errcode in the message, rather than an endless retry loop):
    ///
    /// | errcode / condition | class |
    /// |---|---|
    /// | -1 (busy), 45009 (rate limited), 10001 (SDK gateway: network) | Retriable |
    /// | 40014, 42001 (bad/expired token); 40001 on a data call | Retriable (the client refreshes the token) |
    /// | 40001 on `gettoken` (bad secret), 40013, 41001, 301052, 301053, other 301xxx | Fatal |
    /// | 10002, 10005, 10010 (media failed for good / bad fileid / expired) | Item |
    /// | any other errcode | Fatal |
    /// | HTTP 429, 408, 5xx; transport errors; undecodable (truncated) bodies | Retriable |
    /// | other HTTP 4xx, contract mismatches, invalid arguments | Fatal |
    /// | `RetriesExhausted` | Retriable: the condition was transient in kind but outlasted the policy; the caller decides how long to keep trying at its level |
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Api {
                endpoint, errcode, ..
            } => errcode_class(endpoint, *errcode),
            ApiError::Http { status, .. } => match *status {
                408 | 429 | 500..=599 => ErrorClass::Retriable,
                _ => ErrorClass::Fatal,
            },
            ApiError::Transport { .. } | ApiError::Decode { .. } => ErrorClass::Retriable,
            ApiError::Contract { .. } | ApiError::InvalidArgument(_) => ErrorClass::Fatal,
            ApiError::RetriesExhausted { .. } => ErrorClass::Retriable,
        }
    }

    /// The errcode of an `Api` error, looking through `RetriesExhausted`.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Api { errcode, .. } => Some(*errcode),
            ApiError::RetriesExhausted { last, .. } => last.errcode(),
            _ => None,
        }
    }

    /// The endpoint the error came from, if any.
    pub fn endpoint(&self) -> Option<&'static str> {
        match self {
            ApiError::Api { endpoint, .. }
            | ApiError::Http { endpoint, .. }
            | ApiError::Transport { endpoint, .. }
            | ApiError::Decode { endpoint, .. }
            | ApiError::Contract { endpoint, .. }
            | ApiError::RetriesExhausted { endpoint, .. } => Some(endpoint),
            ApiError::InvalidArgument(_) => None,
        }
    }

    /// True for an error that a fresh access token may cure (on a data call).
    pub(crate) fn is_token_error(&self) -> bool {
        match self {
            ApiError::Api {
                endpoint, errcode, ..
            } => *endpoint != endpoint::GETTOKEN && matches!(*errcode, 40001 | 40014 | 42001),
            _ => false,
        }
    }

    pub(crate) fn from_reqwest(endpoint: &'static str, err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_builder() {
            return ApiError::InvalidArgument(format!("{endpoint}: {}", chain(&err)));
        }
        let reason = if err.is_timeout() {
            format!("timed out: {}", chain(&err))
        } else {
            chain(&err)
        };
        ApiError::Transport { endpoint, reason }
    }
}

fn errcode_class(endpoint: &str, errcode: i64) -> ErrorClass {
    match errcode {
        -1 | 45009 | 10001 => ErrorClass::Retriable,
        40014 | 42001 => ErrorClass::Retriable,
        40001 if endpoint != endpoint::GETTOKEN => ErrorClass::Retriable,
        10002 | 10005 | 10010 => ErrorClass::Item,
        _ => ErrorClass::Fatal,
    }
}

/// An error and its sources on one line (reqwest's own message alone is often just "error sending
/// request").
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(endpoint: &'static str, errcode: i64) -> ApiError {
        ApiError::Api {
            endpoint,
            corp_id: "ww1".into(),
            errcode,
            errmsg: "x".into(),
        }
    }

    fn check(err: ApiError, expected: ErrorClass) {
        assert_eq!(err.class(), expected, "{err}");
    }

    #[test]
    fn classes() {
        use ErrorClass::*;
        let data = endpoint::GET_CHAT_DATA;
        check(api(data, -1), Retriable);
        check(api(data, 45009), Retriable);
        check(api(data, 42001), Retriable);
        check(api(data, 40014), Retriable);
        check(api(data, 40001), Retriable);
        check(api(endpoint::GETTOKEN, 40001), Fatal);
        check(api(endpoint::GETTOKEN, 40013), Fatal);
        check(api(data, 41001), Fatal);
        check(api(data, 301052), Fatal);
        check(api(data, 301053), Fatal);
        check(api(data, 301099), Fatal);
        check(api(data, 777_777), Fatal);
        check(api(endpoint::MEDIA, 10010), Item);
        check(api(endpoint::MEDIA, 10005), Item);
        check(api(endpoint::MEDIA, 10002), Item);
        check(
            ApiError::Http {
                endpoint: data,
                status: 503,
            },
            Retriable,
        );
        check(
            ApiError::Http {
                endpoint: data,
                status: 429,
            },
            Retriable,
        );
        check(
            ApiError::Http {
                endpoint: data,
                status: 404,
            },
            Fatal,
        );
        check(
            ApiError::Decode {
                endpoint: data,
                reason: "eof".into(),
            },
            Retriable,
        );
        check(
            ApiError::Contract {
                endpoint: data,
                reason: "shape".into(),
            },
            Fatal,
        );
        check(ApiError::InvalidArgument("x".into()), Fatal);
    }

    #[test]
    fn message_names_endpoint_corp_and_errcode() {
        let msg = api(endpoint::GET_CHAT_DATA, 301052).to_string();
        assert_eq!(
            msg,
            "msgaudit/get_chat_data failed for corp ww1: errcode 301052 (x)"
        );
    }
}
