//! What every handler shares: the error answer, running index work off the async runtime (bounded), and
//! reading query parameters leniently (an unknown parameter is ignored, a malformed one is a 400 naming it).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::error;

use super::Shared;
use crate::error::ConsoleError;

/// An answer other than 200.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    NotFound(String),
    /// A cursor of a rebuilt index.
    Gone(String),
    Unavailable(String),
    /// A media object the console cannot preview (not a picture, not AMR, too large).
    Unsupported(String),
    Internal(ConsoleError),
}

impl From<ConsoleError> for AppError {
    fn from(e: ConsoleError) -> Self {
        AppError::Internal(e)
    }
}

/// The whole cause chain of an error, outermost first.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            AppError::BadRequest(t) => (StatusCode::BAD_REQUEST, t),
            AppError::NotFound(t) => (StatusCode::NOT_FOUND, t),
            AppError::Gone(t) => (StatusCode::GONE, t),
            AppError::Unavailable(t) => (StatusCode::SERVICE_UNAVAILABLE, t),
            AppError::Unsupported(t) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, t),
            AppError::Internal(e) => {
                error!(error = %chain(&e), "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: see the console's log".to_owned(),
                )
            }
        };
        let body = serde_json::json!({ "error": text }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Runs index work on a blocking thread, at most `max_concurrent_queries` at once.
pub async fn blocking<T, F>(st: &Shared, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
{
    let permit = tokio::time::timeout(std::time::Duration::from_secs(30), st.work.acquire())
        .await
        .map_err(|_| AppError::Unavailable("the console is busy: try again".into()))?
        .map_err(|_| AppError::Unavailable("the console is stopping".into()))?;
    let out = tokio::task::spawn_blocking(f).await.map_err(|_| {
        AppError::Internal(ConsoleError::Corrupt("a request worker panicked".into()))
    })?;
    drop(permit);
    out
}

/// Query parameters as pairs (repeated keys kept).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.trim().is_empty())
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn usize_in(&self, key: &str, default: usize, max: usize) -> Result<usize, AppError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(AppError::BadRequest(format!("{key} must be 1..={max}"))),
            },
        }
    }

    pub fn offset(&self, key: &str) -> Result<usize, AppError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 1_000_000)
                .ok_or_else(|| AppError::BadRequest(format!("{key} must be 0..=1000000"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, AppError> {
        match self.get(key).map(str::trim) {
            None | Some("any") => Ok(None),
            Some("true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some("false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(_) => Err(AppError::BadRequest(format!("{key} must be true or false"))),
        }
    }
}
