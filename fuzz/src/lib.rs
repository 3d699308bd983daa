//! Helpers shared by the fuzz targets (each target is one file under `fuzz_targets/`).
//!
//! The targets drive the crates' public APIs only, so a target breaks at compile time, not silently,
//! when an API it checks changes.

use std::path::{Path, PathBuf};

/// A directory private to this process for targets that need files, emptied before each input.
///
/// It lives under `$WECOM_FUZZ_SCRATCH` (set by `scripts/fuzz.sh`, which removes it afterwards), else
/// under `/dev/shm` when present (a tmpfs: per-input files cost no disk I/O), else the temp dir.
pub fn fresh_scratch_dir(target: &str) -> PathBuf {
    let base = std::env::var_os("WECOM_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("wecom-fuzz-{target}-{}", std::process::id()));
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot empty scratch dir {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create scratch dir {}: {e}", dir.display()));
    dir
}

/// Every file under `dir` (recursively) with its bytes, sorted by path: a snapshot to compare a
/// directory before and after an operation that must not change it.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()))
                .path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// The simulator's archive private keys by `publickey_ver` (committed test keys, see
/// `config/sim-keys/README.md`).
pub const SIM_KEYS: [(u32, &str); 4] = [
    (1, include_str!("../../config/sim-keys/v1.pem")),
    (2, include_str!("../../config/sim-keys/v2.pem")),
    (3, include_str!("../../config/sim-keys/v3.pem")),
    (4, include_str!("../../config/sim-keys/v4.pem")),
];
