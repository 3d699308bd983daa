//! A record as the console reads it: the typed [`Record`] plus the fields that newer pipelines add
//! (`recalls` on a recall, `consent` on messages with external contacts), which are used when present
//! and ignored when absent. Also the one-line text rendering shared by transcripts and exports.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wecom_model::{Content, Record};

/// What a recall record says it recalls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallRef {
    pub msgid: String,
    #[serde(default)]
    pub seq: Option<u64>,
}

/// Consent of the external contact, as checked by the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub status: String,
    #[serde(default)]
    pub checked_at: Option<Value>,
}

/// A record read from a line, with the console's position for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub record: Record,
    pub recalls: Option<RecallRef>,
    pub consent: Option<Consent>,
    /// The console's ingest position (0 until indexed).
    pub ingest: u64,
}

impl Msg {
    /// Parses a record line. `None` when the line is not a message record.
    pub fn parse(line: &[u8]) -> Result<Msg, serde_json::Error> {
        let mut v: Value = serde_json::from_slice(line)?;
        let (recalls, consent) = match v.as_object_mut() {
            Some(obj) => (
                obj.remove("recalls")
                    .and_then(|r| serde_json::from_value::<RecallRef>(r).ok()),
                obj.remove("consent")
                    .and_then(|c| serde_json::from_value::<Consent>(c).ok()),
            ),
            None => (None, None),
        };
        let record: Record = serde_json::from_value(v)?;
        Ok(Msg {
            record,
            recalls,
            consent,
            ingest: 0,
        })
    }

    /// The msgtype: the record's, else its content's (`switch`).
    pub fn msgtype(&self) -> &str {
        self.record
            .msgtype
            .as_deref()
            .unwrap_or_else(|| self.record.content.msgtype())
    }

    /// The msgid this record recalls: `recalls.msgid` when the pipeline set it, else a revoke's
    /// `pre_msgid`.
    pub fn recalled_msgid(&self) -> Option<&str> {
        if let Some(r) = &self.recalls {
            return Some(r.msgid.as_str()).filter(|s| !s.is_empty());
        }
        match &self.record.content {
            Content::Revoke(r) if !r.pre_msgid.is_empty() => Some(r.pre_msgid.as_str()),
            _ => None,
        }
    }

    /// Who spoke: the sender userid, or `(system)` for messages without one.
    pub fn speaker(&self) -> &str {
        self.record
            .from
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("(system)")
    }

    /// The text rendering on one line, media as `[marker](object_key)` placeholders: `[image](media/…)`,
    /// `[file: a.pdf](media/…)`; newlines become ` ⏎ `.
    pub fn line_text(&self) -> String {
        let r = &self.record;
        let text = r.text.trim_end().replace("\r\n", "\n").replace('\n', " ⏎ ");
        let keys: Vec<(&str, &str)> = r
            .media
            .iter()
            .filter_map(|m| m.object_key.as_deref().map(|k| (m.kind.as_str(), k)))
            .collect();
        let single_marker = text.starts_with('[')
            && text.ends_with(']')
            && !text[1..].contains('[')
            && !text.contains('⏎');
        match keys.as_slice() {
            [] => text,
            [(_, key)] if single_marker => format!("{text}({key})"),
            many => {
                let mut out = text;
                for (kind, key) in many {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(&format!("[{kind}]({key})"));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(extra: &str, content: &str, text: &str, media: &str) -> String {
        format!(
            r#"{{"schema":"wecom-archive.message.v1","corp_id":"ww1","stream":"corp","seq":7,"msgid":"m7","action":"send","from":"zhangsan","to":["lisi"],"roomid":null,"conversation_id":"single:lisi|zhangsan","send_time":"2026-01-01T00:00:00.000Z","msgtime_ms":1767225600000,"msgtype":"x","external":false,"updown_stream":false,"content":{content},"media":[{media}],"text":{text:?},"key_version":1{extra}}}"#
        )
    }

    #[test]
    fn reads_new_fields_when_present_and_without_them() {
        let plain = line(
            "",
            r#"{"kind":"revoke","data":{"pre_msgid":"old1"}}"#,
            "[recalled old1]",
            "",
        );
        let m = Msg::parse(plain.as_bytes()).expect("parses");
        assert_eq!(m.recalled_msgid(), Some("old1"));
        assert_eq!(m.consent, None);
        let with = line(
            r#","recalls":{"msgid":"old2","seq":3},"consent":{"status":"Agree","checked_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"kind":"revoke","data":{"pre_msgid":"old1"}}"#,
            "[recalled old1]",
            "",
        );
        let m = Msg::parse(with.as_bytes()).expect("parses");
        assert_eq!(m.recalled_msgid(), Some("old2"));
        assert_eq!(m.consent.as_ref().map(|c| c.status.as_str()), Some("Agree"));
    }

    #[test]
    fn line_text_places_media_keys() {
        let media = r#"{"kind":"file","sdkfileid":"f","md5sum":null,"size":3,"fileext":"pdf","object_key":"media/ww1/md5/a.pdf","status":"pending"}"#;
        let m = Msg::parse(
            line(
                "",
                r#"{"kind":"file","data":{"filename":"a.pdf","fileext":"pdf","sdkfileid":"f","md5sum":""}}"#,
                "[file: a.pdf]",
                media,
            )
            .as_bytes(),
        )
        .expect("parses");
        assert_eq!(m.line_text(), "[file: a.pdf](media/ww1/md5/a.pdf)");
        let m = Msg::parse(
            line(
                "",
                r#"{"kind":"text","data":{"content":"a\nb"}}"#,
                "a\nb",
                "",
            )
            .as_bytes(),
        )
        .expect("parses");
        assert_eq!(m.line_text(), "a ⏎ b");
    }
}
