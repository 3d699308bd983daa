//! An archive item as served (JSON), taken through the decrypt path of the pipeline:
//! `Keyring::unwrap_random_key` on `encrypt_random_key`, `SimCipher` (the simulator's scheme, which
//! the demo pipeline runs) on `encrypt_chat_msg`, then `parse_message` on the plaintext. Input that
//! is not an item is handed to `SimCipher` as `encrypt_chat_msg` with a fixed key.
//!
//! Checks that nothing panics; that an unknown key version is reported as such; that the two RSA
//! backends agree on every ciphertext (same random key, or both refuse); and that `SimCipher`
//! decrypts what it encrypts back to the same bytes.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wecom_crypto::{CryptoError, Keyring, MessageCipher as _, RsaBackendKind, SimCipher};
use wecom_model::api::ChatDataItem;

/// The simulator's keys, versions 1 to 4, in a keyring per backend.
static KEYRINGS: LazyLock<[Keyring; 2]> = LazyLock::new(|| {
    [RsaBackendKind::AwsLc, RsaBackendKind::RustCrypto].map(|kind| {
        let mut k = Keyring::new(kind);
        for (version, pem) in wecom_archive_fuzz::SIM_KEYS {
            k.insert_pem(version, pem).expect("a simulator key loads");
        }
        k
    })
});

const FIXED_KEY: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

fuzz_target!(|data: &[u8]| {
    let Ok(item) = serde_json::from_slice::<ChatDataItem>(data) else {
        let _ = SimCipher.decrypt(FIXED_KEY, &String::from_utf8_lossy(data));
        let ciphertext = SimCipher::encrypt(FIXED_KEY, data).expect("a 32-byte key encrypts");
        let back = SimCipher
            .decrypt(FIXED_KEY, &ciphertext)
            .expect("what SimCipher encrypts it decrypts");
        assert_eq!(back, data);
        return;
    };

    let [aws, rust] = KEYRINGS
        .each_ref()
        .map(|keyring| keyring.unwrap_random_key(item.publickey_ver, &item.encrypt_random_key));
    if !KEYRINGS[0].contains(item.publickey_ver) {
        for r in [&aws, &rust] {
            assert!(
                matches!(r, Err(CryptoError::UnknownKeyVersion { version }) if *version == item.publickey_ver),
                "unknown key version not reported as such"
            );
        }
        return;
    }
    match (aws, rust) {
        (Ok(a), Ok(r)) => {
            assert_eq!(a.as_slice(), r.as_slice(), "backends unwrap different keys");
            if let Ok(plain) = SimCipher.decrypt(&a, &item.encrypt_chat_msg) {
                let _ = wecom_model::parse_message(&plain);
            }
        }
        (Err(_), Err(_)) => {}
        (a, r) => panic!(
            "backends disagree: aws-lc {}, rustcrypto {}",
            a.map_or("refused", |_| "unwrapped"),
            r.map_or("refused", |_| "unwrapped")
        ),
    }
});
