//! Embedded local storage for the archive pipeline: the default sink (NDJSON segment files) and
//! the cursor store.
//!
//! Everything here is blocking std I/O; the async pipeline calls it from `spawn_blocking`.
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
mod segment;
mod sink;

pub use cursor::{sanitize_stream, Cursor, CursorStore, CURSOR_VERSION};
pub use error::StoreError;
pub use segment::{list_segments, read_lines, Lines};
pub use sink::{LineKind, LocalSink, OutputLine, RecoveryReport, SinkOptions};
