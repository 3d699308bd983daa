//! Types of the WeCom session archive (企业微信会话内容存档): the API envelopes, decrypted messages of every
//! msgtype, and the normalized `wecom-archive.message.v1` record.
//!
//! **This crate does no I/O** (no files, no network, no clock, no async): it is the shared vocabulary of the
//! other crates and must stay cheap to depend on and easy to test.

pub mod api;
mod error;
mod lenient;
pub mod message;
pub mod record;
mod secret;

pub use error::{error_chain, ModelError};
pub use message::{parse_message, Content, Message};
pub use record::{
    media_object_key, normalize, record_json_schema, DeadLetter, DeadLetterReason, MediaRef,
    MediaStatus, NormalizeContext, Record, RoomSummary, DEADLETTER_SCHEMA_ID, MESSAGE_SCHEMA_ID,
};
pub use secret::Secret;
