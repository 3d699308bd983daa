//! End-to-end tests: the whole pipeline (and the `wecom-archive` binary) against the archive simulator, with
//! the conservation check — every item the simulator served is in the output exactly once, as a record or
//! as a dead letter with the reason the simulator's ground truth predicts, and nothing else is.

mod support;

mod cli;
mod consent;
mod crash;
mod errors;
mod kafka;
mod kafka_loss;
mod media;
mod ops;
mod pipeline;
mod recalls;
mod replay;
mod rooms;
mod sdk;
