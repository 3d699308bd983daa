//! Media bytes: a deterministic ChaCha stream per media file, generated chunk by chunk and never held
//! whole, and the opaque `sdkfileid` that names a file.
//!
//! Byte `k` of a file is byte `k % 4` (little-endian) of word `k / 4` of a ChaCha8 stream seeded by
//! (seed, media id), so any offset can be served directly (`Range: bytes=N-`). Files of a real format
//! overlay that stream: images and emotions start with a complete small picture ([`crate::picture`];
//! decoders stop at its end marker, the stream after it is padding up to the declared size), voice is
//! AMR-NB (`#!AMR\n`, then 32-byte mode-7 frames whose payload is the stream). A declared size smaller
//! than the picture serves the picture's first bytes only. Video and files stay opaque.

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use rand::{RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::picture::{self, Design};
use crate::rng::{mix, D_MEDIA_BYTES, D_MEDIA_CHECK, D_MEDIA_WRONG};

/// Size of the chunks the generator yields.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Media slots per item: media id = item index * SLOTS + slot.
pub(crate) const SLOTS: u64 = 16;

const MAGIC: &[u8; 4] = b"WSIM";

/// The AMR-NB file magic.
pub(crate) const AMR_MAGIC: &[u8; 6] = b"#!AMR\n";
/// Length of a mode-7 (12.2 kbit/s) AMR-NB frame: the ToC byte and 244 bits of speech, padded.
pub(crate) const AMR_FRAME: u64 = 32;
/// ToC byte of a mode-7 frame: F = 0, FT = 7, Q = 1.
pub(crate) const AMR_TOC: u8 = 0x3C;

/// What a media file's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The ChaCha stream as is (video, files, meeting recordings).
    Opaque,
    /// A baseline JPEG picture, then padding (`image`, pictures inside chatrecord and mixed).
    Jpeg,
    /// AMR-NB mode-7 frames (`voice`).
    Amr,
    /// A GIF picture, then padding (`emotion` of type 1).
    Gif,
    /// A PNG picture, then padding (`emotion` of type 2).
    Png,
}

impl Format {
    /// The bytes at the start of the file that replace the stream's.
    pub(crate) fn head(self, seed: u64, media_id: u64) -> Vec<u8> {
        let design = || Design::of(seed, media_id);
        match self {
            Format::Opaque => Vec::new(),
            Format::Jpeg => picture::jpeg(&design(), &format!("wecom-sim media {media_id}")),
            Format::Gif => picture::gif(&design()),
            Format::Png => picture::png(&design()),
            Format::Amr => AMR_MAGIC.to_vec(),
        }
    }

    /// The size a file of this format gets, from a drawn size at most `max`: voice is a whole number
    /// of frames (rounded down, at least one when `max` allows it).
    pub(crate) fn fit_size(self, size: u64) -> u64 {
        let header = AMR_MAGIC.len() as u64;
        match self {
            Format::Amr if size >= header + AMR_FRAME => {
                header + (size - header) / AMR_FRAME * AMR_FRAME
            }
            _ => size,
        }
    }
}

/// Number of AMR frames in a voice file of `size` bytes.
pub(crate) fn amr_frames(size: u64) -> u64 {
    size.saturating_sub(AMR_MAGIC.len() as u64) / AMR_FRAME
}

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
    /// The format's head (empty for the wrong bytes of an md5-mismatch attempt).
    head: Vec<u8>,
    amr: bool,
}

