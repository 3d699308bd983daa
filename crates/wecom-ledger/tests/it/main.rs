//! Integration tests of the raw archive: writing and reading back (local disk and memory), every kind
//! of tampering an auditor must see, room metadata history, and S3 with Object Lock (moto, when
//! `WECOM_TEST_S3_ENDPOINT` is set).

mod common;
mod outside;
mod rooms;
mod s3;
mod tamper;
mod write;
