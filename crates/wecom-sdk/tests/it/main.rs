//! Integration tests of the SDK pool: against Tencent's real library (`real_sdk`, needs
//! `WECOM_TEST_SDK_LIB` from `scripts/fetch-sdk.sh`) and, end to end, against the stand-in library over
//! the simulator (`standin`, needs `cargo build -p wecom-sdk-standin` first).

mod common;
mod real_sdk;
mod standin;
