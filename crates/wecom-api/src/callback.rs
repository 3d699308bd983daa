//! Verifying and opening WeCom callbacks (the `msgaudit_notify` event that tells the corp new archive
//! items are waiting), so the program can poll at once instead of waiting for its next interval.
//!
//! The callback URL is configured with a `Token` and a 43-character `EncodingAESKey`. Every request
//! carries `msg_signature = sha1(sorted([token, timestamp, nonce, encrypt]).concat())` (lowercase
//! hex), and `encrypt` is base64 of AES-256-CBC (key = base64(EncodingAESKey + "="), IV = the key's
//! first 16 bytes, PKCS#7 padding to a multiple of 32 bytes) over
//! `random(16) ‖ msg_len (u32, big-endian) ‖ msg ‖ receive_id`. URL verification is a `GET` whose
//! `echostr` is such an `encrypt` (the answer is the decrypted msg); events are `POST`s with the
//! `encrypt` in an XML body.
//!
//! The order of checks matters: the signature is checked (in constant time) before anything is
//! decrypted, so a forged body never reaches the padding or length checks and cannot be used as a
//! padding oracle; then the timestamp (replays), then padding, length and receive id. Nothing here
//! panics on any input. This module does no I/O: the program hosts the HTTP endpoint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::Secret;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// How far a callback's timestamp may be from now, either way, by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// The block size WeCom pads to (twice AES's).
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;

/// Generated EncodingAESKeys are 43 random alphanumerics, so the last character's two spare bits are
/// usually not zero: a strict decoder would refuse most real keys.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a callback was refused. No variant carries the token, the key or decrypted content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("callback token is empty; copy the Token from the callback settings")]
    EmptyToken,
    #[error(
        "callback EncodingAESKey {reason}; copy the 43-character key from the callback settings"
    )]
    InvalidKey { reason: String },
    #[error("callback receive id is empty; it is the corp id")]
    EmptyReceiveId,
    #[error("callback signature does not match (wrong token, or the request was altered)")]
    BadSignature,
    #[error("callback timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("callback timestamp {timestamp} is {skew_secs} s away from now, outside the {max_age_secs} s window (a replay, or a clock is off)")]
    Stale {
        timestamp: u64,
        skew_secs: u64,
        max_age_secs: u64,
    },
    #[error("callback ciphertext is not base64")]
    Base64,
    #[error("callback ciphertext of {len} bytes is not a whole number of {PAD_BLOCK}-byte blocks")]
    CiphertextLength { len: usize },
    #[error("callback plaintext has invalid padding")]
    Padding,
    #[error("callback plaintext is malformed: {0}")]
    Malformed(&'static str),
    #[error("callback is addressed to another receiver than corp {expected}")]
    WrongReceiveId { expected: String },
    #[error("callback xml: {0}")]
    Xml(String),
}

/// A decrypted callback event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEvent {
    /// The receiving corp (`ToUserName`).
    pub to_user_name: String,
    /// `CreateTime`, seconds since the Unix epoch.
    pub create_time: i64,
    /// `MsgType` (`event` for archive notifications).
    pub msg_type: String,
    /// `Event` (`msgaudit_notify` for archive notifications), when present.
    pub event: Option<String>,
    /// `AgentID`, when present.
    pub agent_id: Option<String>,
    /// The whole decrypted message, for fields this type does not name.
    pub xml: String,
}

impl CallbackEvent {
    /// True for the notification that new archive items are waiting.
    pub fn is_msgaudit_notify(&self) -> bool {
        self.msg_type == "event" && self.event.as_deref() == Some("msgaudit_notify")
    }
}

/// Checks and opens the callbacks of one callback URL (one token, one key, one corp).
pub struct CallbackVerifier {
    token: Secret,
    key: Zeroizing<[u8; 32]>,
    receive_id: String,
    max_age: Duration,
}

