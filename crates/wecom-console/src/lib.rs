//! The review console and transcript API: a read-only web server over the archive.
//!
//! `wecom-archive serve` keeps a full-text index ([tantivy](https://github.com/quickwit-oss/tantivy),
//! the engine Quickwit is built on) of every record up to date as records arrive — tailing the local
//! segment files, or consuming the messages topic in a consumer group — and serves over it:
//!
//! - a console for compliance reviewers: conversations, timelines with every msgtype rendered (pictures
//!   inline, voice playable, files as downloads, forwarded chat records expanded, recalls marked), search
//!   with highlighted hits, Markdown/JSON exports;
//! - a transcript API for language models (`/api/*`, described at `/api/openapi.json`), incremental
//!   with an opaque cursor that never misses nor repeats a message.
//!
//! Chinese is indexed one character per token and searched as phrases ([`tokenize`] says why, rather than
//! jieba). Every request needs a token (`reviewer` or `api` role) and is appended to an audit log.
//!
//! Only [`config`] is compiled without the default `server` feature, so the pipeline's configuration can
//! embed [`ConsoleConfig`] without the server's dependencies.

pub mod config;

pub use config::{ConsoleConfig, ConsoleConfigError, ConsoleSource, Role, User, UserConfig};

#[cfg(feature = "server")]
pub mod conversations;
#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
pub mod highlight;
#[cfg(feature = "server")]
pub mod index;
#[cfg(feature = "server")]
pub mod ingest;
#[cfg(feature = "server")]
pub mod msg;
#[cfg(feature = "server")]
pub mod query;
#[cfg(feature = "server")]
pub mod schema;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub mod tokenize;
#[cfg(feature = "server")]
pub mod view;

#[cfg(feature = "server")]
pub use error::ConsoleError;
#[cfg(feature = "server")]
pub use ingest::SourceSpec;
#[cfg(feature = "server")]
pub use server::{openapi_document, serve, AuditLine, Console, ServeSettings, SESSION_COOKIE};
