//! The ingestion pipeline: walks an archive stream by seq, decrypts on a bounded blocking pool, normalizes,
//! writes to the local sink, and commits the cursor only past what the sink has fsynced.
//!
//! Entry points: [`run::run`] (the live pipeline), [`redrive::redrive`] (re-process dead letters),
//! [`config::Config::load`] (the TOML config). See ARCHITECTURE.md for the data flow and the invariants.

pub mod archive;
pub mod config;
pub mod error;
mod lock;
pub mod media;
pub mod ops;
pub mod outputs;
pub mod process;
pub mod redrive;
pub mod replay;
pub mod rooms;
pub mod run;
pub mod sdk;

pub use config::{Config, Validated};
pub use error::PipelineError;
pub use run::{run, RunOptions, RunSummary, Source, StreamSel};
