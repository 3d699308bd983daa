//! Throughput of every path next to the machine's ceiling, in one table: `cargo bench -p wecom-bench
//! --bench pipeline`.
//!
//! 1. The ceiling: aws-lc RSA-2048 private operations per second (the unwrap of `encrypt_random_key`, one
//!    per message, the pipeline's dominant cost) on all cores at once, one thread per core.
//! 2. The paths, each run in a child process of this binary so that its peak RSS (`VmHWM`) is its own:
//!    - `http → local`: the simulator in another process (also started from this binary), the pipeline
//!      fetching over HTTP and writing local segment files and the raw archive;
//!    - `raw archive → local`: the records again from that raw archive (a replay): the pipeline without
//!      the simulator's CPU;
//!    - `raw archive → kafka` (when `WECOM_TEST_KAFKA_BROKERS` is set; "skipped" otherwise);
//!    - `raw archive → sdk cipher`: `cipher.kind = "sdk"` with the test-only stand-in library in SDK worker
//!      processes (RSA unwrap in the pipeline, `DecryptData` in the workers; their peak RSS is reported
//!      beside the pipeline's).
//! 3. A markdown table of msgs/s, ratio to the ceiling and peak RSS. The machine is usually shared, so
//!    the wall-clock ratio moves with the load; beside it, messages per CPU-second of the pipeline (and
//!    its SDK workers) against RSA operations per CPU-second: how much of its CPU the pipeline spends on
//!    anything but RSA, whatever the load. The ceiling is measured before and after the paths and the
//!    better figure used, so the ratios are lower bounds.
//!
//! Environment: `WECOM_BENCH_MESSAGES` (default 30000; 300000 checks that peak RSS stays flat),
//! `WECOM_TEST_KAFKA_BROKERS`, `WECOM_BENCH_STANDIN_LIB` (the stand-in library; default
//! `libwecom_sdk_standin.so` of this target directory's profile, built with `cargo build --release -p
//! wecom-sdk-standin` when it is missing). The machine is usually shared: the load average is printed
//! before and after.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wecom_bench::child::{child_role, SimProcess};
use wecom_bench::measure::{
    child_pids, cores, cpu_secs, load_average, mib, own_peak_rss_kib, peak_rss_kib,
    rsa_unwraps_per_sec,
};
use wecom_pipeline::replay::ReplayRequest;
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

/// First argument of this binary started as one measured path.
const PATH_ROLE: &str = "bench-path";
const CORP: &str = "wwsimcorp0001";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sim-keys");

#[derive(Clone, Copy, PartialEq, Eq)]
enum PathKind {
    HttpLocal,
    ArchiveLocal,
    ArchiveKafka,
    ArchiveSdk,
}

impl PathKind {
    fn id(self) -> &'static str {
        match self {
            PathKind::HttpLocal => "http-local",
            PathKind::ArchiveLocal => "archive-local",
            PathKind::ArchiveKafka => "archive-kafka",
            PathKind::ArchiveSdk => "archive-sdk",
        }
    }

    fn label(self) -> &'static str {
        match self {
            PathKind::HttpLocal => "http (simulator process) → local",
            PathKind::ArchiveLocal => "raw archive → local",
            PathKind::ArchiveKafka => "raw archive → kafka",
            PathKind::ArchiveSdk => "raw archive → sdk cipher (stand-in)",
        }
    }

    fn from_id(id: &str) -> Option<Self> {
        [
            PathKind::HttpLocal,
            PathKind::ArchiveLocal,
            PathKind::ArchiveKafka,
            PathKind::ArchiveSdk,
        ]
        .into_iter()
        .find(|k| k.id() == id)
    }
}

/// What one path's child process reports.
#[derive(Default)]
struct Measured {
    messages: u64,
    secs: f64,
    rss_kib: u64,
    /// CPU seconds of the pipeline process during the run.
    cpu_secs: f64,
    workers: usize,
    workers_rss_kib: u64,
    /// CPU seconds of the SDK workers during the run.
    workers_cpu_secs: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.secs
    }

    /// Messages per CPU-second of the pipeline and its SDK workers.
    fn per_cpu_sec(&self) -> f64 {
        self.messages as f64 / (self.cpu_secs + self.workers_cpu_secs)
    }
}

/// The ceiling, measured twice (before and after the paths, as the machine's load changes): the larger
/// of the two, so that the ratios are lower bounds.
struct Ceiling {
    cores: usize,
    single: f64,
    all_cores: f64,
    /// RSA ops per CPU-second (the CPU the measuring threads got), which a shared machine's load does not
    /// change.
    per_cpu_sec: f64,
}

