//! Puts the git revision of the build into `--version` (`WECOM_GIT_REV`; "unknown" outside a git checkout,
//! e.g. a source tarball). `WECOM_GIT_REV` set in the environment wins (for builds from an exported tree).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WECOM_GIT_REV");
    let rev = std::env::var("WECOM_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves (a commit, a checkout); harmless when the files do not exist.
    for f in ["../../.git/HEAD", "../../.git/refs/heads"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-env=WECOM_GIT_REV={rev}");
}
