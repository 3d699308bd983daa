//! The command's own conveniences: `--version` names the git revision, every subcommand's help ends with
//! an example, completions and the man page are generated from the same definitions.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wecom-archive");

fn stdout(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn version_names_the_git_revision() {
    let v = stdout(&["--version"]);
    assert!(v.starts_with("wecom-archive "), "{v}");
    assert!(v.contains("(git "), "{v}");
}

#[test]
fn every_subcommand_help_ends_with_an_example() {
    let top = stdout(&["--help"]);
    let mut subcommands = Vec::new();
    let mut in_commands = false;
    for line in top.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            match line.split_whitespace().next() {
                Some(name) if line.starts_with("  ") && name != "help" => {
                    subcommands.push(name.to_string())
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    assert!(subcommands.len() >= 7, "{subcommands:?} from\n{top}");
    for sub in subcommands {
        let help = stdout(&[&sub, "--help"]);
        let tail = help.trim_end().rsplit("\n\n").next().unwrap_or_default();
        assert!(
            tail.starts_with("Example") && tail.contains(&format!("wecom-archive {sub}")),
            "`{sub} --help` does not end with an example:\n{help}"
        );
    }
}

#[test]
fn completions_and_man_page_are_generated() {
    let bash = stdout(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F") && bash.contains("replay"),
        "{bash}"
    );
    let zsh = stdout(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef wecom-archive"), "{zsh}");
    let man = stdout(&["man"]);
    assert!(
        man.contains(".TH wecom-archive") && man.contains("redrive"),
        "{man}"
    );
}

/// `verify` over what a run archived: clean, then one altered byte in a raw segment is a break and a
/// non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_clean_archive_and_an_altered_segment() {
    let server = crate::support::sim(9, 2_500, wecom_sim::FaultConfig::default()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = crate::support::write_config(tmp.path(), &server.base_url(), &data, "");
    let run = Command::new(BIN)
        .args(["run", "--until-caught-up", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let verify = || {
        Command::new(BIN)
            .args(["verify", "--config"])
            .arg(&path)
            .output()
            .expect("verify")
    };
    let clean = verify();
    let report = String::from_utf8_lossy(&clean.stdout).to_string();
    assert!(
        clean.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(
        report.contains("CLEAN") && report.contains("stream corp"),
        "{report}"
    );

    // Alter one byte of the first raw segment.
    let mut segments: Vec<std::path::PathBuf> = crate::support::files_under(&data)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        .collect();
    segments.sort();
    let first = segments.first().expect("a raw segment");
    let mut bytes = std::fs::read(first).expect("segment");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(first, bytes).expect("alter");
    let broken = verify();
    let report = String::from_utf8_lossy(&broken.stdout).to_string();
    assert!(!broken.status.success(), "{report}");
    assert!(report.contains("segment_altered"), "{report}");
    server.shutdown().await;
}
