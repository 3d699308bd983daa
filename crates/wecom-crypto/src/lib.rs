//! Decryption of WeCom archive items.
//!
//! Every archive item carries `publickey_ver`, `encrypt_random_key` (RSA PKCS#1 v1.5 of a per-message
//! random key, base64) and `encrypt_chat_msg` (the message encrypted with that random key). This crate
//! holds the corp's private keys, one per `publickey_ver`, in a [`Keyring`] that unwraps random keys,
//! and the [`MessageCipher`]s that turn `encrypt_chat_msg` into the message JSON.
//!
//! The encrypt side ([`WrappingKey`], [`SimCipher::encrypt`], [`random_message_key`]) exists for the
//! simulator and for tests.
//!
//! **No key material reaches a `Debug`/`Display` output or an error**: errors name the key version or
//! the file, never bytes.

mod error;
mod keyring;
mod pem;
mod sim;
mod wrap;

pub use error::{CipherFailure, CryptoError};
pub use keyring::{Keyring, RsaBackendKind};
pub use sim::{MessageCipher, SimCipher};
pub use wrap::{random_message_key, WrappingKey};
