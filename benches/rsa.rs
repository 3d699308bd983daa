//! Per-item crypto cost: RSA unwrap of `encrypt_random_key` per backend, and SimCipher decryption of a
//! 1 KiB message.
//!
//! Besides criterion's report, prints one plain line per backend from a ~2 s timed loop on one core:
//! `rsa-unwrap backend=aws-lc decrypts_per_sec_per_core=NNN`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use wecom_crypto::{
    random_message_key, Keyring, MessageCipher as _, RsaBackendKind, SimCipher, WrappingKey,
};

/// A test-only RSA-2048 key of the simulator (PKCS#1).
const PEM: &str = include_str!("../config/sim-keys/v1.pem");

fn fixture(kind: RsaBackendKind) -> (Keyring, String) {
    let mut ring = Keyring::new(kind);
    ring.insert_pem(1, PEM).expect("test key loads");
    assert_eq!(ring.key_bits(1), Some(2048));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let key = random_message_key(&mut rng);
    let wrapped = WrappingKey::from_private_pem(PEM)
        .expect("test key loads")
        .wrap_random_key(&key, &mut rng)
        .expect("wrap");
    (ring, wrapped)
}

fn plain_rate(kind: RsaBackendKind) {
    let (ring, wrapped) = fixture(kind);
    let budget = Duration::from_secs(2);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        black_box(
            ring.unwrap_random_key(1, black_box(&wrapped))
                .expect("unwrap"),
        );
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("rsa-unwrap backend={kind} decrypts_per_sec_per_core={rate:.0}");
}

fn rsa_unwrap(c: &mut Criterion) {
    for kind in [RsaBackendKind::AwsLc, RsaBackendKind::RustCrypto] {
        plain_rate(kind);
    }
    let mut group = c.benchmark_group("rsa_unwrap_2048");
    group.throughput(Throughput::Elements(1));
    for kind in [RsaBackendKind::AwsLc, RsaBackendKind::RustCrypto] {
        let (ring, wrapped) = fixture(kind);
        group.bench_function(kind.as_str(), |b| {
            b.iter(|| {
                ring.unwrap_random_key(1, black_box(&wrapped))
                    .expect("unwrap")
            });
        });
    }
    group.finish();
}

fn sim_cipher(c: &mut Criterion) {
    let key = random_message_key(&mut ChaCha20Rng::seed_from_u64(2));
    let plain = vec![b'x'; 1024];
    let ct = SimCipher::encrypt(&key, &plain).expect("encrypt");
    let mut group = c.benchmark_group("sim_cipher");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("decrypt_1KiB", |b| {
        b.iter(|| {
            SimCipher
                .decrypt(black_box(&key), black_box(&ct))
                .expect("decrypt")
        });
    });
    group.finish();
}

criterion_group!(benches, rsa_unwrap, sim_cipher);
criterion_main!(benches);
