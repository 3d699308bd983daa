use std::path::PathBuf;

/// Errors of this crate. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The item names a `publickey_ver` the keyring has no private key for.
    #[error("no private key for publickey_ver {version} in the keyring")]
    UnknownKeyVersion { version: u32 },
    /// A base64 field of the item does not decode.
    #[error("field {field} is not valid base64")]
    BadBase64 { field: &'static str },
    /// The RSA unwrap of `encrypt_random_key` failed (wrong key, corrupted ciphertext, bad padding).
    #[error("rsa decryption of encrypt_random_key failed with the key of publickey_ver {version}")]
    RsaDecrypt { version: u32 },
    /// A key file could not be read.
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// A PEM does not hold a usable RSA private key. `version` 0 means "not in a keyring"
    /// (a [`crate::WrappingKey`]).
    #[error("private key for publickey_ver {version} is unusable: {reason}")]
    BadKey { version: u32, reason: String },
    /// The message cipher rejected its input (wrong key length, bad length, bad padding).
    #[error("message cipher: {reason}")]
    Cipher { reason: String },
    /// A second key was offered for a version the keyring already holds.
    #[error("the keyring already holds a private key for publickey_ver {version}")]
    DuplicateVersion { version: u32 },
}

impl CryptoError {
    /// True when the error concerns one archive item only: the pipeline dead-letters that item and
    /// moves on. The others (`KeyFile`, `BadKey`, `DuplicateVersion`) are configuration errors
    /// raised while building the keyring and are fatal at startup.
    #[must_use]
    pub fn is_item_level(&self) -> bool {
        match self {
            Self::UnknownKeyVersion { .. }
            | Self::BadBase64 { .. }
            | Self::RsaDecrypt { .. }
            | Self::Cipher { .. } => true,
            Self::KeyFile { .. } | Self::BadKey { .. } | Self::DuplicateVersion { .. } => false,
        }
    }
}
