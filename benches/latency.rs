//! Live latency, from the moment the archive service can serve a message to the moment its record is in
//! Kafka: `cargo bench -p wecom-bench --bench latency` (needs `WECOM_TEST_KAFKA_BROKERS`).
//!
//! The simulator runs in a process of its own in live mode (`live_rate_per_sec`, default 200 msgs/s); the
//! pipeline runs in this process with `sink.kind = "kafka"`, following the stream; a consumer reads the
//! messages topic back. A live item's `msgtime_ms` is the wall-clock millisecond at which the simulator made
//! it servable (wecom-sim `SimConfig::live_rate_per_sec`), on the same clock as everything here, so per
//! record:
//!
//! - **produce latency** = the record's Kafka timestamp − `msgtime_ms`. The sink does not set timestamps and
//!   the topics it creates keep the default `CreateTime`, so this is when the pipeline handed the record to
//!   the producer; the broker's acknowledgement follows within `linger_ms` (20 ms by default) and a
//!   loopback round trip. The timestamp type seen is printed.
//! - **consume latency** = when this bench's consumer received the record − `msgtime_ms`: an upper bound
//!   (it adds the consumer's own fetch wait, at most `fetch.wait.max.ms` = 10 ms, plus its poll).
//!
//! Three runs, each over `WECOM_BENCH_SECS` (default 120; 30 for a short run) after a 5 s warm-up, with
//! the poll interval `WECOM_BENCH_POLL_MS` (default 1000): without the `msgaudit_notify` callback; with it
//! at the real service's pace (at most one callback per 15 s); and with it at
//! `WECOM_BENCH_NOTIFY_MS` (default 100) between callbacks, the pace the callback target assumes.
//! `WECOM_BENCH_RATE` changes the live rate; `WECOM_BENCH_CONFIG_EXTRA` is appended to the pipeline's
//! config (e.g. `[archive]` / `enabled = false` to see what the raw archive's writes add).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Message as _, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use wecom_bench::child::{child_role, SimProcess};
use wecom_bench::measure::{cores, load_average, now_unix_ms, percentile};
use wecom_pipeline::notify::{OpsEndpoint, CALLBACK_PATH};
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

const CORP: &str = "wwsimcorp0001";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sim-keys");
/// Test values of the callback settings (43 base64 characters for the key).
const NOTIFY_TOKEN: &str = "bench-callback-token";
const NOTIFY_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const WARM_UP: Duration = Duration::from_secs(5);
/// How long after the window the consumer keeps reading for the window's last records.
const DRAIN: Duration = Duration::from_secs(10);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

struct Settings {
    brokers: String,
    secs: u64,
    poll_ms: u64,
    rate: f64,
}

/// One run's figures.
struct Figures {
    label: String,
    records: usize,
    missing: usize,
    produce: Vec<i64>,
    consume: Vec<i64>,
    timestamp_kind: String,
    callbacks_woke: u64,
    callbacks_refused: u64,
}

