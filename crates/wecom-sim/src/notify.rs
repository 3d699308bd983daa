//! `msgaudit_notify` callbacks, so a client's callback receiver can be tested against the simulator:
//! WeCom's callback scheme (AES-256-CBC envelope with the EncodingAESKey, sha1 signature with the
//! token), sent while new live items appear, at most once per `min_interval_ms`.
//!
//! Callbacks never disturb serving: one runs at a time on its own task with a timeout, and a failure
//! is logged at DEBUG, counted, and retried at the next interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockEncryptMut as _, KeyIvInit as _};
use base64::Engine as _;
use rand::{Rng as _, RngCore as _};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest as _, Sha1};

use crate::config::NotifyConfig;
use crate::corpus::now_ms;
use crate::rng::{fast_rng, D_NOTIFY};
use crate::server::Shared;
use crate::SimError;

type Enc = cbc::Encryptor<aes::Aes256>;

/// WeCom pads callback plaintexts (PKCS#7 style) to a multiple of 32 bytes, not the AES block size.
const PAD_TO: usize = 32;
/// Longest wait for one callback's answer.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the sender looks for new live items (never more often than the interval allows).
const POLL: Duration = Duration::from_millis(20);

/// Why one callback failed (it is retried at the next interval).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallbackError {
    #[error("msgaudit_notify callback request failed: {0}")]
    Request(reqwest::Error),
    #[error("msgaudit_notify callback answered http {0}")]
    Status(u16),
}

/// The event WeCom sends when new archive data exists.
pub(crate) fn event_xml(corp_id: &str, agent_id: &str, create_time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[msgaudit_notify]]></Event><AgentID>{agent_id}</AgentID></xml>"
    )
}

/// base64 of AES-256-CBC (IV = the key's first 16 bytes) over
/// `random ‖ len(msg) as u32 BE ‖ msg ‖ receive_id`, padded to a multiple of 32 bytes.
pub(crate) fn encrypt(key: &[u8; 32], random: [u8; 16], msg: &[u8], receive_id: &str) -> String {
    let mut plain = Vec::with_capacity(msg.len() + receive_id.len() + 52);
    plain.extend_from_slice(&random);
    plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    plain.extend_from_slice(msg);
    plain.extend_from_slice(receive_id.as_bytes());
    let pad = PAD_TO - plain.len() % PAD_TO;
    plain.resize(plain.len() + pad, pad as u8);
    let iv: [u8; 16] = key[..16].try_into().unwrap_or([0; 16]);
    let ciphertext = Enc::new(key.into(), &iv.into()).encrypt_padded_vec_mut::<NoPadding>(&plain);
    base64::engine::general_purpose::STANDARD.encode(ciphertext)
}

/// Lowercase hex sha1 of the four values sorted lexicographically and concatenated.
pub(crate) fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Sends the callbacks of one server.
pub(crate) struct Notifier {
    config: NotifyConfig,
    key: [u8; 32],
    corp_id: String,
    rng: ChaCha8Rng,
    http: reqwest::Client,
}

impl Notifier {
    pub(crate) fn new(config: NotifyConfig, corp_id: String, seed: u64) -> Result<Self, SimError> {
        let key = config.aes_key()?;
        let http = reqwest::Client::builder()
            .timeout(CALLBACK_TIMEOUT)
            .build()
            .map_err(SimError::Notify)?;
        Ok(Self {
            config,
            key,
            corp_id,
            rng: fast_rng(seed, D_NOTIFY, 0),
            http,
        })
    }

    async fn send(&mut self) -> Result<(), CallbackError> {
        let now_s = now_ms() / 1000;
        let timestamp = now_s.to_string();
        let nonce = self
            .rng
            .gen_range(1_000_000_000u64..10_000_000_000)
            .to_string();
        let mut random = [0u8; 16];
        self.rng.fill_bytes(&mut random);
        let msg = event_xml(&self.corp_id, &self.config.agent_id, now_s);
        let encrypted = encrypt(&self.key, random, msg.as_bytes(), &self.corp_id);
        let sig = signature(&self.config.token, &timestamp, &nonce, &encrypted);
        let body = format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>\
             <AgentID><![CDATA[{}]]></AgentID></xml>",
            self.corp_id, self.config.agent_id
        );
        let resp = self
            .http
            .post(&self.config.url)
            .query(&[
                ("msg_signature", sig.as_str()),
                ("timestamp", timestamp.as_str()),
                ("nonce", nonce.as_str()),
            ])
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .body(body)
            .send()
            .await
            .map_err(|e| CallbackError::Request(e.without_url()))?;
        match resp.status().as_u16() {
            200 => Ok(()),
            other => Err(CallbackError::Status(other)),
        }
    }

    /// Calls back whenever items appeared since the last successful callback, at most once per
    /// `min_interval_ms`, until the task is aborted.
    pub(crate) async fn run(mut self, shared: Arc<Shared>) {
        let interval = Duration::from_millis(self.config.min_interval_ms);
        let poll = POLL.min(interval);
        let mut notified = shared.corpus.visible_count();
        let mut last_attempt: Option<Instant> = None;
        loop {
            tokio::time::sleep(poll).await;
            let visible = shared.corpus.visible_count();
            if visible <= notified || last_attempt.is_some_and(|t| t.elapsed() < interval) {
                continue;
            }
            last_attempt = Some(Instant::now());
            match self.send().await {
                Ok(()) => {
                    notified = visible;
                    shared.count_notify(true);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "retrying at the next interval");
                    shared.count_notify(false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_sorts_before_hashing() {
        // sha1("abcd") whatever order the parts come in.
        let expected = "81fe8bfe87576c3ecb22426f8e57847382917acf";
        assert_eq!(signature("c", "a", "d", "b"), expected);
        assert_eq!(signature("a", "b", "c", "d"), expected);
    }

    #[test]
    fn ciphertext_is_a_multiple_of_32_bytes_and_binds_the_key() {
        let key = [7u8; 32];
        for len in [0usize, 1, 11, 12, 43, 100] {
            let msg = vec![b'x'; len];
            let b64 = encrypt(&key, [1; 16], &msg, "wwcorp");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .unwrap();
            assert_eq!(raw.len() % PAD_TO, 0, "len {len}");
            assert!(raw.len() >= 16 + 4 + len + 6);
        }
        assert_ne!(
            encrypt(&key, [1; 16], b"m", "c"),
            encrypt(&[8; 32], [1; 16], b"m", "c")
        );
    }
}
