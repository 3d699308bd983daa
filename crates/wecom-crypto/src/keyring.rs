//! The keyring: one RSA private key per `publickey_ver`, behind a pluggable RSA backend.
//!
//! A corp's stream mixes key versions and every old key must be kept, so the keyring refuses to replace
//! a version silently ([`CryptoError::DuplicateVersion`]) and an item of a missing version is an
//! item-level error ([`CryptoError::UnknownKeyVersion`]) that the pipeline dead-letters for a redrive.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::pem::{self, PrivateKeyDer};
use crate::CryptoError;

/// Which implementation performs RSA PKCS#1 v1.5 decryption.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum RsaBackendKind {
    /// aws-lc-rs (AWS-LC, constant-time, several times faster). The default.
    #[default]
    #[serde(rename = "aws-lc")]
    AwsLc,
    /// The pure-Rust `rsa` crate (no C toolchain; slower, and its decryption is not constant-time:
    /// RUSTSEC-2023-0071).
    #[serde(rename = "rustcrypto")]
    RustCrypto,
}

impl RsaBackendKind {
    /// The name used in configuration and metrics labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsLc => "aws-lc",
            Self::RustCrypto => "rustcrypto",
        }
    }
}

impl fmt::Display for RsaBackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RSA PKCS#1 v1.5 decryption with one private key.
trait RsaBackend: Send + Sync {
    /// Decrypts; any failure is reported without detail (padding oracles stay closed).
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()>;
    fn bits(&self) -> usize;
}

struct AwsLcKey(aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey);

impl AwsLcKey {
    fn from_pem(pem: &str) -> Result<Self, String> {
        // aws-lc-rs reads PKCS#8 only; a PKCS#1 key is re-encoded as PKCS#8 with the `rsa` crate.
        let pkcs8: Zeroizing<Vec<u8>> = match pem::parse_private_key(pem)? {
            PrivateKeyDer::Pkcs8(der) => der,
            PrivateKeyDer::Pkcs1(_) => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = pem::rsa_private_key(pem)?;
                let doc = key
                    .to_pkcs8_der()
                    .map_err(|e| format!("cannot re-encode pkcs#1 key as pkcs#8: {e}"))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
        };
        let key = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8)
            .map_err(|e| format!("aws-lc rejected the key: {e}"))?;
        let key = aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey::new(key)
            .map_err(|_| "aws-lc rejected the key for pkcs#1 v1.5".to_owned())?;
        Ok(Self(key))
    }
}

impl RsaBackend for AwsLcKey {
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
        let mut out = Zeroizing::new(vec![0u8; self.0.min_output_size()]);
        let len = self.0.decrypt(ciphertext, &mut out).map_err(|_| ())?.len();
        out.truncate(len);
        Ok(out)
    }

    fn bits(&self) -> usize {
        self.0.key_size_bits()
    }
}

struct RustCryptoKey(rsa::RsaPrivateKey);

impl RsaBackend for RustCryptoKey {
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
        self.0
            .decrypt(rsa::Pkcs1v15Encrypt, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| ())
    }

    fn bits(&self) -> usize {
        use rsa::traits::PublicKeyParts as _;
        self.0.size() * 8
    }
}

/// The archive private keys, one per `publickey_ver`.
///
/// `Send + Sync`; `Clone` is cheap (keys are shared through `Arc`). `Debug` shows the backend and the
/// versions only.
#[derive(Clone)]
pub struct Keyring {
    kind: RsaBackendKind,
    keys: BTreeMap<u32, Arc<dyn RsaBackend>>,
}

impl Keyring {
    /// An empty keyring whose keys will use the `kind` backend.
    #[must_use]
    pub fn new(kind: RsaBackendKind) -> Self {
        Self {
            kind,
            keys: BTreeMap::new(),
        }
    }

    /// The backend of this keyring.
    #[must_use]
    pub fn backend(&self) -> RsaBackendKind {
        self.kind
    }

    /// Adds the private key of `version` from a PEM string, PKCS#1 (`BEGIN RSA PRIVATE KEY`) or
    /// PKCS#8 (`BEGIN PRIVATE KEY`). A version already present is refused, never replaced.
    pub fn insert_pem(&mut self, version: u32, pem: &str) -> Result<(), CryptoError> {
        if self.keys.contains_key(&version) {
            return Err(CryptoError::DuplicateVersion { version });
        }
        let bad = |reason: String| CryptoError::BadKey { version, reason };
        let key: Arc<dyn RsaBackend> = match self.kind {
            RsaBackendKind::AwsLc => Arc::new(AwsLcKey::from_pem(pem).map_err(bad)?),
            RsaBackendKind::RustCrypto => {
                let key = pem::rsa_private_key(pem).map_err(bad)?;
                key.validate()
                    .map_err(|e| bad(format!("inconsistent rsa key: {e}")))?;
                Arc::new(RustCryptoKey(key))
            }
        };
        self.keys.insert(version, key);
        Ok(())
    }

    /// Adds the private key of `version` from a PEM file.
    pub fn load_pem_file(&mut self, version: u32, path: &Path) -> Result<(), CryptoError> {
        let pem = std::fs::read_to_string(path).map_err(|e| CryptoError::KeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let pem = Zeroizing::new(pem);
        self.insert_pem(version, &pem)
    }

    /// The key versions held, ascending.
    #[must_use]
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Whether the keyring holds a key for `version`.
    #[must_use]
    pub fn contains(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    /// The modulus size of the key of `version`, in bits.
    #[must_use]
    pub fn key_bits(&self, version: u32) -> Option<usize> {
        self.keys.get(&version).map(|k| k.bits())
    }

    /// Decrypts an item's `encrypt_random_key` (standard base64, whitespace tolerated) with the key of
    /// `version` (the item's `publickey_ver`). CPU-bound (~1 ms with the RustCrypto backend): call it
    /// from a blocking pool, not from an async task.
    pub fn unwrap_random_key(
        &self,
        version: u32,
        encrypt_random_key_b64: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self
            .keys
            .get(&version)
            .ok_or(CryptoError::UnknownKeyVersion { version })?;
        let ciphertext = decode_b64(encrypt_random_key_b64, "encrypt_random_key")?;
        key.decrypt_pkcs1v15(&ciphertext)
            .map_err(|()| CryptoError::RsaDecrypt { version })
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new(RsaBackendKind::default())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("backend", &self.kind)
            .field("versions", &self.versions())
            .finish()
    }
}

/// Standard base64, ignoring ASCII whitespace (items copied from logs or wrapped at 76 columns).
pub(crate) fn decode_b64(s: &str, field: &'static str) -> Result<Vec<u8>, CryptoError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let bad = |_| CryptoError::BadBase64 { field };
    if s.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        engine.decode(compact).map_err(bad)
    } else {
        engine.decode(s).map_err(bad)
    }
}
