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