fn main() -> ExitCode {
    if let Some(code) = child_role() {
        return code;
    }
    let Ok(brokers) = std::env::var("WECOM_TEST_KAFKA_BROKERS") else {
        println!("latency: skipped (WECOM_TEST_KAFKA_BROKERS is not set)");
        return ExitCode::SUCCESS;
    };
    let s = Settings {
        brokers,
        secs: env_num("WECOM_BENCH_SECS", 120),
        poll_ms: env_num("WECOM_BENCH_POLL_MS", 1000),
        rate: env_num("WECOM_BENCH_RATE", 200) as f64,
    };
    let fast_notify = env_num("WECOM_BENCH_NOTIFY_MS", 100);
    let load_before = load_average();
    println!(
        "machine: {} cores; load average before: {load_before}; live rate {} msgs/s; poll interval {} ms; {} s per run",
        cores(),
        s.rate,
        s.poll_ms,
        s.secs
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut all = Vec::new();
    for notify_ms in [None, Some(15_000), Some(fast_notify)] {
        match rt.block_on(run(&s, notify_ms)) {
            Ok(f) => {
                print_run(&f, &s);
                all.push(f);
            }
            Err(e) => println!("run failed: {e}"),
        }
    }
    let load_after = load_average();
    println!();
    println!("| run | poll interval | records | p50 ms | p99 ms | max ms | consumer p50 / p99 / max ms | callbacks |");
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    for f in &all {
        let (p, c) = (&f.produce, &f.consume);
        println!(
            "| {} | {} ms | {}{} | {} | {} | {} | {} / {} / {} | {} |",
            f.label,
            s.poll_ms,
            f.records,
            if f.missing > 0 {
                format!(" ({} missing)", f.missing)
            } else {
                String::new()
            },
            percentile(p, 0.5),
            percentile(p, 0.99),
            p.last().copied().unwrap_or(0),
            percentile(c, 0.5),
            percentile(c, 0.99),
            c.last().copied().unwrap_or(0),
            f.callbacks_woke
        );
    }
    println!();
    println!(
        "latency = Kafka record timestamp ({}) − the simulator's serve time (msgtime_ms of a live item); consumer = receive time − serve time. Load average before {load_before}, after {load_after}.",
        all.first().map_or("none", |f| f.timestamp_kind.as_str())
    );
    ExitCode::SUCCESS
}

fn print_run(f: &Figures, s: &Settings) {
    let (p, c) = (&f.produce, &f.consume);
    println!(
        "latency run=\"{}\" poll_ms={} records={} missing={} produce_p50_ms={} produce_p99_ms={} produce_max_ms={} consume_p50_ms={} consume_p99_ms={} consume_max_ms={} timestamps={} callbacks_woke={} callbacks_refused={} load={}",
        f.label,
        s.poll_ms,
        f.records,
        f.missing,
        percentile(p, 0.5),
        percentile(p, 0.99),
        p.last().copied().unwrap_or(0),
        percentile(c, 0.5),
        percentile(c, 0.99),
        c.last().copied().unwrap_or(0),
        f.timestamp_kind,
        f.callbacks_woke,
        f.callbacks_refused,
        load_average()
    );
}

/// A free loopback port (closed again at once; the ops server binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn run(s: &Settings, notify_ms: Option<u64>) -> Result<Figures, String> {
    let label = match notify_ms {
        None => "no callback".to_string(),
        Some(ms) => format!("callback, ≥ {ms} ms apart"),
    };
    println!("run: {label}");
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ops_port = free_port();
    let sim_cfg = wecom_sim::SimConfig {
        seed: 11,
        messages: 100,
        live_rate_per_sec: s.rate,
        notify: notify_ms.map(|ms| wecom_sim::NotifyConfig {
            url: format!("http://127.0.0.1:{ops_port}{CALLBACK_PATH}"),
            token: NOTIFY_TOKEN.into(),
            encoding_aes_key: NOTIFY_AES_KEY.into(),
            agent_id: "2000004".into(),
            min_interval_ms: ms,
        }),
        ..wecom_sim::SimConfig::default()
    };
    let sim = SimProcess::spawn(&sim_cfg, tmp.path()).map_err(|e| e.to_string())?;
    let topic = format!(
        "bench-latency-{}-{}",
        std::process::id(),
        notify_ms.unwrap_or(0)
    );
    let config = write_config(tmp.path(), sim.base_url(), s, &topic, ops_port, notify_ms);
    let cfg = Config::load(&config).map_err(|e| e.to_string())?;
    let stop = CancellationToken::new();
    let receiver = match &cfg.notify {
        Some(n) => Some(n.receiver().map_err(|e| e.to_string())?),
        None => None,
    };
    let listen = cfg.ops.listen.ok_or("no [ops] listen")?;
    wecom_pipeline::ops::serve(
        OpsEndpoint {
            listen,
            callback: receiver.clone(),
        },
        stop.clone(),
    )
    .await
    .map_err(|e| format!("ops server: {e}"))?;
    let source = Arc::new(Source::connect(&cfg).await.map_err(|e| e.to_string())?);
    let pipeline = {
        let (cfg, source, stop) = (cfg.clone(), source.clone(), stop.clone());
        tokio::spawn(async move {
            let opts = RunOptions {
                stream: StreamSel::Corp,
                follow: true,
                progress: false,
            };
            wecom_pipeline::run(&cfg, &source, &opts, stop).await
        })
    };

    let window_start = now_unix_ms() + WARM_UP.as_millis() as i64;
    let window_end = window_start + (s.secs * 1000) as i64;
    let brokers = s.brokers.clone();
    let messages_topic = format!("{topic}.m");
    let read = tokio::task::spawn_blocking(move || {
        consume(&brokers, &messages_topic, window_start, window_end)
    })
    .await
    .map_err(|e| e.to_string())?;
    stop.cancel();
    let ran = pipeline.await.map_err(|e| e.to_string())?;
    if let Ok(source) = Arc::try_unwrap(source) {
        source.shutdown().await;
    }
    sim.stop();
    ran.map_err(|e| e.to_string())?;
    let mut read = read?;
    read.produce.sort_unstable();
    read.consume.sort_unstable();
    let expected = (s.secs as f64 * s.rate) as usize;
    let counts = receiver.map(|r| r.counts()).unwrap_or_default();
    Ok(Figures {
        label,
        records: read.produce.len(),
        missing: expected.saturating_sub(read.produce.len()),
        produce: read.produce,
        consume: read.consume,
        timestamp_kind: read.timestamp_kind,
        callbacks_woke: counts.woke,
        callbacks_refused: counts.refused,
    })
}

