//! Media bytes: a deterministic ChaCha stream per media file, generated chunk by chunk and never held
//! whole, and the opaque `sdkfileid` that names a file.
//!
//! Byte `k` of a file is byte `k % 4` (little-endian) of word `k / 4` of a ChaCha8 stream seeded by
//! (seed, media id), so any offset can be served directly (`Range: bytes=N-`).

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use rand::{RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::rng::{mix, D_MEDIA_BYTES, D_MEDIA_CHECK, D_MEDIA_WRONG};

/// Size of the chunks the generator yields.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Media slots per item: media id = item index * SLOTS + slot.
pub(crate) const SLOTS: u64 = 16;

const MAGIC: &[u8; 4] = b"WSIM";

/// Which bytes to produce: the real file, or the wrong bytes of an md5-mismatch attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Correct,
    Wrong,
}

/// Streams `[start, end)` of a media file in chunks of at most [`CHUNK`] bytes.
pub(crate) struct MediaGen {
    rng: ChaCha8Rng,
    pos: u64,
    end: u64,
    /// Bytes to drop from the front of the next generated (word-aligned) buffer.
    skip: usize,
}

impl MediaGen {
    pub(crate) fn new(seed: u64, media_id: u64, variant: Variant, start: u64, end: u64) -> Self {
        let domain = match variant {
            Variant::Correct => D_MEDIA_BYTES,
            Variant::Wrong => D_MEDIA_WRONG,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, domain, media_id));
        rng.set_word_pos(u128::from(start / 4));
        Self {
            rng,
            pos: start,
            end: end.max(start),
            skip: (start % 4) as usize,
        }
    }

    /// The next chunk, or `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        // Generate word-aligned buffers whose length is a multiple of 4 (except that the very last
        // may be cut), so the rng's word position always matches the byte position.
        let remaining = self.end - self.pos;
        let want = (CHUNK - self.skip).min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let aligned = (self.skip + want).div_ceil(4) * 4;
        let mut buf = vec![0u8; aligned];
        self.rng.fill_bytes(&mut buf);
        let mut bytes = Bytes::from(buf);
        let out = bytes.split_off(self.skip).slice(..want);
        self.skip = 0;
        self.pos += want as u64;
        Some(out)
    }
}

/// md5 of a whole file, computed by streaming the generator once.
pub(crate) fn md5_of(seed: u64, media_id: u64, size: u64) -> [u8; 16] {
    let mut hasher = Md5::new();
    let mut gen = MediaGen::new(seed, media_id, Variant::Correct, 0, size);
    while let Some(chunk) = gen.next_chunk() {
        hasher.update(&chunk);
    }
    hasher.finalize().into()
}

/// The opaque `sdkfileid` of a media file: standard base64 of magic, media id, size, a check word
/// bound to the seed and filler, so ids of another seed are rejected.
pub(crate) fn encode_sdkfileid(seed: u64, media_id: u64, size: u64) -> String {
    let mut raw = Vec::with_capacity(64);
    raw.extend_from_slice(MAGIC);
    raw.extend_from_slice(&media_id.to_be_bytes());
    raw.extend_from_slice(&size.to_be_bytes());
    raw.extend_from_slice(&check_word(seed, media_id, size).to_be_bytes());
    let mut filler = ChaCha8Rng::seed_from_u64(mix(seed, D_MEDIA_CHECK ^ 1, media_id));
    let mut pad = [0u8; 40];
    filler.fill_bytes(&mut pad);
    raw.extend_from_slice(&pad);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// (media id, size) of a valid `sdkfileid` of this seed.
pub(crate) fn decode_sdkfileid(seed: u64, sdkfileid: &str) -> Option<(u64, u64)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sdkfileid.trim())
        .ok()?;
    if raw.len() < 28 || &raw[..4] != MAGIC {
        return None;
    }
    let media_id = u64::from_be_bytes(raw[4..12].try_into().ok()?);
    let size = u64::from_be_bytes(raw[12..20].try_into().ok()?);
    let check = u64::from_be_bytes(raw[20..28].try_into().ok()?);
    (check == check_word(seed, media_id, size)).then_some((media_id, size))
}

fn check_word(seed: u64, media_id: u64, size: u64) -> u64 {
    mix(mix(seed, D_MEDIA_CHECK, media_id), D_MEDIA_CHECK, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(seed: u64, id: u64, start: u64, end: u64) -> Vec<u8> {
        let mut gen = MediaGen::new(seed, id, Variant::Correct, start, end);
        let mut out = Vec::new();
        while let Some(c) = gen.next_chunk() {
            assert!(c.len() <= CHUNK);
            out.extend_from_slice(&c);
        }
        out
    }

    #[test]
    fn any_offset_serves_the_same_bytes() {
        let size = 3 * CHUNK as u64 + 7;
        let whole = collect(9, 42, 0, size);
        assert_eq!(whole.len() as u64, size);
        for start in [
            0,
            1,
            2,
            3,
            5,
            4097,
            CHUNK as u64 - 1,
            CHUNK as u64 + 3,
            size - 1,
        ] {
            assert_eq!(
                collect(9, 42, start, size),
                whole[start as usize..],
                "start {start}"
            );
        }
        assert_ne!(collect(10, 42, 0, 64), whole[..64]);
    }

    #[test]
    fn sdkfileid_round_trips_and_is_bound_to_the_seed() {
        let id = encode_sdkfileid(3, 77, 12345);
        assert_eq!(decode_sdkfileid(3, &id), Some((77, 12345)));
        assert_eq!(decode_sdkfileid(4, &id), None);
        assert_eq!(decode_sdkfileid(3, "bm9wZQ=="), None);
        assert_eq!(decode_sdkfileid(3, "%%%"), None);
    }
}
