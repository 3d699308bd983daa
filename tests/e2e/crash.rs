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
    server.shutdown().await;
}