struct Read {
    produce: Vec<i64>,
    consume: Vec<i64>,
    timestamp_kind: String,
}

/// Reads the messages topic from the start until `DRAIN` after `window_end`; the latencies of the records
/// whose serve time lies in the window.
fn consume(brokers: &str, topic: &str, window_start: i64, window_end: i64) -> Result<Read, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| format!("kafka consumer: {e}"))?;
    // The pipeline creates the topic when it connects: wait for it, then read every partition.
    let partitions = loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if n > 0 {
                break n;
            }
        }
        if now_unix_ms() > window_start + 30_000 {
            return Err(format!("topic {topic} did not appear"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut seen = BTreeMap::new();
    let mut kinds = BTreeMap::<&str, u64>::new();
    let stop_at = window_end + DRAIN.as_millis() as i64;
    while now_unix_ms() < stop_at {
        let Some(got) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = got.map_err(|e| format!("kafka consume: {e}"))?;
        let received = now_unix_ms();
        let Some(record) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        else {
            continue;
        };
        let (Some(seq), Some(msgtime)) = (
            record.get("seq").and_then(|v| v.as_u64()),
            record.get("msgtime_ms").and_then(|v| v.as_i64()),
        ) else {
            continue;
        };
        if !(window_start..window_end).contains(&msgtime) {
            continue;
        }
        let (kind, ts) = match m.timestamp() {
            Timestamp::CreateTime(t) => ("CreateTime", t),
            Timestamp::LogAppendTime(t) => ("LogAppendTime", t),
            Timestamp::NotAvailable => ("none", received),
        };
        *kinds.entry(kind).or_default() += 1;
        // A record published twice (a retried page) counts once, with its first arrival.
        seen.entry(seq)
            .or_insert((ts - msgtime, received - msgtime));
    }
    Ok(Read {
        produce: seen.values().map(|v| v.0).collect(),
        consume: seen.values().map(|v| v.1).collect(),
        timestamp_kind: kinds
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(","),
    })
}

fn write_config(
    dir: &Path,
    base_url: &str,
    s: &Settings,
    topic: &str,
    ops_port: u16,
    notify_ms: Option<u64>,
) -> std::path::PathBuf {
    let notify = if notify_ms.is_some() {
        format!("[notify]\ntoken = \"{NOTIFY_TOKEN}\"\nencoding_aes_key = \"{NOTIFY_AES_KEY}\"\n")
    } else {
        String::new()
    };
    let text = format!(
        r#"[corp]
corp_id = "{CORP}"
corp_secret = "sim-secret"
[source]
kind = "http"
base_url = "{base_url}"
[fetch]
poll_interval_ms = {poll}
[keys]
files = [{{ version = 1, path = "{KEYS}/v1.pem" }}, {{ version = 2, path = "{KEYS}/v2.pem" }}, {{ version = 3, path = "{KEYS}/v3.pem" }}]
[sink]
kind = "kafka"
data_dir = "{data}"
[kafka]
brokers = "{brokers}"
[kafka.topics]
messages = "{topic}.m"
media = "{topic}.x"
deadletter = "{topic}.d"
[ops]
listen = "127.0.0.1:{ops_port}"
log_every_secs = 0
{notify}"#,
        poll = s.poll_ms,
        brokers = s.brokers,
        data = dir.join("data").display()
    );
    let text = format!(
        "{text}\n{}\n",
        std::env::var("WECOM_BENCH_CONFIG_EXTRA").unwrap_or_default()
    );
    let path = dir.join("latency.toml");
    std::fs::write(&path, text).expect("write config");
    path
}
