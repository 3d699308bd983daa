//! The `[console]` config section: where the console listens, where it keeps its index, who may read
//! what. It compiles without the `server` feature (only serde and thiserror), so the pipeline's
//! top-level config can embed [`ConsoleConfig`] cheaply.
//!
//! ```toml
//! [console]
//! listen = "127.0.0.1:8790"          # loopback by default; put TLS in front before exposing it
//! # index_dir = "data/console/index"  # default <data_dir>/console/index
//! # source = "auto"                   # "local" segment files, "kafka" (consumer group), "auto": as [sink]
//! timezone = "+08:00"                 # how times are shown and dates are read
//!
//! [[console.users]]
//! name = "alice"                      # who the audit log names
//! role = "reviewer"                   # reviewer: everything; api: the transcript and search API only
//! token_file = "/etc/wecom/alice.token"
//! ```
//!
//! Tokens: `token_file` (first line, mode 600) or, better, the environment:
//! `WECOM_CONSOLE_TOKENS="alice:reviewer:TOKEN,llm-bot:api:TOKEN2"` ([`TOKENS_ENV`]), which adds users
//! and replaces the token of a user of the same name. A token is never read from a URL, never logged,
//! and never shown by `Debug`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wecom_model::Secret;

/// Environment variable with users and their tokens: `name:role:token[,name:role:token...]`.
pub const TOKENS_ENV: &str = "WECOM_CONSOLE_TOKENS";
/// Shortest token accepted: a token is a password, guessable ones are refused.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a user may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every page, media object, export and API.
    Reviewer,
    /// `/api/*` only: conversations, transcripts, search, the OpenAPI document.
    Api,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reviewer => "reviewer",
            Role::Api => "api",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "reviewer" => Some(Role::Reviewer),
            "api" => Some(Role::Api),
            _ => None,
        }
    }
}

/// Where the console reads records from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleSource {
    /// Kafka when `[sink] kind = "kafka"`, the local segment files otherwise.
    #[default]
    Auto,
    /// Tail `<data_dir>/<corp>/<stream>/messages/seg-*.ndjson` (new lines, new segments, new rooms).
    Local,
    /// Consume `[kafka] topics.messages` in the consumer group `kafka_group_id`.
    Kafka,
}

/// One user of the console, as written in the file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub role: Role,
    /// Better left out of the file: use `token_file` or [`TOKENS_ENV`].
    #[serde(default)]
    pub token: Option<Secret>,
    /// A file whose first line is the token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// The `[console]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address to listen on; `--listen` overrides it.
    pub listen: SocketAddr,
    /// The search index and its position; default `<data_dir>/console/index`. Deleting it rebuilds it.
    pub index_dir: Option<PathBuf>,
    /// Thumbnails and transcoded voice; default `<data_dir>/console/cache`. Safe to delete.
    pub cache_dir: Option<PathBuf>,
    /// The audit log (one JSON line per request); default `<data_dir>/console/audit.ndjson`.
    pub audit_log: Option<PathBuf>,
    pub source: ConsoleSource,
    /// Consumer group with `source = "kafka"`. Each console index needs every partition: give every
    /// console its own group.
    pub kafka_group_id: String,
    /// New records become searchable at most this long after they are read.
    pub commit_interval_ms: u64,
    /// Memory of the index writer (tantivy splits it between its threads; at least 15 MiB each).
    pub index_memory_mb: usize,
    /// Index writer threads; 0 means one (the console shares its host with the pipeline).
    pub index_threads: usize,
    /// Searches, thumbnails and exports running at once; further requests wait.
    pub max_concurrent_queries: usize,
    /// Messages per timeline or search page.
    pub page_size: usize,
    /// UTC offset used to show times and read dates (`+08:00`, `Z`).
    pub timezone: String,
    /// The ffmpeg binary that transcodes AMR voice for browsers (Debian package `ffmpeg`).
    pub ffmpeg: PathBuf,
    /// Longest side of image thumbnails, in pixels.
    pub thumbnail_px: u32,
    /// Largest image the console decodes for a thumbnail; bigger ones are only offered as downloads.
    pub thumbnail_source_max_bytes: u64,
    /// A browser session expires this long after login.
    pub session_ttl_minutes: u64,
    /// Mark the session cookie `Secure` (set it when a TLS proxy is in front).
    pub secure_cookies: bool,
    pub users: Vec<UserConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8790)),
            index_dir: None,
            cache_dir: None,
            audit_log: None,
            source: ConsoleSource::Auto,
            kafka_group_id: "wecom-archive-console".to_owned(),
            commit_interval_ms: 1000,
            index_memory_mb: 128,
            index_threads: 0,
            max_concurrent_queries: 8,
            page_size: 50,
            timezone: "+08:00".to_owned(),
            ffmpeg: PathBuf::from("ffmpeg"),
            thumbnail_px: 320,
            thumbnail_source_max_bytes: 32 * 1024 * 1024,
            session_ttl_minutes: 8 * 60,
            secure_cookies: false,
            users: Vec::new(),
        }
    }
}

