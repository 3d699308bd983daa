//! The binary killed with SIGKILL at random moments, restarted each time: the output is still exactly once.

use crate::support::{
    assert_conserved, fetch_faults, read_output, run_with_random_kills, sim, write_config,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let server = sim(23, 20_000, fetch_faults()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let path = write_config(tmp.path(), &server.base_url(), &data, "");
    run_with_random_kills(&path, 99, 5).await;
    assert_conserved(&server.truth(), &read_output(&data));
    // Recall events too: one per revoke record, none twice.
    let stream = data.join("wwsimcorp0001/corp");
    let mut revokes = std::collections::BTreeSet::new();
    for line in wecom_store::read_lines(&stream.join("messages")).expect("lines") {
        let v: serde_json::Value = serde_json::from_slice(&line.expect("line")).expect("json");
        if v["msgtype"] == "revoke" {
            revokes.insert(v["seq"].as_u64().expect("seq"));
        }
    }
    let text = std::fs::read_to_string(stream.join("recalls/recalls.ndjson")).expect("recalls");
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let seq = v["revoke_seq"].as_u64().expect("revoke_seq");
        assert!(seen.insert(seq), "recall event of seq {seq} twice");
    }
    assert_eq!(seen, revokes, "one recall event per revoke record");
    server.shutdown().await;
}
