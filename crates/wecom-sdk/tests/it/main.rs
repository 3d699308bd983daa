//! Integration tests of the SDK pool: against Tencent's real library (`real_sdk`, needs
//! `WECOM_TEST_SDK_LIB` from `scripts/fetch-sdk.sh`) and, end to end, against the stand-in library over
//! the simulator (`standin`, needs `cargo build -p wecom-sdk-standin` first); batched `DecryptData` and
//! its crash isolation (`batch`); the gateway's forwarding of the metadata calls (`gateway`). The
//! workers' clean environment is checked by a test binary of its own (`tests/worker_env.rs`).

mod batch;
mod common;
mod gateway;
mod real_sdk;
mod standin;