/// Why the `[console]` section is not usable. Every message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleConfigError {
    #[error("console.{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("console.users[{index}].token_file {}: cannot read it", path.display())]
    TokenFile {
        index: usize,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{TOKENS_ENV}: entry {entry} is not NAME:ROLE:TOKEN with ROLE reviewer or api")]
    BadEnvEntry { entry: usize },
    #[error(
        "no console users: set {TOKENS_ENV}=NAME:ROLE:TOKEN or add [[console.users]] with a token_file"
    )]
    NoUsers,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConsoleConfigError {
    ConsoleConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A user the console knows, with the token resolved.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub token: Secret,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &"***")
            .finish()
    }
}

/// A UTC offset in seconds, parsed from `+08:00`, `-05:30` or `Z`.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

impl ConsoleConfig {
    /// Checks every value that can be checked without I/O. Errors name the key.
    pub fn validate(&self) -> Result<(), ConsoleConfigError> {
        if self.kafka_group_id.trim().is_empty() {
            return Err(invalid("kafka_group_id", "is empty"));
        }
        if self.commit_interval_ms == 0 || self.commit_interval_ms > 600_000 {
            return Err(invalid(
                "commit_interval_ms",
                format!("must be 1..=600000, got {}", self.commit_interval_ms),
            ));
        }
        let threads = self.index_threads.max(1);
        if self.index_memory_mb < 15 * threads {
            return Err(invalid(
                "index_memory_mb",
                format!(
                    "must be at least 15 per index thread ({}), got {}",
                    15 * threads,
                    self.index_memory_mb
                ),
            ));
        }
        if self.index_threads > 64 {
            return Err(invalid("index_threads", "must be at most 64"));
        }
        if self.max_concurrent_queries == 0 {
            return Err(invalid("max_concurrent_queries", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(invalid(
                "page_size",
                format!("must be 1..=1000, got {}", self.page_size),
            ));
        }
        if parse_utc_offset(&self.timezone).is_none() {
            return Err(invalid(
                "timezone",
                format!(
                    "{:?} is not a UTC offset such as \"+08:00\" or \"Z\"",
                    self.timezone
                ),
            ));
        }
        if !(32..=2048).contains(&self.thumbnail_px) {
            return Err(invalid("thumbnail_px", "must be 32..=2048"));
        }
        if self.session_ttl_minutes == 0 {
            return Err(invalid("session_ttl_minutes", "must be positive"));
        }
        if self.ffmpeg.as_os_str().is_empty() {
            return Err(invalid("ffmpeg", "is empty"));
        }
        let mut names = BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let key = format!("users[{i}]");
            check_name(&u.name).map_err(|r| invalid(format!("{key}.name"), r))?;
            if !names.insert(u.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("user {:?} is listed twice", u.name),
                ));
            }
            match (&u.token, &u.token_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(key, "set token or token_file, not both"));
                }
                (Some(t), None) => {
                    check_token(t.expose()).map_err(|r| invalid(format!("{key}.token"), r))?
                }
                (None, _) => {}
            }
        }
        Ok(())
    }

    /// The users with their tokens: the file's users (tokens read from `token_file`), then the entries
    /// of `env_tokens` (the value of [`TOKENS_ENV`]), which add users or replace a token. Refuses an
    /// empty user list, short tokens and a token shared by two users.
    pub fn resolve_users(&self, env_tokens: Option<&str>) -> Result<Vec<User>, ConsoleConfigError> {
        self.validate()?;
        let mut users: Vec<(String, Role, Option<Secret>)> = Vec::new();
        for (i, u) in self.users.iter().enumerate() {
            let token = match (&u.token, &u.token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(path)) => Some(read_token_file(i, path)?),
                (None, None) => None,
            };
            users.push((u.name.clone(), u.role, token));
        }
        if let Some(spec) = env_tokens.filter(|s| !s.trim().is_empty()) {
            for (i, entry) in spec.split(',').enumerate() {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let mut parts = entry.splitn(3, ':');
                let (Some(name), Some(role), Some(token)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(ConsoleConfigError::BadEnvEntry { entry: i + 1 });
                };
                let role = Role::parse(role.trim())
                    .ok_or(ConsoleConfigError::BadEnvEntry { entry: i + 1 })?;
                let name = name.trim();
                check_name(name)
                    .map_err(|r| invalid(format!("{TOKENS_ENV} entry {}", i + 1), r))?;
                check_token(token.trim())
                    .map_err(|r| invalid(format!("{TOKENS_ENV} entry {} ({name})", i + 1), r))?;
                let token = Some(Secret::new(token.trim()));
                match users.iter_mut().find(|(n, _, _)| n == name) {
                    Some(u) => {
                        u.1 = role;
                        u.2 = token;
                    }
                    None => users.push((name.to_owned(), role, token)),
                }
            }
        }
        let mut out = Vec::with_capacity(users.len());
        for (i, (name, role, token)) in users.into_iter().enumerate() {
            let Some(token) = token else {
                return Err(invalid(
                    format!("users[{i}]"),
                    format!(
                        "user {name:?} has no token: set token_file, or give it in {TOKENS_ENV}"
                    ),
                ));
            };
            if out.iter().any(|u: &User| u.token == token) {
                return Err(invalid(
                    "users",
                    format!(
                        "user {name:?} shares its token with another user: give every user its own"
                    ),
                ));
            }
            out.push(User { name, role, token });
        }
        if out.is_empty() {
            return Err(ConsoleConfigError::NoUsers);
        }
        Ok(out)
    }

    /// `index_dir`, or its default under `data_dir`.
    pub fn index_dir(&self, data_dir: &Path) -> PathBuf {
        self.index_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("console").join("index"))
    }

    /// `cache_dir`, or its default under `data_dir`.
    pub fn cache_dir(&self, data_dir: &Path) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("console").join("cache"))
    }

    /// `audit_log`, or its default under `data_dir`.
    pub fn audit_log(&self, data_dir: &Path) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| data_dir.join("console").join("audit.ndjson"))
    }

    /// The UTC offset of `timezone` in seconds (0 when invalid; [`ConsoleConfig::validate`] refuses that).
    pub fn utc_offset_secs(&self) -> i32 {
        parse_utc_offset(&self.timezone).unwrap_or(0)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?} must be 1..=64 of A-Z a-z 0-9 _ - . @"
        ))
    }
}

