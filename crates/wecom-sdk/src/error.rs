//! Errors of the SDK pool and what the pipeline does with them.

use std::time::Duration;

/// What the caller should do with an [`SdkError`] (table in the crate documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdkErrorClass {
    /// Not about the item, and likely to pass (network, SDK system failure, a network call timing
    /// out, a worker that cannot start for now, the pool shut down or restarting): back off and retry
    /// without moving the cursor.
    Transient,
    /// Permanent for this one item (bad key, undecryptable, bad fileid, a refused argument):
    /// dead-letter it and move on.
    Item,
    /// The item killed its worker (crash or hang), and did again on a fresh one: dead-letter it as
    /// such and move on.
    Crashed,
    /// The item's data aged out of the archive (errcode 10010): dead-letter it with that reason.
    Expired,
    /// Stop: configuration or deployment problem (IP not whitelisted, certificate, bad secret,
    /// library missing). Do not move the cursor.
    Fatal,
}

impl SdkErrorClass {
    /// The same decision in `wecom-api`'s vocabulary (`Crashed` and `Expired` are item-level
    /// outcomes there).
    pub fn as_api_class(self) -> wecom_api::ErrorClass {
        match self {
            SdkErrorClass::Transient => wecom_api::ErrorClass::Retriable,
            SdkErrorClass::Item | SdkErrorClass::Crashed | SdkErrorClass::Expired => {
                wecom_api::ErrorClass::Item
            }
            SdkErrorClass::Fatal => wecom_api::ErrorClass::Fatal,
        }
    }
}

/// What an SDK return code means (reference §6).
pub fn sdk_code_meaning(code: i32) -> &'static str {
    match code {
        0 => "ok",
        10000 => "bad parameter",
        10001 => "network error",
        10002 => "data parse failure",
        10003 => "system failure",
        10005 => "bad sdkfileid",
        10006 => "decryption failed",
        10008 => "bad encrypt_key",
        10009 => "ip not whitelisted",
        10010 => "data expired",
        10011 => "certificate error",
        _ => "unknown sdk return code",
    }
}

/// An error of one pool call. Never carries the secret, a random key or message bytes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SdkError {
    /// The SDK function returned a non-zero code.
    #[error("sdk {op} returned {code} ({meaning}){hint}", meaning = sdk_code_meaning(*code), hint = code_hint(*code))]
    Sdk { op: &'static str, code: i32 },
    /// `GetChatData` succeeded but its JSON carries a non-zero `errcode` (the server's answer).
    #[error("sdk GetChatData answered errcode {errcode} ({errmsg}){hint}", hint = errcode_hint(*errcode))]
    Api { errcode: i64, errmsg: String },
    /// `GetChatData` returned text that is not the expected JSON.
    #[error("sdk GetChatData returned undecodable json: {reason}")]
    Malformed { reason: String },
    /// The request killed its worker (a crash, or a `DecryptData` hang), and the confirming retry on a
    /// fresh worker killed that one too. `reason` names the signal or the hang.
    #[error("{reason}")]
    WorkerCrashed { reason: String },
    /// A network call (or a ping) did not finish within the pool's request timeout; the worker was
    /// killed.
    #[error("sdk {op} timed out after {}ms; the hung worker was killed", after.as_millis())]
    Timeout { op: &'static str, after: Duration },
    /// The library cannot be used (missing file, missing symbols): a deployment problem. The reason
    /// names the path and says to check `[sdk] library`.
    #[error("{reason}")]
    Library { reason: String },
    /// `Init` returned non-zero.
    #[error("sdk Init returned {code} ({meaning}) for corp {corp_id}", meaning = sdk_code_meaning(*code))]
    Init { code: i32, corp_id: String },
    /// A worker process could not be started or died while starting.
    #[error("cannot start an sdk worker: {reason}")]
    Spawn { reason: String, fatal: bool },
    /// The argument cannot be passed to the SDK (e.g. a NUL byte inside a C string), or is out of range.
    #[error("invalid sdk argument: {0}")]
    InvalidArgument(String),
    /// The configuration is unusable.
    #[error("invalid sdk pool config: {0}")]
    Config(String),
    /// The pool was shut down.
    #[error("the sdk pool is shut down")]
    Closed,
    /// The gateway could not bind or serve.
    #[error("sdk gateway: {0}")]
    Gateway(String),
}

fn code_hint(code: i32) -> &'static str {
    match code {
        10009 => ": add this host's egress ip to the corp's archive whitelist in the admin console",
        10011 => ": check the system's ca certificates and clock",
        _ => "",
    }
}

fn errcode_hint(errcode: i64) -> &'static str {
    match errcode {
        40001 => ": the corp secret is wrong (use the session-archive secret)",
        40013 => ": the corp id is wrong",
        301052 => ": the archive subscription expired",
        301053 => ": session archiving is not enabled for this corp",
        _ => "",
    }
}

