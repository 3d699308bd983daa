//! Storage for the archive pipeline: the embedded default sink (NDJSON segment files), the cursor
//! store, the one owner of the on-disk layout ([`StreamLayout`], with the injective encoding of names
//! into path components in [`names`]), the atomic file replace every state file uses, and the shared
//! object-store configuration ([`objects`]) of media and the raw archive.
//!
//! Everything here except [`Objects`] is blocking std I/O; the async pipeline calls it from
//! `spawn_blocking`.
//! The crate knows nothing about the record model: an output line is an opaque JSON object with
//! a `seq`, which is all that crash recovery needs.
//!
//! The exactly-once protocol this crate supports:
//!
//! 1. `LocalSink::recover(cursor)` truncates torn tails and reports which seqs past the committed
//!    cursor are already on disk;
//! 2. the pipeline writes every line whose seq is not in that set with `LocalSink::write_batch`,
//!    which returns only once the lines are fsynced;
//! 3. only then does it call `CursorStore::commit` with the batch's max seq.
//!
//! A crash between any two steps, or in the middle of one, leaves a state that step 1 repairs.

mod cursor;
mod error;
mod fsutil;
pub mod layout;
pub mod names;
pub mod objects;
mod recover;
mod segment;
mod sink;

pub use cursor::{Cursor, CursorStore, CURSOR_VERSION};
pub use error::StoreError;
pub use fsutil::{atomic_write, now_unix_ms};
pub use layout::{stream_dir_name, StreamLayout};
pub use names::{decode_component, encode_component};
pub use objects::{
    ObjectStoreConfig, ObjectStoreConfigError, Objects, StoreKind, S3_ACCESS_KEY_ENV, S3_SECRET_ENV,
};
pub use segment::{list_segments, read_lines, Lines};
pub use sink::{LineKind, LocalSink, OutputLine, RecoveryReport, SinkOptions};
