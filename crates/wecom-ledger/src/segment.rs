//! The bytes of a segment: the page's items as received, one JSON object per line, gzip with a fixed
//! header (mtime 0) and level, so the same page always gives the same bytes (a rewrite after a crash
//! then finds the identical object). CPU work: called from blocking threads.

use std::io::{Read, Write};

use wecom_model::api::ChatDataItem;

use crate::manifest::sha256_hex;

/// A page encoded as a segment.
pub(crate) struct Encoded {
    pub(crate) gz: Vec<u8>,
    pub(crate) sha256: String,
}

pub(crate) fn encode(items: &[ChatDataItem]) -> Result<Encoded, String> {
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
    for item in items {
        let line =
            serde_json::to_vec(item).map_err(|e| format!("serialize seq {}: {e}", item.seq))?;
        enc.write_all(&line)
            .and_then(|()| enc.write_all(b"\n"))
            .map_err(|e| format!("compress: {e}"))?;
    }
    let gz = enc.finish().map_err(|e| format!("compress: {e}"))?;
    let sha256 = sha256_hex(&gz);
    Ok(Encoded { gz, sha256 })
}

/// The items of a segment; errors say what is wrong (line numbers from 1).
pub(crate) fn decode(gz: &[u8]) -> Result<Vec<ChatDataItem>, String> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut text)
        .map_err(|e| format!("not a readable gzip stream: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let item: ChatDataItem =
            serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_page_same_bytes_and_round_trip() {
        let items: Vec<ChatDataItem> = (1..=3)
            .map(|seq| {
                serde_json::from_value(serde_json::json!({
                    "seq": seq, "msgid": format!("m{seq}"), "publickey_ver": 1,
                    "encrypt_random_key": "k", "encrypt_chat_msg": "c", "extra": {"kept": [1, 2]}
                }))
                .expect("item")
            })
            .collect();
        let a = encode(&items).expect("encode");
        let b = encode(&items).expect("encode");
        assert_eq!(a.gz, b.gz);
        assert_eq!(a.sha256, sha256_hex(&a.gz));
        assert_eq!(decode(&a.gz).expect("decode"), items);
        assert!(decode(b"not gzip").is_err());
    }
}
