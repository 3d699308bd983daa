//! Locating the worker, the real library and the stand-in.

use std::path::PathBuf;
use std::time::Duration;

use wecom_sdk::{SdkPoolConfig, Secret};

/// The worker binary cargo built for these tests.
pub fn worker_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wecom-sdk-worker"))
}

/// Tencent's library. Missing is a failure, never a silent pass.
pub fn real_lib() -> PathBuf {
    let Some(path) = std::env::var_os("WECOM_TEST_SDK_LIB") else {
        panic!(
            "WECOM_TEST_SDK_LIB is not set: run `eval \"$(scripts/fetch-sdk.sh)\"` to download \
             Tencent's libWeWorkFinanceSdk_C.so (PyPI pyweworkfinance 1.1.0) and point the tests at it"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "WECOM_TEST_SDK_LIB={} is not a file: run scripts/fetch-sdk.sh",
        path.display()
    );
    path
}

/// The stand-in cdylib, found in the profile directory this test binary was built into
/// (`<target>/<profile>/deps/it-HASH` → `<target>/<profile>/libwecom_sdk_standin.so`), which holds
/// whatever `CARGO_TARGET_DIR` is.
pub fn standin_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in <target>/<profile>/deps");
    let lib = profile_dir.join("libwecom_sdk_standin.so");
    assert!(
        lib.is_file(),
        "{} is missing: build the stand-in first with `cargo build -p wecom-sdk-standin` \
         (same profile and CARGO_TARGET_DIR as the tests; scripts/test.sh does it)",
        lib.display()
    );
    lib
}

/// A pool config with test-friendly timings.
pub fn pool_config(library: PathBuf, corp_id: &str, secret: &str, workers: usize) -> SdkPoolConfig {
    let mut cfg = SdkPoolConfig::new(library, corp_id, Secret::new(secret));
    cfg.worker_exe = Some(worker_exe());
    cfg.workers = workers;
    cfg.request_timeout = Duration::from_secs(30);
    cfg.sdk_timeout = Duration::from_secs(10);
    cfg.restart_backoff = Duration::from_millis(50);
    cfg.max_restart_backoff = Duration::from_millis(500);
    cfg
}
