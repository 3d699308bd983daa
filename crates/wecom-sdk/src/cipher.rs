//! [`SdkCipher`]: the message cipher of real corps, `DecryptData` in the worker pool.

use wecom_crypto::{CryptoError, MessageCipher};

use crate::{SdkError, SdkPool};

/// `cipher = "sdk"`: the pipeline unwraps the random key with its keyring (RSA, in Rust), then this
/// cipher runs `DecryptData(random_key, encrypt_chat_msg)` in a worker process.
///
/// [`MessageCipher::decrypt`] blocks its thread until the pool answers, so it must be called from a
/// blocking thread (`spawn_blocking`), never from async code (it panics there). It needs no runtime
/// handle: the pool's tasks run on the runtime the pool was started on.
///
/// Every failure comes back as `CryptoError::Cipher` (item-level). The reason keeps the SDK's code
/// (`sdk DecryptData returned 10008 (bad encrypt_key)`, `sdk worker crashed: SIGABRT`). Callers that
/// must tell retriable or fatal pool conditions (pool shut down, workers cannot start) from item
/// failures use [`SdkCipher::decrypt_classified`], whose [`SdkError::class`] says which.
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

impl MessageCipher for SdkCipher {
    fn decrypt(&self, random_key: &[u8], encrypt_chat_msg: &str) -> Result<Vec<u8>, CryptoError> {
        self.decrypt_classified(random_key, encrypt_chat_msg)
            .map_err(|e| CryptoError::Cipher {
                reason: e.to_string(),
            })
    }

    fn name(&self) -> &'static str {
        "sdk"
    }
}
