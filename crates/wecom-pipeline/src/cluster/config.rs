//! The cluster config (`cluster.toml`) and the corp definitions of the control topic.
//!
//! `cluster.toml` is a run config without `[corp]`, `[source]` and the key files, plus a `[cluster]`
//! section. Each corp brings those three in its definition ([`CorpDef`], a record of the control topic);
//! [`ClusterFile::corp_config`] lays the definition over the file and validates the result like any run
//! config. Secrets are never in a definition: the corp secret comes from `WECOM_CORP_SECRET_<CORP_ID>`, the
//! definition's `secret_file`, or `<secrets_dir>/<corp_id>`, in that order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, EnvOverrides, SinkKind, Validated};
use crate::error::PipelineError;

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// This worker's name in the group, the claims and the status (default: `<hostname>-<pid>`).
    pub worker_id: Option<String>,
    /// The consumer group every worker joins.
    pub group_id: String,
    /// The compacted control topic: one record per corp (key: corp id, value: its definition).
    pub control_topic: String,
    /// Partitions of the control topic when the worker creates it. Corps are spread over partitions and
    /// partitions over workers, so have at least as many as workers, better several times as many.
    pub control_partitions: i32,
    /// The compacted topic of per-corp status records (`status --cluster`).
    pub status_topic: String,
    /// A worker that misses heartbeats this long loses its corps to the others.
    pub session_timeout_ms: u64,
    /// How long an ownership check stays valid for publishing (see cluster/owner.rs).
    pub lease_ms: u64,
    /// How long a new owner waits after its claim before reading the topics. Default: the lease plus
    /// `[kafka] message_timeout_ms` plus 2 s (ARCHITECTURE.md, "fencing"); a smaller value is refused.
    pub fence_wait_ms: Option<u64>,
    /// Per-corp scratch directories (emptied when a corp is taken over; nothing there must survive).
    pub scratch_dir: PathBuf,
    /// Where `<corp_id>` files hold corp secrets (optional).
    pub secrets_dir: Option<PathBuf>,
    /// Seconds between a corp's failed start or run and the next attempt (doubling up to 60 s).
    pub retry_secs: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            worker_id: None,
            group_id: "wecom-archive-cluster".into(),
            control_topic: "wecom.corps".into(),
            control_partitions: 24,
            status_topic: "wecom.cluster.status".into(),
            session_timeout_ms: 10_000,
            lease_ms: 2_000,
            fence_wait_ms: None,
            scratch_dir: PathBuf::from("data/cluster-scratch"),
            secrets_dir: None,
            retry_secs: 5,
        }
    }
}

/// One corp as the control topic holds it. No secret: only where to find it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpDef {
    pub corp_id: String,
    /// The `[source]` table of a run config (`kind = "http"`, `base_url`; or `kind = "sdk"`).
    pub source: serde_json::Value,
    /// The corp's private keys, one per `publickey_ver`: paths on the workers (mounted secrets).
    pub keys: Vec<CorpKey>,
    /// A file holding the corp secret (else `WECOM_CORP_SECRET_<CORP_ID>` or `<secrets_dir>/<corp_id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpKey {
    pub version: u32,
    pub path: PathBuf,
}

impl CorpDef {
    /// Reads a definition from a TOML file (`wecom-archive cluster add --corp FILE`).
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let bad = |reason: String| PipelineError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let def: CorpDef = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        def.check().map_err(bad)?;
        Ok(def)
    }

    /// The definition's own rules (the rest is checked when a worker builds the corp's config).
    pub fn check(&self) -> Result<(), String> {
        let id = &self.corp_id;
        if id.is_empty()
            || id == "cursor"
            || id == "claim"
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(format!(
                "corp_id {id:?} must be non-empty ASCII letters, digits, '_', '-' or '.'"
            ));
        }
        if self.keys.is_empty() {
            return Err(format!(
                "corp {id}: no keys: list [[keys]] version and path"
            ));
        }
        if !self.source.is_object() {
            return Err(format!("corp {id}: [source] must be a table"));
        }
        Ok(())
    }

    /// The environment variable of the corp's secret: `WECOM_CORP_SECRET_` and the corp id in upper case,
    /// other characters than letters and digits as `_`.
    pub fn secret_env(&self) -> String {
        let id: String = self
            .corp_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("WECOM_CORP_SECRET_{id}")
    }
}

