//! The transcript API's opaque cursor: where the previous page ended, for one conversation of one index.
//!
//! It holds the index's epoch (a rebuilt index numbers records anew, so an old cursor is refused rather
//! than silently misplaced), the conversation, the last ingest number returned, and the lower time bound
//! of the first call (kept, so later pages answer the same question).

use base64::Engine as _;

const VERSION: &str = "c1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub conversation: String,
    pub after_ingest: u64,
    pub from_ms: Option<u64>,
}

/// Why a cursor cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorError {
    Malformed,
    /// From another index (it was rebuilt): start again.
    OtherIndex,
    OtherConversation,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let from = self.from_ms.map(|v| v.to_string()).unwrap_or_default();
        let text = format!(
            "{VERSION}\n{}\n{}\n{from}\n{}",
            self.epoch, self.after_ingest, self.conversation
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(s: &str, epoch: &str, conversation: &str) -> Result<Cursor, CursorError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| CursorError::Malformed)?;
        let text = String::from_utf8(bytes).map_err(|_| CursorError::Malformed)?;
        let mut parts = text.splitn(5, '\n');
        let (Some(VERSION), Some(e), Some(i), Some(f), Some(c)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CursorError::Malformed);
        };
        let after_ingest = i.parse().map_err(|_| CursorError::Malformed)?;
        let from_ms = match f {
            "" => None,
            f => Some(f.parse().map_err(|_| CursorError::Malformed)?),
        };
        if e != epoch {
            return Err(CursorError::OtherIndex);
        }
        if c != conversation {
            return Err(CursorError::OtherConversation);
        }
        Ok(Cursor {
            epoch: e.to_owned(),
            conversation: c.to_owned(),
            after_ingest,
            from_ms,
        })
    }

    /// Whether `s` looks like a cursor rather than a time.
    pub fn looks_like(s: &str) -> bool {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .is_ok_and(|b| b.starts_with(VERSION.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_cursors() {
        let c = Cursor {
            epoch: "e1".into(),
            conversation: "single:a|b".into(),
            after_ingest: 42,
            from_ms: Some(7),
        };
        let s = c.encode();
        assert!(Cursor::looks_like(&s));
        assert!(!Cursor::looks_like("2026-01-01"));
        assert_eq!(Cursor::decode(&s, "e1", "single:a|b"), Ok(c));
        assert_eq!(
            Cursor::decode(&s, "e2", "single:a|b"),
            Err(CursorError::OtherIndex)
        );
        assert_eq!(
            Cursor::decode(&s, "e1", "wr1"),
            Err(CursorError::OtherConversation)
        );
        assert_eq!(
            Cursor::decode("!!", "e1", "wr1"),
            Err(CursorError::Malformed)
        );
    }
}
