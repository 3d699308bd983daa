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
///
/// Every variant says its cause in its own message and none exposes a `source()`: the text of a
/// reqwest error is folded into `reason` (stripped of its URL), and `RetriesExhausted` prints the last
/// error after its own words, so a chain printer never shows a cause twice.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error envelope (`errcode != 0`).
    #[error(
        "{endpoint} failed for corp {corp_id}: errcode {errcode} ({errmsg}){}",
        errcode_advice(endpoint, *errcode)
    )]
    Api {
        endpoint: &'static str,
        corp_id: String,
        errcode: i64,
        errmsg: String,
    },
    /// A non-success HTTP status without an error envelope.
    #[error("{endpoint} returned http status {status}")]
    Http { endpoint: &'static str, status: u16 },
    /// The server could not be reached at all (refused, unresolvable, connect timeout).
    #[error("{endpoint}: cannot connect to {base_url} ({reason}); is the archive source running and reachable there?")]
    Connect {
        endpoint: &'static str,
        /// The configured base URL without any user info.
        base_url: String,
        reason: String,
    },
    /// Timeouts, resets, a body cut short.
    #[error("{endpoint} transport error: {reason}")]
    Transport {
        endpoint: &'static str,
        reason: String,
        /// The request or a read timed out (rather than the connection breaking).
        timed_out: bool,
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
    /// The answer is larger than the client accepts for this endpoint; it was not read.
    #[error(
        "{endpoint} answer exceeds the client's body limit of {limit} bytes{}",
        body_limit_advice(endpoint)
    )]
    BodyTooLarge { endpoint: &'static str, limit: u64 },
    /// A page with more new items (distinct seqs above the one asked after) than the `limit` asked for:
    /// the server broke the contract. Retriable: the cursor must not move past items that may not belong
    /// to the page. `count` is the number of distinct new seqs.
    #[error("{endpoint} answered {count} items to a request for at most {limit}")]
    TooManyItems {
        endpoint: &'static str,
        limit: u32,
        count: usize,
    },
    /// The caller (or the config) passed something the contract does not allow.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A retriable error persisted through every attempt of the retry policy.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        endpoint: &'static str,
        attempts: u32,
        last: Box<ApiError>,
    },
}

/// What an operator can do about an errcode, as a suffix of the error's message.
fn errcode_advice(endpoint: &str, errcode: i64) -> &'static str {
    match errcode {
        40001 if endpoint == endpoint::GETTOKEN => {
            "; check WECOM_CORP_SECRET: it must be the session archive secret of this corp"
        }
        40013 => "; check corp.corp_id: the server does not know this corp id",
        40014 | 42001 if endpoint == endpoint::GETTOKEN => {
            "; check WECOM_CORP_SECRET and corp.corp_id"
        }
        301052 => {
            "; the session archive subscription has expired: renew it in the WeCom admin console"
        }
        301053 => {
            "; session archive is not enabled for this corp: enable it in the WeCom admin console"
        }
        _ => "",
    }
}

fn body_limit_advice(endpoint: &str) -> &'static str {
    if endpoint == endpoint::GET_CHAT_DATA {
        "; lower fetch.limit"
    } else {
        ""
    }
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
    /// | HTTP 429, 408, 5xx; connect and transport errors; undecodable (truncated) bodies | Retriable |
    /// | a page with more items than asked for | Retriable (the cursor stays; the operator sees it) |
    /// | other HTTP 4xx, contract mismatches, oversized bodies, invalid arguments | Fatal |
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
            ApiError::Connect { .. }
            | ApiError::Transport { .. }
            | ApiError::Decode { .. }
            | ApiError::TooManyItems { .. } => ErrorClass::Retriable,
            ApiError::Contract { .. }
            | ApiError::BodyTooLarge { .. }
            | ApiError::InvalidArgument(_) => ErrorClass::Fatal,
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
            | ApiError::Connect { endpoint, .. }
            | ApiError::Transport { endpoint, .. }
            | ApiError::Decode { endpoint, .. }
            | ApiError::Contract { endpoint, .. }
            | ApiError::BodyTooLarge { endpoint, .. }
            | ApiError::TooManyItems { endpoint, .. }
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

    /// A reqwest error of a call to the server at `base_url` (printable: without user info).
    pub(crate) fn from_reqwest_at(
        endpoint: &'static str,
        base_url: &str,
        err: reqwest::Error,
    ) -> Self {
        let err = err.without_url();
        if err.is_connect() {
            return ApiError::Connect {
                endpoint,
                base_url: base_url.to_owned(),
                reason: innermost(&err),
            };
        }
        Self::from_reqwest(endpoint, err)
    }

    pub(crate) fn from_reqwest(endpoint: &'static str, err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_builder() {
            return ApiError::InvalidArgument(format!("{endpoint}: {}", chain(&err)));
        }
        let timed_out = err.is_timeout();
        let mut reason = chain(&err);
        if timed_out && !reason.contains("timed out") {
            reason = format!("timed out: {reason}");
        }
        ApiError::Transport {
            endpoint,
            reason,
            timed_out,
        }
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

/// The deepest source's text: for a connect failure the one that says why ("connection refused",
/// "failed to lookup address information: ..."), without reqwest's and hyper's generic wrappers.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = err;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
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
        let msg = api(endpoint::GET_CHAT_DATA, -1).to_string();
        assert_eq!(
            msg,
            "msgaudit/get_chat_data failed for corp ww1: errcode -1 (x)"
        );
    }

    #[track_caller]
    fn advises(err: ApiError, advice: &str) {
        let msg = err.to_string();
        assert!(msg.contains(advice), "{msg:?} should contain {advice:?}");
    }

    #[test]
    fn errcodes_an_operator_can_fix_say_what_to_do() {
        let gettoken = endpoint::GETTOKEN;
        advises(api(gettoken, 40001), "check WECOM_CORP_SECRET");
        advises(api(gettoken, 40013), "check corp.corp_id");
        advises(
            api(gettoken, 40014),
            "check WECOM_CORP_SECRET and corp.corp_id",
        );
        advises(
            api(gettoken, 42001),
            "check WECOM_CORP_SECRET and corp.corp_id",
        );
        advises(
            api(endpoint::GET_CHAT_DATA, 301052),
            "subscription has expired",
        );
        advises(api(gettoken, 301053), "not enabled for this corp");
        // a token error on a data call is the client's to cure (it refreshes), not the operator's
        let msg = api(endpoint::GET_CHAT_DATA, 40014).to_string();
        assert!(!msg.contains("check"), "{msg}");
    }
}
