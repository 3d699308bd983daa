//! The access guard every request passes: who is asking, may they see this, and the audit line.
//!
//! - `/login` and `/static/*` (the sign-in form, stylesheet and script: no archive data) are open;
//! - `/api/*` needs a bearer token or a session of either role;
//! - everything else (pages, media, exports) needs the `reviewer` role.
//!
//! A token in the URL is refused outright (it would end up in proxies' and browsers' histories).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::audit::AuditLine;
use super::auth::{bearer, session_cookie, Identity};
use super::Shared;
use crate::config::Role;

/// Query parameters that look like credentials.
const CREDENTIAL_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "password",
    "session",
];

/// Set by a handler that decides the audit outcome itself (login, logout).
#[derive(Debug, Clone)]
pub(crate) struct AuditNote {
    pub who: Option<Identity>,
    pub outcome: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Open,
    Api,
    Reviewer,
}

fn area(path: &str) -> Area {
    if path == "/login" || path.starts_with("/static/") {
        Area::Open
    } else if path.starts_with("/api/") || path == "/api" {
        Area::Api
    } else {
        Area::Reviewer
    }
}

fn has_credential_param(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or("");
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        CREDENTIAL_PARAMS
            .iter()
            .any(|c| key.eq_ignore_ascii_case(c))
    })
}

fn identify(state: &Shared, req: &Request) -> Option<Identity> {
    let headers = req.headers();
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // A wrong bearer token is not rescued by a cookie.
        return bearer(h).and_then(|t| state.auth.by_token(t));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session_cookie)
        .and_then(|sid| state.auth.by_session(sid))
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

pub(crate) async fn guard(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let who = identify(&state, &req);
    let credential_in_url = query.as_deref().is_some_and(has_credential_param);
    if let Some(w) = &who {
        req.extensions_mut().insert(w.clone());
    }

    let (mut response, outcome) = if credential_in_url {
        (
            plain(
                StatusCode::BAD_REQUEST,
                "tokens are not accepted in URLs: send them in an Authorization: Bearer header",
            ),
            "refused",
        )
    } else {
        match (area(&path), &who) {
            (Area::Open, _) => (next.run(req).await, "allowed"),
            (Area::Api, Some(_))
            | (
                Area::Reviewer,
                Some(Identity {
                    role: Role::Reviewer,
                    ..
                }),
            ) => (next.run(req).await, "allowed"),
            (Area::Reviewer, Some(_)) => (
                plain(
                    StatusCode::FORBIDDEN,
                    "this token has the api role: it may use /api/ only",
                ),
                "denied",
            ),
            (Area::Api, None) => {
                let mut r = plain(
                    StatusCode::UNAUTHORIZED,
                    "send a console token in an Authorization: Bearer header",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"wecom-console\""),
                );
                (r, "unauthenticated")
            }
            (Area::Reviewer, None) if method == Method::GET => {
                let mut r = Redirect::to(&login_target(&path, query.as_deref())).into_response();
                *r.status_mut() = StatusCode::SEE_OTHER;
                (r, "unauthenticated")
            }
            (Area::Reviewer, None) => (
                plain(StatusCode::UNAUTHORIZED, "sign in first"),
                "unauthenticated",
            ),
        }
    };

    let note = response.extensions_mut().remove::<AuditNote>();
    let (who, outcome) = match note {
        Some(n) => (n.who, n.outcome),
        None => (who, outcome),
    };
    let line = AuditLine {
        ts: wecom_model::record::format_msgtime(wecom_store::now_unix_ms()).unwrap_or_default(),
        who: who.as_ref().map(|w| w.name.clone()),
        role: who.as_ref().map(|w| w.role.as_str()),
        method: method.to_string(),
        path,
        query: if credential_in_url {
            Some("[redacted]".to_owned())
        } else {
            query
        },
        status: response.status().as_u16(),
        outcome,
        ms: started.elapsed().as_millis() as u64,
        peer,
    };
    if !state.audit.record(&line).await {
        response = plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the audit log cannot be written: access is refused until it can",
        );
    }
    secure_headers(&mut response, &line.path);
    response
}

/// `/login?next=…` for a page the browser asked for before signing in.
fn login_target(path: &str, query: Option<&str>) -> String {
    let mut next = path.to_owned();
    if let Some(q) = query {
        next.push('?');
        next.push_str(q);
    }
    let enc = percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC);
    format!("/login?next={enc}")
}

fn secure_headers(r: &mut Response, path: &str) {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; \
                 script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        let v = if path.starts_with("/static/") {
            "public, max-age=86400"
        } else {
            // Archive content stays off shared and disk caches.
            "no-store"
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_and_credential_params() {
        assert!(matches!(area("/login"), Area::Open));
        assert!(matches!(area("/api/search"), Area::Api));
        assert!(matches!(area("/apix"), Area::Reviewer));
        assert!(matches!(area("/c/wr1"), Area::Reviewer));
        assert!(has_credential_param("q=1&access_token=x"));
        assert!(has_credential_param("TOKEN=x"));
        assert!(has_credential_param("%74oken=x"));
        assert!(!has_credential_param("q=token"));
        assert_eq!(
            login_target("/c/a", Some("x=1")),
            "/login?next=%2Fc%2Fa%3Fx%3D1"
        );
    }
}
