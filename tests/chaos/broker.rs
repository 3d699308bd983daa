//! The campaign's own Kafka-protocol broker: tansu with SQLite storage, so its data survives the restarts the
//! campaign inflicts on it. The shared broker of `WECOM_TEST_KAFKA_BROKERS` is never touched.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary `scripts/kafka-broker.sh` builds into the cache (`WECOM_TANSU_BIN` overrides it).
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WECOM_TANSU_BIN") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("WECOM_CACHE_DIR").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/wecom-archive")
        },
        PathBuf::from,
    );
    cache.join("tansu/bin/tansu")
}

/// One tansu process at a fixed loopback port, restartable on that port with its data kept.
pub struct Broker {
    bin: PathBuf,
    /// Working directory: tansu resolves the SQLite path against it (an absolute path gets mangled).
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    pub restarts: u32,
}

impl Broker {
    /// Starts tansu in `dir` on a free port and waits until it accepts connections.
    pub fn start(dir: &Path) -> Broker {
        let bin = tansu_bin();
        assert!(
            bin.is_file(),
            "{} is missing: run `scripts/kafka-broker.sh build` (scripts/test.sh does), or set WECOM_TANSU_BIN",
            bin.display()
        );
        std::fs::create_dir_all(dir).expect("broker dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut b = Broker {
            bin,
            dir: dir.to_path_buf(),
            port,
            child: None,
            restarts: 0,
        };
        b.up();
        b
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("broker log");
        let url = format!("tcp://{}", self.address());
        let child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let addr: SocketAddr = self.address().parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited at start with {status}; see {}",
                    self.dir.join("tansu.log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not accept connections on {} within 30 s",
                self.address()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker: SIGTERM, then SIGKILL after 5 s.
    pub fn down(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // a child we spawned and have not reaped yet, so the pid is still its own
        signal("-TERM", &child.id().to_string());
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same port, with the same data.
    pub fn restart_up(&mut self) {
        self.up();
        self.restarts += 1;
    }
}

/// `kill SIGNAL TARGET` (the workspace allows no `unsafe`, so no libc); whether it succeeded.
pub fn signal(sig: &str, target: &str) -> bool {
    Command::new("kill")
        .args([sig, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
