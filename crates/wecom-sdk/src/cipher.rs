//! [`SdkCipher`]: the message cipher of real corps, `DecryptData` in the worker pool.

use wecom_crypto::{CipherFailure, CryptoError, MessageCipher};

use crate::{SdkError, SdkErrorClass, SdkPool};

/// `cipher = "sdk"`: the pipeline unwraps the random key with its keyring (RSA, in Rust), then this
/// cipher runs `DecryptData(random_key, encrypt_chat_msg)` in a worker process.
///
/// [`MessageCipher::decrypt`] and [`MessageCipher::decrypt_batch`] block their thread until the pool
/// answers, so they must be called from a blocking thread (`spawn_blocking`), never from async code
/// (they panic there). No runtime handle is needed: the pool's tasks run on the runtime the pool was
/// started on. `decrypt_batch` sends the items in batch frames: one worker round trip per batch
/// instead of per item.
///
/// Every failure comes back as `CryptoError::Cipher` whose reason keeps the SDK's words
/// (`sdk DecryptData returned 10008 (bad encrypt_key)`, `sdk worker crashed: SIGABRT`) and whose
/// class ([`cipher_failure`]) tells the pipeline to retry (pool busy, restarting, shut down, SDK
/// network/system codes) or to dead-letter the item (it does not decrypt, or it crashes the SDK).
#[derive(Debug, Clone)]
pub struct SdkCipher {
    pool: SdkPool,
}

impl SdkCipher {
    pub fn new(pool: SdkPool) -> Self {
        Self { pool }
    }

    /// The pool behind the cipher.
    pub fn pool(&self) -> &SdkPool {
        &self.pool
    }

    /// `DecryptData` with the typed error (blocking, like [`MessageCipher::decrypt`]).
    pub fn decrypt_classified(
        &self,
        random_key: &[u8],
        encrypt_chat_msg: &str,
    ) -> Result<Vec<u8>, SdkError> {
        self.pool.decrypt_blocking(random_key, encrypt_chat_msg)
    }
}

/// What an SDK failure means for the item being decrypted.
///
/// Fatal conditions (a library that no longer loads on restart, 10009, 10011, an unknown code) are
/// `Transient` here: they are not the item's fault, so dead-lettering would throw away every item
/// until an operator fixes the deployment, whereas holding the cursor and retrying recovers by
/// itself once it is fixed. `Expired` does not occur for `DecryptData` (an offline computation); it
/// is treated as the item's.
pub fn cipher_failure(err: &SdkError) -> CipherFailure {
    match err.class() {
        SdkErrorClass::Transient | SdkErrorClass::Fatal => CipherFailure::Transient,
        SdkErrorClass::Item | SdkErrorClass::Expired => CipherFailure::Item,
        SdkErrorClass::Crashed => CipherFailure::Crashed,
    }
}

fn to_crypto(err: SdkError) -> CryptoError {
    CryptoError::Cipher {
        class: cipher_failure(&err),
        reason: err.to_string(),
    }
}

impl MessageCipher for SdkCipher {
    fn decrypt(&self, random_key: &[u8], encrypt_chat_msg: &str) -> Result<Vec<u8>, CryptoError> {
        self.decrypt_classified(random_key, encrypt_chat_msg)
            .map_err(to_crypto)
    }

    fn decrypt_batch(&self, items: &[(&[u8], &str)]) -> Vec<Result<Vec<u8>, CryptoError>> {
        self.pool
            .decrypt_batch_blocking(items)
            .into_iter()
            .map(|r| r.map_err(to_crypto))
            .collect()
    }

    fn name(&self) -> &'static str {
        "sdk"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: SdkError, want: CipherFailure) {
        assert_eq!(cipher_failure(&err), want, "{err}");
        let crypto = to_crypto(err.clone());
        assert_eq!(crypto.cipher_failure(), Some(want));
        assert_eq!(crypto.to_string(), format!("message cipher: {err}"));
        assert_eq!(crypto.is_item_level(), want != CipherFailure::Transient);
    }

    #[test]
    fn sdk_failures_classify_for_the_pipeline() {
        use CipherFailure::*;
        let sdk = |code| SdkError::Sdk {
            op: "DecryptData",
            code,
        };
        for (code, want) in [
            (10000, Item),
            (10001, Transient),
            (10002, Transient),
            (10003, Transient),
            (10006, Item),
            (10008, Item),
            (10009, Transient),
            (10011, Transient),
            (4242, Transient),
        ] {
            check(sdk(code), want);
        }
        check(
            SdkError::WorkerCrashed {
                reason: "sdk worker crashed: SIGABRT".into(),
            },
            Crashed,
        );
        check(
            SdkError::Timeout {
                op: "Ping",
                after: std::time::Duration::from_secs(1),
            },
            Transient,
        );
        check(SdkError::Closed, Transient);
        check(
            SdkError::Spawn {
                reason: "worker did not load the library within 30s".into(),
                fatal: false,
            },
            Transient,
        );
        check(
            SdkError::InvalidArgument("encrypt_msg contains a NUL byte".into()),
            Item,
        );
    }
}
