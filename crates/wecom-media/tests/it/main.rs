//! Integration tests of the media worker against the simulator (with media faults), on local disk
//! and on a real S3-compatible server (moto, started by `scripts/test-services.sh start`).

mod common;
mod local;
mod s3;
