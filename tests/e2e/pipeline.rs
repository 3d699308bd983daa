//! The pipeline in-process against a faulty simulator: exactly-once output, dead letters, redrive.

use tokio_util::sync::CancellationToken;
use wecom_pipeline::{Config, RunOptions, Source, StreamSel};

use crate::support::{assert_conserved, fetch_faults, read_output, sim, write_config};

fn opts() -> RunOptions {
    RunOptions {
        stream: StreamSel::Corp,
        follow: false,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_source_every_seq_exactly_once() {
    // Repeated items more often than usual: the faults are drawn per request (consent and room lookups
    // draw too), and the check below needs at least one repeat in a page that reaches the client.
    let faults = wecom_sim::FaultConfig {
        duplicate_items: 0.3,
        ..fetch_faults()
    };
    let server = sim(7, 20_000, faults).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    let summary = wecom_pipeline::run(&cfg, &source, &opts(), CancellationToken::new())
        .await
        .expect("run");

    let truth = server.truth();
    assert!(truth.len() >= 20_000, "corpus too small: {}", truth.len());
    let out = read_output(&data);
    assert_conserved(&truth, &out);
    assert_eq!(summary.records + summary.dead_letters, truth.len() as u64);
    assert_eq!(
        summary.committed_seq,
        truth.iter().map(|t| t.seq).max().unwrap_or(0)
    );
    let stats = serde_json::to_value(server.stats()).expect("stats json");
    eprintln!("simulator stats: {stats}");
    assert!(
        summary.dead_letters > 0,
        "the corpus should contain dead letters"
    );
    assert!(
        summary.duplicates_dropped > 0,
        "the simulator repeated items; the fetcher should have dropped them"
    );

    // A second run finds nothing new and writes nothing twice.
    let again = wecom_pipeline::run(&cfg, &source, &opts(), CancellationToken::new())
        .await
        .expect("second run");
    assert_eq!(again.records + again.dead_letters, 0);
    assert_conserved(&truth, &read_output(&data));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_items_are_dead_lettered_then_redriven_once_the_key_is_added() {
    let faults = wecom_sim::FaultConfig {
        unknown_key_version: 0.05,
        ..wecom_sim::FaultConfig::default()
    };
    let server = sim(11, 1_500, faults).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    let cfg = Config::load(&path).expect("config");
    let source = Source::connect(&cfg).await.expect("source");
    let summary = wecom_pipeline::run(&cfg, &source, &opts(), CancellationToken::new())
        .await
        .expect("run");
    let truth = server.truth();
    let late: Vec<u64> = truth
        .iter()
        .filter(|t| t.fate == wecom_sim::Fate::UnknownKeyVersion)
        .map(|t| t.seq)
        .collect();
    assert!(!late.is_empty());
    assert_eq!(summary.dead_letters, late.len() as u64);

    // Without the key, redrive recovers nothing and keeps them.
    let r = wecom_pipeline::redrive::redrive(&cfg, &StreamSel::Corp)
        .await
        .expect("redrive");
    assert_eq!((r.recovered, r.still_dead), (0, late.len() as u64));

    // The operator adds v4; redrive turns every one of them into a record, once.
    let mut cfg4 = cfg.clone();
    cfg4.key_files.push(wecom_pipeline::config::KeyFile {
        version: 4,
        path: crate::support::repo_root().join("config/sim-keys/v4.pem"),
    });
    let r = wecom_pipeline::redrive::redrive(&cfg4, &StreamSel::Corp)
        .await
        .expect("redrive");
    assert_eq!(r.recovered, late.len() as u64);
    let r = wecom_pipeline::redrive::redrive(&cfg4, &StreamSel::Corp)
        .await
        .expect("redrive again");
    assert_eq!(
        r.examined, 0,
        "resolved dead letters are not examined again"
    );

    let msgs = data.join("wwsimcorp0001/corp/messages");
    let mut record_seqs = std::collections::BTreeMap::new();
    for line in wecom_store::read_lines(&msgs).expect("lines") {
        let v: serde_json::Value = serde_json::from_slice(&line.expect("line")).expect("json");
        *record_seqs
            .entry(v["seq"].as_u64().expect("seq"))
            .or_insert(0u32) += 1;
    }
    for s in &late {
        assert_eq!(
            record_seqs.get(s),
            Some(&1),
            "late-key seq {s} should be a record exactly once"
        );
    }
    let ok = truth
        .iter()
        .filter(|t| t.fate == wecom_sim::Fate::Ok)
        .count();
    assert_eq!(record_seqs.len(), ok + late.len());
    server.shutdown().await;
}
