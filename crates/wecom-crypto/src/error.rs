use std::path::PathBuf;

/// What a [`CryptoError::Cipher`] means for the item being decrypted, so that the pipeline can act on
/// it without parsing the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherFailure {
    /// Not the item's fault (the cipher's backend is busy, restarting, unreachable or timed out):
    /// retry the item later with backoff and do not move the cursor past it.
    Transient,
    /// The item itself does not decrypt (wrong key, corrupted ciphertext, refused argument):
    /// dead-letter it (`decrypt_failed`).
    Item,
    /// The item crashed the cipher's worker process, and did again on a fresh one: dead-letter it
    /// (`sdk_crashed`).
    Crashed,
}

impl CipherFailure {
    /// The name used in metrics labels and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Item => "item",
            Self::Crashed => "crashed",
        }
    }
}

/// Errors of this crate. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The item names a `publickey_ver` the keyring has no private key for.
    #[error(
        "no private key for publickey_ver {version} in the keyring: add the key for publickey_ver \
         {version} to [keys]"
    )]
    UnknownKeyVersion { version: u32 },
    /// A base64 field of the item does not decode.
    #[error("field {field} is not valid base64")]
    BadBase64 { field: &'static str },
    /// The RSA unwrap of `encrypt_random_key` failed (wrong key, corrupted ciphertext, bad padding).
    #[error("rsa decryption of encrypt_random_key failed with the key of publickey_ver {version}")]
    RsaDecrypt { version: u32 },
    /// A key file could not be read. `reason` is the operating system's, said here once.
    #[error("cannot read key file {path}: {reason}; check [keys] files / WECOM_KEY_FILES")]
    KeyFile { path: PathBuf, reason: String },
    /// A PEM does not hold a usable RSA private key. `version` 0 means "not in a keyring"
    /// (a [`crate::WrappingKey`]).
    #[error("private key for publickey_ver {version} is unusable: {reason}")]
    BadKey { version: u32, reason: String },
    /// The message cipher could not decrypt an item; `class` says whether that is the item's fault.
    #[error("message cipher: {reason}")]
    Cipher {
        reason: String,
        class: CipherFailure,
    },
    /// A second key was offered for a version the keyring already holds.
    #[error("the keyring already holds a private key for publickey_ver {version}")]
    DuplicateVersion { version: u32 },
}

impl CryptoError {
    /// A [`CryptoError::Cipher`] that is the item's fault.
    pub fn cipher_item(reason: impl Into<String>) -> Self {
        Self::Cipher {
            reason: reason.into(),
            class: CipherFailure::Item,
        }
    }

    /// True when the error concerns one archive item only: the pipeline dead-letters that item and
    /// moves on. A transient cipher failure is not (retry it); the others (`KeyFile`, `BadKey`,
    /// `DuplicateVersion`) are configuration errors raised while building the keyring and are fatal at
    /// startup.
    #[must_use]
    pub fn is_item_level(&self) -> bool {
        match self {
            Self::UnknownKeyVersion { .. } | Self::BadBase64 { .. } | Self::RsaDecrypt { .. } => {
                true
            }
            Self::Cipher { class, .. } => *class != CipherFailure::Transient,
            Self::KeyFile { .. } | Self::BadKey { .. } | Self::DuplicateVersion { .. } => false,
        }
    }

    /// The class of a [`CryptoError::Cipher`]; `None` for the other variants.
    #[must_use]
    pub fn cipher_failure(&self) -> Option<CipherFailure> {
        match self {
            Self::Cipher { class, .. } => Some(*class),
            _ => None,
        }
    }
}
