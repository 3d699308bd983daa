//! `wecom-archive check`: loads the config and the keyring, tries the token and the sink, and prints a
//! pass/fail list. Exits non-zero when anything fails. Never prints a secret.

use std::path::Path;

use wecom_crypto::Keyring;
use wecom_pipeline::{Config, Source, Validated};

struct Report {
    lines: Vec<(bool, String, String)>,
}

impl Report {
    fn add(&mut self, ok: bool, what: impl Into<String>, detail: impl Into<String>) {
        let (what, detail) = (what.into(), detail.into());
        println!("{}  {what:<12}  {detail}", if ok { "PASS" } else { "FAIL" });
        self.lines.push((ok, what, detail));
    }
    fn failed(&self) -> usize {
        self.lines.iter().filter(|l| !l.0).count()
    }
}

pub async fn check(config: &Path) -> anyhow::Result<()> {
    let mut r = Report { lines: Vec::new() };
    let cfg = match Config::load(config) {
        Ok(cfg) => {
            r.add(
                true,
                "config",
                format!("{} (corp {})", config.display(), cfg.corp_id),
            );
            cfg
        }
        Err(e) => {
            r.add(false, "config", e.to_string());
            anyhow::bail!("1 check failed");
        }
    };
    check_keys(&cfg, &mut r);
    check_sdk(&cfg, &mut r).await;
    check_token(&cfg, &mut r).await;
    check_sink(&cfg, &mut r);
    match r.failed() {
        0 => {
            println!("all {} checks passed", r.lines.len());
            Ok(())
        }
        n => anyhow::bail!("{n} of {} checks failed", r.lines.len()),
    }
}

fn check_keys(cfg: &Validated, r: &mut Report) {
    for k in &cfg.key_files {
        let what = format!("key v{}", k.version);
        let path = k.path.display();
        let mode = match std::fs::metadata(&k.path) {
            Ok(m) => file_mode(&m),
            Err(e) => {
                r.add(false, what, format!("{path}: {e}"));
                continue;
            }
        };
        let mut ring = Keyring::new(cfg.key_backend);
        if let Err(e) = ring.load_pem_file(k.version, &k.path) {
            r.add(false, what, format!("{path}: {e}"));
            continue;
        }
        let bits = ring
            .key_bits(k.version)
            .map_or_else(|| "?".to_string(), |b| b.to_string());
        let open = mode & 0o077 != 0;
        if open && !cfg.allow_insecure_key_permissions {
            r.add(
                false,
                what,
                format!(
                    "{path}: {bits}-bit RSA, but readable by group/other (mode {mode:04o}); \
                     chmod 600 it, or set [keys] allow_insecure_permissions = true"
                ),
            );
        } else if open {
            r.add(
                true,
                what,
                format!("{path}: {bits}-bit RSA (mode {mode:04o} allowed by keys.allow_insecure_permissions)"),
            );
        } else {
            r.add(
                true,
                what,
                format!("{path}: {bits}-bit RSA (mode {mode:04o})"),
            );
        }
    }
}

#[cfg(unix)]
fn file_mode(m: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_: &std::fs::Metadata) -> u32 {
    0o600
}

/// With `[sdk]`: the library loads in a worker process, every symbol of the header resolves, `Init` succeeds.
async fn check_sdk(cfg: &Validated, r: &mut Report) {
    let Some(sdk) = &cfg.sdk else { return };
    let what = format!("sdk library {}", sdk.library.display());
    let pc = match sdk.pool_config(&cfg.corp_id, &cfg.corp_secret) {
        Ok(pc) => pc,
        Err(e) => return r.add(false, what, wecom_model::error_chain(&e)),
    };
    match wecom_sdk::SdkPool::check(pc).await {
        Ok(()) => r.add(
            true,
            what,
            "loads in a worker, all symbols resolve, Init returned 0",
        ),
        Err(e) => r.add(false, what, format!("corp {}: {e}", cfg.corp_id)),
    }
}

async fn check_token(cfg: &Validated, r: &mut Report) {
    let source = match Source::connect(cfg).await {
        Ok(s) => s,
        Err(e) => {
            r.add(false, "token", e.to_string());
            return;
        }
    };
    // One small read: it needs a token, and proves the secret and the endpoint work.
    match source.client.get_chat_data(0, 1).await {
        Ok(_) => r.add(
            true,
            "token",
            format!(
                "access token obtained ({} gettoken call(s)); get_chat_data answered",
                source.client.token_refreshes()
            ),
        ),
        Err(e) => r.add(false, "token", format!("corp {}: {e}", cfg.corp_id)),
    }
    source.shutdown().await;
}

fn check_sink(cfg: &Validated, r: &mut Report) {
    let dir = cfg.data_dir.join(&cfg.corp_id);
    let probe = dir.join(format!(".check-{}.tmp", std::process::id()));
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&probe, b"check\n"))
        .and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => r.add(
            true,
            "sink",
            format!("data dir {} is writable", dir.display()),
        ),
        Err(e) => r.add(
            false,
            "sink",
            format!("data dir {} is not writable: {e}", dir.display()),
        ),
    }
}
