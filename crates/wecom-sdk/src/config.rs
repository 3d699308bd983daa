//! Configuration of the worker pool and of the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wecom_api::Secret;

use crate::SdkError;

/// Everything [`crate::SdkPool::start`] needs. Build it with [`SdkPoolConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct SdkPoolConfig {
    /// The worker executable. `None`: the file `wecom-sdk-worker` next to the current executable.
    pub worker_exe: Option<PathBuf>,
    /// Arguments put before the worker's own (`--library … --corp-id …`), e.g. `["sdk-worker"]` when
    /// the worker is a hidden subcommand of the main binary calling [`crate::worker::worker_main_with_args`].
    pub worker_args: Vec<std::ffi::OsString>,
    /// Path of `libWeWorkFinanceSdk_C.so` (or the test stand-in).
    pub library: PathBuf,
    pub corp_id: String,
    /// The session-archive secret. Passed to workers in an environment variable, never in argv.
    pub corp_secret: Secret,
    /// Number of worker processes; 0 = one per core.
    pub workers: usize,
    /// Requests waiting for a free worker before callers wait in `send`; 0 = 2 per worker.
    pub queue_capacity: usize,
    /// Deadline of one request to one worker; past it the worker is killed (it is hung).
    pub request_timeout: Duration,
    /// Deadline for a worker to load the library and `Init`.
    pub startup_timeout: Duration,
    /// Wait before restarting a worker after a crash; doubles per consecutive failure up to
    /// `max_restart_backoff`, and resets after a successful request.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// The `timeout` argument of GetChatData / GetMediaData (whole seconds, the SDK's own).
    pub sdk_timeout: Duration,
    /// The SDK's `proxy` argument (e.g. `http://10.0.0.1:3128`), `None` for a direct connection.
    pub proxy: Option<String>,
    /// The SDK's `passwd` argument (`user:password` of the proxy).
    pub proxy_password: Option<Secret>,
    /// Extra environment variables for the workers (e.g. `WECOM_STANDIN_BASE_URL` in tests).
    pub worker_env: Vec<(String, String)>,
}

impl SdkPoolConfig {
    /// Defaults: one worker per core, 60 s request timeout, 30 s SDK timeout, 200 ms .. 10 s restart
    /// backoff, no proxy.
    pub fn new(
        library: impl Into<PathBuf>,
        corp_id: impl Into<String>,
        corp_secret: Secret,
    ) -> Self {
        Self {
            worker_exe: None,
            worker_args: Vec::new(),
            library: library.into(),
            corp_id: corp_id.into(),
            corp_secret,
            workers: 0,
            queue_capacity: 0,
            request_timeout: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(30),
            restart_backoff: Duration::from_millis(200),
            max_restart_backoff: Duration::from_secs(10),
            sdk_timeout: Duration::from_secs(30),
            proxy: None,
            proxy_password: None,
            worker_env: Vec::new(),
        }
    }

    /// Checks the config and fills in the defaults that depend on the machine.
    pub(crate) fn validated(mut self) -> Result<Self, SdkError> {
        let bad = |m: String| Err(SdkError::Config(m));
        if self.corp_id.trim().is_empty() {
            return bad("corp_id is empty".into());
        }
        if self.corp_secret.is_empty() {
            return bad(format!("corp secret for corp {} is empty", self.corp_id));
        }
        if self.library.as_os_str().is_empty() {
            return bad("library path is empty".into());
        }
        if self.workers == 0 {
            self.workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        }
        if self.queue_capacity == 0 {
            self.queue_capacity = self.workers * 2;
        }
        if self.sdk_timeout.as_secs() == 0 || self.sdk_timeout.as_secs() > i32::MAX as u64 {
            return bad("sdk_timeout must be at least one second".into());
        }
        if self.request_timeout <= self.sdk_timeout {
            return bad(format!(
                "request_timeout ({}s) must exceed sdk_timeout ({}s), or healthy slow calls get killed",
                self.request_timeout.as_secs_f64(),
                self.sdk_timeout.as_secs()
            ));
        }
        if self.restart_backoff > self.max_restart_backoff {
            return bad("restart_backoff must not exceed max_restart_backoff".into());
        }
        if self.worker_exe.is_none() {
            let exe = std::env::current_exe().map_err(|e| {
                SdkError::Config(format!("cannot locate the current executable: {e}"))
            })?;
            self.worker_exe = Some(exe.with_file_name(crate::WORKER_EXE_NAME));
        }
        Ok(self)
    }
}

/// Everything [`crate::serve_gateway`] needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Default `127.0.0.1:8700` (loopback: expose it deliberately, e.g. behind TLS).
    pub listen: SocketAddr,
    /// Callers authenticate with it: as `corpsecret` of `gettoken`, or as `Authorization: Bearer`.
    pub bearer_token: Secret,
    /// The corp the gateway serves; `gettoken` checks `corpid` against it.
    pub corp_id: String,
    /// Lifetime of the access tokens `gettoken` hands out.
    pub token_ttl: Duration,
}

impl GatewayConfig {
    pub fn new(corp_id: impl Into<String>, bearer_token: Secret) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            bearer_token,
            corp_id: corp_id.into(),
            token_ttl: Duration::from_secs(7200),
        }
    }
}
