//! Escaping of raw control characters inside JSON strings.
//!
//! Some SDK builds emit U+0000..U+001F unescaped inside strings, which strict JSON parsers reject. Deleting
//! them would lose newlines and tabs, so they are rewritten as escapes that decode back to the same character.

use std::borrow::Cow;

/// Rewrites raw control characters (U+0000..U+001F) that appear inside JSON strings as escapes (`\n`, `\t`,
/// `\r`, `\b`, `\f`, or `\u00XX`). Bytes outside strings are left alone (JSON whitespace stays whitespace);
/// input without such characters is returned borrowed. Works on bytes: UTF-8 continuation bytes are never
/// below 0x20, so multi-byte characters pass through untouched.
pub fn escape_control_chars(input: &[u8]) -> Cow<'_, [u8]> {
    let mut in_string = false;
    let mut after_backslash = false;
    let mut out: Option<Vec<u8>> = None;

    for (i, &b) in input.iter().enumerate() {
        if in_string && b < 0x20 {
            let buf = out.get_or_insert_with(|| {
                let mut v = Vec::with_capacity(input.len() + 16);
                v.extend_from_slice(&input[..i]);
                v
            });
            if after_backslash {
                // `\` then a raw control character is no valid escape: complete the backslash (already
                // copied) as `\u005c` so both characters survive.
                buf.extend_from_slice(b"u005c");
                after_backslash = false;
            }
            match b {
                b'\n' => buf.extend_from_slice(b"\\n"),
                b'\t' => buf.extend_from_slice(b"\\t"),
                b'\r' => buf.extend_from_slice(b"\\r"),
                0x08 => buf.extend_from_slice(b"\\b"),
                0x0c => buf.extend_from_slice(b"\\f"),
                _ => buf.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            }
            continue;
        }
        if in_string {
            if after_backslash {
                after_backslash = false;
            } else if b == b'\\' {
                after_backslash = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        }
        if let Some(buf) = out.as_mut() {
            buf.push(b);
        }
    }
    match out {
        Some(buf) => Cow::Owned(buf),
        None => Cow::Borrowed(input),
    }
}
