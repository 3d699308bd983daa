//! Measurements a bench reports: the machine's RSA ceiling, peak RSS of a process and its children,
//! percentiles, the load average (the benches run on shared machines; a figure without the load beside it
//! means little).

use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use wecom_crypto::{random_message_key, Keyring, RsaBackendKind, WrappingKey};

/// The simulator's RSA-2048 test key (PKCS#1), the size of real archive keys.
const PEM: &str = include_str!("../../../config/sim-keys/v1.pem");

/// RSA-2048 private operations (aws-lc unwraps of `encrypt_random_key`, the pipeline's primitive) per
/// second, summed over `threads` threads running at the same time for `run`.
pub fn rsa_unwraps_per_sec(threads: usize, run: Duration) -> f64 {
    let mut ring = Keyring::new(RsaBackendKind::AwsLc);
    ring.insert_pem(1, PEM).expect("the test key loads");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let wrapped = WrappingKey::from_private_pem(PEM)
        .expect("the test key loads")
        .wrap_random_key(&random_message_key(&mut rng), &mut rng)
        .expect("wrap");
    let (ring, wrapped) = (&ring, wrapped.as_str());
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < run {
                        std::hint::black_box(
                            ring.unwrap_random_key(1, std::hint::black_box(wrapped))
                                .expect("unwrap"),
                        );
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("rsa thread"))
            .sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB; `None` once it is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// [`peak_rss_kib`] of this process.
pub fn own_peak_rss_kib() -> u64 {
    peak_rss_kib(std::process::id()).unwrap_or(0)
}

/// The live children of process `pid` (by the parent pid in `/proc/*/stat`).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (comm) state ppid ...`: comm may hold spaces, so split after its `)`.
                    stat.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

/// CPU seconds (user + system) process `pid` has used so far; `None` once it is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), the 12th and 13th after `(comm)`; in clock ticks,
    // which are 1/100 s on Linux.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The value at quantile `q` (0..=1) of `sorted` (nearest rank); 0 for an empty slice.
pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// KiB as MiB with one decimal, for tables.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn this_process_has_a_peak_rss_and_sees_its_children() {
        assert!(own_peak_rss_kib() > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        assert!(child_pids(std::process::id()).contains(&child.id()));
        let _ = child.kill();
        let _ = child.wait();
    }
}
