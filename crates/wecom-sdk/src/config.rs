//! Configuration: the `[sdk]` section of the config file ([`SdkConfig`]), and the runtime settings of
//! the worker pool ([`SdkPoolConfig`], built from it) and of the gateway ([`GatewayConfig`]).
//!
//! ```toml
//! [sdk]
//! library = "/opt/wecom/libWeWorkFinanceSdk_C.so"
//! workers = 0                  # 0: one per core (DecryptData is CPU-bound)
//! request_timeout_ms = 60000   # a request slower than this kills its (hung) worker
//! sdk_timeout_secs = 30        # the SDK's own timeout for its network calls
//! proxy = "http://10.0.0.1:3128"
//! # the proxy's password: WECOM_SDK_PROXY_PASSWORD in the environment, never in this file
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use wecom_api::Secret;

use crate::SdkError;

/// Environment variable with the password of `[sdk] proxy` (`user:password`).
pub const PROXY_PASSWORD_ENV: &str = "WECOM_SDK_PROXY_PASSWORD";
/// The hidden subcommand of the main binary that runs a worker (`<exe> sdk-worker ...`, which calls
/// [`crate::worker::worker_main_with_args`]).
pub const WORKER_SUBCOMMAND: &str = "sdk-worker";

/// The `[sdk]` section as written: Tencent's Finance SDK run in worker processes (never in the
/// pipeline's own), used by `source.kind = "sdk"`, `cipher.kind = "sdk"` and `wecom-archive gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdkConfig {
    /// Path of `libWeWorkFinanceSdk_C.so`.
    pub library: PathBuf,
    /// Worker processes; 0 means one per core (DecryptData is CPU-bound).
    #[serde(default)]
    pub workers: usize,
    /// A request slower than this kills its (hung) worker.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The timeout passed to the SDK's network calls, in seconds.
    #[serde(default = "default_sdk_timeout_secs")]
    pub sdk_timeout_secs: u32,
    /// Optional HTTP proxy for the SDK's traffic (`http://host:port`); its password comes from
    /// [`PROXY_PASSWORD_ENV`].
    #[serde(default)]
    pub proxy: Option<String>,
    /// Extra environment variables for the worker processes (`[sdk.worker_env]`), on top of the few
    /// they inherit ([`crate::INHERITED_ENV`]); e.g. what a library build needs to find its resources.
    /// Not for secrets: they are visible in the config file.
    #[serde(default)]
    pub worker_env: std::collections::BTreeMap<String, String>,
}

fn default_request_timeout_ms() -> u64 {
    60_000
}

fn default_sdk_timeout_secs() -> u32 {
    30
}

/// A problem with the `[sdk]` section; each names its key.
#[derive(Debug, thiserror::Error)]
pub enum SdkConfigError {
    #[error("sdk.library is empty: set it to the path of libWeWorkFinanceSdk_C.so")]
    EmptyLibrary,
    #[error("{key} must be positive")]
    Zero { key: &'static str },
    #[error(
        "sdk.request_timeout_ms ({request_timeout_ms}) must exceed sdk.sdk_timeout_secs \
         ({sdk_timeout_secs} s), or healthy slow calls get killed"
    )]
    RequestTimeoutTooShort {
        request_timeout_ms: u64,
        sdk_timeout_secs: u32,
    },
    #[error("sdk.proxy is set but empty: remove it or give http://host:port")]
    EmptyProxy,
    /// Workers run as `<current exe> sdk-worker`, so the current executable must be found.
    #[error("cannot locate the current executable to run sdk workers")]
    CurrentExe(#[source] std::io::Error),
}

impl SdkConfigError {
    /// The config key at fault (`sdk.library`, …); `None` when it is not a key's fault.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            SdkConfigError::EmptyLibrary => Some("sdk.library"),
            SdkConfigError::Zero { key } => Some(key),
            SdkConfigError::RequestTimeoutTooShort { .. } => Some("sdk.request_timeout_ms"),
            SdkConfigError::EmptyProxy => Some("sdk.proxy"),
            SdkConfigError::CurrentExe(_) => None,
        }
    }
}

impl SdkConfig {
    /// Checks the section: a library path, positive timeouts, a request timeout above the SDK's.
    pub fn validate(&self) -> Result<(), SdkConfigError> {
        if self.library.as_os_str().is_empty() {
            return Err(SdkConfigError::EmptyLibrary);
        }
        if self.request_timeout_ms == 0 {
            return Err(SdkConfigError::Zero {
                key: "sdk.request_timeout_ms",
            });
        }
        if self.sdk_timeout_secs == 0 {
            return Err(SdkConfigError::Zero {
                key: "sdk.sdk_timeout_secs",
            });
        }
        if self.request_timeout_ms <= u64::from(self.sdk_timeout_secs) * 1000 {
            return Err(SdkConfigError::RequestTimeoutTooShort {
                request_timeout_ms: self.request_timeout_ms,
                sdk_timeout_secs: self.sdk_timeout_secs,
            });
        }
        if self.proxy.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(SdkConfigError::EmptyProxy);
        }
        Ok(())
    }

    /// The pool settings of this section for `corp_id`: workers run as `<current executable>
    /// sdk-worker`, the proxy password comes from [`PROXY_PASSWORD_ENV`]. Validates first.
    pub fn pool_config(
        &self,
        corp_id: &str,
        corp_secret: &Secret,
    ) -> Result<SdkPoolConfig, SdkConfigError> {
        self.validate()?;
        let exe = std::env::current_exe().map_err(SdkConfigError::CurrentExe)?;
        let password = std::env::var(PROXY_PASSWORD_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        Ok(self.pool_config_with(corp_id, corp_secret, exe, password))
    }

    fn pool_config_with(
        &self,
        corp_id: &str,
        corp_secret: &Secret,
        exe: PathBuf,
        proxy_password: Option<Secret>,
    ) -> SdkPoolConfig {
        let mut pc = SdkPoolConfig::new(self.library.clone(), corp_id, corp_secret.clone());
        pc.worker_exe = Some(exe);
        pc.worker_args = vec![OsString::from(WORKER_SUBCOMMAND)];
        pc.workers = self.workers;
        pc.request_timeout = Duration::from_millis(self.request_timeout_ms);
        pc.sdk_timeout = Duration::from_secs(u64::from(self.sdk_timeout_secs));
        pc.proxy = self.proxy.clone();
        pc.proxy_password = proxy_password;
        pc.worker_env = self
            .worker_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pc
    }
}

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

