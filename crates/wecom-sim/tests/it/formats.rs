//! Media in real formats, checked with independent decoders: images are JPEG, emotions GIF or PNG
//! per `type`, voice is AMR-NB; the bytes still match md5 and size and resume from any offset.

use std::collections::BTreeMap;

use serde_json::Value;
use wecom_sim::TruthMedia;

use crate::common::*;

/// (msgtype, payload) of every media-carrying message, with its files.
fn media_messages(
    messages: &BTreeMap<u64, Value>,
    truth: &[wecom_sim::TruthItem],
) -> Vec<(String, Value, Vec<TruthMedia>)> {
    truth
        .iter()
        .filter(|t| !t.media.is_empty())
        .filter_map(|t| {
            let m = messages.get(&t.seq)?;
            let msgtype = m["msgtype"].as_str()?.to_owned();
            Some((
                msgtype.clone(),
                m[msgtype.as_str()].clone(),
                t.media.clone(),
            ))
        })
        .collect()
}

fn decode_jpeg(bytes: &[u8]) -> (u16, u16, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    let pixels = d.decode().expect("a decodable jpeg");
    let info = d.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    (info.width, info.height, pixels)
}

/// The AMR frames after the magic; panics unless every frame is a whole mode-7 frame.
fn amr_frames(bytes: &[u8]) -> usize {
    assert_eq!(&bytes[..6], b"#!AMR\n");
    let mut frames = 0;
    let mut rest = &bytes[6..];
    while !rest.is_empty() {
        let toc = rest[0];
        assert_eq!(toc & 0x83, 0, "F bit and padding clear: {toc:#x}");
        let mode = (toc >> 3) & 0x0F;
        assert!(toc & 0x04 != 0, "quality bit");
        // Frame sizes of AMR-NB modes 0..=7 (payload bytes, ToC excluded).
        let payload = [12, 13, 15, 17, 19, 20, 26, 31][usize::from(mode)];
        assert!(rest.len() > payload, "a whole frame");
        rest = &rest[1 + payload..];
        frames += 1;
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_decode_and_voice_is_amr() {
    let sim = serve(config(31, 1500)).await;
    let http = client();
    let messages = decrypted_messages(&sim).await;
    let truth = sim.truth();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for (msgtype, payload, files) in media_messages(&messages, &truth) {
        let kind: &'static str = match msgtype.as_str() {
            "image" => "image",
            "voice" => "voice",
            "emotion" => "emotion",
            "video" => "video",
            "file" => "file",
            _ => continue,
        };
        if checked.get(kind).copied().unwrap_or(0) >= 6 {
            continue;
        }
        *checked.entry(kind).or_default() += 1;
        let m = &files[0];
        let bytes = media_bytes(&http, &sim, &m.sdkfileid, 0).await;
        assert_eq!(bytes.len() as u64, m.size);
        assert_eq!(md5_hex(&bytes), m.md5);
        match kind {
            "image" => {
                let (w, h, pixels) = decode_jpeg(&bytes);
                assert_eq!((w, h), (128, 96));
                // An identicon: more than one colour.
                assert!(pixels.chunks(3).any(|p| p != &pixels[..3]));
            }
            "emotion" => {
                let (w, h) = (
                    payload["width"].as_u64().unwrap(),
                    payload["height"].as_u64().unwrap(),
                );
                match payload["type"].as_u64().unwrap() {
                    1 => {
                        assert_eq!(&bytes[..6], b"GIF89a");
                        let mut opts = gif::DecodeOptions::new();
                        opts.set_color_output(gif::ColorOutput::RGBA);
                        let mut dec = opts.read_info(&bytes[..]).expect("gif header");
                        let frame = dec
                            .read_next_frame()
                            .expect("gif frame")
                            .expect("one frame");
                        assert_eq!((u64::from(frame.width), u64::from(frame.height)), (w, h));
                        assert_eq!(frame.buffer.len() as u64, w * h * 4);
                    }
                    2 => {
                        let dec = png::Decoder::new(&bytes[..]);
                        let mut reader = dec.read_info().expect("png header");
                        let mut buf = vec![0; reader.output_buffer_size()];
                        let info = reader.next_frame(&mut buf).expect("png image");
                        assert_eq!((u64::from(info.width), u64::from(info.height)), (w, h));
                    }
                    other => panic!("emotion type {other}"),
                }
            }
            "voice" => {
                let frames = amr_frames(&bytes);
                assert_eq!(payload["voice_size"].as_u64(), Some(m.size));
                // 20 ms per frame.
                assert_eq!(
                    payload["play_length"].as_u64(),
                    Some((frames as u64).div_ceil(50).max(1))
                );
            }
            _ => {}
        }
        // Resuming inside the picture or the frames gives the same file.
        let cut = (m.size / 3).min(700);
        let tail = media_bytes(&http, &sim, &m.sdkfileid, cut).await;
        assert_eq!(tail, bytes[cut as usize..], "{kind} resumed at {cut}");
    }
    for kind in ["image", "voice", "emotion", "video", "file"] {
        assert!(
            checked.get(kind).is_some_and(|n| *n > 0),
            "no {kind} checked: {checked:?}"
        );
    }
    // Pictures inside chatrecord and mixed items are JPEG too.
    let nested = media_messages(&messages, &truth)
        .into_iter()
        .find(|(t, _, _)| t == "mixed")
        .expect("a mixed item");
    let bytes = media_bytes(&http, &sim, &nested.2[0].sdkfileid, 0).await;
    assert_eq!(decode_jpeg(&bytes).0, 128);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_emotion_formats_occur() {
    let sim = serve(config(32, 2000)).await;
    let messages = decrypted_messages(&sim).await;
    let types: std::collections::BTreeSet<u64> = messages
        .values()
        .filter(|m| m["msgtype"] == "emotion")
        .filter_map(|m| m["emotion"]["type"].as_u64())
        .collect();
    assert_eq!(types, [1, 2].into());
    sim.shutdown().await;
}
