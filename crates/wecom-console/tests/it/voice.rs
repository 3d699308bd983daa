//! Voice messages play in browsers: AMR-NB transcoded to Opus by ffmpeg (`WECOM_TEST_FFMPEG`, set by
//! scripts/console-test-deps.sh; skipped without).

use crate::common::{client, url, wait_records, Env, REVIEWER_TOKEN};
use crate::synth;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amr_voice_is_served_as_ogg_opus() {
    let Some(ffmpeg) = std::env::var_os("WECOM_TEST_FFMPEG") else {
        eprintln!("skipped: set WECOM_TEST_FFMPEG (scripts/console-test-deps.sh) to test voice transcoding");
        return;
    };
    let env = Env::new(synth::CORP);
    let records: Vec<wecom_model::Record> = synth::records(200, 8).collect();
    let voice = records
        .iter()
        .find(|r| r.msgtype.as_deref() == Some("voice"))
        .expect("a voice message");
    let key = voice.media[0].object_key.clone().expect("key");
    let path = env.objects_root().join(&key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    // Three seconds of AMR-NB as the storage format has it: the magic, then 150 mode-7 (12.2 kbit/s)
    // frames of 20 ms, each a ToC byte (FT=7, Q=1) and 31 bytes of speech parameters.
    let mut amr = b"#!AMR\n".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..150 {
        let mut frame = [0u8; 32];
        frame[0] = 0x3C;
        for b in &mut frame[1..] {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        amr.extend_from_slice(&frame);
    }
    std::fs::write(&path, &amr).expect("amr");
    env.append("corp", 1, &records);
    let mut settings = env.settings(wecom_console::SourceSpec::Local {
        data_dir: env.data(),
    });
    settings.console.ffmpeg = ffmpeg.into();
    let console = wecom_console::Console::start(settings, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("starts");
    wait_records(&console, records.len() as u64).await;
    let c = client();
    for round in 0..2 {
        // The second answer comes from the cache.
        let r = c
            .get(url(&console, &format!("/voice/{key}")))
            .bearer_auth(REVIEWER_TOKEN)
            .send()
            .await
            .expect("voice");
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(r.headers()["content-type"], "audio/ogg");
        let body = r.bytes().await.expect("bytes");
        assert!(
            body.starts_with(b"OggS") && body.windows(8).any(|w| w == b"OpusHead"),
            "Ogg Opus"
        );
        // The last page's granule position is the stream's length in 48 kHz samples: three seconds.
        let last = body
            .windows(4)
            .rposition(|w| w == b"OggS")
            .expect("a last page");
        let granule = u64::from_le_bytes(body[last + 6..last + 14].try_into().expect("8 bytes"));
        let secs = granule as f64 / 48_000.0;
        assert!((2.9..3.1).contains(&secs), "decoded {secs:.2} s of audio");
    }
    // Not AMR: refused as unsupported, not a server error.
    let other = records
        .iter()
        .find(|r| r.msgtype.as_deref() == Some("voice") && r.msgid != voice.msgid)
        .expect("another voice");
    let other_key = other.media[0].object_key.clone().expect("key");
    let p = env.objects_root().join(&other_key);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, b"not audio at all").expect("write");
    let r = c
        .get(url(&console, &format!("/voice/{other_key}")))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("voice");
    assert_eq!(r.status(), 415);
    console.stop().await.expect("stops");
}