impl Ceiling {
    fn measure(cores: usize) -> Self {
        let single = rsa_unwraps_per_sec(1, Duration::from_secs(2));
        let cpu_before = cpu_secs(std::process::id()).unwrap_or(0.0);
        let run = Duration::from_secs(3);
        let all_cores = rsa_unwraps_per_sec(cores, run);
        let cpu = cpu_secs(std::process::id()).unwrap_or(0.0) - cpu_before;
        Self {
            cores,
            single,
            all_cores,
            per_cpu_sec: all_cores * run.as_secs_f64() / cpu.max(0.01),
        }
    }

    fn print(&self, when: &str) {
        println!(
            "ceiling ({when}): aws-lc rsa-2048 private ops/s: {:.0} on one core, {:.0} on {} threads at once ({:.0} per CPU-second)",
            self.single, self.all_cores, self.cores, self.per_cpu_sec
        );
    }

    fn max(self, other: Self) -> Self {
        if other.all_cores > self.all_cores {
            other
        } else {
            self
        }
    }
}

/// A row of the table.
struct Row {
    kind: PathKind,
    outcome: Result<Measured, String>,
    note: String,
}

fn main() -> ExitCode {
    if let Some(code) = child_role() {
        return code;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(PATH_ROLE) {
        return match (args.get(2).and_then(|k| PathKind::from_id(k)), args.get(3)) {
            (Some(kind), Some(config)) => path_main(kind, Path::new(config)),
            _ => {
                eprintln!("usage: {PATH_ROLE} KIND CONFIG");
                ExitCode::FAILURE
            }
        };
    }
    bench();
    ExitCode::SUCCESS
}

fn bench() {
    let messages: u64 = std::env::var("WECOM_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    let cores = cores();
    let load_before = load_average();
    println!("machine: {cores} cores; load average before: {load_before}");

    let first = Ceiling::measure(cores);
    first.print("before");
    let ceiling_before = first.all_cores;

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let sim_cfg = wecom_sim::SimConfig {
        seed: 3,
        messages,
        // The pipeline runs with media off: small attachments keep the simulator's one-off md5 walk short
        // without changing what the pipeline does per message.
        media: wecom_sim::MediaConfig {
            max_bytes: 256 * 1024,
            ..wecom_sim::MediaConfig::default()
        },
        ..wecom_sim::SimConfig::default()
    };
    let mut rows = Vec::new();

    // http → local also writes the raw archive the other paths read.
    let sim = SimProcess::spawn(&sim_cfg, tmp.path()).expect("simulator process");
    println!(
        "simulator: {messages} messages, pid {}, corpus walked in {:.1} s before the runs",
        sim.pid(),
        sim.warm_up_secs()
    );
    let sim_cpu_before = cpu_secs(sim.pid()).unwrap_or(0.0);
    let http_cfg = write_config(tmp.path(), PathKind::HttpLocal, sim.base_url(), &data, "");
    let outcome = measure(PathKind::HttpLocal, &http_cfg);
    let sim_cpu = cpu_secs(sim.pid()).unwrap_or(0.0) - sim_cpu_before;
    let sim_rss = peak_rss_kib(sim.pid()).unwrap_or(0);
    let note = format!(
        "the simulator process used {sim_cpu:.1} CPU-s of the same cores (peak RSS {} MiB)",
        mib(sim_rss)
    );
    rows.push(report(
        PathKind::HttpLocal,
        outcome,
        note,
        ceiling_before,
        messages,
    ));
    sim.stop();

    // The raw archive paths never call the service; the URL is only there for a complete config.
    let unused = "http://127.0.0.1:9";
    let cfg = write_config(tmp.path(), PathKind::ArchiveLocal, unused, &data, "");
    let outcome = measure(PathKind::ArchiveLocal, &cfg);
    rows.push(report(
        PathKind::ArchiveLocal,
        outcome,
        String::new(),
        ceiling_before,
        messages,
    ));

    match std::env::var("WECOM_TEST_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.is_empty() => {
            let t = format!("bench-{}", std::process::id());
            let extra = format!(
                "[kafka]\nbrokers = \"{brokers}\"\n[kafka.topics]\nmessages = \"{t}.m\"\nmedia = \"{t}.x\"\ndeadletter = \"{t}.d\"\n"
            );
            let cfg = write_config(tmp.path(), PathKind::ArchiveKafka, unused, &data, &extra);
            let outcome = measure(PathKind::ArchiveKafka, &cfg);
            rows.push(report(
                PathKind::ArchiveKafka,
                outcome,
                format!("brokers {brokers}, topic {t}.replay"),
                ceiling_before,
                messages,
            ));
        }
        _ => rows.push(Row {
            kind: PathKind::ArchiveKafka,
            outcome: Err("skipped".into()),
            note: "WECOM_TEST_KAFKA_BROKERS is not set".into(),
        }),
    }

    match standin_lib() {
        Ok(lib) => {
            let extra = format!(
                "[cipher]\nkind = \"sdk\"\n[sdk]\nlibrary = \"{}\"\nworkers = 0\n[sdk.worker_env]\nWECOM_STANDIN_BASE_URL = \"{unused}\"\n",
                lib.display()
            );
            let cfg = write_config(tmp.path(), PathKind::ArchiveSdk, unused, &data, &extra);
            let outcome = measure(PathKind::ArchiveSdk, &cfg);
            rows.push(report(
                PathKind::ArchiveSdk,
                outcome,
                String::new(),
                ceiling_before,
                messages,
            ));
        }
        Err(why) => rows.push(Row {
            kind: PathKind::ArchiveSdk,
            outcome: Err("skipped".into()),
            note: why,
        }),
    }

    let second = Ceiling::measure(cores);
    second.print("after");
    let ceiling = first.max(second);
    let load_after = load_average();
    println!();
    println!("| path | messages | s | msgs/s | ratio to ceiling | msgs per CPU-s (ratio) | peak RSS MiB | notes |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| ceiling: aws-lc RSA-2048 private ops, {cores} threads at once | | 3.0 | {:.0} | 1.00 | {:.0} (1.00) | | {:.0}/s on one thread; the better of two measurements |",
        ceiling.all_cores, ceiling.per_cpu_sec, ceiling.single
    );
    for row in &rows {
        match &row.outcome {
            Ok(m) => {
                let rate = m.rate();
                let workers = if m.workers > 0 {
                    format!(
                        " + {} sdk workers ≤ {} each",
                        m.workers,
                        mib(m.workers_rss_kib)
                    )
                } else {
                    String::new()
                };
                println!(
                    "| {} | {} | {:.1} | {rate:.0} | {:.2} | {:.0} ({:.2}) | {}{workers} | {} |",
                    row.kind.label(),
                    m.messages,
                    m.secs,
                    rate / ceiling.all_cores,
                    m.per_cpu_sec(),
                    m.per_cpu_sec() / ceiling.per_cpu_sec,
                    mib(m.rss_kib),
                    row.note
                );
            }
            Err(e) => println!("| {} | | | | | | | {e}: {} |", row.kind.label(), row.note),
        }
    }
    println!();
    println!(
        "WECOM_BENCH_MESSAGES={messages}; load average before {load_before}, after {load_after} ({cores} cores, shared)"
    );
}

fn report(
    kind: PathKind,
    outcome: Result<Measured, String>,
    note: String,
    ceiling: f64,
    expected: u64,
) -> Row {
    match &outcome {
        Ok(m) => {
            let rate = m.rate();
            println!(
                "path={} messages={} secs={:.2} msgs_per_sec={rate:.0} ceiling={ceiling:.0} ratio={:.2} cpu_secs={:.1} sdk_workers_cpu_secs={:.1} peak_rss_mib={} sdk_workers={} sdk_worker_peak_rss_mib={}",
                kind.id(),
                m.messages,
                m.secs,
                rate / ceiling,
                m.cpu_secs,
                m.workers_cpu_secs,
                mib(m.rss_kib),
                m.workers,
                mib(m.workers_rss_kib)
            );
            if m.messages != expected {
                println!(
                    "  note: {} of the {expected} messages were written",
                    m.messages
                );
            }
        }
        Err(e) => println!("path={} failed: {e}", kind.id()),
    }
    Row {
        kind,
        outcome,
        note,
    }
}

/// Runs one path in a child process of this binary and reads its `result` line.
fn measure(kind: PathKind, config: &Path) -> Result<Measured, String> {
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg(PATH_ROLE)
        .arg(kind.id())
        .arg(config)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find(|l| l.starts_with("result ")) else {
        return Err(format!(
            "the child exited with {} and no result",
            out.status
        ));
    };
    let mut m = Measured::default();
    for (k, v) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
        match k {
            "messages" => m.messages = v.parse().unwrap_or(0),
            "secs" => m.secs = v.parse().unwrap_or(f64::NAN),
            "rss_kib" => m.rss_kib = v.parse().unwrap_or(0),
            "cpu_secs" => m.cpu_secs = v.parse().unwrap_or(f64::NAN),
            "workers" => m.workers = v.parse().unwrap_or(0),
            "workers_rss_kib" => m.workers_rss_kib = v.parse().unwrap_or(0),
            "workers_cpu_secs" => m.workers_cpu_secs = v.parse().unwrap_or(f64::NAN),
            _ => {}
        }
    }
    Ok(m)
}

