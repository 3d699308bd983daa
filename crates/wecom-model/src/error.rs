//! Errors of the model crate.
//!
//! All of them mean one decrypted item is not a message: item-level permanent (dead-letter it as
//! `parse_failed` and move on), never retriable, never fatal. Messages name the problem, never the content.

/// A decrypted item that is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("decrypted message is not valid json: {detail}")]
    NotJson { detail: String },
    #[error("decrypted message is not a json object (found {found})")]
    NotObject { found: &'static str },
    #[error("decrypted message has no msgid")]
    MissingMsgid,
}

/// Renders an error and its causes once each, outermost first, joined by `: ` — what a log line or a
/// string-typed error field should carry. Each error type in the project says a cause either in its own
/// message or through `source()`, never both, so nothing repeats.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer thing failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_says_each_cause_once_outermost_first() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&e), "outer thing failed: disk on fire");
    }
}
