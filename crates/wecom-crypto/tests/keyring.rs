//! Keyring, wrapping and SimCipher behaviour on the repository's test-only simulator keys.

use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use wecom_crypto::{
    random_message_key, CipherFailure, CryptoError, Keyring, MessageCipher as _, RsaBackendKind,
    SimCipher, WrappingKey,
};

const V1: &str = include_str!("../../../config/sim-keys/v1.pem"); // PKCS#1
const V2: &str = include_str!("../../../config/sim-keys/v2.pem"); // PKCS#8
const V3: &str = include_str!("../../../config/sim-keys/v3.pem"); // PKCS#1
const V4: &str = include_str!("../../../config/sim-keys/v4.pem"); // PKCS#1
const KEYS: [(u32, &str); 4] = [(1, V1), (2, V2), (3, V3), (4, V4)];
const BACKENDS: [RsaBackendKind; 2] = [RsaBackendKind::AwsLc, RsaBackendKind::RustCrypto];

fn keyring(kind: RsaBackendKind) -> Keyring {
    let mut ring = Keyring::new(kind);
    for (version, pem) in KEYS {
        ring.insert_pem(version, pem).unwrap();
    }
    ring
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[test]
fn both_backends_unwrap_pkcs1_and_pkcs8_keys() {
    for kind in BACKENDS {
        let ring = keyring(kind);
        assert_eq!(ring.versions(), vec![1, 2, 3, 4]);
        for (version, pem) in KEYS {
            assert_eq!(ring.key_bits(version), Some(2048), "{kind} v{version}");
            let wrap = WrappingKey::from_private_pem(pem).unwrap();
            let key = random_message_key(&mut rng(u64::from(version)));
            let wrapped = wrap.wrap_random_key(&key, &mut rng(7)).unwrap();
            let unwrapped = ring.unwrap_random_key(version, &wrapped).unwrap();
            assert_eq!(&unwrapped[..], &key[..], "{kind} v{version}");
        }
    }
}

#[test]
fn wrapping_is_deterministic_for_a_seeded_rng() {
    let wrap = WrappingKey::from_private_pem(V1).unwrap();
    let key = random_message_key(&mut rng(1));
    assert_eq!(key, random_message_key(&mut rng(1)));
    assert!(key.iter().all(u8::is_ascii_alphanumeric));
    let a = wrap.wrap_random_key(&key, &mut rng(42)).unwrap();
    let b = wrap.wrap_random_key(&key, &mut rng(42)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn whitespace_in_base64_is_tolerated() {
    let ring = keyring(RsaBackendKind::AwsLc);
    let key = random_message_key(&mut rng(3));
    let wrapped = WrappingKey::from_private_pem(V3)
        .unwrap()
        .wrap_random_key(&key, &mut rng(3))
        .unwrap();
    let folded: String = wrapped
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    assert_eq!(&ring.unwrap_random_key(3, &folded).unwrap()[..], &key[..]);
}

#[test]
fn unknown_version_names_the_version() {
    let mut ring = Keyring::new(RsaBackendKind::AwsLc);
    ring.insert_pem(1, V1).unwrap();
    let err = ring.unwrap_random_key(7, "AAAA").unwrap_err();
    assert!(matches!(err, CryptoError::UnknownKeyVersion { version: 7 }));
    assert_eq!(
        err.to_string(),
        "no private key for publickey_ver 7 in the keyring: add the key for publickey_ver 7 to [keys]"
    );
    assert!(err.is_item_level());
    assert!(!ring.contains(7));
}

#[test]
fn a_version_is_never_replaced() {
    for kind in BACKENDS {
        let mut ring = Keyring::new(kind);
        ring.insert_pem(1, V1).unwrap();
        let err = ring.insert_pem(1, V2).unwrap_err();
        assert!(matches!(err, CryptoError::DuplicateVersion { version: 1 }));
    }
}

#[test]
fn debug_and_errors_carry_no_key_material() {
    for kind in BACKENDS {
        let ring = keyring(kind);
        let debug = format!("{ring:?} {ring:#?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        for (_, pem) in KEYS {
            let body_line = pem.lines().nth(1).unwrap();
            assert!(!debug.contains(&body_line[..16]), "{debug}");
        }
        assert!(debug.contains("versions"));

        // A corrupted PEM must not echo its content in the error.
        let broken = V1.replace('M', "!");
        let mut ring = Keyring::new(kind);
        let err = ring.insert_pem(9, &broken).unwrap_err();
        assert!(matches!(err, CryptoError::BadKey { version: 9, .. }));
        assert!(!err.is_item_level());
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&broken.lines().nth(1).unwrap()[..16]),
            "{shown}"
        );
    }
    let wrap = format!("{:?}", WrappingKey::from_private_pem(V2).unwrap());
    assert!(!wrap.contains("PRIVATE"), "{wrap}");
}

#[test]
fn key_files_load_and_missing_files_are_reported() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sim-keys");
    let mut ring = Keyring::new(RsaBackendKind::AwsLc);
    ring.load_pem_file(2, std::path::Path::new(&format!("{dir}/v2.pem")))
        .unwrap();
    assert_eq!(ring.versions(), vec![2]);
    let err = ring
        .load_pem_file(5, std::path::Path::new(&format!("{dir}/v5.pem")))
        .unwrap_err();
    assert!(matches!(err, CryptoError::KeyFile { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{dir}/v5.pem")), "{msg}");
    assert!(msg.contains("[keys] files / WECOM_KEY_FILES"), "{msg}");
    assert!(!err.is_item_level());
    // The reason is said in the message, so the error exposes no source that would repeat it.
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn corrupted_input_is_an_error_not_a_panic() {
    let key = random_message_key(&mut rng(5));
    let wrapped = WrappingKey::from_private_pem(V1)
        .unwrap()
        .wrap_random_key(&key, &mut rng(5))
        .unwrap();
    for kind in BACKENDS {
        let ring = keyring(kind);
        for bad in ["", "not base64!", "AAAA", "QUJD"] {
            let err = ring.unwrap_random_key(1, bad).unwrap_err();
            assert!(err.is_item_level(), "{kind}: {err}");
        }
        // Right key length, wrong bytes.
        let mut flipped = wrapped.clone().into_bytes();
        flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let err = ring.unwrap_random_key(1, &flipped).unwrap_err();
        assert!(
            matches!(err, CryptoError::RsaDecrypt { version: 1 }),
            "{kind}: {err}"
        );
        // The wrong key version.
        let err = ring.unwrap_random_key(2, &wrapped).unwrap_err();
        assert!(
            matches!(err, CryptoError::RsaDecrypt { version: 2 }),
            "{kind}: {err}"
        );
    }
}

#[test]
fn sim_cipher_round_trips_and_rejects_bad_input() {
    let key = random_message_key(&mut rng(9));
    for len in [0usize, 1, 15, 16, 17, 1024] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let ct = SimCipher::encrypt(&key, &plain).unwrap();
        assert_eq!(SimCipher.decrypt(&key, &ct).unwrap(), plain);
    }
    let ct = SimCipher::encrypt(&key, br#"{"msgtype":"text"}"#).unwrap();
    let other = random_message_key(&mut rng(10));
    assert!(
        SimCipher.decrypt(&other, &ct).is_err()
            || SimCipher.decrypt(&other, &ct).unwrap() != br#"{"msgtype":"text"}"#
    );
    assert!(matches!(
        SimCipher::encrypt(&key[..31], b"x"),
        Err(CryptoError::Cipher { .. })
    ));
    assert!(matches!(
        SimCipher.decrypt(&key[..16], &ct),
        Err(CryptoError::Cipher { .. })
    ));
    assert!(matches!(
        SimCipher.decrypt(&key, "%%%"),
        Err(CryptoError::BadBase64 {
            field: "encrypt_chat_msg"
        })
    ));
    assert!(matches!(
        SimCipher.decrypt(&key, ""),
        Err(CryptoError::Cipher { .. })
    ));
    assert!(matches!(
        SimCipher.decrypt(&key, "QUJD"),
        Err(CryptoError::Cipher { .. })
    ));
    assert_eq!(SimCipher.name(), "sim");
    // Every failure of the simulator's cipher is the item's own.
    for err in [
        SimCipher.decrypt(&key[..16], &ct).unwrap_err(),
        SimCipher.decrypt(&key, "").unwrap_err(),
        SimCipher.decrypt(&key, "QUJD").unwrap_err(),
    ] {
        assert_eq!(err.cipher_failure(), Some(CipherFailure::Item), "{err}");
        assert!(err.is_item_level(), "{err}");
    }
}

#[test]
fn cipher_failure_classes_decide_item_level() {
    for (class, item_level) in [
        (CipherFailure::Transient, false),
        (CipherFailure::Item, true),
        (CipherFailure::Crashed, true),
    ] {
        let err = CryptoError::Cipher {
            reason: "x".into(),
            class,
        };
        assert_eq!(err.is_item_level(), item_level, "{class:?}");
        assert_eq!(err.cipher_failure(), Some(class));
    }
    assert_eq!(
        CryptoError::UnknownKeyVersion { version: 1 }.cipher_failure(),
        None
    );
}

/// The default `decrypt_batch` answers every item, in order, with what `decrypt` would.
#[test]
fn default_batch_decrypt_matches_single_decrypts() {
    let keys: Vec<[u8; 32]> = (0..6)
        .map(|i| random_message_key(&mut rng(100 + i)))
        .collect();
    let plains: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let mut cts: Vec<String> = keys
        .iter()
        .zip(&plains)
        .map(|(k, p)| SimCipher::encrypt(k, p).unwrap())
        .collect();
    cts[2] = "QUJD".into(); // undecryptable
    let items: Vec<(&[u8], &str)> = keys
        .iter()
        .zip(&cts)
        .map(|(k, c)| (&k[..], c.as_str()))
        .collect();
    let out = SimCipher.decrypt_batch(&items);
    assert_eq!(out.len(), items.len());
    for (i, r) in out.iter().enumerate() {
        if i == 2 {
            assert!(
                matches!(
                    r,
                    Err(CryptoError::Cipher {
                        class: CipherFailure::Item,
                        ..
                    })
                ),
                "{r:?}"
            );
        } else {
            assert_eq!(r.as_ref().unwrap(), &plains[i], "item {i}");
        }
    }
    assert!(SimCipher.decrypt_batch(&[]).is_empty());
}

#[test]
fn backend_kind_serde_names() {
    assert_eq!(
        serde_json::to_string(&RsaBackendKind::AwsLc).unwrap(),
        r#""aws-lc""#
    );
    assert_eq!(
        serde_json::from_str::<RsaBackendKind>(r#""rustcrypto""#).unwrap(),
        RsaBackendKind::RustCrypto
    );
    assert_eq!(RsaBackendKind::default(), RsaBackendKind::AwsLc);
}

#[test]
fn keyring_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Keyring>();
    check::<WrappingKey>();
    check::<SimCipher>();
}
