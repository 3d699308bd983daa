//! The ingestion pipeline: walks an archive stream by seq, decrypts on a bounded blocking pool, normalizes,
//! writes to every configured output, and commits the cursor only past what every output acknowledged.
//!
//! An item's path, one hop per module: [`fetch`] (pages by seq, de-duplicated) → [`decrypt`] (chunks on
//! blocking threads, in order) → [`process`] (RSA unwrap, message cipher, normalize) → [`sink`] (one page
//! at a time) → [`outputs`] (local files and/or Kafka, acknowledged) → the cursor commit.
//!
//! Enrichments on the way: room metadata ([`rooms`], in the processor), consent ([`consent`], in the sink
//! task, in seq order), recall links (`recall`, in the outputs).
//!
//! Entry points: [`run::run`] (the live pipeline), [`replay::replay`], [`redrive::redrive`] (re-process dead
//! letters), [`config::Config::load`] (the TOML config). See ARCHITECTURE.md for the data flow and the
//! invariants.

pub mod cluster;
pub mod config;
pub mod consent;
mod decrypt;
pub mod error;
mod fetch;
mod intent;
mod lock;
pub mod media;
pub mod notify;
pub mod ops;
pub mod outputs;
mod oversize;
pub mod process;
mod progress;
mod recall;
pub mod redrive;
pub mod replay;
pub mod room_history;
pub mod rooms;
pub mod run;
mod scope;
pub mod sdk;
mod sink;
pub mod source;
pub mod stream;

pub use config::{Config, Validated};
pub use error::PipelineError;
pub use run::run;
pub use scope::{RetentionCheck, RETENTION_GAP_SEQS};
pub use source::Source;
pub use stream::{RunOptions, RunSummary, StreamSel};
