//! Throughput of the SDK cipher through the worker pool, per item and batched, next to what bounds
//! the archive → SDK-cipher path anyway: RSA private operations (the random-key unwrap) on all cores.
//!
//! Runs over the stand-in library (the simulator's cipher behind the SDK's C interface), so the
//! figures measure the pool, the protocol and the process hops, not Tencent's AES. Build the stand-in
//! in the bench profile first:
//!
//! ```text
//! cargo build --release -p wecom-sdk-standin
//! cargo bench -p wecom-sdk --bench decrypt
//! ```
//!
//! Next to the wall-clock rates, each run's rate is projected for an idle machine from the CPU time
//! it cost (this process and its worker processes): on a machine shared with other work the wall
//! clock says more about the neighbours than about this code.
//!
//! `WECOM_BENCH_ITEMS` (default 30000) sets the number of items of the SDK-only runs; the runs with
//! RSA use at most 3000 (RSA dominates them). Each figure is the best of three interleaved rounds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use wecom_crypto::{
    random_message_key, Keyring, MessageCipher as _, RsaBackendKind, SimCipher, WrappingKey,
};
use wecom_sdk::{SdkCipher, SdkPool, SdkPoolConfig, Secret};

const CHUNK: usize = 128;
const ROUNDS: usize = 3;

struct Item {
    key: Vec<u8>,
    wrapped: String,
    msg: String,
}

fn standin_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let lib = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("libwecom_sdk_standin.so"))
        .expect("bench binary lives in <target>/<profile>/deps");
    assert!(
        lib.is_file(),
        "{} is missing: run `cargo build --release -p wecom-sdk-standin` first",
        lib.display()
    );
    lib
}

fn corpus(n: usize, wrap: &WrappingKey) -> Vec<Item> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // A text message of typical size.
    let filler = "消息内容 message text ".repeat(12);
    (0..n)
        .map(|i| {
            let key = random_message_key(&mut rng).to_vec();
            let plain = format!(
                r#"{{"msgid":"m{i}","action":"send","from":"zhangsan","tolist":["lisi"],"roomid":"","msgtime":1700000000000,"msgtype":"text","text":{{"content":"{filler}{i}"}}}}"#
            );
            let msg = SimCipher::encrypt(&key, plain.as_bytes()).expect("encrypt");
            let wrapped = wrap.wrap_random_key(&key, &mut rng).expect("wrap");
            Item { key, wrapped, msg }
        })
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the command name (the first is the state).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// User + system CPU time of `pid` (exited threads included), in clock ticks (USER_HZ, 100/s).
fn cpu_ticks_of(fields: &[u64]) -> u64 {
    // After the state: ppid is field 0, utime 10, stime 11.
    fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0)
}

/// CPU time of this process and of its children (the SDK workers), in seconds.
fn cpu_seconds() -> f64 {
    let me = std::process::id();
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat_fields)
        .filter(|f| f.first().copied() == Some(u64::from(me)))
        .map(|f| cpu_ticks_of(&f))
        .sum();
    let own = stat_fields(me).map_or(0, |f| cpu_ticks_of(&f));
    (own + children) as f64 / 100.0
}

/// Items per second of one run: by the wall clock, and projected for an otherwise idle machine
/// (`cores` divided by the CPU seconds the run cost per item, workers included), which does not
/// depend on what else the machine is running.
#[derive(Clone, Copy, Default)]
struct Rate {
    wall: f64,
    idle: f64,
}