/// `cluster.toml`, parsed: the `[cluster]` section and the rest as the base of every corp's config.
#[derive(Debug, Clone)]
pub struct ClusterFile {
    pub path: PathBuf,
    pub cluster: ClusterSection,
    pub kafka: wecom_kafka::KafkaConfig,
    base: toml::Table,
}

impl ClusterFile {
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let bad = |reason: String| PipelineError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let mut base: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let cluster: ClusterSection = match base.remove("cluster") {
            Some(v) => v.try_into().map_err(|e| bad(format!("[cluster]: {e}")))?,
            None => ClusterSection::default(),
        };
        for own in ["corp", "source", "notify"] {
            if base.contains_key(own) {
                return Err(bad(format!(
                    "[{own}] does not belong in a cluster config: corps bring their own (wecom-archive cluster add)"
                )));
            }
        }
        let kafka: wecom_kafka::KafkaConfig = match base.get("kafka") {
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e| bad(format!("[kafka]: {e}")))?,
            None => return Err(bad("cluster mode needs a [kafka] section".into())),
        };
        kafka.validate().map_err(|e| bad(format!("[kafka]: {e}")))?;
        if kafka.cursor_topic.is_none() {
            return Err(bad(
                "cluster mode keeps cursors in Kafka: set [kafka] cursor_topic".into(),
            ));
        }
        if cluster.control_partitions < 1
            || cluster.session_timeout_ms < 1000
            || cluster.lease_ms == 0
        {
            return Err(bad(
                "[cluster] control_partitions must be positive, session_timeout_ms at least 1000, lease_ms positive"
                    .into(),
            ));
        }
        let min_wait = cluster.lease_ms + u64::from(kafka.message_timeout_ms);
        if cluster.fence_wait_ms.is_some_and(|w| w < min_wait) {
            return Err(bad(format!(
                "[cluster] fence_wait_ms must be at least lease_ms + [kafka] message_timeout_ms ({min_wait})"
            )));
        }
        let scratch_dir = absolute(&cluster.scratch_dir);
        let cluster = ClusterSection {
            scratch_dir,
            ..cluster
        };
        Ok(Self {
            path: path.to_path_buf(),
            cluster,
            kafka,
            base,
        })
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.cluster.session_timeout_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.cluster.lease_ms)
    }

    pub fn fence_wait(&self) -> Duration {
        Duration::from_millis(
            self.cluster.fence_wait_ms.unwrap_or(
                self.cluster.lease_ms + u64::from(self.kafka.message_timeout_ms) + 2_000,
            ),
        )
    }

    pub fn worker_id(&self) -> String {
        self.cluster.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The corp's scratch directory (its run's `data_dir`).
    pub fn scratch(&self, corp_id: &str) -> PathBuf {
        self.cluster.scratch_dir.join(corp_id)
    }

    /// The run config of one corp: this file with the definition laid over it, `sink.kind = "kafka"`, the
    /// scratch directory as `data_dir`, and the corp's secret. Errors name the corp.
    pub fn corp_config(&self, def: &CorpDef) -> Result<Validated, PipelineError> {
        let origin = PathBuf::from(format!("{} (corp {})", self.path.display(), def.corp_id));
        let bad = |reason: String| PipelineError::Config {
            path: origin.clone(),
            reason,
        };
        def.check().map_err(&bad)?;
        let mut t = self.base.clone();
        let mut corp = toml::Table::new();
        corp.insert("corp_id".into(), def.corp_id.clone().into());
        t.insert("corp".into(), corp.into());
        let source = toml::Value::try_from(&def.source).map_err(|e| bad(format!("source: {e}")))?;
        t.insert("source".into(), source);
        let mut keys = match t.remove("keys") {
            Some(toml::Value::Table(k)) => k,
            _ => toml::Table::new(),
        };
        let files = toml::Value::try_from(&def.keys).map_err(|e| bad(format!("keys: {e}")))?;
        keys.insert("files".into(), files);
        t.insert("keys".into(), keys.into());
        let mut sink = match t.remove("sink") {
            Some(toml::Value::Table(s)) => s,
            _ => toml::Table::new(),
        };
        sink.insert("kind".into(), "kafka".into());
        sink.insert(
            "data_dir".into(),
            self.scratch(&def.corp_id).display().to_string().into(),
        );
        t.insert("sink".into(), sink.into());
        // the media worker's consumer group holds the corp's media position: one group per corp
        if let Some(toml::Value::Table(media)) = t.get_mut("media") {
            if let Some(toml::Value::String(g)) = media.get("kafka_group_id").cloned() {
                media.insert(
                    "kafka_group_id".into(),
                    format!("{g}-{}", def.corp_id).into(),
                );
            }
        }
        let cfg: Config = toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let env = EnvOverrides {
            corp_secret: self.secret(def)?,
            key_files: None,
        };
        let v = cfg.validate(&origin, &env)?;
        debug_assert_eq!(v.sink_kind, SinkKind::Kafka);
        Ok(v)
    }

    fn secret(&self, def: &CorpDef) -> Result<Option<String>, PipelineError> {
        if let Some(s) = std::env::var(def.secret_env())
            .ok()
            .filter(|s| !s.is_empty())
        {
            return Ok(Some(s));
        }
        let file = def.secret_file.clone().or_else(|| {
            self.cluster
                .secrets_dir
                .as_ref()
                .map(|d| d.join(&def.corp_id))
                .filter(|p| p.exists())
        });
        match file {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(&p)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| PipelineError::Config {
                    path: p.clone(),
                    reason: format!("corp {}: cannot read the secret file: {e}", def.corp_id),
                }),
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> CorpDef {
        CorpDef {
            corp_id: "wwcorp01".into(),
            source: serde_json::json!({"kind": "http", "base_url": "http://127.0.0.1:1"}),
            keys: vec![CorpKey {
                version: 1,
                path: "/keys/v1.pem".into(),
            }],
            secret_file: None,
        }
    }

    fn file(text: &str) -> Result<ClusterFile, PipelineError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.toml");
        std::fs::write(&p, text).unwrap();
        ClusterFile::load(&p)
    }

    const BASE: &str = r#"
