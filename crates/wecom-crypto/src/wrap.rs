//! The encrypt side of the random key, for the simulator and tests: what Tencent does with the corp's
//! public key before an item is stored.

use base64::Engine as _;
use rand::{CryptoRng, Rng as _, RngCore};

use crate::CryptoError;

/// An archive public key (one `publickey_ver`), used to wrap per-message random keys.
#[derive(Clone)]
pub struct WrappingKey {
    key: rsa::RsaPublicKey,
}

impl WrappingKey {
    /// Derives the public key from a private key PEM (PKCS#1 or PKCS#8).
    /// Errors are [`CryptoError::BadKey`] with `version` 0.
    pub fn from_private_pem(pem: &str) -> Result<Self, CryptoError> {
        let private = crate::pem::rsa_private_key(pem)
            .map_err(|reason| CryptoError::BadKey { version: 0, reason })?;
        Ok(Self {
            key: private.to_public_key(),
        })
    }

    /// The modulus size in bits.
    #[must_use]
    pub fn bits(&self) -> usize {
        use rsa::traits::PublicKeyParts as _;
        self.key.size() * 8
    }

    /// RSA PKCS#1 v1.5 encryption of `key`, as standard base64 (an item's `encrypt_random_key`).
    /// The padding is drawn from `rng`: a seeded RNG gives the same bytes for the same input.
    pub fn wrap_random_key<R: RngCore + CryptoRng>(
        &self,
        key: &[u8],
        rng: &mut R,
    ) -> Result<String, CryptoError> {
        let ciphertext = self
            .key
            .encrypt(rng, rsa::Pkcs1v15Encrypt, key)
            .map_err(|e| {
                CryptoError::cipher_item(format!("rsa wrap of the random key failed: {e}"))
            })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(ciphertext))
    }
}

impl std::fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappingKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

/// A fresh per-message random key: 32 ASCII alphanumeric bytes (what [`crate::SimCipher`] expects).
pub fn random_message_key<R: RngCore>(rng: &mut R) -> [u8; 32] {
    let mut key = [0u8; 32];
    for b in &mut key {
        *b = rng.sample(rand::distributions::Alphanumeric);
    }
    key
}