/// Runs `work` on `threads` threads over equal shares of `items`.
fn rate(items: &[Item], threads: usize, work: impl Fn(&[Item]) + Sync) -> Rate {
    let cpu = cpu_seconds();
    let start = Instant::now();
    std::thread::scope(|s| {
        for share in items.chunks(items.len().div_ceil(threads)) {
            let work = &work;
            s.spawn(move || work(share));
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let n = items.len() as f64;
    Rate {
        wall: n / wall,
        idle: threads as f64 * n / cpu,
    }
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n: usize = std::env::var("WECOM_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let pem_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sim-keys/v1.pem");
    let pem = std::fs::read_to_string(pem_path).expect("sim key v1");
    let wrap = WrappingKey::from_private_pem(&pem).expect("wrapping key");
    let mut keyring = Keyring::new(RsaBackendKind::AwsLc);
    keyring.insert_pem(1, &pem).expect("keyring");
    let items = corpus(n, &wrap);
    let rsa_items = &items[..n.min(3000)];

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut cfg = SdkPoolConfig::new(standin_lib(), "wwbenchcorp", Secret::new("bench-secret"));
    cfg.worker_exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_wecom-sdk-worker")));
    cfg.worker_env
        .push(("WECOM_STANDIN_BASE_URL".into(), "http://127.0.0.1:9".into()));
    let pool: SdkPool = rt.block_on(SdkPool::start(cfg)).expect("pool");
    let cipher = SdkCipher::new(pool.clone());
    println!(
        "items: {n} ({} with rsa), cores: {cores}, sdk workers: {}, caller threads: {cores}, batch: {CHUNK}",
        rsa_items.len(),
        pool.workers()
    );

    // Warm up the workers and the page cache.
    for chunk in items[..n.min(2000)].chunks(CHUNK) {
        let pairs: Vec<(&[u8], &str)> = chunk.iter().map(|i| (&i.key[..], &i.msg[..])).collect();
        assert!(cipher.decrypt_batch(&pairs).iter().all(Result::is_ok));
    }

    // The machine may be shared: every figure is the best of a few interleaved rounds, so that the
    // ratios compare runs under the same conditions.
    let mut best = [Rate::default(); 5];
    for _ in 0..ROUNDS {
        let round = [
            rate(rsa_items, cores, |share| {
                for it in share {
                    keyring.unwrap_random_key(1, &it.wrapped).expect("unwrap");
                }
            }),
            rate(&items, cores, |share| {
                for it in share {
                    cipher.decrypt(&it.key, &it.msg).expect("decrypt");
                }
            }),
            rate(&items, cores, |share| {
                for chunk in share.chunks(CHUNK) {
                    let pairs: Vec<(&[u8], &str)> =
                        chunk.iter().map(|i| (&i.key[..], &i.msg[..])).collect();
                    for r in cipher.decrypt_batch(&pairs) {
                        r.expect("decrypt");
                    }
                }
            }),
            rate(rsa_items, cores, |share| {
                for it in share {
                    let key = keyring.unwrap_random_key(1, &it.wrapped).expect("unwrap");
                    cipher.decrypt(&key, &it.msg).expect("decrypt");
                }
            }),
            rate(rsa_items, cores, |share| {
                for chunk in share.chunks(CHUNK) {
                    let keys: Vec<_> = chunk
                        .iter()
                        .map(|i| keyring.unwrap_random_key(1, &i.wrapped).expect("unwrap"))
                        .collect();
                    let pairs: Vec<(&[u8], &str)> = keys
                        .iter()
                        .zip(chunk)
                        .map(|(k, i)| (&k[..], &i.msg[..]))
                        .collect();
                    for r in cipher.decrypt_batch(&pairs) {
                        r.expect("decrypt");
                    }
                }
            }),
        ];
        for (b, r) in best.iter_mut().zip(round) {
            b.wall = b.wall.max(r.wall);
            b.idle = b.idle.max(r.idle);
        }
    }
    let [rsa, per_item, batched, path_per_item, path_batched] = best;

    println!(
        "{:<52} {:>17} {:>25} {:>14}",
        "", "wall clock", "projected, idle machine", "cpu per item"
    );
    let line = |what: &str, r: Rate, unit: &str| {
        let cpu_us = cores as f64 * 1e6 / r.idle;
        println!(
            "{what:<52} {:>9.0} {unit} {:>9.0} {unit} {cpu_us:>11.1} us",
            r.wall, r.idle
        );
    };
    line("rsa ceiling (aws-lc, 2048-bit private ops)", rsa, "/s     ");
    line("sdk cipher, per item", per_item, "items/s");
    line("sdk cipher, batched", batched, "items/s");
    line(
        "archive path (rsa unwrap + sdk cipher), per item",
        path_per_item,
        "items/s",
    );
    line(
        "archive path (rsa unwrap + sdk cipher), batched",
        path_batched,
        "items/s",
    );
    // The same ratio from the parts: RSA's cpu per item against RSA's plus the cipher's.
    let parts = |sdk: Rate| (1.0 / rsa.idle) / (1.0 / rsa.idle + 1.0 / sdk.idle);
    println!(
        "archive path / rsa ceiling, projected: per item {:.2} (from the parts {:.2}), \
         batched {:.2} (from the parts {:.3})",
        path_per_item.idle / rsa.idle,
        parts(per_item),
        path_batched.idle / rsa.idle,
        parts(batched)
    );
    let stats = pool.stats();
    assert_eq!(stats.crashes, 0, "{stats:?}");
    rt.block_on(pool.shutdown());
    // Give the workers' stderr forwarding a moment before the runtime goes.
    std::thread::sleep(Duration::from_millis(50));
}
