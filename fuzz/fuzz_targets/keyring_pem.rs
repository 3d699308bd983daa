//! A private key file as an operator configures it (`[keys]` in the config), loaded into a
//! `wecom_crypto::Keyring` with each RSA backend: `Keyring::insert_pem` from the text and
//! `Keyring::load_pem_file` from a file holding the bytes.
//!
//! Checks that loading never panics; that an error never repeats a line of the key body (errors
//! must not carry key material); that the file and the text entry points agree; and that when both
//! backends accept a key they see the same modulus size and unwrap a random key wrapped with its
//! public half to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;
use wecom_archive_fuzz::fresh_scratch_dir;
use wecom_crypto::{Keyring, RsaBackendKind, WrappingKey};

fuzz_target!(|data: &[u8]| {
    let pem = String::from_utf8_lossy(data);
    let mut aws = Keyring::new(RsaBackendKind::AwsLc);
    let mut rust = Keyring::new(RsaBackendKind::RustCrypto);
    let by_aws = aws.insert_pem(1, &pem);
    let by_rust = rust.insert_pem(1, &pem);
    for err in [by_aws.as_ref().err(), by_rust.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert_no_key_material(&pem, &err.to_string());
        assert_no_key_material(&pem, &format!("{err:?}"));
    }
    assert_eq!(aws.contains(1), by_aws.is_ok());
    assert_eq!(rust.contains(1), by_rust.is_ok());

    let dir = fresh_scratch_dir("keyring_pem");
    let path = dir.join("key.pem");
    std::fs::write(&path, data).expect("scratch file writes");
    let mut from_file = Keyring::new(RsaBackendKind::RustCrypto);
    let loaded = from_file.load_pem_file(1, &path);
    if std::str::from_utf8(data).is_ok() {
        assert_eq!(
            loaded.is_ok(),
            by_rust.is_ok(),
            "file and text loading disagree"
        );
    } else {
        assert!(loaded.is_err(), "a key file that is not utf-8 was accepted");
    }
    if let Err(err) = &loaded {
        assert_no_key_material(&pem, &err.to_string());
    }

    if by_aws.is_ok() && by_rust.is_ok() {
        assert_eq!(
            aws.key_bits(1),
            rust.key_bits(1),
            "backends disagree on the size"
        );
        let wrap = WrappingKey::from_private_pem(&pem).expect("an accepted key wraps");
        let random_key = *b"0123456789abcdefghijklmnopqrstuv";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let wrapped = wrap
            .wrap_random_key(&random_key, &mut rng)
            .expect("a 32-byte key wraps");
        let a = aws.unwrap_random_key(1, &wrapped).expect("aws-lc unwraps");
        let r = rust
            .unwrap_random_key(1, &wrapped)
            .expect("rustcrypto unwraps");
        assert_eq!(a.as_slice(), random_key.as_slice());
        assert_eq!(r.as_slice(), random_key.as_slice());
    }
});

/// No line of the PEM body (long enough to be key material, and not part of the BEGIN line an
/// error may quote as the label) appears in `message`.
fn assert_no_key_material(pem: &str, message: &str) {
    let mut lines = pem.lines().map(str::trim);
    let Some(begin) = lines.find(|l| l.starts_with("-----BEGIN ")) else {
        return;
    };
    for line in lines {
        if line.len() >= 16 && !line.starts_with("-----") && !begin.contains(line) {
            assert!(
                !message.contains(line),
                "error repeats a line of the key: {message}"
            );
        }
    }
}