fn write_config(dir: &Path, kind: PathKind, base_url: &str, data: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"[corp]
corp_id = "{CORP}"
corp_secret = "sim-secret"
[source]
kind = "http"
base_url = "{base_url}"
[keys]
files = [{{ version = 1, path = "{KEYS}/v1.pem" }}, {{ version = 2, path = "{KEYS}/v2.pem" }}, {{ version = 3, path = "{KEYS}/v3.pem" }}]
[sink]
kind = "local"
data_dir = "{data}"
{extra}"#,
        data = data.display()
    );
    let path = dir.join(format!("{}.toml", kind.id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The stand-in SDK library: `WECOM_BENCH_STANDIN_LIB`, else the one of this target directory's
/// profile, built there when missing.
fn standin_lib() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("WECOM_BENCH_STANDIN_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "WECOM_BENCH_STANDIN_LIB={} is not a file",
                p.display()
            ))
        };
    }
    // <target>/<profile>/deps/<bench>: the library is <target>/<profile>/libwecom_sdk_standin.so.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let Some(profile_dir) = exe.parent().and_then(Path::parent) else {
        return Err("cannot locate the target directory".into());
    };
    let lib = profile_dir.join("libwecom_sdk_standin.so");
    if lib.is_file() {
        return Ok(lib);
    }
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    let target = profile_dir.parent().unwrap_or(profile_dir);
    println!("building the stand-in SDK library ({profile} profile, once)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile_arg = if profile == "debug" { "dev" } else { profile };
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "wecom-sdk-standin",
            "--profile",
            profile_arg,
        ])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() && lib.is_file() {
        Ok(lib)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --release -p wecom-sdk-standin` or set WECOM_BENCH_STANDIN_LIB",
            lib.display()
        ))
    }
}

/// One path, in this (child) process: prints `result messages=N secs=S rss_kib=K workers=W
/// workers_rss_kib=K`.
fn path_main(kind: PathKind, config: &Path) -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let cfg = Config::load(config).map_err(|e| e.to_string())?;
        let source = Source::connect(&cfg).await.map_err(|e| e.to_string())?;
        let me = std::process::id();
        let cpu_of = |pids: &[u32]| pids.iter().filter_map(|p| cpu_secs(*p)).sum::<f64>();
        let worker_pids = child_pids(me);
        let (cpu_before, workers_cpu_before) = (cpu_secs(me).unwrap_or(0.0), cpu_of(&worker_pids));
        let start = Instant::now();
        let done = match kind {
            PathKind::HttpLocal => {
                let opts = RunOptions {
                    stream: StreamSel::Corp,
                    follow: false,
                    progress: false,
                };
                wecom_pipeline::run(&cfg, &source, &opts, CancellationToken::new())
                    .await
                    .map(|s| s.records + s.dead_letters)
            }
            PathKind::ArchiveLocal | PathKind::ArchiveKafka | PathKind::ArchiveSdk => {
                let req = ReplayRequest {
                    from_archive: true,
                    name: Some(kind.id().into()),
                    kafka_topic: (kind == PathKind::ArchiveKafka).then(|| {
                        let t = &cfg.kafka.as_ref().expect("[kafka] for this path").topics;
                        t.messages.replace(".m", ".replay")
                    }),
                    ..ReplayRequest::default()
                };
                wecom_pipeline::replay::replay(&cfg, &source, &req, CancellationToken::new())
                    .await
                    .map(|s| s.records + s.dead_letters)
            }
        };
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs(me).unwrap_or(0.0) - cpu_before;
        // The SDK workers are this process's children until the pool shuts down (a restarted worker
        // would be missed by the CPU figure, which counts the workers present at the start).
        let workers_cpu = cpu_of(&worker_pids) - workers_cpu_before;
        let workers: Vec<u64> = child_pids(me)
            .into_iter()
            .filter_map(peak_rss_kib)
            .collect();
        source.shutdown().await;
        let done = done.map_err(|e| error_chain(&e))?;
        Ok::<_, String>((done, secs, cpu, workers, workers_cpu))
    });
    match result {
        Ok((done, secs, cpu, workers, workers_cpu)) => {
            println!(
                "result messages={done} secs={secs:.3} rss_kib={} cpu_secs={cpu:.2} workers={} workers_rss_kib={} workers_cpu_secs={workers_cpu:.2}",
                own_peak_rss_kib(),
                workers.len(),
                workers.iter().max().copied().unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", kind.id());
            ExitCode::FAILURE
        }
    }
}

/// The error and its sources, outermost first.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
