//! Does live mode keep up? Starts a simulator with live traffic at each rate given, polls
//! `get_chat_data` back to back for a while, and reports how many items arrived, the lag from each
//! item's `msgtime` to its arrival, the largest gap between consecutive msgtimes, and the process's CPU
//! time (simulator and client together).
//!
//! `cargo bench -p wecom-sim --bench live_rate` (env: `WECOM_SIM_BENCH_RATES`, comma-separated rates
//! per second, default `200,1000`; `WECOM_SIM_BENCH_SECS`, default 10). Every item costs an RSA-2048
//! wrap of its random key, so the figures depend on the CPU the process gets: run it on a quiet
//! machine.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wecom_sim::{start, SimConfig};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// User + system CPU seconds of this process so far (Linux).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(rate: f64, secs: u64) {
    // A small initial corpus, so the measurement starts caught up and sees the steady state.
    let cfg = SimConfig {
        messages: 20,
        live_rate_per_sec: rate,
        ..SimConfig::default()
    };
    let sim = start(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts");
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let token: Value = http
        .get(format!(
            "{base}/cgi-bin/gettoken?corpid=wwsimcorp0001&corpsecret=sim-secret"
        ))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let url = format!("{base}/cgi-bin/msgaudit/get_chat_data?access_token={token}");
    let mut seq = 0u64;
    let first_live = 20;
    let cpu0 = cpu_secs();
    let started = Instant::now();
    let mut arrivals: Vec<(u64, i64)> = Vec::new();
    let mut requests = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let page: Value = http
            .post(&url)
            .json(&json!({"seq": seq, "limit": 1000}))
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        requests += 1;
        let at = now_ms();
        for item in page["chatdata"].as_array().into_iter().flatten() {
            seq = item["seq"].as_u64().expect("seq");
            arrivals.push((seq, at));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let truth = sim.truth();
    let msgtime: HashMap<u64, i64> = truth.iter().map(|t| (t.seq, t.msgtime_ms)).collect();
    let mut lags: Vec<i64> = arrivals
        .iter()
        .filter(|(s, _)| *s > first_live)
        .map(|(s, at)| at - msgtime[s])
        .collect();
    lags.sort_unstable();
    let live: Vec<i64> = truth
        .iter()
        .filter(|t| t.seq > first_live)
        .map(|t| t.msgtime_ms)
        .collect();
    let max_gap = live.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    println!(
        "rate {rate}/s for {elapsed:.1} s: {} items received ({:.1}/s, expected {:.0}), {requests} polls, \
         lag ms p50 {} p90 {} p99 {} max {}, largest msgtime gap {max_gap} ms, cpu {cpu:.2} s ({:.0}% of one core)",
        arrivals.len(),
        arrivals.len() as f64 / elapsed,
        rate * elapsed,
        percentile(&lags, 0.5),
        percentile(&lags, 0.9),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0),
        100.0 * cpu / elapsed,
    );
    let stats = sim.stats();
    println!(
        "  /_sim/stats: visible_items {} newest_seq {} newest_msgtime_ms {} now_ms {}",
        stats.visible_items, stats.newest_seq, stats.newest_msgtime_ms, stats.now_ms
    );
    sim.shutdown().await;
}

fn main() {
    let rates: Vec<f64> = std::env::var("WECOM_SIM_BENCH_RATES")
        .unwrap_or_else(|_| "200,1000".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs = std::env::var("WECOM_SIM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for rate in rates {
        rt.block_on(run(rate, secs));
    }
}
