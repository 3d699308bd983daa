//! End-to-end throughput: simulator → fetch → RSA unwrap + decrypt → normalize → sink, media off, next to the
//! physical ceiling (RSA unwraps/s on one core × cores).
//!
//! A bench binary, not a test: `cargo bench -p wecom-bench --bench pipeline`. Environment:
//! `WECOM_BENCH_MESSAGES` (default 30000); `WECOM_TEST_KAFKA_BROKERS` to also measure the Kafka sink.
//! The simulator runs in the same process and shares the cores (it is walked once before the timed run so its
//! one-off md5 computation of every attachment is not counted, but its per-item encryption still is): the
//! ratio printed is therefore a lower bound.
//! Prints lines like `pipeline sink=local messages=30000 msgs_per_sec=NNN ceiling=NNN ratio=0.NN`, and the same
//! records replayed from the raw archive (`source=raw-archive`): the pipeline's own rate without the simulator.

use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use tokio_util::sync::CancellationToken;
use wecom_crypto::{random_message_key, Keyring, RsaBackendKind, WrappingKey};
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

const PEM: &str = include_str!("../config/sim-keys/v1.pem");

/// RSA-2048 unwraps per second on one core (aws-lc), from a 2 s loop.
fn rsa_per_core() -> f64 {
    let mut ring = Keyring::new(RsaBackendKind::AwsLc);
    ring.insert_pem(1, PEM).expect("key");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let wrapped = WrappingKey::from_private_pem(PEM)
        .expect("key")
        .wrap_random_key(&random_message_key(&mut rng), &mut rng)
        .expect("wrap");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(ring.unwrap_random_key(1, &wrapped).expect("unwrap"));
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn config(dir: &std::path::Path, base_url: &str, sink: &str) -> std::path::PathBuf {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sim-keys");
    let kafka = match std::env::var("WECOM_TEST_KAFKA_BROKERS") {
        Ok(b) if sink != "local" => {
            let t = format!("bench-{}-{}", std::process::id(), sink);
            format!("[kafka]\nbrokers = \"{b}\"\n[kafka.topics]\nmessages = \"{t}.m\"\nmedia = \"{t}.x\"\ndeadletter = \"{t}.d\"\n")
        }
        _ => String::new(),
    };
    let text = format!(
        r#"[corp]
corp_id = "wwsimcorp0001"
corp_secret = "sim-secret"
[source]
kind = "http"
base_url = "{base_url}"
[keys]
files = [{{ version = 1, path = "{keys}/v1.pem" }}, {{ version = 2, path = "{keys}/v2.pem" }}, {{ version = 3, path = "{keys}/v3.pem" }}]
[sink]
kind = "{sink}"
data_dir = "{data}"
{kafka}"#,
        data = dir.join("data").display()
    );
    let path = dir.join(format!("{sink}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

fn main() {
    let messages: u64 = std::env::var("WECOM_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core = rsa_per_core();
    let ceiling = per_core * cores as f64;
    println!("rsa-unwrap backend=aws-lc decrypts_per_sec_per_core={per_core:.0} cores={cores} ceiling={ceiling:.0}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut sinks = vec!["local"];
    if std::env::var("WECOM_TEST_KAFKA_BROKERS").is_ok() {
        sinks.push("kafka");
    }
    for sink in sinks {
        rt.block_on(async {
            let sim = wecom_sim::SimConfig {
                seed: 3,
                messages,
                ..wecom_sim::SimConfig::default()
            };
            let server = wecom_sim::start(sim, ([127, 0, 0, 1], 0).into())
                .await
                .expect("simulator");
            let tmp = tempfile::tempdir().expect("tempdir");
            let path = config(tmp.path(), &server.base_url(), sink);
            let cfg = Config::load(&path).expect("config");
            let source = Source::connect(&cfg).await.expect("source");
            let opts = RunOptions {
                stream: StreamSel::Corp,
                follow: false,
                progress: false,
            };
            // Warm the simulator once (it computes each attachment's md5 the first time it serves the
            // message, streaming the whole generated file): that is the simulator's cost, not the pipeline's.
            let mut seq = 0;
            loop {
                let page = source.client.get_chat_data(seq, 1000).await.expect("warm-up page");
                match page.iter().map(|i| i.seq).max() {
                    Some(max) => seq = max,
                    None => break,
                }
            }
            let start = Instant::now();
            let summary = wecom_pipeline::run(&cfg, &source, &opts, CancellationToken::new())
                .await
                .expect("run");
            let secs = start.elapsed().as_secs_f64();
            let done = summary.records + summary.dead_letters;
            let rate = done as f64 / secs;
            println!(
                "pipeline sink={sink} messages={done} secs={secs:.2} msgs_per_sec={rate:.0} ceiling={ceiling:.0} ratio={:.2}",
                rate / ceiling
            );
            if sink == "local" {
                // The same records again from the raw archive the run just wrote: the pipeline without the
                // simulator's own CPU (page generation, RSA encryption) on the same two cores.
                let req = wecom_pipeline::replay::ReplayRequest {
                    from_seq: 0,
                    to_seq: None,
                    rooms: Vec::new(),
                    from_archive: true,
                    name: Some("bench".into()),
                    out_dir: None,
                    kafka_topic: None,
                    progress: false,
                };
                let start = Instant::now();
                let r = wecom_pipeline::replay::replay(&cfg, &source, &req, CancellationToken::new())
                    .await
                    .expect("replay");
                let secs = start.elapsed().as_secs_f64();
                let done = r.records + r.dead_letters;
                let rate = done as f64 / secs;
                println!(
                    "pipeline source=raw-archive sink=local messages={done} secs={secs:.2} msgs_per_sec={rate:.0} ceiling={ceiling:.0} ratio={:.2}",
                    rate / ceiling
                );
            }
            server.shutdown().await;
        });
    }
}
