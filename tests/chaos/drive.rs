//! Driving the binary: every `wecom-archive` process the campaign starts, how it ended (SIGKILLed, exited,
//! timed out), the committed cursor before and after, and what happened to the broker meanwhile — a journal
//! that places each lost or repeated seq in the run that passed it.

use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::broker::{signal, Broker};

/// How a process ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Killed,
    Exited(ExitStatus),
    /// Still running at its deadline; then SIGKILLed.
    TimedOut,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Exited(s) if s.success())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Killed => f.write_str("SIGKILL"),
            Outcome::Exited(s) => match s.code() {
                Some(c) => write!(f, "exit {c}"),
                None => write!(f, "{s}"),
            },
            Outcome::TimedOut => f.write_str("timed out, SIGKILL"),
        }
    }
}

/// One process of the campaign.
#[derive(Debug, Clone)]
pub struct Entry {
    pub n: usize,
    pub phase: &'static str,
    pub args: String,
    /// Start, in ms since the campaign began.
    pub at_ms: u128,
    pub ms: u128,
    pub cursor_before: u64,
    pub cursor_after: u64,
    pub outcome: Outcome,
    /// Broker restarts and config changes during or before it.
    pub note: String,
    /// The end of its stderr, when it failed.
    pub stderr_tail: String,
    pub stdout: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{:<3} {:<8} {:<28} +{:>6}ms {:>6}ms cursor {:>6} -> {:<6} {}",
            self.n,
            self.phase,
            self.args,
            self.at_ms,
            self.ms,
            self.cursor_before,
            self.cursor_after,
            self.outcome
        )?;
        if !self.note.is_empty() {
            write!(f, " [{}]", self.note)?;
        }
        if !self.stdout.trim().is_empty() {
            write!(f, "\n      stdout: {}", self.stdout.trim())?;
        }
        if !self.stderr_tail.is_empty() {
            for line in self.stderr_tail.lines() {
                write!(f, "\n      | {line}")?;
            }
        }
        Ok(())
    }
}

/// A broker outage inside one run's life: it goes down `at` ms after the run started, for `down` ms.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    pub at: u64,
    pub down: u64,
}

pub struct Driver {
    bin: PathBuf,
    pub config: PathBuf,
    logs: PathBuf,
    cursor_file: PathBuf,
    began: Instant,
    pub journal: Vec<Entry>,
    pub kills: u32,
    /// Process groups of every process started (each is its own group leader; its SDK workers join it).
    groups: Vec<i32>,
    /// Said in the next entry's note (a config change between runs).
    pending_note: String,
}

impl Driver {
    pub fn new(config: &Path, data_dir: &Path, logs: &Path) -> Driver {
        std::fs::create_dir_all(logs).expect("logs dir");
        Driver {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_wecom-archive")),
            config: config.to_path_buf(),
            logs: logs.to_path_buf(),
            cursor_file: data_dir.join("wwsimcorp0001/corp/corp.cursor.json"),
            began: Instant::now(),
            journal: Vec::new(),
            kills: 0,
            groups: Vec::new(),
            pending_note: String::new(),
        }
    }

    pub fn note(&mut self, text: &str) {
        if !self.pending_note.is_empty() {
            self.pending_note.push_str("; ");
        }
        self.pending_note.push_str(text);
    }

    /// The committed seq of the corp stream (0 before the first commit).
    pub fn cursor(&self) -> u64 {
        std::fs::read(&self.cursor_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0)
    }

