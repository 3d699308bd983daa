//! The raw archive: every page of encrypted items the fetcher receives, kept unchanged in immutable
//! objects (local disk or S3, optionally under S3 Object Lock retention), so history outlives the
//! service's 5-day retention and a key added later can still recover items. Built so that an auditor
//! can be shown that it is everything and unaltered since it was received:
//!
//! - **segments** hold the pages as received; each has a **manifest entry** with its sha256, size,
//!   item count and seq range, and the hash of the entry before it (a hash chain per stream);
//! - **checkpoints**, signed with an Ed25519 key, record the chain head, the seq range and the item
//!   count, periodically and at the end of every run; the public key is published beside the archive;
//! - [`Ledger::verify`] re-reads it all and reports every break with its location;
//! - [`Ledger::pages`] reads it back for a replay, one checked segment at a time;
//! - room metadata snapshots ([`Ledger::put_room_snapshot`], [`Ledger::room_as_of`]) let a replay
//!   enrich records as the live run did.
//!
//! Invariants the writer keeps (with one writer per stream, which the pipeline's stream lock
//! guarantees): objects are only ever created, never replaced; a segment is written before its entry;
//! items at or below the stream's archived head are skipped, so segments never overlap and seqs
//! increase strictly across the manifest. A crash between a segment and its entry leaves an orphan
//! segment that the next write reuses (same bytes) or leaves alone (other bytes get another key);
//! `verify` reports it as a notice.
//!
//! Object keys are described in `layout.rs`; the bytes that are hashed and signed in [`manifest`].
//! The crate does not decrypt, and knows nothing of the pipeline's stages or cursors.

mod checkpoint;
mod config;
mod error;
mod layout;
mod ledger;
mod lock;
pub mod manifest;
mod read;
mod report;
mod rooms;
mod segment;
mod signing;
mod store;
mod verify;

pub use config::{
    ArchiveConfig, LockMode, ObjectLockConfig, SigningConfig, DEFAULT_CHECKPOINT_INTERVAL_SECS,
    MAX_RETAIN_DAYS,
};
pub use error::LedgerError;
pub use ledger::{Ledger, Signing};
pub use lock::Retention;
pub use manifest::{Checkpoint, ManifestEntry, CHECKPOINT_SCHEMA, ENTRY_SCHEMA};
pub use read::ArchivedPage;
pub use report::{Break, BreakKind, KeySource, Notice, NoticeKind, TrustedKey, VerifyReport};
pub use rooms::RoomSnapshot;
pub use signing::{PublicKey, SigningKey};
pub use verify::VerifyOptions;
