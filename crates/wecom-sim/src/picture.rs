//! Small deterministic pictures in real formats (baseline JPEG, GIF, PNG), one per media id, so that a
//! browser or an image library can show what the simulator serves as `image` and `emotion` media.
//!
//! Every picture is an identicon: a vertical two-colour gradient with a mirrored 5×5 pattern of cells
//! in a third colour, all derived from (seed, media id). The encoders are minimal on purpose (no
//! compression worth the name: flat JPEG blocks with only a DC coefficient, GIF codes that never grow
//! past five bits, PNG rows in stored deflate blocks), which keeps them short enough to check by eye.

use crate::rng::{mix, D_PICTURE};

pub(crate) type Rgb = [u8; 3];

/// Size of the JPEG pictures (a 16×12 grid of 8×8 blocks).
pub(crate) const JPEG_SIZE: (u32, u32) = (128, 96);
/// Size of the emotion pictures (GIF and PNG).
pub(crate) const EMOTION_SIZE: (u32, u32) = (48, 48);

/// What a picture shows; every encoder renders the same design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Design {
    pub(crate) top: Rgb,
    pub(crate) bottom: Rgb,
    pub(crate) fg: Rgb,
    /// Row-major 5×5 cells, mirrored left to right.
    pub(crate) cells: [[bool; 5]; 5],
}

impl Design {
    pub(crate) fn of(seed: u64, media_id: u64) -> Self {
        let h = mix(seed, D_PICTURE, media_id);
        let hue = (h % 360) as u32;
        let bits = h >> 16;
        let mut cells = [[false; 5]; 5];
        for (y, row) in cells.iter_mut().enumerate() {
            for x in 0..3 {
                let on = bits >> (y * 3 + x) & 1 == 1;
                row[x] = on;
                row[4 - x] = on;
            }
        }
        Self {
            top: hsv(hue, 0.25, 0.98),
            bottom: hsv((hue + 40) % 360, 0.45, 0.80),
            fg: hsv((hue + 180) % 360, 0.85, 0.55),
            cells,
        }
    }

    /// Background shade `k` of `n` (0 = top colour).
    fn shade(&self, k: u32, n: u32) -> Rgb {
        let t = f64::from(k) / f64::from(n.max(2) - 1);
        let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
        [
            lerp(self.top[0], self.bottom[0]),
            lerp(self.top[1], self.bottom[1]),
            lerp(self.top[2], self.bottom[2]),
        ]
    }

    /// Whether cell (cx, cy) of the pattern is on; outside the pattern is off.
    fn cell(&self, cx: i64, cy: i64) -> bool {
        (0..5).contains(&cx) && (0..5).contains(&cy) && self.cells[cy as usize][cx as usize]
    }
}

