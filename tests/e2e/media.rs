//! The media worker as `wecom-archive run` starts it (`[media]`): beside the pipeline, on the same HTTP
//! client, through the simulator's media faults. Every attachment of the corpus ends up stored once with the
//! simulator's exact bytes (md5 and size), media nested in chatrecord / mixed items included.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use md5::{Digest, Md5};
use wecom_sim::{Fate, FaultConfig, SimConfig};

use crate::support::{assert_conserved, read_output, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_media_stores_every_attachment_with_the_served_bytes() {
    let cfg = SimConfig {
        seed: 53,
        messages: 600,
        faults: FaultConfig {
            media_truncate: 0.1,
            media_reset: 0.1,
            media_5xx: 0.1,
            media_md5_mismatch: 0.1,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let server = wecom_sim::start(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let media = "\n[media]\nconcurrency = 4\nmax_attempts = 10\ninitial_backoff_ms = 10\nmax_backoff_ms = 200\n";
    let path = write_config(tmp.path(), &server.base_url(), &data, media);
    let status = Command::new(env!("CARGO_BIN_EXE_wecom-archive"))
        .args(["run", "--until-caught-up", "--config"])
        .arg(&path)
        .env("WECOM_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "run exited with {status}");

    let truth = server.truth();
    assert_conserved(&truth, &read_output(&data));
    let events =
        wecom_media::read_events(&data.join("wwsimcorp0001/corp/media-events")).expect("events");
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for e in &events {
        assert_ne!(
            e.status,
            wecom_media::MediaEventStatus::Failed,
            "media {} failed: {:?}",
            e.sdkfileid,
            e.reason
        );
        stored.insert(e.sdkfileid.clone(), e.object_key.clone());
    }
    let mut checked = 0;
    for t in truth.iter().filter(|t| t.fate == Fate::Ok) {
        for m in &t.media {
            let key = stored
                .get(&m.sdkfileid)
                .unwrap_or_else(|| panic!("no media event for {} of seq {}", m.sdkfileid, t.seq));
            let mut file = std::fs::File::open(data.join("objects").join(key))
                .unwrap_or_else(|e| panic!("object {key} of seq {}: {e}", t.seq));
            let (mut hasher, mut size, mut buf) = (Md5::new(), 0u64, vec![0u8; 1 << 16]);
            loop {
                let n = file.read(&mut buf).expect("read object");
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            assert_eq!(size, m.size, "size of {key}");
            assert_eq!(hex::encode(hasher.finalize()), m.md5, "md5 of {key}");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} media objects in the corpus");
    server.shutdown().await;
}
