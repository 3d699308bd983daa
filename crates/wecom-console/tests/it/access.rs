//! Tokens, roles, sessions and the audit log.

use crate::common::{client, read_audit, url, wait_records, Env, API_TOKEN, REVIEWER_TOKEN};
use crate::synth;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_tokens_sessions_and_one_audit_line_per_request() {
    let env = Env::new(synth::CORP);
    let records: Vec<wecom_model::Record> = synth::records(100, 1).collect();
    env.append("corp", 1, &records);
    let console = env.start().await;
    wait_records(&console, 100).await;
    let audit_before = read_audit(&env.audit_path()).len();
    let c = client();
    let conv = crate::common::seg(&records[0].conversation_id);

    // (request, expected status) — each is one audit line.
    let mut expected: Vec<(&str, u16, Option<&str>, &str)> = Vec::new();

    // No token: the API says 401, pages send the browser to the sign-in form.
    let r = c
        .get(url(&console, "/api/conversations"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    expected.push(("/api/conversations", 401, None, "unauthenticated"));
    let r = c
        .get(url(&console, "/conversations"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .expect("ascii")
        .starts_with("/login?next="));
    expected.push(("/conversations", 303, None, "unauthenticated"));
    let r = c
        .get(url(&console, &format!("/c/{conv}/export")))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 303, "exports need a reviewer too");
    expected.push(("/c/", 303, None, "unauthenticated"));

    // A wrong token is no token.
    let r = c
        .get(url(&console, "/api/status"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    expected.push(("/api/status", 401, None, "unauthenticated"));

    // The api role: the API yes, reviewer pages and media no.
    let r = c
        .get(url(&console, "/api/conversations"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    expected.push(("/api/conversations", 200, Some("llm-bot"), "allowed"));
    for path in ["/conversations", "/search?q=ok", "/media/media/x/md5/a.jpg"] {
        let r = c
            .get(url(&console, path))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), 403, "{path}");
        expected.push((
            path.split('?').next().unwrap_or(path),
            403,
            Some("llm-bot"),
            "denied",
        ));
    }

    // The reviewer role sees both.
    for path in ["/conversations", "/api/status"] {
        let r = c
            .get(url(&console, path))
            .bearer_auth(REVIEWER_TOKEN)
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), 200, "{path}");
        expected.push((path, 200, Some("alice"), "allowed"));
    }

    // A token in the URL is refused and not logged.
    let r = c
        .get(url(
            &console,
            &format!("/api/status?access_token={REVIEWER_TOKEN}"),
        ))
        .bearer_auth(REVIEWER_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    expected.push(("/api/status", 400, Some("alice"), "refused"));

    // Browser sign-in: an api token cannot open a session; a reviewer token can.
    let r = c
        .post(url(&console, "/login"))
        .form(&[("token", API_TOKEN), ("next", "/conversations")])
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    expected.push(("/login", 401, Some("llm-bot"), "login_failed"));
    let r = c
        .post(url(&console, "/login"))
        .form(&[("token", REVIEWER_TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/conversations",
        "no open redirect"
    );
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    expected.push(("/login", 303, Some("alice"), "login"));
    let r = c
        .get(url(&console, &format!("/c/{conv}")))
        .header("cookie", &session)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    expected.push(("/c/", 200, Some("alice"), "allowed"));
    let r = c
        .post(url(&console, "/logout"))
        .header("cookie", &session)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 303);
    expected.push(("/logout", 303, Some("alice"), "logout"));
    let r = c
        .get(url(&console, "/conversations"))
        .header("cookie", &session)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 303, "the session ended");
    expected.push(("/conversations", 303, None, "unauthenticated"));

    let lines = read_audit(&env.audit_path());
    let new = &lines[audit_before..];
    assert_eq!(
        new.len(),
        expected.len(),
        "one audit line per request: {new:#?}"
    );
    for (line, (path, status, who, outcome)) in new.iter().zip(&expected) {
        assert!(
            line["path"].as_str().expect("path").starts_with(path),
            "{line}"
        );
        assert_eq!(line["status"], *status, "{line}");
        assert_eq!(line["who"].as_str(), *who, "{line}");
        assert_eq!(line["outcome"], *outcome, "{line}");
        assert!(
            line["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
    let text = std::fs::read_to_string(env.audit_path()).expect("audit");
    assert!(
        !text.contains(REVIEWER_TOKEN) && !text.contains(API_TOKEN),
        "no token in the audit log"
    );
    console.stop().await.expect("stops");
}
