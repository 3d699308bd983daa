//! Seed derivation: every random decision is a pure function of (seed, domain, index), so the corpus,
//! its ciphertexts and its media never depend on request order.

use rand::SeedableRng as _;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};

pub(crate) const D_PLAN: u64 = 1;
pub(crate) const D_BODY: u64 = 2;
pub(crate) const D_ENCRYPT: u64 = 3;
pub(crate) const D_GAP: u64 = 4;
pub(crate) const D_ROOM_GAP: u64 = 5;
pub(crate) const D_CORRUPT: u64 = 6;
pub(crate) const D_UNKNOWN_KEY: u64 = 7;
pub(crate) const D_CONTROL: u64 = 8;
pub(crate) const D_TIME: u64 = 9;
pub(crate) const D_MSGID: u64 = 10;
pub(crate) const D_WORLD: u64 = 11;
pub(crate) const D_MEDIA_SIZE: u64 = 12;
pub(crate) const D_MEDIA_BYTES: u64 = 13;
pub(crate) const D_MEDIA_WRONG: u64 = 14;
pub(crate) const D_MEDIA_CHECK: u64 = 15;
pub(crate) const D_EMPTY_MD5: u64 = 16;
pub(crate) const D_REQUESTS: u64 = 17;
pub(crate) const D_TOKENS: u64 = 18;
pub(crate) const D_PICTURE: u64 = 19;
pub(crate) const D_CONSENT: u64 = 20;
pub(crate) const D_CRASH: u64 = 21;
pub(crate) const D_NOTIFY: u64 = 22;

/// splitmix64 finaliser.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit value of (seed, domain, index).
pub(crate) fn mix(seed: u64, domain: u64, index: u64) -> u64 {
    splitmix(splitmix(splitmix(seed) ^ domain.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index)
}

/// A uniform value in `[0, 1)` of (seed, domain, index).
pub(crate) fn unit(seed: u64, domain: u64, index: u64) -> f64 {
    (mix(seed, domain, index) >> 11) as f64 / (1u64 << 53) as f64
}

/// True with probability `rate` (never for rate 0, always for rate 1).
pub(crate) fn hit(seed: u64, domain: u64, index: u64, rate: f64) -> bool {
    rate > 0.0 && unit(seed, domain, index) < rate
}

pub(crate) fn fast_rng(seed: u64, domain: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed, domain, index))
}

pub(crate) fn crypto_rng(seed: u64, domain: u64, index: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(mix(seed, domain, index))
}