    fn spawn(&mut self, args: &[&str]) -> (Child, PathBuf, PathBuf) {
        let n = self.journal.len();
        let err = self.logs.join(format!("{n:04}.stderr"));
        let out = self.logs.join(format!("{n:04}.stdout"));
        let child = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env(
                "WECOM_LOG",
                std::env::var("WECOM_CHAOS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("spawn wecom-archive");
        self.groups.push(child.id() as i32);
        (child, out, err)
    }

    /// Runs `args` for `life_ms`, then SIGKILLs it if it is still running; the broker goes down and up
    /// again meanwhile when `outage` says so.
    pub async fn run_for(
        &mut self,
        phase: &'static str,
        args: &[&str],
        life_ms: u64,
        outage: Option<Outage>,
        broker: &mut Broker,
    ) -> Outcome {
        let cursor_before = self.cursor();
        let start = Instant::now();
        let (mut child, out, err) = self.spawn(args);
        let mut note = std::mem::take(&mut self.pending_note);
        let mut exited = None;
        let mut life = Duration::from_millis(life_ms);
        if let Some(o) = outage {
            exited = wait_until(&mut child, start + Duration::from_millis(o.at)).await;
            tokio::task::block_in_place(|| broker.down());
            tokio::time::sleep(Duration::from_millis(o.down)).await;
            tokio::task::block_in_place(|| broker.restart_up());
            let when = if exited.is_some() {
                "after it exited"
            } else {
                "while it ran"
            };
            note_push(
                &mut note,
                &format!("broker down {}ms at +{}ms, {when}", o.down, o.at),
            );
            // let the run meet the broker again before its SIGKILL
            life = life.max(start.elapsed() + Duration::from_millis(life_ms / 2 + 300));
        }
        if exited.is_none() {
            exited = wait_until(&mut child, start + life).await;
        }
        let outcome = match exited {
            Some(status) => Outcome::Exited(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                self.kills += 1;
                Outcome::Killed
            }
        };
        self.record(
            phase,
            args,
            start,
            cursor_before,
            outcome.clone(),
            note,
            &out,
            &err,
        );
        outcome
    }

    /// Runs `args` to its end (at most `timeout`).
    pub async fn run_to_end(
        &mut self,
        phase: &'static str,
        args: &[&str],
        timeout: Duration,
    ) -> Outcome {
        let cursor_before = self.cursor();
        let start = Instant::now();
        let (mut child, out, err) = self.spawn(args);
        let note = std::mem::take(&mut self.pending_note);
        let outcome = match wait_until(&mut child, start + timeout).await {
            Some(status) => Outcome::Exited(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Outcome::TimedOut
            }
        };
        self.record(
            phase,
            args,
            start,
            cursor_before,
            outcome.clone(),
            note,
            &out,
            &err,
        );
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        phase: &'static str,
        args: &[&str],
        start: Instant,
        cursor_before: u64,
        outcome: Outcome,
        note: String,
        out: &Path,
        err: &Path,
    ) {
        let failed = matches!(&outcome, Outcome::TimedOut)
            || matches!(&outcome, Outcome::Exited(s) if !s.success());
        let stderr_tail = if failed { tail(err, 6) } else { String::new() };
        let entry = Entry {
            n: self.journal.len(),
            phase,
            args: args.join(" "),
            at_ms: start.duration_since(self.began).as_millis(),
            ms: start.elapsed().as_millis(),
            cursor_before,
            cursor_after: self.cursor(),
            outcome,
            note,
            stderr_tail,
            stdout: std::fs::read_to_string(out).unwrap_or_default(),
        };
        println!("{entry}");
        self.journal.push(entry);
    }

    /// Process groups that still have members (SDK workers that outlived their SIGKILLed parent), after
    /// which every process of the campaign is gone.
    pub fn reap_orphans(&mut self) -> Vec<i32> {
        let mut alive = Vec::new();
        for g in std::mem::take(&mut self.groups) {
            let members = our_members(g, &self.bin);
            if !members.is_empty() {
                alive.push(g);
            }
            for pid in members {
                signal("-KILL", &pid.to_string());
            }
        }
        alive
    }
}

impl Drop for Driver {
    /// A campaign cut short by a panic leaves no process of its own behind (after `reap_orphans` there is
    /// nothing left to end).
    fn drop(&mut self) {
        self.reap_orphans();
    }
}

/// The processes of group `pgid` running `bin` (ours: a pid of a finished process may have been reused).
fn our_members(pgid: i32, bin: &Path) -> Vec<u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let bin = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
    proc.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so split after the last ')'
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|p| p.parse::<i32>().ok());
            pgrp == Some(pgid)
                && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == bin)
        })
        .collect()
}

fn note_push(note: &mut String, text: &str) {
    if !note.is_empty() {
        note.push_str("; ");
    }
    note.push_str(text);
}

/// Waits until the child exits (its status) or `deadline` passes (`None`).
async fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(25))).await;
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