impl SdkError {
    /// The retry class (table in the crate documentation).
    pub fn class(&self) -> SdkErrorClass {
        use SdkErrorClass::*;
        match self {
            SdkError::Sdk { code, .. } => match code {
                10001..=10003 => Transient,
                10000 | 10005 | 10006 | 10008 => Item,
                10010 => Expired,
                // 10009 (ip whitelist), 10011 (certificate) and anything unknown: an operator must
                // act; a retry cannot change them.
                _ => Fatal,
            },
            SdkError::Api { errcode, .. } => match errcode {
                -1 | 45009 => Transient,
                _ => Fatal,
            },
            SdkError::Malformed { .. } | SdkError::Timeout { .. } | SdkError::Closed => Transient,
            SdkError::WorkerCrashed { .. } => Crashed,
            SdkError::Spawn { fatal, .. } => {
                if *fatal {
                    Fatal
                } else {
                    Transient
                }
            }
            SdkError::InvalidArgument(_) => Item,
            SdkError::Library { .. }
            | SdkError::Init { .. }
            | SdkError::Config(_)
            | SdkError::Gateway(_) => Fatal,
        }
    }

    /// The SDK return code, when the error is one.
    pub fn sdk_code(&self) -> Option<i32> {
        match self {
            SdkError::Sdk { code, .. } | SdkError::Init { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A short, bounded label for dead letters and metrics (`sdk_10008`, `sdk_crash`, …).
    pub fn kind(&self) -> String {
        match self {
            SdkError::Sdk { code, .. } => format!("sdk_{code}"),
            SdkError::Api { .. } => "sdk_api".into(),
            SdkError::Malformed { .. } => "sdk_malformed".into(),
            SdkError::WorkerCrashed { .. } => "sdk_crash".into(),
            SdkError::Timeout { .. } => "sdk_timeout".into(),
            SdkError::Library { .. } => "sdk_library".into(),
            SdkError::Init { .. } => "sdk_init".into(),
            SdkError::Spawn { .. } => "sdk_spawn".into(),
            SdkError::InvalidArgument(_) => "sdk_invalid_argument".into(),
            SdkError::Config(_) => "sdk_config".into(),
            SdkError::Closed => "sdk_closed".into(),
            SdkError::Gateway(_) => "sdk_gateway".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: SdkError, expected: SdkErrorClass) {
        assert_eq!(err.class(), expected, "{err}");
    }

    #[test]
    fn classes() {
        use SdkErrorClass::*;
        let sdk = |code| SdkError::Sdk {
            op: "GetChatData",
            code,
        };
        for (code, class) in [
            (10000, Item),
            (10001, Transient),
            (10002, Transient),
            (10003, Transient),
            (10005, Item),
            (10006, Item),
            (10008, Item),
            (10009, Fatal),
            (10010, Expired),
            (10011, Fatal),
            (12345, Fatal),
        ] {
            check(sdk(code), class);
        }
        check(
            SdkError::Api {
                errcode: 40001,
                errmsg: "invalid credential".into(),
            },
            Fatal,
        );
        for (err, class) in [
            (
                SdkError::WorkerCrashed {
                    reason: "sdk worker crashed: SIGABRT".into(),
                },
                Crashed,
            ),
            (
                SdkError::Timeout {
                    op: "GetChatData",
                    after: Duration::from_secs(1),
                },
                Transient,
            ),
            (SdkError::Closed, Transient),
            (
                SdkError::Spawn {
                    reason: "worker did not load the library within 30s".into(),
                    fatal: false,
                },
                Transient,
            ),
            (
                SdkError::Spawn {
                    reason: "/x: No such file or directory".into(),
                    fatal: true,
                },
                Fatal,
            ),
            (SdkError::InvalidArgument("nul".into()), Item),
            (
                SdkError::Api {
                    errcode: 45009,
                    errmsg: "freq".into(),
                },
                Transient,
            ),
            (SdkError::Library { reason: "x".into() }, Fatal),
        ] {
            check(err, class);
        }
        assert_eq!(Expired.as_api_class(), wecom_api::ErrorClass::Item);
        assert_eq!(Crashed.as_api_class(), wecom_api::ErrorClass::Item);
        assert_eq!(Transient.as_api_class(), wecom_api::ErrorClass::Retriable);
    }

    #[test]
    fn messages_are_clear() {
        let e = SdkError::Sdk {
            op: "GetChatData",
            code: 10009,
        };
        assert!(e.to_string().contains("whitelist"), "{e}");
        let e = SdkError::Api {
            errcode: 40001,
            errmsg: "invalid credential".into(),
        };
        assert!(e.to_string().contains("corp secret is wrong"), "{e}");
    }
}
