//! The console's index on a million realistic records: indexing throughput through the real ingest path
//! (segment files → parse → tantivy → commits), search latency p50/p99 over a mix of queries (Chinese
//! characters, words and phrases, English words, filters, negations, each returning its first page of
//! records), timeline and transcript page latency, and the process's peak RSS.
//!
//! `cargo bench -p wecom-console --bench index [-- --records N --queries N --threads N]` (or
//! `WECOM_BENCH_RECORDS`, `WECOM_BENCH_QUERIES`, `WECOM_BENCH_THREADS`): 1,000,000 records, 2,000
//! queries and one index writer thread by default.

mod synth;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wecom_console::ingest::{self, SourceSpec};
use wecom_console::query::{self, Filters};
use wecom_console::view::Anchor;

/// `--<flag> N` on the command line, else the environment variable `env`, else `default`.
fn knob(flag: &str, env: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args
        .iter()
        .position(|a| a.strip_prefix("--") == Some(flag))
        .and_then(|i| args.get(i + 1));
    from_args
        .cloned()
        .or_else(|| std::env::var(env).ok())
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("--{flag} / {env}: {v:?} is not a count"))
        })
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "  {label:<34} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    let n = knob("records", "WECOM_BENCH_RECORDS", 1_000_000);
    let queries = knob("queries", "WECOM_BENCH_QUERIES", 2000) as usize;
    let threads = knob("threads", "WECOM_BENCH_THREADS", 1) as usize;
    let root = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("console-bench");
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let seg_dir = data.join(synth::CORP).join("corp").join("messages");
    std::fs::create_dir_all(&seg_dir).expect("data dir");

    // Write the records as the pipeline does: 64 MiB segments of JSON lines.
    let started = Instant::now();
    let mut bytes_total = 0u64;
    let mut seg = None::<std::io::BufWriter<std::fs::File>>;
    let mut seg_bytes = 0u64;
    for rec in synth::records(n, 42) {
        let mut line = serde_json::to_vec(&rec).expect("serializes");
        line.push(b'\n');
        if seg.is_none() || seg_bytes + line.len() as u64 > 64 << 20 {
            if let Some(mut w) = seg.take() {
                w.flush().expect("flush");
            }
            let f = std::fs::File::create(seg_dir.join(format!("seg-{:020}.ndjson", rec.seq)))
                .expect("segment");
            seg = Some(std::io::BufWriter::new(f));
            seg_bytes = 0;
        }
        seg.as_mut().expect("open").write_all(&line).expect("write");
        seg_bytes += line.len() as u64;
        bytes_total += line.len() as u64;
    }
    if let Some(mut w) = seg.take() {
        w.flush().expect("flush");
    }
    println!(
        "wecom-console index bench: {n} records, {:.0} MiB of NDJSON generated in {:.1} s; {threads} writer thread(s), {} cores",
        bytes_total as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |p| p.get()),
    );

    // Index through the real ingest loop.
    let (archive, indexer) = wecom_console::index::open(
        &root.join("index"),
        synth::CORP,
        128 * threads.max(1),
        threads,
    )
    .expect("index opens");
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        let spec = SourceSpec::Local {
            data_dir: data.clone(),
        };
        let stop = &stop;
        let handle =
            s.spawn(move || ingest::run(indexer, &spec, Duration::from_millis(1000), stop));
        while archive.status().records < n {
            std::thread::sleep(Duration::from_millis(50));
            assert!(!handle.is_finished(), "ingest stopped early");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        handle.join().expect("ingest thread").expect("ingest");
    });
    let secs = started.elapsed().as_secs_f64();
    let index_bytes: u64 = std::fs::read_dir(root.join("index"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "indexing: {:.0} records/s ({:.1} MiB/s of NDJSON), {secs:.1} s; index {:.0} MiB on disk",
        n as f64 / secs,
        bytes_total as f64 / 1_048_576.0 / secs,
        index_bytes as f64 / 1_048_576.0
    );

    // Reopen, as `serve` does on start (rebuilds the conversation list from the index).
    drop(archive);
    let started = Instant::now();
    let (archive, indexer) =
        wecom_console::index::open(&root.join("index"), synth::CORP, 64, 1).expect("index reopens");
    drop(indexer);
    println!(
        "reopen (conversation list from fast fields): {:.2} s, {} conversations",
        started.elapsed().as_secs_f64(),
        archive.conversation_count()
    );

    // A mix of queries, each answered with its first page of 50 records loaded.
    let mut r = ChaCha8Rng::seed_from_u64(7);
    let sample: Vec<wecom_model::Record> = synth::records(n.min(20_000), 42).collect();
    let texts: Vec<&str> = sample
        .iter()
        .map(|r| r.text.as_str())
        .filter(|t| t.chars().count() > 6)
        .collect();
    let senders: Vec<String> = sample.iter().filter_map(|r| r.from.clone()).collect();
    let convs: Vec<String> = sample.iter().map(|r| r.conversation_id.clone()).collect();
    let cjk_substring = |r: &mut ChaCha8Rng, len: usize| -> String {
        for _ in 0..50 {
            let t: Vec<char> = texts
                .choose(r)
                .map(|t| t.chars().collect())
                .unwrap_or_default();
            if t.len() <= len {
                continue;
            }
            let start = r.gen_range(0..t.len() - len);
            let s: String = t[start..start + len].iter().collect();
            if s.chars().all(wecom_console::tokenize::is_cjk) {
                return s;
            }
        }
        "报价".to_owned()
    };
    let mut by_class: Vec<(&str, Vec<Duration>)> = [
        "1 CJK character",
        "2-4 CJK characters (phrase)",
        "English word",
        "two terms, AND",
        "phrase + sender filter",
        "word + time range (30 days)",
        "msgtype filter only",
        "CJK + -negation",
    ]
    .into_iter()
    .map(|c| (c, Vec::new()))
    .collect();
    let mut hits_total = 0usize;
    let t_from = 1_735_660_800_000u64;
    for i in 0..queries {
        let class = i % by_class.len();
        let (q, f) = match class {
            0 => (cjk_substring(&mut r, 1), Filters::default()),
            1 => {
                let len = r.gen_range(2..5);
                (cjk_substring(&mut r, len), Filters::default())
            }
            2 => (
                [
                    "contract", "invoice", "payment", "shipment", "urgent", "meeting",
                ]
                .choose(&mut r)
                .copied()
                .unwrap_or("ok")
                .to_owned(),
                Filters::default(),
            ),
            3 => (
                format!("{} {}", cjk_substring(&mut r, 2), cjk_substring(&mut r, 2)),
                Filters::default(),
            ),
            4 => (
                cjk_substring(&mut r, 2),
                Filters {
                    sender: senders.choose(&mut r).cloned(),
                    ..Filters::default()
                },
            ),
            5 => {
                let from = t_from + r.gen_range(0..330) * 86_400_000;
                (
                    "review".to_owned(),
                    Filters {
                        from_ms: Some(from),
                        until_ms: Some(from + 30 * 86_400_000),
                        ..Filters::default()
                    },
                )
            }
            6 => (
                String::new(),
                Filters {
                    msgtypes: vec!["file".into()],
                    conversation: convs.choose(&mut r).cloned(),
                    ..Filters::default()
                },
            ),
            _ => (
                format!("{} -{}", cjk_substring(&mut r, 2), cjk_substring(&mut r, 1)),
                Filters::default(),
            ),
        };
        let parsed = query::parse(&q).expect("query parses");
        let started = Instant::now();
        let page = archive
            .search(&parsed, &f, Anchor::Newest, 50)
            .expect("search");
        by_class[class].1.push(started.elapsed());
        hits_total += page.total;
    }
    println!(
        "search ({queries} queries, first page of 50 records each, {hits_total} hits in all):"
    );
    let mut all = Vec::new();
    for (label, times) in by_class {
        all.extend(times.iter().copied());
        report(label, times);
    }
    report("all queries", all);

    let mut timeline = Vec::new();
    let mut transcript = Vec::new();
    for _ in 0..200 {
        let conv = convs.choose(&mut r).cloned().unwrap_or_default();
        let started = Instant::now();
        let page = archive
            .timeline(&conv, Anchor::Newest, 50)
            .expect("timeline");
        timeline.push(started.elapsed());
        if let Some(last) = page.msgs.last() {
            let started = Instant::now();
            let _ = archive.timeline(
                &conv,
                Anchor::Before(wecom_console::view::TimeKey::of(last)),
                50,
            );
            timeline.push(started.elapsed());
        }
        let started = Instant::now();
        let (msgs, _, _) = archive
            .transcript(&conv, 0, None, None, 200)
            .expect("transcript");
        transcript.push(started.elapsed());
        if let Some(last) = msgs.last() {
            let started = Instant::now();
            let _ = archive.transcript(&conv, last.ingest, None, None, 200);
            transcript.push(started.elapsed());
        }
    }
    println!("pages:");
    report("timeline page (50)", timeline);
    report("transcript page (200)", transcript);
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    let _ = std::fs::remove_dir_all(&root);
}