[cluster]
scratch_dir = "/tmp/scratch"
secrets_dir = "/nonexistent"
[kafka]
brokers = "127.0.0.1:9092"
cursor_topic = "wecom.cursors"
message_timeout_ms = 5000
[keys]
allow_insecure_permissions = true
[sink]
kind = "local"
"#;

    #[test]
    fn a_corp_config_is_the_file_with_the_definition_laid_over_it() {
        let f = file(BASE).unwrap();
        std::env::set_var("WECOM_CORP_SECRET_WWCORP01", "s3cret");
        let v = f.corp_config(&def()).unwrap();
        assert_eq!(v.corp_id, "wwcorp01");
        assert_eq!(v.sink_kind, SinkKind::Kafka);
        assert_eq!(v.data_dir, PathBuf::from("/tmp/scratch/wwcorp01"));
        assert_eq!(v.key_files.len(), 1);
        assert!(v.allow_insecure_key_permissions);
        assert_eq!(v.corp_secret.expose(), "s3cret");
        assert_eq!(f.fence_wait(), Duration::from_millis(2000 + 5000 + 2000));
    }

    #[test]
    fn a_corp_without_a_secret_is_refused_naming_the_corp() {
        let f = file(BASE).unwrap();
        let mut d = def();
        d.corp_id = "wwnosecret".into();
        let err = f.corp_config(&d).unwrap_err().to_string();
        assert!(
            err.contains("wwnosecret") && err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn cluster_files_without_a_cursor_topic_or_with_a_corp_are_refused() {
        let err = file(&BASE.replace("cursor_topic = \"wecom.cursors\"", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cursor_topic"), "{err}");
        let err = file(&format!("{BASE}\n[corp]\ncorp_id = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[corp]"), "{err}");
        let err = file(&BASE.replace("[cluster]", "[cluster]\nfence_wait_ms = 10"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fence_wait_ms"), "{err}");
    }

    #[test]
    fn bad_corp_ids_are_refused() {
        let mut d = def();
        d.corp_id = "a/b".into();
        assert!(d.check().unwrap_err().contains("a/b"));
        d.corp_id = "claim".into();
        assert!(d.check().is_err());
        assert_eq!(def().secret_env(), "WECOM_CORP_SECRET_WWCORP01");
    }
}
