//! One encoding of names from outside (corp ids, stream names, room ids, replay names) into a single
//! path component: file names, directory names and object-key segments all use it.
//!
//! `[A-Za-z0-9_.-]` are kept, except a leading `.`; every other byte of the UTF-8 encoding (and `%`
//! itself) becomes `%XX` in upper-case hex. The mapping is **injective** — `%` is always escaped, so
//! two different names never share a component (rooms `a.b` and `a_b` stay apart) — and the result
//! is never empty, never starts with a dot, and never contains `/`. Names made only of the kept
//! characters (every real corp id, room id and the `corp` stream) are unchanged.

use crate::StoreError;

/// Encodes `name` as one path component (see the module docs). An empty name is refused.
pub fn encode_component(name: &str) -> Result<String, StoreError> {
    if name.is_empty() {
        return Err(StoreError::InvalidStream {
            stream: name.to_owned(),
            reason: "empty",
        });
    }
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The inverse of [`encode_component`]; `None` for text it cannot have produced.
pub fn decode_component(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = component.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (encode_component(&name).ok()? == component).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_cases() {
        for (name, want) in [
            ("corp", "corp"),
            (
                "wrjc7bDwAASxc8tZvBErFE02BtPWyAAA",
                "wrjc7bDwAASxc8tZvBErFE02BtPWyAAA",
            ),
            ("room:wr1", "room%3Awr1"),
            ("a.b", "a.b"),
            ("a_b", "a_b"),
            ("a%2Eb", "a%252Eb"),
            (".hidden", "%2Ehidden"),
            ("..", "%2E."),
            ("a/b", "a%2Fb"),
            ("群聊", "%E7%BE%A4%E8%81%8A"),
        ] {
            let got = encode_component(name).expect("encodes");
            assert_eq!(got, want, "{name:?}");
            assert_eq!(decode_component(&got).as_deref(), Some(name), "{name:?}");
        }
        assert!(encode_component("").is_err());
        assert_eq!(decode_component("a%2"), None);
        assert_eq!(decode_component("%61"), None, "not what the encoder writes");
    }

    proptest::proptest! {
        #[test]
        fn injective_and_safe(a in "\\PC{1,12}", b in "\\PC{1,12}") {
            let (ea, eb) = (encode_component(&a).unwrap(), encode_component(&b).unwrap());
            proptest::prop_assert_eq!(a == b, ea == eb);
            proptest::prop_assert!(!ea.starts_with('.') && !ea.contains('/') && !ea.is_empty());
            proptest::prop_assert_eq!(decode_component(&ea), Some(a));
        }
    }
}
