//! The checkpoint key: an Ed25519 private key read from a PKCS#8 PEM file (what
//! `openssl genpkey -algorithm ed25519` writes), and its public half, which is published beside the
//! archive (`keys/<corp>/ed25519-<key_id>.pem`, a SubjectPublicKeyInfo PEM as `openssl pkey -pubout`
//! writes) so that a verifier needs no secret.
//!
//! A key is named by its id: the sha256 (hex) of the raw 32-byte public key. A verifier that must not
//! trust the archive's own copy of the key pins it (gets the public PEM or the id out of band).
//!
//! **The private key never reaches a log line, an error or `Debug`**: errors name the file, `Debug`
//! shows the key id only, and the decoded DER is wiped when dropped.

use std::fmt;
use std::path::Path;

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use zeroize::Zeroizing;

use crate::error::LedgerError;
use crate::manifest::sha256_hex;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The private key checkpoints are signed with.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM file (blocking; call it at startup or from a blocking thread).
    pub fn from_pem_file(path: &Path) -> Result<Self, LedgerError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            LedgerError::KeyFile {
                path: path.to_path_buf(),
                source,
            }
        })?);
        Self::from_pkcs8_pem(&text).map_err(|reason| LedgerError::Key {
            what: format!(
                "archive signing key {} (archive.signing.key_file)",
                path.display()
            ),
            reason,
        })
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, v1 or v2) holding an Ed25519 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, String> {
        let der = pem_body(pem, "PRIVATE KEY").map_err(|e| match e {
            PemError::Label(label) if label == "ENCRYPTED PRIVATE KEY" => {
                "is encrypted; store it unencrypted with restricted permissions (openssl pkey -in KEY -out PLAIN)".to_owned()
            }
            other => other.to_string(),
        })?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| {
            "is not an Ed25519 key (create one with `openssl genpkey -algorithm ed25519`)"
                .to_owned()
        })?;
        let raw: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "has a public key of the wrong length".to_owned())?;
        Ok(SigningKey {
            pair,
            public: PublicKey { raw },
        })
    }

    /// A new random key as PKCS#8 PEM (for tests, or to bootstrap a deployment without openssl).
    pub fn generate_pem() -> Result<Zeroizing<String>, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| "cannot generate an Ed25519 key".to_owned())?;
        Ok(Zeroizing::new(to_pem("PRIVATE KEY", doc.as_ref())))
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        self.pair
            .try_sign(msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "ed25519 signing failed".to_owned())
    }
}

/// An Ed25519 public key that checkpoints are verified with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.key_id()).finish()
    }
}

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, what `openssl pkey -pubout`
    /// writes).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = pem_body(pem, "PUBLIC KEY").map_err(|e| e.to_string())?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| "is not an Ed25519 public key".to_owned())?;
        Ok(PublicKey { raw })
    }

    /// The raw 32-byte key.
    pub fn from_raw(raw: [u8; 32]) -> Self {
        PublicKey { raw }
    }

    /// SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        to_pem("PUBLIC KEY", &der)
    }

    /// sha256 (hex) of the raw key: how checkpoints name the key that signed them.
    pub fn key_id(&self) -> String {
        sha256_hex(&self.raw)
    }

    /// True when `sig` is this key's Ed25519 signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ED25519, &self.raw)
            .verify(msg, sig)
            .is_ok()
    }
}

#[derive(Debug, thiserror::Error)]
enum PemError {
    #[error("is not a PEM file")]
    NotPem,
    #[error("is a PEM {0:?}, not the expected kind")]
    Label(String),
    #[error("has a PEM body that is not valid base64")]
    Base64,
}

/// The DER inside the first PEM block, which must carry `label`.
fn pem_body(pem: &str, label: &str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let mut lines = pem.lines().map(str::trim);
    let found = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
        })
        .ok_or(PemError::NotPem)?;
    if found != label {
        return Err(PemError::Label(found.to_owned()));
    }
    let mut b64 = Zeroizing::new(String::new());
    for line in lines {
        if line.starts_with("-----END ") {
            return base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| PemError::Base64);
        }
        b64.push_str(line);
    }
    Err(PemError::NotPem)
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The public key PEM of `pair` as aws-lc-rs encodes it (used to cross-check [`PublicKey::to_pem`]).
#[cfg(test)]
fn spki_der(pair: &Ed25519KeyPair) -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    pair.public_key()
        .as_der()
        .map(|d| d.as_ref().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key inside); a test key only.
    const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIIH9J20Iwtj+cOkPImcxzDzXyPZJtHsYmr6KDrjCK5vD\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn openssl_keys_load_and_sign_verifiably() {
        let key = SigningKey::from_pkcs8_pem(OPENSSL_KEY).expect("openssl key");
        let sig = key.sign(b"msg").expect("sign");
        let public = PublicKey::from_pem(&key.public_key().to_pem()).expect("round trip");
        assert_eq!(&public, key.public_key());
        assert!(public.verify(b"msg", &sig));
        // `openssl pkey -in KEY -pubout` of the same key:
        assert_eq!(
            key.public_key().to_pem(),
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAwSe0/pZVp2gaxjQVpyCeylLI6twRgbpMa0kepjYhxiI=\n-----END PUBLIC KEY-----\n"
        );
        assert!(!public.verify(b"msh", &sig));
        // `openssl pkey -in KEY -pubout -outform DER | tail -c 32 | sha256sum`:
        assert_eq!(
            public.key_id(),
            "45fe15bf2ff06b527cb6bdd1001d7ff9237573e1ceca63db121b3fc2d6f2a1cf"
        );
        assert_eq!(
            spki_der(&key.pair),
            [&SPKI_PREFIX[..], &public.raw[..]].concat(),
            "our SPKI encoding is the standard one"
        );
    }

    #[test]
    fn generated_keys_are_pkcs8_and_debug_hides_them() {
        let pem = SigningKey::generate_pem().expect("generate");
        let key = SigningKey::from_pkcs8_pem(&pem).expect("parse");
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.public_key().key_id()), "{debug}");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!debug.contains(&body[..20]));
    }

    #[test]
    fn wrong_kinds_are_named() {
        let public_pem = SigningKey::from_pkcs8_pem(OPENSSL_KEY)
            .expect("key")
            .public_key()
            .to_pem();
        for (pem, want) in [
            ("garbage", "not a PEM"),
            (public_pem.as_str(), "\"PUBLIC KEY\""),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
                "base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "not an Ed25519",
            ),
        ] {
            let err = SigningKey::from_pkcs8_pem(pem).expect_err(pem);
            assert!(err.contains(want), "{pem}: {err}");
        }
        assert!(PublicKey::from_pem(OPENSSL_KEY).is_err());
    }
}
