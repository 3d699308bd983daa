//! The processes a bench binary starts from its own executable, so that one `cargo bench` command needs
//! nothing else built: the simulator in a process of its own ([`SimProcess`], so that its CPU and memory
//! are not the measured process's), and the SDK worker processes (the pool runs `<current exe>
//! sdk-worker`, as it runs the main binary's hidden subcommand in production).
//!
//! A bench's `main` calls [`child_role`] first and returns its exit code when it is one of these.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::Instant;

use wecom_sim::SimConfig;

/// First argument of a bench binary started as the simulator process.
pub const SIM_ROLE: &str = "bench-sim";

/// Runs this process as a child role when its first argument names one: the SDK worker, or the
/// simulator. `None`: the bench itself.
pub fn child_role() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    if first == wecom_sdk::WORKER_SUBCOMMAND {
        return Some(wecom_sdk::worker::worker_main_with_args(args));
    }
    if first == SIM_ROLE {
        let Some(path) = args.next() else {
            eprintln!("{SIM_ROLE}: missing the config path");
            return Some(ExitCode::FAILURE);
        };
        return Some(match sim_main(Path::new(&path)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{SIM_ROLE}: {e}");
                ExitCode::FAILURE
            }
        });
    }
    None
}

/// The simulator process: starts the simulator from the JSON config at `path`, walks its corpus once (the
/// one-off md5 of every attachment is the simulator's start-up cost, not the pipeline's), prints
/// `ready <base url> <warm-up secs>`, and serves until its stdin closes (the bench ended or died).
fn sim_main(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: SimConfig =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let server = wecom_sim::start(config, ([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let shared = std::sync::Arc::new(server);
        let warm = shared.clone();
        tokio::task::spawn_blocking(move || warm.truth().len())
            .await
            .map_err(|e| format!("warm-up: {e}"))?;
        println!(
            "ready {} {:.1}",
            shared.base_url(),
            started.elapsed().as_secs_f64()
        );
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .map_err(|e| format!("stdin: {e}"))?;
        if let Ok(server) = std::sync::Arc::try_unwrap(shared) {
            server.shutdown().await;
        }
        Ok(())
    })
}

/// The simulator running in a child process; stopped when dropped.
pub struct SimProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    base_url: String,
    warm_up_secs: f64,
}

impl SimProcess {
    /// Starts the simulator with `config` (written to `dir`) and waits until it serves.
    pub fn spawn(config: &SimConfig, dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(format!("sim-{}.json", config.seed));
        let json = serde_json::to_vec(config).map_err(std::io::Error::other)?;
        std::fs::write(&path, json)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg(SIM_ROLE)
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("the simulator process has no stdout pipe"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (Some("ready"), Some(url), Some(secs)) = (words.next(), words.next(), words.next())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "the simulator process did not start (it said {line:?})"
            )));
        };
        Ok(Self {
            base_url: url.to_string(),
            warm_up_secs: secs.parse().unwrap_or(f64::NAN),
            child,
            stdin,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How long the simulator took to walk its corpus before serving.
    pub fn warm_up_secs(&self) -> f64 {
        self.warm_up_secs
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the simulator (closing its stdin) and waits for it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
        }
        self.stop_inner();
    }
}
