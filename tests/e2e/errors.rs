//! What an operator reads when a run cannot start: the binary's last line names the cause once, outermost
//! first, and says what to do.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{sim, write_config};

/// Runs `wecom-archive run --until-caught-up` on `config` and returns its `error:` line.
fn error_line(config: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wecom-archive"));
    cmd.args(["run", "--until-caught-up", "--config"])
        .arg(config)
        .env("WECOM_LOG", "error")
        .env_remove("WECOM_CORP_SECRET")
        .env_remove("WECOM_KEY_FILES")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the binary");
    assert!(!out.status.success(), "the run should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line in:\n{stderr}"))
        .to_string()
}

/// No part of the chain is said twice: split at ": " (how the chain is joined), no part repeats and no
/// part of five or more words occurs again inside another.
fn assert_said_once(line: &str) {
    let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, a) in parts.iter().enumerate() {
        for (j, b) in parts.iter().enumerate() {
            if i != j && a.split_whitespace().count() >= 5 {
                assert!(!b.contains(a), "{a:?} is said twice in {line:?}");
            }
        }
        assert_eq!(
            parts.iter().filter(|p| *p == a).count(),
            1,
            "{a:?} is said twice in {line:?}"
        );
    }
}

fn check(line: &str, names: &[&str], hint: &str) {
    eprintln!("{line}");
    assert_said_once(line);
    for n in names {
        assert!(line.contains(n), "{line:?} does not name {n:?}");
    }
    assert!(line.contains(hint), "{line:?} does not say {hint:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_failures_name_their_cause_once_and_what_to_do() {
    let server = sim(5, 50, wecom_sim::FaultConfig::default()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let base = write_config(tmp.path(), &server.base_url(), &data, "");
    let text = std::fs::read_to_string(&base).expect("config");
    let variant = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).expect("write config");
        p
    };

    // A wrong secret: the service answers 40001 to gettoken.
    let line = error_line(&base, &[("WECOM_CORP_SECRET", "not-the-secret")]);
    check(
        &line,
        &["wwsimcorp0001", "40001"],
        "check WECOM_CORP_SECRET",
    );

    // A key file that is not there.
    let missing = tmp.path().join("no-such-key.pem");
    let p = variant(
        "missing-key.toml",
        text.replace(
            &format!(
                "{}/v3.pem",
                crate::support::repo_root()
                    .join("config/sim-keys")
                    .display()
            ),
            &missing.display().to_string(),
        ),
    );
    let line = error_line(&p, &[]);
    check(&line, &[&missing.display().to_string()], "[keys]");

    // A broker nobody listens on.
    let p = variant(
        "no-broker.toml",
        text.replace("[sink]\n", "[sink]\nkind = \"kafka\"\n")
            + "\n[kafka]\nbrokers = \"127.0.0.1:1\"\nmessage_timeout_ms = 3000\n",
    );
    let line = error_line(&p, &[]);
    check(&line, &["127.0.0.1:1"], "check [kafka] brokers");

    // A config value out of range names its key.
    let p = variant(
        "bad-limit.toml",
        text.replace("limit = 1000", "limit = 5000"),
    );
    let line = error_line(&p, &[]);
    check(&line, &["fetch.limit", "5000"], "1..=1000");

    // The SDK library is not where the config says.
    let p = variant(
        "no-sdk.toml",
        text.replace(
            &format!("kind = \"http\"\nbase_url = \"{}\"", server.base_url()),
            "kind = \"sdk\"",
        ) + "\n[sdk]\nlibrary = \"/nonexistent/libWeWorkFinanceSdk_C.so\"\nworkers = 1\n",
    );
    let line = error_line(&p, &[]);
    check(
        &line,
        &["/nonexistent/libWeWorkFinanceSdk_C.so"],
        "[sdk] library",
    );

    server.shutdown().await;
}
