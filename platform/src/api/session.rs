//! Learner sessions: `POST /api/v1/sessions`, the `antidote_session` cookie (or the
//! `X-Antidote-Session` header for API clients), and the [`Learner`] extractor every learner
//! route uses to know whose request it is.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::backend::local::is_id;

/// The cookie holding the session ID (contract).
pub const COOKIE: &str = "antidote_session";
/// The header API clients may use instead of the cookie.
pub const HEADER: &str = "x-antidote-session";

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// The session ID a request names (cookie first, then header), if it looks like one.
pub fn session_hint(headers: &HeaderMap) -> String {
    let from_cookie = cookie(headers, COOKIE);
    let from_header = || {
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    from_cookie
        .filter(|id| is_id(id, 10))
        .or_else(|| from_header().filter(|id| is_id(id, 10)))
        .unwrap_or_default()
}

/// A request that names a learner session (well-formed ID in the cookie or header).
///
/// The extractor does not look the session up: a route confirms it either by finding a
/// livelesson that belongs to it ([`AppState::own_livelesson`], one KV read for the common
/// case) or with [`AppState::require_session`].
#[derive(Debug, Clone)]
pub struct Learner {
    pub session_id: String,
}

impl FromRequestParts<AppState> for Learner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Learner, ApiError> {
        let id = session_hint(&parts.headers);
        if id.is_empty() {
            return Err(no_session());
        }
        Ok(Learner { session_id: id })
    }
}

impl AppState {
    /// 401 unless the learner's session exists.
    pub async fn require_session(&self, learner: &Learner) -> Result<(), ApiError> {
        match self.sessions.get(&learner.session_id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(no_session()),
            Err(e) => Err(ApiError::unavailable(format!(
                "cannot read the session store: {e}"
            ))),
        }
    }
}

fn no_session() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "no_session",
        format!(
            "no known session: create one with POST /api/v1/sessions (cookie `{COOKIE}` or header `X-Antidote-Session`)"
        ),
    )
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// 10 characters `[a-z0-9]`.
    pub session_id: String,
}

/// Starts a learner session and sets the `antidote_session` cookie.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "sessions",
    responses(
        (status = 201, description = "Session created; cookie `antidote_session` set", body = SessionCreated),
        (status = 503, description = "NATS unreachable", body = super::error::ErrorBody),
    )
)]
pub async fn create(State(state): State<AppState>) -> Result<Response, ApiError> {
    let session = state
        .client
        .create_session()
        .await
        .map_err(super::client_error)?;
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000",
        session.id
    );
    let mut response = (
        StatusCode::CREATED,
        Json(SessionCreated {
            session_id: session.id,
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_wins_over_the_header_and_bad_ids_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; antidote_session=abc123def4".parse().unwrap(),
        );
        h.insert(HEADER, "zzzzzzzzzz".parse().unwrap());
        assert_eq!(session_hint(&h), "abc123def4");
        h.insert(
            header::COOKIE,
            "antidote_session=../../etc".parse().unwrap(),
        );
        assert_eq!(session_hint(&h), "zzzzzzzzzz");
        h.remove(HEADER);
        assert_eq!(session_hint(&h), "");
    }
}
