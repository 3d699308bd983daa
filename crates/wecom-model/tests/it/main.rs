//! Integration tests of wecom-model: one binary, one module per area.

mod messages;
mod props;
mod records;
mod samples;