fn check_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token is shorter than {MIN_TOKEN_LEN} characters: generate one with `openssl rand -base64 32`"
        ));
    }
    if token
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err("the token contains whitespace, a control character or a comma".to_owned());
    }
    Ok(())
}

fn read_token_file(index: usize, path: &Path) -> Result<Secret, ConsoleConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConsoleConfigError::TokenFile {
        index,
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    check_token(token).map_err(|r| invalid(format!("users[{index}].token_file"), r))?;
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConsoleConfig {
        #[derive(Deserialize)]
        struct File {
            console: ConsoleConfig,
        }
        toml::from_str::<File>(text).expect("parses").console
    }

    #[test]
    fn defaults_listen_on_loopback_and_validate() {
        let c = parse("[console]\n");
        assert!(c.listen.ip().is_loopback());
        c.validate().expect("defaults are valid");
        assert_eq!(c.utc_offset_secs(), 8 * 3600);
        assert_eq!(
            c.index_dir(Path::new("data")),
            Path::new("data/console/index")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let check = |text: &str, key: &str| {
            let err = parse(text).validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
        };
        check(
            "[console]\ntimezone = \"Asia/Shanghai\"",
            "console.timezone",
        );
        check("[console]\npage_size = 0", "console.page_size");
        check("[console]\nindex_memory_mb = 4", "console.index_memory_mb");
        check(
            "[console]\n[[console.users]]\nname = \"a b\"\nrole = \"api\"",
            "console.users[0].name",
        );
        check(
            "[console]\n[[console.users]]\nname = \"a\"\nrole = \"api\"\ntoken = \"short\"",
            "console.users[0].token",
        );
        let unknown = toml::from_str::<toml::Value>("[console]\nlisten_addr = 1")
            .ok()
            .and_then(|v| v.get("console").cloned())
            .map(|v| v.try_into::<ConsoleConfig>());
        assert!(matches!(unknown, Some(Err(_))), "unknown keys are refused");
    }

    #[test]
    fn env_tokens_add_users_and_never_show_in_debug() {
        let c = parse(
            "[console]\n[[console.users]]\nname = \"alice\"\nrole = \"reviewer\"\ntoken = \"alice-token-0123456789\"",
        );
        let users = c
            .resolve_users(Some(
                "bot:api:bot-token-0123456789abcdef, alice:reviewer:alice-new-token-0123",
            ))
            .expect("resolves");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].token.expose(), "alice-new-token-0123");
        assert_eq!(users[1].role, Role::Api);
        let shown = format!("{users:?} {c:?}");
        assert!(!shown.contains("token-0123"), "{shown}");

        let err = c
            .resolve_users(Some("bot:admin:bot-token-0123456789abcdef"))
            .unwrap_err();
        assert!(err.to_string().contains(TOKENS_ENV), "{err}");
        let err = c
            .resolve_users(Some("bot:api:alice-token-0123456789"))
            .unwrap_err();
        assert!(err.to_string().contains("shares its token"), "{err}");
        let err = parse("[console]\n").resolve_users(None).unwrap_err();
        assert!(matches!(err, ConsoleConfigError::NoUsers), "{err}");
    }

    #[test]
    fn token_files_are_read_and_missing_ones_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        std::fs::write(&path, "file-token-0123456789\n").expect("write");
        let c = parse(&format!(
            "[console]\n[[console.users]]\nname = \"a\"\nrole = \"api\"\ntoken_file = {:?}",
            path.display().to_string()
        ));
        assert_eq!(
            c.resolve_users(None).expect("resolves")[0].token.expose(),
            "file-token-0123456789"
        );
        std::fs::remove_file(&path).expect("rm");
        let err = c.resolve_users(None).unwrap_err().to_string();
        assert!(err.contains("console.users[0].token_file"), "{err}");
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Some(28800));
        assert_eq!(parse_utc_offset("-05:30"), Some(-19800));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        assert_eq!(parse_utc_offset("8"), None);
        assert_eq!(parse_utc_offset("+8:00"), None);
    }
}
