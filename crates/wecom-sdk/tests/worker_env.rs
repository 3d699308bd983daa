//! Workers start with a clean environment: the secrets of the pool's process (corp secret, object
//! store key, gateway token, proxy password) never reach the closed-source library's process.
//!
//! A test binary of its own because it sets variables in its own environment, which is only sound
//! while no other thread runs (the `it` binary runs its tests in parallel threads).

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use wecom_sdk::{worker::SECRET_ENV, SdkPool, INHERITED_ENV};

const PARENT_SECRETS: [(&str, &str); 6] = [
    ("WECOM_CORP_SECRET", "parent-corp-secret-1b2c"),
    ("WECOM_S3_SECRET_ACCESS_KEY", "parent-s3-secret-3d4e"),
    ("AWS_SECRET_ACCESS_KEY", "parent-aws-secret-5f6a"),
    ("WECOM_GATEWAY_TOKEN", "parent-gateway-token-7b8c"),
    ("WECOM_SDK_PROXY_PASSWORD", "parent-proxy-password-9d0e"),
    (
        "https_proxy",
        "http://user:parent-proxy-cred-1a2b@proxy:3128",
    ),
];

/// `/proc/<pid>/environ` of the process whose environment holds `probe`.
fn environ_with(probe: &str) -> Option<(u32, Vec<(String, String)>)> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<(String, String)> = raw
            .split(|b| *b == 0)
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                match kv.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (kv.into_owned(), String::new()),
                }
            })
            .collect();
        if vars
            .iter()
            .any(|(k, v)| k == "WECOM_TEST_ENV_PROBE" && v == probe)
        {
            return Some((pid, vars));
        }
    }
    None
}

#[test]
fn workers_inherit_no_secret_of_the_parent() {
    // Before any other thread exists: set the secrets a deployment has in the pool's environment.
    for (k, v) in PARENT_SECRETS {
        std::env::set_var(k, v);
    }
    std::env::set_var("TZ", "Asia/Shanghai");
    let probe = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut cfg =
            common::pool_config(common::standin_lib(), "wwenvcorp", "pool-corp-secret", 1);
        cfg.worker_env.extend([
            (
                "WECOM_STANDIN_BASE_URL".to_owned(),
                "http://127.0.0.1:9".to_owned(),
            ),
            ("WECOM_TEST_ENV_PROBE".to_owned(), probe.clone()),
        ]);
        let pool = SdkPool::start(cfg).await.expect("pool over the stand-in");
        let (pid, vars) = environ_with(&probe).expect("the worker's /proc/<pid>/environ");
        assert_ne!(pid, std::process::id());

        let raw = vars
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n");
        for (name, value) in PARENT_SECRETS {
            assert!(
                !raw.contains(value),
                "worker {pid} inherited the parent's {name}:\n{raw}"
            );
        }
        let allowed = |k: &str| {
            INHERITED_ENV.contains(&k)
                || k == SECRET_ENV
                || k == "WECOM_STANDIN_BASE_URL"
                || k == "WECOM_TEST_ENV_PROBE"
        };
        for (k, _) in &vars {
            assert!(allowed(k), "worker {pid} got {k} from the parent:\n{raw}");
        }
        // What it does need is there: the corp secret in its own variable, the loader's variables.
        assert!(vars
            .iter()
            .any(|(k, v)| k == SECRET_ENV && v == "pool-corp-secret"));
        assert!(vars.iter().any(|(k, v)| k == "TZ" && v == "Asia/Shanghai"));
        pool.ping()
            .await
            .expect("the worker works in its clean environment");
        pool.shutdown().await;
    });
}
