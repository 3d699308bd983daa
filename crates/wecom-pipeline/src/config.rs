//! The pipeline's configuration: typed serde structs read from a TOML file, then environment overrides for
//! secrets, then validation into the form the program runs with ([`Config::load`] → [`Validated`]).
//!
//! Secrets (the corp secret, private key paths' contents) never come from the command line: they come from the
//! file or, preferably, from the environment (`WECOM_CORP_SECRET`, `WECOM_KEY_FILES`; for `[notify]`, the
//! `msgaudit_notify` callback's `token` and `encoding_aes_key`: `WECOM_NOTIFY_TOKEN`, `WECOM_NOTIFY_AES_KEY`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wecom_api::{FetchConfig, RetryPolicy, Secret};
use wecom_crypto::RsaBackendKind;
use wecom_sdk::SdkConfig;
#[cfg(feature = "sim")]
use wecom_sim::SimConfig;

use crate::error::PipelineError;

/// Environment variable that overrides `corp.corp_secret`.
pub const ENV_CORP_SECRET: &str = "WECOM_CORP_SECRET";
/// Environment variable that overrides `keys.files`: `VER=PATH[,VER=PATH...]`, e.g. `1=/keys/v1.pem,2=/keys/v2.pem`.
pub const ENV_KEY_FILES: &str = "WECOM_KEY_FILES";

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub corp: CorpConfig,
    pub source: SourceConfig,
    #[serde(default)]
    pub fetch: FetchConfig,
    pub keys: KeysConfig,
    #[serde(default)]
    pub cipher: CipherConfig,
    #[serde(default)]
    pub pipeline: StageConfig,
    pub sink: SinkConfig,
    /// The raw archive of encrypted pages (`wecom-ledger`).
    #[serde(default)]
    pub archive: wecom_ledger::ArchiveConfig,
    /// Room backfill and room metadata (rooms.rs).
    #[serde(default)]
    pub rooms: crate::rooms::RoomsConfig,
    /// Consent on records: `check_single_agree` / `check_room_agree` lookups (consent.rs).
    #[serde(default)]
    pub consent: crate::consent::ConsentConfig,
    /// The media worker; absent means off. It follows the local record output of the stream being run, or,
    /// with `sink.kind = "kafka"`, consumes the messages topic in a consumer group.
    #[serde(default)]
    pub media: Option<wecom_media::MediaConfig>,
    /// The official SDK; required by `source.kind = "sdk"` and `cipher.kind = "sdk"`.
    #[serde(default)]
    pub sdk: Option<SdkConfig>,
    /// The Kafka sink; required when `sink.kind` is `kafka` or `both`.
    #[serde(default)]
    pub kafka: Option<wecom_kafka::KafkaConfig>,
    /// `/metrics`, `/health`, `/ready` and stuck-stage detection (docs/metrics.md).
    #[serde(default)]
    pub ops: crate::ops::OpsConfig,
    /// The `msgaudit_notify` callback receiver (notify.rs); absent means poll only.
    #[serde(default)]
    pub notify: Option<crate::notify::NotifyConfig>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpConfig {
    /// The corp id (`ww…`). Not a secret; it names the corp in every log line and error.
    pub corp_id: String,
    /// The archive secret. Prefer the `WECOM_CORP_SECRET` environment variable; it overrides this.
    #[serde(default)]
    pub corp_secret: Option<String>,
}