fn hsv(hue: u32, s: f64, v: f64) -> Rgb {
    let c = v * s;
    let h = f64::from(hue) / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match hue / 60 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let q = |f: f64| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// The colour of 8×8 block (bx, by) of the JPEG picture: the pattern's cells are 2×2 blocks, centred.
pub(crate) fn jpeg_block(design: &Design, bx: u32, by: u32) -> Rgb {
    let (cx, cy) = (
        (i64::from(bx) - 3).div_euclid(2),
        (i64::from(by) - 1).div_euclid(2),
    );
    let inside = (3..13).contains(&bx) && (1..11).contains(&by);
    if inside && design.cell(cx, cy) {
        design.fg
    } else {
        design.shade(by, JPEG_SIZE.1 / 8)
    }
}

/// The emotion palette: 14 background shades, then the foreground colour, then black.
pub(crate) fn emotion_palette(design: &Design) -> [Rgb; 16] {
    let mut p = [[0u8; 3]; 16];
    for (k, c) in p.iter_mut().enumerate().take(14) {
        *c = design.shade(k as u32, 14);
    }
    p[14] = design.fg;
    p
}

/// The palette index of pixel (x, y) of an emotion picture: cells of 8×8 pixels, 4 pixels of margin.
pub(crate) fn emotion_pixel(design: &Design, x: u32, y: u32) -> u8 {
    let (cx, cy) = (
        (i64::from(x) - 4).div_euclid(8),
        (i64::from(y) - 4).div_euclid(8),
    );
    if design.cell(cx, cy) {
        14
    } else {
        (y * 14 / EMOTION_SIZE.1) as u8
    }
}

// ---------------------------------------------------------------------------------------------
// JPEG (baseline, 4:4:4 YCbCr, every block flat: a DC coefficient and end-of-block)

const DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
/// The only AC symbol is end-of-block (0x00), one bit long.
const AC_BITS: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// DC quantiser: a flat block of value p has DC 8·(p − 128), so the quantised DC is p − 128.
const DC_QUANT: u8 = 8;

struct JpegBits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl JpegBits {
    fn put(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = self.acc << 1 | (code >> i & 1);
            self.n += 1;
            if self.n == 8 {
                let byte = self.acc as u8;
                self.out.push(byte);
                if byte == 0xFF {
                    self.out.push(0x00);
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// Canonical Huffman codes (JPEG Annex C) of symbols 0.. given the count per length.
fn huffman_codes(bits: &[u8; 16]) -> Vec<(u32, u32)> {
    let mut codes = Vec::new();
    let mut code = 0u32;
    for (i, &count) in bits.iter().enumerate() {
        for _ in 0..count {
            codes.push((code, i as u32 + 1));
            code += 1;
        }
        code <<= 1;
    }
    codes
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn ycbcr(c: Rgb) -> [i32; 3] {
    let (r, g, b) = (f64::from(c[0]), f64::from(c[1]), f64::from(c[2]));
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as i32)
}

/// A complete baseline JPEG file (SOI … EOI) of the design.
pub(crate) fn jpeg(design: &Design, comment: &str) -> Vec<u8> {
    let (w, h) = JPEG_SIZE;
    let mut out = vec![0xFF, 0xD8];
    segment(
        &mut out,
        0xE0,
        &[b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
    );
    segment(&mut out, 0xFE, comment.as_bytes());
    let mut dqt = vec![0x00, DC_QUANT];
    dqt.extend_from_slice(&[1; 63]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&(h as u16).to_be_bytes());
    sof.extend_from_slice(&(w as u16).to_be_bytes());
    sof.push(3);
    for id in 1..=3u8 {
        sof.extend_from_slice(&[id, 0x11, 0]);
    }
    segment(&mut out, 0xC0, &sof);
    let mut dht = vec![0x00];
    dht.extend_from_slice(&DC_BITS);
    dht.extend(0..12u8);
    dht.push(0x10);
    dht.extend_from_slice(&AC_BITS);
    dht.push(0x00);
    segment(&mut out, 0xC4, &dht);
    segment(&mut out, 0xDA, &[3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);

    let dc = huffman_codes(&DC_BITS);
    let (eob, eob_len) = huffman_codes(&AC_BITS)[0];
    let mut bits = JpegBits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    let mut pred = [0i32; 3];
    for by in 0..h / 8 {
        for bx in 0..w / 8 {
            let c = ycbcr(jpeg_block(design, bx, by));
            for (pred, sample) in pred.iter_mut().zip(c) {
                let value = sample - 128;
                let diff = value - *pred;
                *pred = value;
                let cat = 32 - diff.unsigned_abs().leading_zeros();
                let (code, len) = dc[cat as usize];
                bits.put(code, len);
                if cat > 0 {
                    let extra = if diff < 0 { diff - 1 } else { diff };
                    bits.put(extra as u32 & ((1 << cat) - 1), cat);
                }
                bits.put(eob, eob_len);
            }
        }
    }
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

// ---------------------------------------------------------------------------------------------
// GIF (GIF89a, 16 colours)

/// A complete GIF file (header … trailer) of the design.
pub(crate) fn gif(design: &Design) -> Vec<u8> {
    let (w, h) = EMOTION_SIZE;
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&(w as u16).to_le_bytes());
    out.extend_from_slice(&(h as u16).to_le_bytes());
    // Global colour table of 2^(3+1) entries, 8 bits per primary.
    out.extend_from_slice(&[0xF3, 0, 0]);
    for c in emotion_palette(design) {
        out.extend_from_slice(&c);
    }
    out.push(0x2C);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(w as u16).to_le_bytes());
    out.extend_from_slice(&(h as u16).to_le_bytes());
    out.push(0);
    // LZW with minimum code size 4: codes are 5 bits wide; a clear code every 14 pixels keeps the
    // decoder's table from reaching 32 entries, so the width never grows.
    const CLEAR: u32 = 16;
    const END: u32 = 17;
    out.push(4);
    let mut data = Vec::new();
    let (mut acc, mut n) = (0u32, 0u32);
    let mut put = |code: u32, data: &mut Vec<u8>| {
        acc |= code << n;
        n += 5;
        while n >= 8 {
            data.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    };
    put(CLEAR, &mut data);
    let mut run = 0;
    for y in 0..h {
        for x in 0..w {
            if run == 14 {
                put(CLEAR, &mut data);
                run = 0;
            }
            put(u32::from(emotion_pixel(design, x, y)), &mut data);
            run += 1;
        }
    }
    put(END, &mut data);
    if n > 0 {
        data.push(acc as u8);
    }
    for block in data.chunks(255) {
        out.push(block.len() as u8);
        out.extend_from_slice(block);
    }
    out.push(0);
    out.push(0x3B);
    out
}

// ---------------------------------------------------------------------------------------------
// PNG (4-bit palette, stored deflate)

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                crc >> 1 ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    b << 16 | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A complete PNG file (signature … IEND) of the design.
pub(crate) fn png(design: &Design) -> Vec<u8> {
    let (w, h) = EMOTION_SIZE;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[4, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let plte: Vec<u8> = emotion_palette(design).concat();
    chunk(&mut out, b"PLTE", &plte);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in (0..w).step_by(2) {
            raw.push(emotion_pixel(design, x, y) << 4 | emotion_pixel(design, x + 1, y));
        }
    }
    // zlib: CMF/FLG, one final stored block, adler32. The picture is far below 65535 bytes.
    let mut z = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(&raw);
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn standard_dc_table_gives_the_annex_k_codes() {
        let dc = huffman_codes(&DC_BITS);
        assert_eq!(dc[0], (0b00, 2));
        assert_eq!(dc[5], (0b110, 3));
        assert_eq!(dc[6], (0b1110, 4));
        assert_eq!(dc[11], (0b1_1111_1110, 9));
    }

    #[test]
    fn designs_differ_per_media_and_are_mirrored() {
        let a = Design::of(1, 10);
        assert_eq!(a, Design::of(1, 10));
        assert_ne!(a, Design::of(1, 11));
        for row in a.cells {
            assert_eq!(row[0], row[4]);
            assert_eq!(row[1], row[3]);
        }
    }
}