impl std::fmt::Debug for CallbackVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackVerifier")
            .field("receive_id", &self.receive_id)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl CallbackVerifier {
    /// `receive_id` is the corp id. The timestamp window is [`DEFAULT_MAX_AGE`] (see
    /// [`CallbackVerifier::with_max_age`]).
    pub fn new(
        token: Secret,
        encoding_aes_key: Secret,
        receive_id: String,
    ) -> Result<Self, CallbackError> {
        if token.is_empty() {
            return Err(CallbackError::EmptyToken);
        }
        if receive_id.is_empty() {
            return Err(CallbackError::EmptyReceiveId);
        }
        let text = encoding_aes_key.expose().trim();
        if text.len() != 43 {
            return Err(CallbackError::InvalidKey {
                reason: format!("has {} characters, not 43", text.chars().count()),
            });
        }
        let bytes = Zeroizing::new(KEY_ENGINE.decode(format!("{text}=")).map_err(|_| {
            CallbackError::InvalidKey {
                reason: "is not base64".into(),
            }
        })?);
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(CallbackError::InvalidKey {
                reason: "does not decode to 32 bytes".into(),
            });
        }
        key.copy_from_slice(&bytes);
        Ok(Self {
            token,
            key,
            receive_id,
            max_age: DEFAULT_MAX_AGE,
        })
    }

    /// Refuse callbacks whose timestamp is further than `max_age` from now (either way).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// URL verification (`GET ?msg_signature&timestamp&nonce&echostr`): the text to answer with.
    pub fn verify_echo(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CallbackError> {
        self.verify_echo_at(SystemTime::now(), msg_signature, timestamp, nonce, echostr)
    }

    /// [`CallbackVerifier::verify_echo`] with the clock given.
    pub fn verify_echo_at(
        &self,
        now: SystemTime,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CallbackError> {
        let msg = self.open(now, msg_signature, timestamp, nonce, echostr)?;
        String::from_utf8(msg).map_err(|_| CallbackError::Malformed("the message is not utf-8"))
    }

    /// An event (`POST ?msg_signature&timestamp&nonce` with an XML body holding `Encrypt`).
    pub fn open_event(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<CallbackEvent, CallbackError> {
        self.open_event_at(SystemTime::now(), msg_signature, timestamp, nonce, body)
    }

    /// [`CallbackVerifier::open_event`] with the clock given.
    pub fn open_event_at(
        &self,
        now: SystemTime,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<CallbackEvent, CallbackError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| CallbackError::Xml("the body is not utf-8".into()))?;
        let encrypt = xml_text(body, "Encrypt")?.ok_or_else(|| missing("Encrypt"))?;
        let msg = self.open(now, msg_signature, timestamp, nonce, &encrypt)?;
        let xml = String::from_utf8(msg)
            .map_err(|_| CallbackError::Malformed("the message is not utf-8"))?;
        let required = |name: &'static str| xml_text(&xml, name)?.ok_or_else(|| missing(name));
        let create_time = required("CreateTime")?;
        Ok(CallbackEvent {
            to_user_name: required("ToUserName")?,
            create_time: create_time
                .trim()
                .parse()
                .map_err(|_| CallbackError::Xml("CreateTime is not a number".into()))?,
            msg_type: required("MsgType")?,
            event: xml_text(&xml, "Event")?,
            agent_id: xml_text(&xml, "AgentID")?,
            xml,
        })
    }

    /// The `msg_signature` of a request (lowercase hex).
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.expose(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut sha = Sha1::new();
        for p in parts {
            sha.update(p.as_bytes());
        }
        hex::encode(sha.finalize())
    }

    /// The `encrypt` of `msg` with a fresh random prefix (for encrypted replies, and for tests).
    pub fn encrypt(&self, msg: &[u8]) -> Result<String, CallbackError> {
        let mut random = [0u8; RANDOM_LEN];
        rand::Rng::fill(&mut rand::thread_rng(), &mut random[..]);
        self.encrypt_with_random(random, msg)
    }

    fn encrypt_with_random(
        &self,
        random: [u8; RANDOM_LEN],
        msg: &[u8],
    ) -> Result<String, CallbackError> {
        let len = u32::try_from(msg.len())
            .map_err(|_| CallbackError::Malformed("the message is longer than 4 GiB"))?;
        let mut plain = Zeroizing::new(Vec::with_capacity(
            RANDOM_LEN + 4 + msg.len() + self.receive_id.len() + PAD_BLOCK,
        ));
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&len.to_be_bytes());
        plain.extend_from_slice(msg);
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        // pad is 1..=32, so it fits in a byte.
        let padded_len = plain.len() + pad;
        plain.resize(padded_len, pad as u8);
        let cipher = Aes256CbcEnc::new_from_slices(&self.key[..], &self.key[..16])
            .map_err(|_| CallbackError::Malformed("key length"))?;
        Ok(STANDARD.encode(cipher.encrypt_padded_vec_mut::<NoPadding>(&plain)))
    }

    /// Signature, freshness, then decryption: the message.
    fn open(
        &self,
        now: SystemTime,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<Vec<u8>, CallbackError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        let given = msg_signature.trim().to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(CallbackError::BadSignature);
        }
        self.check_fresh(now, timestamp)?;
        self.decrypt(encrypt)
    }

    fn check_fresh(&self, now: SystemTime, timestamp: &str) -> Result<(), CallbackError> {
        let ts: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| CallbackError::BadTimestamp)?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let skew = now.abs_diff(ts);
        if skew > self.max_age.as_secs() {
            return Err(CallbackError::Stale {
                timestamp: ts,
                skew_secs: skew,
                max_age_secs: self.max_age.as_secs(),
            });
        }
        Ok(())
    }

    fn decrypt(&self, encrypt: &str) -> Result<Vec<u8>, CallbackError> {
        let cipher_text = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CallbackError::Base64)?;
        if cipher_text.is_empty() || cipher_text.len() % PAD_BLOCK != 0 {
            return Err(CallbackError::CiphertextLength {
                len: cipher_text.len(),
            });
        }
        let cipher = Aes256CbcDec::new_from_slices(&self.key[..], &self.key[..16])
            .map_err(|_| CallbackError::Malformed("key length"))?;
        let plain = Zeroizing::new(
            cipher
                .decrypt_padded_vec_mut::<NoPadding>(&cipher_text)
                .map_err(|_| CallbackError::Padding)?,
        );
        let pad = usize::from(*plain.last().ok_or(CallbackError::Padding)?);
        if pad == 0
            || pad > PAD_BLOCK
            || plain[plain.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
        {
            return Err(CallbackError::Padding);
        }
        let plain = &plain[..plain.len() - pad];
        let rest = plain
            .get(RANDOM_LEN..)
            .ok_or(CallbackError::Malformed("shorter than its random prefix"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(CallbackError::Malformed("no message length"))?;
        let len = usize::try_from(u32::from_be_bytes(*len))
            .map_err(|_| CallbackError::Malformed("message length"))?;
        if len > rest.len() {
            return Err(CallbackError::Malformed(
                "the message length runs past the end",
            ));
        }
        let (msg, receive_id) = rest.split_at(len);
        if receive_id != self.receive_id.as_bytes() {
            return Err(CallbackError::WrongReceiveId {
                expected: self.receive_id.clone(),
            });
        }
        Ok(msg.to_vec())
    }
}

/// Equal-length inputs are compared without an early exit, so the time taken does not tell how many
/// leading characters of a guessed signature were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

fn missing(name: &str) -> CallbackError {
    CallbackError::Xml(format!("no <{name}> element"))
}

/// The text of the first `<name>` element of WeCom's flat callback XML: CDATA as is, other text with
/// the five predefined entities resolved. `None` when there is no such element.
fn xml_text(xml: &str, name: &str) -> Result<Option<String>, CallbackError> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let Some(start) = xml.find(&open) else {
        return Ok(None);
    };
    let after = &xml[start + open.len()..];
    let end = after
        .find(&close)
        .ok_or_else(|| CallbackError::Xml(format!("<{name}> is not closed")))?;
    let inner = after[..end].trim();
    if let Some(cdata) = inner.strip_prefix("<![CDATA[") {
        let text = cdata
            .strip_suffix("]]>")
            .ok_or_else(|| CallbackError::Xml(format!("<{name}> has an unterminated CDATA")))?;
        return Ok(Some(text.to_owned()));
    }
    Ok(Some(
        inner
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made once with Python's `cryptography` package (AES-CBC) and `hashlib.sha1`, independently of
    // this module: see `tests/api/callback.rs` for the script's parameters and outputs.
    const KEY: &str = "k3Tq9ZpL2vXw8Rb5Nc1Hy6Jd4Mf0Gs7Ae2Ui9Oo3PlC";
    const RANDOM: &str = "8f2c41d07be9355a0c6e19f4a2b7d831";
    const ECHO: &str =
        "wJF7CGa8Jm4JLlrppFfHDr7ZARh94ZekwuAsbdsPpAfRyxH81gfmbxCG2ySJDNBRXRXQAomR39xWmgP8AsNVBw==";

    #[test]
    fn encryption_matches_the_independent_implementation() {
        let v = CallbackVerifier::new(
            Secret::new("wecomArchiveToken7"),
            Secret::new(KEY),
            "wwCORP1234567890".into(),
        )
        .unwrap();
        let random: [u8; 16] = hex::decode(RANDOM).unwrap().try_into().unwrap();
        assert_eq!(
            v.encrypt_with_random(random, b"5927782489442352469")
                .unwrap(),
            ECHO
        );
    }

    #[test]
    fn xml_text_reads_cdata_and_entities() {
        let xml = "<xml><A><![CDATA[x<y]]></A><B> 1 &amp;&lt; </B><C></xml>";
        assert_eq!(xml_text(xml, "A").unwrap().as_deref(), Some("x<y"));
        assert_eq!(xml_text(xml, "B").unwrap().as_deref(), Some("1 &<"));
        assert_eq!(xml_text(xml, "D").unwrap(), None);
        assert!(xml_text(xml, "C").is_err());
        assert!(xml_text("<A><![CDATA[x</A>", "A").is_err());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
