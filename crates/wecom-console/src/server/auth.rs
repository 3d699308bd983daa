//! Who is asking: a bearer token (API clients) or a session cookie (a reviewer's browser, after posting
//! the token to `/login`). Tokens never travel in URLs and are never logged; sessions are random ids
//! held in memory only (a restart logs everyone out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;

use crate::config::{Role, User};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "wecom_console_session";
/// Sessions held at most; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

struct Session {
    identity: Identity,
    expires: Instant,
}

pub struct Auth {
    users: Vec<User>,
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

/// Compares without an early exit, so the time taken says nothing about how much of a token matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn new(users: Vec<User>, ttl: Duration) -> Auth {
        Auth {
            users,
            sessions: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// The user whose token this is. Every user's token is compared, matched or not.
    pub fn by_token(&self, token: &str) -> Option<Identity> {
        let mut found = None;
        for u in &self.users {
            if same(u.token.expose().as_bytes(), token.as_bytes()) {
                found = Some(Identity {
                    name: u.name.clone(),
                    role: u.role,
                });
            }
        }
        found
    }

    /// Starts a session for `identity`; returns its id (the cookie's value).
    pub fn start_session(&self, identity: Identity) -> String {
        let mut id = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut id);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
        if let Ok(mut s) = self.sessions.lock() {
            let now = Instant::now();
            s.retain(|_, v| v.expires > now);
            if s.len() >= MAX_SESSIONS {
                if let Some(oldest) = s
                    .iter()
                    .min_by_key(|(_, v)| v.expires)
                    .map(|(k, _)| k.clone())
                {
                    s.remove(&oldest);
                }
            }
            s.insert(
                id.clone(),
                Session {
                    identity,
                    expires: now + self.ttl,
                },
            );
        }
        id
    }

    pub fn by_session(&self, id: &str) -> Option<Identity> {
        let s = self.sessions.lock().ok()?;
        s.get(id)
            .filter(|v| v.expires > Instant::now())
            .map(|v| v.identity.clone())
    }

    pub fn end_session(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
        }
    }
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The session id of a `Cookie` header value.
pub fn session_cookie(header: &str) -> Option<&str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == SESSION_COOKIE).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_model::Secret;

    #[test]
    fn tokens_sessions_and_headers() {
        let auth = Auth::new(
            vec![User {
                name: "alice".into(),
                role: Role::Reviewer,
                token: Secret::new("alice-token-0123456789"),
            }],
            Duration::from_secs(60),
        );
        let alice = auth
            .by_token("alice-token-0123456789")
            .expect("known token");
        assert_eq!(alice.name, "alice");
        assert_eq!(auth.by_token("alice-token-012345678"), None);
        let sid = auth.start_session(alice.clone());
        assert_eq!(auth.by_session(&sid), Some(alice));
        auth.end_session(&sid);
        assert_eq!(auth.by_session(&sid), None);
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(
            session_cookie(&format!("x=1; {SESSION_COOKIE}=sid; y=2")),
            Some("sid")
        );
    }
}
