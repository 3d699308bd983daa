//! One worker process as the supervisor sees it: started with a clean environment, spoken to in
//! frames over its stdin/stdout, killed when it hangs, and named by how it ended when it dies.
//!
//! Nothing here decides about retries or restarts (that is [`crate::supervisor`]): a call either
//! answers, or reports that the process crashed (with the reason) or did not answer in time.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::config::SdkPoolConfig;
use crate::protocol::{self, Request, Response};
use crate::worker::SECRET_ENV;
use crate::SdkError;

/// The only variables of the pool's own environment a worker inherits (when set). Everything else —
/// the corp secret's own variable, object-store credentials, the gateway token, proxy settings — stays
/// behind: the worker runs a closed-source library that has no business seeing them.
///
/// - `PATH`: not a secret; a library that runs a helper program would otherwise fail obscurely.
/// - `LD_LIBRARY_PATH`: where the dynamic loader finds the worker's and the SDK's shared
///   dependencies when they are not in the system directories.
/// - `TZ`, `LANG`, `LC_ALL`: time zone and locale, so that whatever the library formats or logs
///   matches the parent's.
/// - `SSL_CERT_FILE`, `SSL_CERT_DIR`: where the SDK's statically linked OpenSSL finds CA certificates
///   on hosts that keep them in a non-default place (otherwise its calls fail with 10011).
/// - `RUST_BACKTRACE`: how a panic of the worker's own code is reported.
///
/// Deliberately not inherited: `http_proxy` and friends (they can carry credentials; the SDK's proxy is
/// `[sdk] proxy`, passed per call), `LD_PRELOAD`, and every `WECOM_*`/`AWS_*` variable.
pub const INHERITED_ENV: [&str; 8] = [
    "PATH",
    "LD_LIBRARY_PATH",
    "TZ",
    "LANG",
    "LC_ALL",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "RUST_BACKTRACE",
];

/// The environment of a worker: the inherited variables found in `parent`, then the corp secret in
/// [`SECRET_ENV`], then `cfg.worker_env`. The proxy password is not in it: it travels in the frames of
/// the calls that need it.
pub(crate) fn worker_environment(
    cfg: &SdkPoolConfig,
    parent: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = parent
        .filter(|(k, _)| INHERITED_ENV.iter().any(|name| k == name))
        .collect();
    env.push((SECRET_ENV.into(), cfg.corp_secret.expose().into()));
    env.extend(
        cfg.worker_env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env
}

/// Why a call on a worker failed.
pub(crate) enum CallError {
    /// The worker died or broke the protocol (it has been reaped or killed); the reason names the
    /// signal or status.
    Crashed(String),
    /// No answer within the timeout. The worker is still running: the caller kills it.
    TimedOut,
}

/// One live worker process.
pub(crate) struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    next_id: u64,
}