impl std::fmt::Debug for CorpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpConfig")
            .field("corp_id", &self.corp_id)
            .field("corp_secret", &self.corp_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Where archive items come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    /// The project's HTTP archive contract (a simulator or an SDK gateway) at `base_url`.
    Http { base_url: String },
    /// An embedded simulator started in-process on loopback (demo and tests; builds with the `sim`
    /// feature only).
    #[cfg(feature = "sim")]
    Sim {
        #[serde(default)]
        sim: Box<SimConfig>,
    },
    /// Tencent's Finance SDK (`GetChatData`) in supervised worker processes; needs the `[sdk]` section.
    /// It has the corp stream only (no per-room paging).
    Sdk {},
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    #[serde(default)]
    pub backend: RsaBackendKind,
    /// One private key per `publickey_ver`. Every old key must stay listed: items keep their version forever.
    #[serde(default)]
    pub files: Vec<KeyFile>,
    /// `wecom-archive check` refuses key files readable by group or other unless this is true.
    #[serde(default)]
    pub allow_insecure_permissions: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CipherConfig {
    #[serde(default)]
    pub kind: CipherKind,
}

/// Which message cipher decrypts `encrypt_chat_msg` once the random key is unwrapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CipherKind {
    /// The simulator's documented scheme.
    #[default]
    Sim,
    /// The official scheme: RSA unwrap in Rust with the keyring, then `DecryptData` in an SDK worker.
    Sdk,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageConfig {
    /// Decrypt workers (blocking threads doing RSA); 0 means one per core.
    pub decrypt_workers: usize,
    /// Items handed to one decrypt job.
    pub decrypt_chunk: usize,
    /// Capacity, in pages, of the channel between the fetcher and the decrypt stage.
    pub fetch_queue_pages: usize,
}

impl Default for StageConfig {
    fn default() -> Self {
        Self {
            decrypt_workers: 0,
            decrypt_chunk: 128,
            fetch_queue_pages: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Where records go: `local` (segment files, the embedded default), `kafka`, or `both`. Dead letters
    /// always go to local files as well (redrive reads them there), and to Kafka when it is configured.
    #[serde(default)]
    pub kind: SinkKind,
    /// Root of everything the pipeline writes locally (segments, cursors, dead letters).
    pub data_dir: PathBuf,
    /// A messages segment file is rotated when it would exceed this size.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    #[default]
    Local,
    Kafka,
    Both,
}

fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}

/// The configuration the program runs with: secrets resolved, paths made absolute, ranges checked.
#[derive(Debug, Clone)]
pub struct Validated {
    pub corp_id: String,
    pub corp_secret: Secret,
    pub source: SourceConfig,
    pub limit: u32,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub key_backend: RsaBackendKind,
    pub key_files: Vec<KeyFile>,
    pub allow_insecure_key_permissions: bool,
    pub cipher: CipherKind,
    pub decrypt_workers: usize,
    pub decrypt_chunk: usize,
    pub fetch_queue_pages: usize,
    pub data_dir: PathBuf,
    pub segment_max_bytes: u64,
    pub sink_kind: SinkKind,
    pub kafka: Option<wecom_kafka::KafkaConfig>,
    pub sdk: Option<SdkConfig>,
    pub media: Option<wecom_media::MediaConfig>,
    pub ops: crate::ops::OpsConfig,
    pub notify: Option<crate::notify::NotifySettings>,
    pub archive: wecom_ledger::ArchiveConfig,
    pub rooms: crate::rooms::RoomsConfig,
    pub consent: crate::consent::ConsentConfig,
}

impl Config {
    /// Parses a TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, PipelineError> {
        toml::from_str(text).map_err(|e| PipelineError::Config {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Reads, parses, applies environment overrides and validates `path`. Relative paths inside the file
    /// (key files, data dir, simulator keys) are taken relative to the current directory, as a user typing
    /// them on the command line would expect.
    pub fn load(path: &Path) -> Result<Validated, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Config {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)?.validate(path, &EnvOverrides::from_process())
    }

    /// Applies environment overrides and checks every value; `origin` names the file in errors.
    pub fn validate(self, origin: &Path, env: &EnvOverrides) -> Result<Validated, PipelineError> {
        let bad = |reason: String| PipelineError::Config {
            path: origin.to_path_buf(),
            reason,
        };
        if self.corp.corp_id.trim().is_empty() {
            return Err(bad("corp.corp_id is empty".into()));
        }
        let secret = match (&env.corp_secret, &self.corp.corp_secret, &self.source) {
            (Some(s), _, _) => s.clone(),
            (None, Some(s), _) => s.clone(),
            #[cfg(feature = "sim")]
            #[cfg(feature = "sim")]
            (None, None, SourceConfig::Sim { sim }) => sim.corp_secret.clone(),
            (None, None, SourceConfig::Http { .. } | SourceConfig::Sdk {}) => {
                return Err(bad(format!(
                    "no corp secret: set {ENV_CORP_SECRET} (or corp.corp_secret in the file)"
                )))
            }
        };
        self.fetch.validate().map_err(|e| bad(e.to_string()))?;
        let key_files = match &env.key_files {
            Some(spec) => {
                parse_key_files(spec).map_err(|r| bad(format!("{ENV_KEY_FILES}: {r}")))?
            }
            None => self.keys.files.clone(),
        };
        if key_files.is_empty() {
            return Err(bad(
                "no private keys: list [[keys.files]] or set WECOM_KEY_FILES".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in &key_files {
            if !seen.insert(k.version) {
                return Err(bad(format!(
                    "key version {} is listed twice in keys.files",
                    k.version
                )));
            }
        }
        if let SourceConfig::Http { base_url } = &self.source {
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(bad(format!(
                    "source.base_url must start with http:// or https://, got {base_url:?}"
                )));
            }
        }
        let needs_sdk =
            matches!(self.source, SourceConfig::Sdk {}) || self.cipher.kind == CipherKind::Sdk;
        // Whether the library loads is checked when the workers start (and by `wecom-archive check`).
        if needs_sdk && self.sdk.is_none() {
            return Err(bad(
                "source.kind = \"sdk\" and cipher.kind = \"sdk\" need an [sdk] section with the library path"
                    .into(),
            ));
        }
        if self.sink.kind != SinkKind::Local {
            match &self.kafka {
                None => {
                    return Err(bad(format!(
                        "sink.kind = {:?} needs a [kafka] section",
                        self.sink.kind
                    )))
                }
                Some(k) => k.validate().map_err(|e| bad(format!("[kafka]: {e}")))?,
            }
        }
        self.rooms
            .validate()
            .map_err(|r| bad(format!("[rooms]: {r}")))?;
        self.consent
            .validate()
            .map_err(|r| bad(format!("[consent]: {r}")))?;
        if let Some(media) = &self.media {
            media.validate().map_err(|e| bad(e.to_string()))?;
        }
        if let Some(sdk) = &self.sdk {
            sdk.validate().map_err(|e| bad(e.to_string()))?;
        }
        self.archive
            .validate()
            .map_err(|e| bad(wecom_model::error_chain(&e)))?;
        let notify = self
            .notify
            .as_ref()
            .map(|n| {
                n.resolve(
                    &self.corp.corp_id,
                    self.ops.listen.is_some(),
                    crate::notify::process_env,
                )
            })
            .transpose()
            .map_err(|r| bad(format!("[notify]: {r}")))?;
        let workers = if self.pipeline.decrypt_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.pipeline.decrypt_workers
        };
        Ok(Validated {
            corp_id: self.corp.corp_id,
            corp_secret: Secret::new(secret),
            source: self.source,
            limit: self.fetch.limit,
            poll_interval: self.fetch.poll_interval(),
            request_timeout: self.fetch.request_timeout(),
            retry: self.fetch.retry,
            key_backend: self.keys.backend,
            key_files,
            allow_insecure_key_permissions: self.keys.allow_insecure_permissions,
            cipher: self.cipher.kind,
            decrypt_workers: workers,
            decrypt_chunk: self.pipeline.decrypt_chunk.max(1),
            fetch_queue_pages: self.pipeline.fetch_queue_pages.max(1),
            data_dir: self.sink.data_dir,
            segment_max_bytes: self.sink.segment_max_bytes.max(4096),
            sink_kind: self.sink.kind,
            kafka: self.kafka,
            sdk: self.sdk,
            media: self.media,
            ops: self.ops,
            notify,
            archive: self.archive,
            rooms: self.rooms,
            consent: self.consent,
        })
    }
}

/// Environment values that override the file (read once, so tests can pass their own).
#[derive(Default, Clone)]
pub struct EnvOverrides {
    pub corp_secret: Option<String>,
    pub key_files: Option<String>,
}

impl EnvOverrides {
    pub fn from_process() -> Self {
        Self {
            corp_secret: std::env::var(ENV_CORP_SECRET)
                .ok()
                .filter(|s| !s.is_empty()),
            key_files: std::env::var(ENV_KEY_FILES).ok().filter(|s| !s.is_empty()),
        }
    }
}

fn parse_key_files(spec: &str) -> Result<Vec<KeyFile>, String> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let (ver, path) = entry
                .split_once('=')
                .ok_or_else(|| format!("entry {entry:?} is not VERSION=PATH"))?;
            let version = ver
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("entry {entry:?}: {ver:?} is not a key version number"))?;
            Ok(KeyFile {
                version,
                path: PathBuf::from(path.trim()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [corp]
        corp_id = "wwtest"
        [source]
        kind = "http"
        base_url = "http://127.0.0.1:9"
        [keys]
        files = [{ version = 1, path = "k1.pem" }]
        [sink]
        data_dir = "data"
    "#;

    fn validate(text: &str, env: EnvOverrides) -> Result<Validated, PipelineError> {
        Config::parse(text, Path::new("t.toml"))?.validate(Path::new("t.toml"), &env)
    }

    #[test]
    fn secret_comes_from_the_environment_and_is_required_for_http() {
        let err = validate(MINIMAL, EnvOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("WECOM_CORP_SECRET"), "{err}");
        let ok = validate(
            MINIMAL,
            EnvOverrides {
                corp_secret: Some("s3cr3t-value".into()),
                key_files: None,
            },
        )
        .unwrap();
        assert_eq!(ok.corp_secret.expose(), "s3cr3t-value");
        assert!(!format!("{ok:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn key_files_override_and_errors_name_the_entry() {
        let env = EnvOverrides {
            corp_secret: Some("x".into()),
            key_files: Some("1=/a.pem, 7=/b.pem".into()),
        };
        let ok = validate(MINIMAL, env).unwrap();
        let versions: Vec<u32> = ok.key_files.iter().map(|k| k.version).collect();
        assert_eq!(versions, vec![1, 7]);
        let env = EnvOverrides {
            corp_secret: Some("x".into()),
            key_files: Some("one=/a.pem".into()),
        };
        let err = validate(MINIMAL, env).unwrap_err().to_string();
        assert!(err.contains("\"one\"") && err.contains("t.toml"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_limits_are_refused_with_the_file_named() {
        let text = MINIMAL.replace("[sink]", "[sink]\nbogus = 1");
        let err = validate(&text, EnvOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.toml") && err.contains("bogus"), "{err}");
        let text = format!("{MINIMAL}\n[fetch]\nlimit = 5000\n");
        let env = EnvOverrides {
            corp_secret: Some("x".into()),
            key_files: None,
        };
        let err = validate(&text, env).unwrap_err().to_string();
        assert!(err.contains("fetch.limit"), "{err}");
    }

    #[test]
    fn shipped_configs_parse_and_validate() {
        for (name, text) in [
            ("demo.toml", include_str!("../../../config/demo.toml")),
            (
                "production.example.toml",
                include_str!("../../../config/production.example.toml"),
            ),
        ] {
            let env = EnvOverrides {
                corp_secret: Some("x".into()),
                key_files: None,
            };
            if let Err(e) = validate(text, env) {
                panic!("{name}: {e}");
            }
        }
    }
}
