//! Message ciphers: the [`MessageCipher`] trait and the simulator's scheme, [`SimCipher`].
//!
//! **[`SimCipher`] is the project simulator's own scheme, not Tencent's.** Tencent's `encrypt_chat_msg`
//! format is proprietary and only the official SDK's `DecryptData` can decrypt it; against the real
//! service the pipeline uses a cipher backed by the SDK gateway instead.
//!
//! The simulator's scheme:
//! - the random key is 32 ASCII alphanumeric bytes (the official SDK also hands the random key to
//!   `DecryptData` as a C string, so it is text there too);
//! - AES-256-CBC with key = the 32 bytes of the random key and IV = its first 16 bytes;
//! - PKCS#7 padding;
//! - `encrypt_chat_msg` = standard base64 of the ciphertext.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _};
use base64::Engine as _;

use crate::keyring::decode_b64;
use crate::CryptoError;

/// Turns an item's `encrypt_chat_msg` into the message bytes (JSON), given the unwrapped random key.
///
/// A failure is [`CryptoError::Cipher`] (or another item-level [`CryptoError`]); its
/// [`crate::CipherFailure`] says whether the item is at fault or the cipher should be retried.
pub trait MessageCipher: Send + Sync {
    /// Decrypts `encrypt_chat_msg` with `random_key`.
    fn decrypt(&self, random_key: &[u8], encrypt_chat_msg: &str) -> Result<Vec<u8>, CryptoError>;

    /// Decrypts several items, `(random_key, encrypt_chat_msg)` each; the results are in the order of
    /// `items`, one per item. Ciphers with a per-call overhead (a round trip to a worker process)
    /// override it to pay that overhead once per batch; the default calls [`MessageCipher::decrypt`]
    /// for each item.
    fn decrypt_batch(&self, items: &[(&[u8], &str)]) -> Vec<Result<Vec<u8>, CryptoError>> {
        items
            .iter()
            .map(|(key, msg)| self.decrypt(key, msg))
            .collect()
    }

    /// A short name for logs and metrics labels.
    fn name(&self) -> &'static str;
}

/// The simulator's message cipher (see the module documentation). Not Tencent's scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCipher;

const KEY_LEN: usize = 32;
const BLOCK: usize = 16;

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

fn check_key(random_key: &[u8]) -> Result<(), CryptoError> {
    if random_key.len() == KEY_LEN {
        Ok(())
    } else {
        Err(CryptoError::cipher_item(format!(
            "random key is {} bytes, the simulator scheme needs {KEY_LEN}",
            random_key.len()
        )))
    }
}

impl SimCipher {
    /// Encrypts `plaintext` with a 32-byte `random_key`; returns standard base64.
    pub fn encrypt(random_key: &[u8], plaintext: &[u8]) -> Result<String, CryptoError> {
        check_key(random_key)?;
        let ciphertext = Enc::new(random_key.into(), random_key[..BLOCK].into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        Ok(base64::engine::general_purpose::STANDARD.encode(ciphertext))
    }
}

impl MessageCipher for SimCipher {
    fn decrypt(&self, random_key: &[u8], encrypt_chat_msg: &str) -> Result<Vec<u8>, CryptoError> {
        check_key(random_key)?;
        let ciphertext = decode_b64(encrypt_chat_msg, "encrypt_chat_msg")?;
        if ciphertext.is_empty() || ciphertext.len() % BLOCK != 0 {
            return Err(CryptoError::cipher_item(format!(
                "ciphertext is {} bytes, not a positive multiple of {BLOCK}",
                ciphertext.len()
            )));
        }
        Dec::new(random_key.into(), random_key[..BLOCK].into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
            .map_err(|_| {
                CryptoError::cipher_item("bad pkcs#7 padding (wrong key or corrupted ciphertext)")
            })
    }

    fn name(&self) -> &'static str {
        "sim"
    }
}