impl MediaGen {
    pub(crate) fn new(
        seed: u64,
        media_id: u64,
        format: Format,
        variant: Variant,
        start: u64,
        end: u64,
    ) -> Self {
        let (domain, head, amr) = match variant {
            Variant::Correct => (
                D_MEDIA_BYTES,
                format.head(seed, media_id),
                format == Format::Amr,
            ),
            // Wrong bytes are wrong everywhere, so an md5 check always catches them.
            Variant::Wrong => (D_MEDIA_WRONG, Vec::new(), false),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, domain, media_id));
        rng.set_word_pos(u128::from(start / 4));
        Self {
            rng,
            pos: start,
            end: end.max(start),
            skip: (start % 4) as usize,
            head,
            amr,
        }
    }

    /// Writes the format's bytes over `buf`, which holds the stream at file offset `at`.
    fn overlay(&self, at: u64, buf: &mut [u8]) {
        let end = at + buf.len() as u64;
        let head_len = self.head.len() as u64;
        if at < head_len {
            let n = (head_len.min(end) - at) as usize;
            buf[..n].copy_from_slice(&self.head[at as usize..at as usize + n]);
        }
        if self.amr {
            let magic = AMR_MAGIC.len() as u64;
            let first = at.max(magic);
            // Start of the frame holding `first`, then every frame from there.
            let mut frame = magic + (first - magic) / AMR_FRAME * AMR_FRAME;
            while frame < end {
                if frame >= at {
                    buf[(frame - at) as usize] = AMR_TOC;
                }
                // The last byte's low 4 bits are padding after the 244 speech bits: zero.
                let last = frame + AMR_FRAME - 1;
                if (at..end).contains(&last) {
                    buf[(last - at) as usize] &= 0xF0;
                }
                frame += AMR_FRAME;
            }
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
        self.overlay(self.pos - self.skip as u64, &mut buf);
        let mut bytes = Bytes::from(buf);
        let out = bytes.split_off(self.skip).slice(..want);
        self.skip = 0;
        self.pos += want as u64;
        Some(out)
    }
}

/// md5 of a whole file, computed by streaming the generator once.
pub(crate) fn md5_of(seed: u64, media_id: u64, format: Format, size: u64) -> [u8; 16] {
    let mut hasher = Md5::new();
    let mut gen = MediaGen::new(seed, media_id, format, Variant::Correct, 0, size);
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

    fn collect_as(format: Format, seed: u64, id: u64, start: u64, end: u64) -> Vec<u8> {
        let mut gen = MediaGen::new(seed, id, format, Variant::Correct, start, end);
        let mut out = Vec::new();
        while let Some(c) = gen.next_chunk() {
            assert!(c.len() <= CHUNK);
            out.extend_from_slice(&c);
        }
        out
    }

    fn collect(seed: u64, id: u64, start: u64, end: u64) -> Vec<u8> {
        collect_as(Format::Opaque, seed, id, start, end)
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
    fn formatted_files_serve_the_same_bytes_from_any_offset() {
        for format in [Format::Jpeg, Format::Gif, Format::Png, Format::Amr] {
            let size = format.fit_size(2 * CHUNK as u64 + 333);
            let whole = collect_as(format, 5, 7, 0, size);
            assert_eq!(whole.len() as u64, size);
            let head = format.head(5, 7);
            assert_eq!(whole[..head.len()], head[..], "{format:?}");
            let opaque = collect(5, 7, 0, size);
            assert_eq!(whole[CHUNK..CHUNK + 5], opaque[CHUNK..CHUNK + 5]);
            for start in [
                1,
                3,
                6,
                7,
                37,
                38,
                39,
                head.len() as u64 - 1,
                CHUNK as u64 + 1,
            ] {
                assert_eq!(
                    collect_as(format, 5, 7, start, size),
                    whole[start as usize..],
                    "{format:?} from {start}"
                );
            }
            // A range that ends inside the head.
            assert_eq!(collect_as(format, 5, 7, 2, 5), whole[2..5]);
        }
    }

    #[test]
    fn voice_is_whole_amr_frames() {
        let size = Format::Amr.fit_size(10_000);
        assert_eq!((size - 6) % AMR_FRAME, 0);
        assert_eq!(amr_frames(size), (10_000 - 6) / 32);
        let bytes = collect_as(Format::Amr, 1, 2, 0, size);
        assert_eq!(&bytes[..6], AMR_MAGIC);
        for frame in bytes[6..].chunks(AMR_FRAME as usize) {
            assert_eq!(frame.len() as u64, AMR_FRAME);
            assert_eq!(frame[0], AMR_TOC);
            assert_eq!(frame[31] & 0x0F, 0);
        }
        assert_eq!(Format::Amr.fit_size(20), 20);
        assert_eq!(Format::Amr.fit_size(38), 38);
        assert_eq!(Format::Amr.fit_size(69), 38);
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