impl WorkerProcess {
    /// Starts a worker and waits for its `Ready` frame (library loaded, every symbol resolved,
    /// `NewSdk` + `Init` run).
    pub(crate) async fn spawn(cfg: &SdkPoolConfig, slot: usize) -> Result<Self, SdkError> {
        let exe = cfg
            .worker_exe
            .as_ref()
            .ok_or_else(|| SdkError::Config("worker_exe unresolved".into()))?;
        let mut cmd = Command::new(exe);
        cmd.args(&cfg.worker_args)
            .arg("--library")
            .arg(&cfg.library)
            .arg("--corp-id")
            .arg(&cfg.corp_id)
            .env_clear()
            .envs(worker_environment(cfg, std::env::vars_os()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| SdkError::Spawn {
            reason: format!("{}: {e}", exe.display()),
            fatal: e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::PermissionDenied,
        })?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SdkError::Spawn {
                reason: "worker pipes missing".into(),
                fatal: true,
            });
        };
        tokio::spawn(forward_stderr(stderr, slot, pid));
        let mut w = WorkerProcess {
            child,
            stdin,
            stdout: BufReader::with_capacity(1 << 20, stdout),
            pid,
            next_id: 1,
        };
        let first =
            tokio::time::timeout(cfg.startup_timeout, protocol::read_frame(&mut w.stdout)).await;
        let body = match first {
            Err(_) => {
                w.kill().await;
                return Err(SdkError::Spawn {
                    reason: format!(
                        "worker did not load the library within {}s",
                        cfg.startup_timeout.as_secs_f64()
                    ),
                    fatal: false,
                });
            }
            Ok(Err(_)) => {
                let reason = w.reap().await;
                return Err(SdkError::Spawn {
                    reason: format!("{reason} while loading the library"),
                    fatal: false,
                });
            }
            Ok(Ok(body)) => body,
        };
        match protocol::decode_response(&body) {
            Ok((_, Response::Ready { init_ret: 0 })) => {
                tracing::debug!(slot, pid, "sdk worker ready");
                Ok(w)
            }
            Ok((_, Response::Ready { init_ret })) => {
                w.kill().await;
                Err(SdkError::Init {
                    code: init_ret,
                    corp_id: cfg.corp_id.clone(),
                })
            }
            Ok((_, Response::StartupFailed { reason })) => {
                w.kill().await;
                Err(SdkError::Library { reason })
            }
            Ok((_, other)) => {
                w.kill().await;
                Err(SdkError::Spawn {
                    reason: format!("unexpected first frame {other:?}"),
                    fatal: true,
                })
            }
            Err(e) => {
                w.kill().await;
                Err(SdkError::Spawn {
                    reason: format!("malformed first frame: {e}"),
                    fatal: true,
                })
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `req` and reads its answer: `Reply`, `Refused` or `BatchReply` with the request's id.
    /// Anything else is a protocol break: the worker is killed and the call reports a crash.
    pub(crate) async fn call(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = protocol::encode_request(id, req);
        let exchange = async {
            self.stdin.write_all(&frame).await?;
            self.stdin.flush().await?;
            protocol::read_frame(&mut self.stdout).await
        };
        let body = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(CallError::TimedOut),
            Ok(Err(_)) => return Err(CallError::Crashed(self.reap().await)),
            Ok(Ok(body)) => body,
        };
        let broken = match protocol::decode_response(&body) {
            Ok((rid, resp)) if rid == id => match resp {
                Response::Reply { .. } | Response::Refused { .. } | Response::BatchReply { .. } => {
                    return Ok(resp)
                }
                other => format!("answered {other:?} to request {id}"),
            },
            Ok((rid, other)) => format!("answered {other:?} with id {rid} to request {id}"),
            Err(e) => e,
        };
        self.kill().await;
        Err(CallError::Crashed(format!(
            "sdk worker broke the protocol: {broken}"
        )))
    }

    /// Waits for a worker whose pipe broke (it is dying) and names how it ended.
    async fn reap(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => describe_exit(status),
            Ok(Err(e)) => format!("sdk worker crashed (status unknown: {e})"),
            Err(_) => {
                self.kill().await;
                "sdk worker closed its pipe and did not exit; killed".to_owned()
            }
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Orderly stop: close stdin (the worker destroys its SDK and exits), kill after 5 s.
    pub(crate) async fn stop(mut self) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// Names the way a worker ended: `sdk worker crashed: SIGABRT`, `… exit status 3`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGABRT => "SIGABRT".to_owned(),
            libc::SIGSEGV => "SIGSEGV".to_owned(),
            libc::SIGBUS => "SIGBUS".to_owned(),
            libc::SIGILL => "SIGILL".to_owned(),
            libc::SIGFPE => "SIGFPE".to_owned(),
            libc::SIGKILL => "SIGKILL".to_owned(),
            libc::SIGTERM => "SIGTERM".to_owned(),
            libc::SIGPIPE => "SIGPIPE".to_owned(),
            other => format!("signal {other}"),
        };
        format!("sdk worker crashed: {name}")
    } else {
        match status.code() {
            Some(code) => format!("sdk worker crashed: exit status {code}"),
            None => "sdk worker crashed".to_owned(),
        }
    }
}

/// Worker stderr lines become log events (the worker never logs the secret).
async fn forward_stderr(stderr: tokio::process::ChildStderr, slot: usize, pid: u32) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "wecom_sdk::worker", slot, pid, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::Secret;

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGABRT)),
            "sdk worker crashed: SIGABRT"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGSEGV)),
            "sdk worker crashed: SIGSEGV"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "sdk worker crashed: exit status 3"
        );
    }

    #[test]
    fn the_environment_keeps_only_what_a_worker_needs() {
        let mut cfg = SdkPoolConfig::new("/lib/sdk.so", "corp", Secret::new("s3cret"));
        cfg.worker_env.push(("EXTRA".into(), "1".into()));
        let parent = [
            ("PATH", "/usr/bin"),
            ("TZ", "Asia/Shanghai"),
            ("WECOM_CORP_SECRET", "leak-1"),
            ("WECOM_S3_SECRET_ACCESS_KEY", "leak-2"),
            ("AWS_SECRET_ACCESS_KEY", "leak-3"),
            ("WECOM_GATEWAY_TOKEN", "leak-4"),
            ("WECOM_SDK_PROXY_PASSWORD", "leak-5"),
            ("https_proxy", "http://u:leak-6@proxy:3128"),
            ("LD_PRELOAD", "/tmp/x.so"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = worker_environment(&cfg, parent.into_iter());
        let names: Vec<&str> = env.iter().filter_map(|(k, _)| k.to_str()).collect();
        assert_eq!(names, ["PATH", "TZ", SECRET_ENV, "EXTRA"]);
        assert!(env
            .iter()
            .all(|(_, v)| !v.to_string_lossy().contains("leak")));
    }
}
