//! Round-trip and robustness properties over the four test-only simulator keys.

use proptest::prelude::*;
use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;
use wecom_crypto::{
    random_message_key, Keyring, MessageCipher as _, RsaBackendKind, SimCipher, WrappingKey,
};

const KEYS: [&str; 4] = [
    include_str!("../../../config/sim-keys/v1.pem"),
    include_str!("../../../config/sim-keys/v2.pem"),
    include_str!("../../../config/sim-keys/v3.pem"),
    include_str!("../../../config/sim-keys/v4.pem"),
];

struct Fixture {
    rings: [Keyring; 2],
    wraps: Vec<WrappingKey>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ring = |kind| {
            let mut r = Keyring::new(kind);
            for (i, pem) in KEYS.iter().enumerate() {
                r.insert_pem(i as u32 + 1, pem).unwrap();
            }
            r
        };
        Fixture {
            rings: [
                ring(RsaBackendKind::AwsLc),
                ring(RsaBackendKind::RustCrypto),
            ],
            wraps: KEYS
                .iter()
                .map(|p| WrappingKey::from_private_pem(p).unwrap())
                .collect(),
        }
    })
}

/// A mutation of a string: flip one byte (kept ASCII), truncate, or insert a character.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate { to: usize },
    Insert { at: usize, ch: char },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..128).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        (any::<usize>(), any::<char>()).prop_map(|(at, ch)| Mutation::Insert { at, ch }),
    ]
}

fn b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

fn apply(s: &str, m: &Mutation) -> String {
    let mut bytes = s.as_bytes().to_vec();
    match *m {
        Mutation::Flip { at, xor } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] = (bytes[i] ^ xor) & 0x7f;
        }
        Mutation::Flip { .. } => {}
        Mutation::Truncate { to } => bytes.truncate(to % (bytes.len() + 1)),
        Mutation::Insert { at, ch } => {
            let i = at % (bytes.len() + 1);
            let mut buf = [0u8; 4];
            bytes.splice(i..i, ch.encode_utf8(&mut buf).bytes());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn wrap_unwrap_decrypt_round_trips(
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
        version in 1u32..=4,
        backend in 0usize..2,
        seed in any::<u64>(),
    ) {
        let f = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = random_message_key(&mut rng);
        let wrapped = f.wraps[version as usize - 1].wrap_random_key(&key, &mut rng).unwrap();
        let ct = SimCipher::encrypt(&key, &payload).unwrap();
        let unwrapped = f.rings[backend].unwrap_random_key(version, &wrapped).unwrap();
        prop_assert_eq!(&unwrapped[..], &key[..]);
        prop_assert_eq!(SimCipher.decrypt(&unwrapped, &ct).unwrap(), payload);
    }

    #[test]
    fn mutated_wrapped_key_never_panics(
        version in 1u32..=4,
        backend in 0usize..2,
        seed in any::<u64>(),
        m in mutation(),
    ) {
        let f = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = random_message_key(&mut rng);
        let wrapped = f.wraps[version as usize - 1].wrap_random_key(&key, &mut rng).unwrap();
        let mutated = apply(&wrapped, &m);
        let result = f.rings[backend].unwrap_random_key(version, &mutated);
        // A mutation that leaves the decoded bytes intact (inserted whitespace) must still unwrap;
        // any other may fail, or (very rarely, a valid padding by chance) yield other bytes.
        if b64(&mutated) == b64(&wrapped) {
            prop_assert_eq!(&result.unwrap()[..], &key[..]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_message_never_panics(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        key_seed in any::<u64>(),
        m in mutation(),
        wrong_key_len in 0usize..40,
    ) {
        let key = random_message_key(&mut ChaCha20Rng::seed_from_u64(key_seed));
        let ct = SimCipher::encrypt(&key, &payload).unwrap();
        let mutated = apply(&ct, &m);
        // Err, or (rarely, a lucky padding byte / untouched blocks) some bytes: never a panic.
        let _ = SimCipher.decrypt(&key, &mutated);
        let short: Vec<u8> = key.iter().copied().cycle().take(wrong_key_len).collect();
        if wrong_key_len != 32 {
            prop_assert!(SimCipher.decrypt(&short, &ct).is_err());
        }
    }
}