/// Tencent's HTTP API, where the gateway forwards the room-metadata and consent calls.
pub const DEFAULT_UPSTREAM_BASE_URL: &str = "https://qyapi.weixin.qq.com";

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
    /// Where `groupchat/get`, `get_permit_user_list`, `check_single_agree` and `check_room_agree`
    /// are forwarded (with an access token of the pool's corp secret). Default
    /// [`DEFAULT_UPSTREAM_BASE_URL`].
    pub upstream_base_url: String,
    /// Deadline of one upstream HTTP call.
    pub upstream_timeout: Duration,
}

impl GatewayConfig {
    pub fn new(corp_id: impl Into<String>, bearer_token: Secret) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            bearer_token,
            corp_id: corp_id.into(),
            token_ttl: Duration::from_secs(7200),
            upstream_base_url: DEFAULT_UPSTREAM_BASE_URL.to_owned(),
            upstream_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SdkConfig, String> {
        toml::from_str::<SdkConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = parse("library = \"/opt/sdk.so\"").unwrap();
        assert_eq!(
            c,
            SdkConfig {
                library: "/opt/sdk.so".into(),
                workers: 0,
                request_timeout_ms: 60_000,
                sdk_timeout_secs: 30,
                proxy: None,
                worker_env: Default::default(),
            }
        );
        c.validate().unwrap();
        let e = parse("library = \"/x\"\nworker = 3").unwrap_err();
        assert!(e.contains("unknown field `worker`"), "{e}");
        assert!(parse("workers = 2").unwrap_err().contains("library"));
    }

    fn check(text: &str, key: Option<&str>, words: &str) {
        let c = parse(text).unwrap();
        match c.validate() {
            Ok(()) => assert_eq!(key, None, "{text}: accepted"),
            Err(e) => {
                assert_eq!(e.key(), key, "{text}: {e}");
                assert!(e.to_string().contains(words), "{text}: {e}");
            }
        }
    }

    #[test]
    fn validation_names_the_key() {
        check(
            "library = \"\"",
            Some("sdk.library"),
            "sdk.library is empty",
        );
        check(
            "library = \"/x\"\nrequest_timeout_ms = 0",
            Some("sdk.request_timeout_ms"),
            "sdk.request_timeout_ms must be positive",
        );
        check(
            "library = \"/x\"\nsdk_timeout_secs = 0",
            Some("sdk.sdk_timeout_secs"),
            "sdk.sdk_timeout_secs must be positive",
        );
        check(
            "library = \"/x\"\nrequest_timeout_ms = 30000",
            Some("sdk.request_timeout_ms"),
            "must exceed sdk.sdk_timeout_secs",
        );
        check(
            "library = \"/x\"\nproxy = \" \"",
            Some("sdk.proxy"),
            "sdk.proxy",
        );
        check(
            "library = \"/x\"\nrequest_timeout_ms = 31000\nworkers = 3",
            None,
            "",
        );
    }

    #[test]
    fn pool_config_runs_workers_as_a_subcommand() {
        let c = parse(
            "library = \"/opt/sdk.so\"\nworkers = 3\nrequest_timeout_ms = 45000\n\
             sdk_timeout_secs = 20\nproxy = \"http://10.0.0.1:3128\"\n\
             [worker_env]\nSDK_HOME = \"/opt/sdk\"",
        )
        .unwrap();
        let pc = c.pool_config_with(
            "wwcorp",
            &Secret::new("s"),
            "/usr/bin/wecom-archive".into(),
            Some(Secret::new("u:p")),
        );
        assert_eq!(pc.worker_exe, Some("/usr/bin/wecom-archive".into()));
        assert_eq!(pc.worker_args, vec![OsString::from("sdk-worker")]);
        assert_eq!(pc.library, PathBuf::from("/opt/sdk.so"));
        assert_eq!(pc.corp_id, "wwcorp");
        assert_eq!(pc.corp_secret.expose(), "s");
        assert_eq!(pc.workers, 3);
        assert_eq!(pc.request_timeout, Duration::from_secs(45));
        assert_eq!(pc.sdk_timeout, Duration::from_secs(20));
        assert_eq!(pc.proxy.as_deref(), Some("http://10.0.0.1:3128"));
        assert_eq!(pc.proxy_password.as_ref().map(Secret::expose), Some("u:p"));
        assert_eq!(
            pc.worker_env,
            vec![("SDK_HOME".to_string(), "/opt/sdk".to_string())]
        );
        // The validated pool config accepts what the section accepted.
        pc.validated().unwrap();
        // And refuses what the section refuses, before any worker starts.
        let mut bad = c.clone();
        bad.sdk_timeout_secs = 0;
        let e = bad.pool_config("wwcorp", &Secret::new("s")).unwrap_err();
        assert_eq!(e.key(), Some("sdk.sdk_timeout_secs"));
    }
}
