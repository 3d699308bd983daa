//! Pages, media and exports over records with real media objects.

use crate::common::{client, get_json, seg, url, wait_records, Env, API_TOKEN, REVIEWER_TOKEN};
use crate::synth;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 255) as u8, (y % 255) as u8, 120])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    out
}

fn put_object(env: &Env, key: &str, bytes: &[u8]) {
    let path = env.objects_root().join(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_media_and_exports() {
    let env = Env::new(synth::CORP);
    let records: Vec<wecom_model::Record> = synth::records(400, 21).collect();
    let image = records
        .iter()
        .find(|r| r.msgtype.as_deref() == Some("image"))
        .expect("an image");
    let key = image.media[0].object_key.clone().expect("key");
    put_object(&env, &key, &png(900, 600));
    let missing = records
        .iter()
        .filter(|r| r.msgtype.as_deref() == Some("image"))
        .nth(1)
        .and_then(|r| r.media[0].object_key.clone())
        .expect("a second image");
    env.append("corp", 1, &records);
    let console = env.start().await;
    wait_records(&console, records.len() as u64).await;
    let c = client();

    // The timeline of the image's conversation shows a thumbnail of it.
    let conv = seg(&image.conversation_id);
    let html = c
        .get(url(&console, &format!("/c/{conv}")))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("timeline")
        .text()
        .await
        .expect("html");
    let thumb_path = format!("/thumb/{key}");
    let r = c
        .get(url(&console, &thumb_path))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("thumb");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&r.bytes().await.expect("bytes")).expect("a JPEG");
    assert_eq!((thumb.width(), thumb.height()), (320, 213));
    let _ = html; // the page may show newer messages first; the thumbnail URL is what matters

    // Originals: whole, ranged, missing.
    let r = c
        .get(url(&console, &format!("/media/{key}")))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("media");
    assert_eq!(r.status(), 200);
    let full = r.bytes().await.expect("bytes");
    let r = c
        .get(url(&console, &format!("/media/{key}")))
        .bearer_auth(REVIEWER_TOKEN)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), &full[10..20]);
    for path in [format!("/media/{missing}"), format!("/thumb/{missing}")] {
        let r = c
            .get(url(&console, &path))
            .bearer_auth(REVIEWER_TOKEN)
            .send()
            .await
            .expect("missing");
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = c
        .get(url(&console, "/media/media/../../etc/passwd"))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("traversal");
    assert!(r.status() == 400 || r.status() == 404, "{}", r.status());

    // Exports: JSON has every message of the conversation in time order; Markdown one line each.
    let want: Vec<&str> = {
        let mut v: Vec<&wecom_model::Record> = records
            .iter()
            .filter(|r| r.conversation_id == image.conversation_id)
            .collect();
        v.sort_by_key(|r| r.msgtime_ms);
        v.iter().map(|r| r.msgid.as_str()).collect()
    };
    let r = c
        .get(url(&console, &format!("/c/{conv}/export?format=json")))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("attachment"));
    let doc: serde_json::Value =
        serde_json::from_str(&r.text().await.expect("body")).expect("JSON export");
    let got: Vec<&str> = doc["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["msgid"].as_str().expect("msgid"))
        .collect();
    assert_eq!(got, want);
    let md = c
        .get(url(&console, &format!("/c/{conv}/export?format=markdown")))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    let lines = md.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(lines, want.len(), "{md}");
    assert!(
        md.contains(&format!("[image]({key})")),
        "media as placeholders with their keys"
    );

    // The API transcript in Markdown says the same.
    let r = c
        .get(url(
            &console,
            &format!("/api/conversations/{conv}/transcript?format=markdown&limit=1000"),
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("transcript");
    assert_eq!(r.headers()["x-has-more"], "false");
    let body = r.text().await.expect("body");
    assert_eq!(
        body.lines().filter(|l| l.starts_with('[')).count(),
        want.len()
    );

    // The OpenAPI document is there for both roles.
    let doc = get_json(&console, "/api/openapi.json", API_TOKEN).await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/conversations/{id}/transcript"].is_object());
    console.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recalls_are_linked_both_ways() {
    let env = Env::new(synth::CORP);
    let records: Vec<wecom_model::Record> = synth::records(600, 4).collect();
    // A message is recalled once in real data; the synthetic corpus may recall one twice, so take a
    // recall whose target no other recall names.
    let target_of = |r: &wecom_model::Record| match &r.content {
        wecom_model::Content::Revoke(rv) => Some(rv.pre_msgid.clone()),
        _ => None,
    };
    let targets: Vec<String> = records.iter().filter_map(target_of).collect();
    let recall = records
        .iter()
        .find(|r| target_of(r).is_some_and(|t| targets.iter().filter(|x| **x == t).count() == 1))
        .expect("a recall");
    let wecom_model::Content::Revoke(rv) = &recall.content else {
        panic!("revoke content")
    };
    let target = records
        .iter()
        .find(|r| r.msgid == rv.pre_msgid)
        .expect("the recalled message");
    env.append("corp", 1, &records);
    let console = env.start().await;
    wait_records(&console, records.len() as u64).await;
    let c = client();
    let html = c
        .get(url(&console, &format!("/m/{}", seg(&target.msgid))))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("message page")
        .text()
        .await
        .expect("html");
    // Synthetic msgids are made of characters a path segment keeps as they are.
    assert!(
        html.contains(&format!("/m/{}", recall.msgid)),
        "the recalled message links to its recall"
    );
    let page = get_json(
        &console,
        &format!(
            "/api/conversations/{}/transcript?limit=1000",
            seg(&target.conversation_id)
        ),
        API_TOKEN,
    )
    .await;
    let m = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["msgid"] == target.msgid.as_str())
        .expect("target in transcript");
    assert_eq!(m["recalled_by"], recall.msgid.as_str());
    console.stop().await.expect("stops");
}
