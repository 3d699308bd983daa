//! The `[archive]` config section (serde, `deny_unknown_fields`) and its validation.
//!
//! ```toml
//! [archive]
//! enabled = true                     # the default: it is the only copy older than the service's retention
//!
//! [archive.store]                    # the shared object-store section (wecom_store::ObjectStoreConfig)
//! kind = "s3"                        # or "local" (the default; root defaults to the sink's data_dir)
//! bucket = "wecom-raw"
//!
//! [archive.object_lock]              # optional, S3 only: every object written under retention
//! mode = "compliance"                # the default; "governance" can be lifted by a privileged user
//! retain_days = 2557                 # e.g. seven years
//!
//! [archive.signing]                  # optional: signed checkpoints of every stream's hash chain
//! key_file = "/etc/wecom/archive-signing.pem"   # openssl genpkey -algorithm ed25519 -out ...
//! checkpoint_interval_secs = 3600    # the default; a checkpoint is also signed at the end of every run
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use wecom_store::ObjectStoreConfig;

use crate::error::LedgerError;

/// Default of `archive.signing.checkpoint_interval_secs`.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: u64 = 3600;
/// The longest retention accepted (S3's own limit is 100 years; a typo beyond this is refused).
pub const MAX_RETAIN_DAYS: u32 = 36_500;

/// The `[archive]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Keep the raw archive (on by default: it is the only copy older than the service's retention).
    pub enabled: bool,
    /// Where segments, manifest entries, checkpoints and room snapshots go.
    pub store: ObjectStoreConfig,
    /// Write every object under S3 Object Lock retention.
    pub object_lock: Option<ObjectLockConfig>,
    /// Sign checkpoints of every stream's hash chain.
    pub signing: Option<SigningConfig>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            store: ObjectStoreConfig::default(),
            object_lock: None,
            signing: None,
        }
    }
}

/// `[archive.object_lock]`: the retention every object is written with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLockConfig {
    #[serde(default)]
    pub mode: LockMode,
    /// Days from the write until the object version may be deleted or overwritten.
    pub retain_days: u32,
}

/// S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// No one, not even the account's root user, can delete the version or shorten its retention.
    #[default]
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can (for trials; compliance is what an auditor expects).
    Governance,
}

impl LockMode {
    /// The value of `x-amz-object-lock-mode`.
    pub fn as_header(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// `[archive.signing]`: the Ed25519 key checkpoints are signed with.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// PKCS#8 PEM of an Ed25519 private key (`openssl genpkey -algorithm ed25519`).
    pub key_file: PathBuf,
    /// A checkpoint is signed after a write once this long has passed since the last one.
    #[serde(default = "default_interval")]
    pub checkpoint_interval_secs: u64,
}

// The path is not secret, but keeping Debug explicit makes sure nothing else ever is printed.
impl std::fmt::Debug for SigningConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningConfig")
            .field("key_file", &self.key_file)
            .field("checkpoint_interval_secs", &self.checkpoint_interval_secs)
            .finish()
    }
}

fn default_interval() -> u64 {
    DEFAULT_CHECKPOINT_INTERVAL_SECS
}

impl ArchiveConfig {
    /// Checks what can be checked without touching the store or the key file; errors name the key.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |key: &str, reason: &str| {
            Err(LedgerError::Config {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        self.store.validate("archive.store")?;
        if let Some(lock) = &self.object_lock {
            if !self.store.is_s3() {
                return bad(
                    "archive.object_lock",
                    "needs archive.store.kind = \"s3\" (a bucket created with Object Lock enabled)",
                );
            }
            if lock.retain_days == 0 {
                return bad("archive.object_lock.retain_days", "must be at least 1");
            }
            if lock.retain_days > MAX_RETAIN_DAYS {
                return bad(
                    "archive.object_lock.retain_days",
                    "must be at most 36500 (100 years)",
                );
            }
        }
        if let Some(signing) = &self.signing {
            if signing.key_file.as_os_str().is_empty() {
                return bad(
                    "archive.signing.key_file",
                    "is empty (create one with `openssl genpkey -algorithm ed25519 -out FILE`)",
                );
            }
            if signing.checkpoint_interval_secs == 0 {
                return bad(
                    "archive.signing.checkpoint_interval_secs",
                    "must be at least 1",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ArchiveConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn defaults_are_a_local_unsigned_archive() {
        let c = parse("").expect("empty section");
        assert!(c.enabled);
        assert!(!c.store.is_s3());
        assert_eq!(c.object_lock, None);
        assert_eq!(c.signing, None);
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn full_section_parses() {
        let c = parse(
            "[store]\nkind = \"s3\"\nbucket = \"b\"\n\
             [object_lock]\nretain_days = 30\n\
             [signing]\nkey_file = \"/k.pem\"\n",
        )
        .expect("parses");
        let lock = c.object_lock.clone().expect("lock");
        assert_eq!(lock.mode, LockMode::Compliance);
        assert_eq!(lock.retain_days, 30);
        let signing = c.signing.clone().expect("signing");
        assert_eq!(
            signing.checkpoint_interval_secs,
            DEFAULT_CHECKPOINT_INTERVAL_SECS
        );
        c.validate().expect("valid");
        assert!(parse("[object_lock]\nretain_days = 1\nmode = \"legal\"\n").is_err());
        assert!(parse("[signing]\nkey_file = \"k\"\nkey = \"inline\"\n").is_err());
        assert!(parse("unknown = 1\n").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let check = |toml_text: &str, key: &str| {
            let err = parse(toml_text)
                .expect("parses")
                .validate()
                .expect_err("invalid")
                .to_string();
            assert!(err.starts_with(key), "{toml_text:?}: {err}");
        };
        check("[object_lock]\nretain_days = 30\n", "archive.object_lock");
        check(
            "[store]\nkind = \"s3\"\nbucket = \"b\"\n[object_lock]\nretain_days = 0\n",
            "archive.object_lock.retain_days",
        );
        check(
            "[store]\nkind = \"s3\"\nbucket = \"b\"\n[object_lock]\nretain_days = 40000\n",
            "archive.object_lock.retain_days",
        );
        check("[signing]\nkey_file = \"\"\n", "archive.signing.key_file");
        check(
            "[signing]\nkey_file = \"k\"\ncheckpoint_interval_secs = 0\n",
            "archive.signing.checkpoint_interval_secs",
        );
        check(
            "[store]\nkind = \"s3\"\nbucket = \"\"\n",
            "archive.store.bucket",
        );
    }
}
