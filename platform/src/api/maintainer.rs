//! Maintainer routes' authentication: `Authorization: Bearer <token>` (or the web UI's
//! `antidote_maintainer` cookie) naming one of the configured tokens
//! (`ANTIDOTE_MAINTAINER_TOKENS`). A learner's session never counts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::AppState;
use super::error::ApiError;

/// The cookie the maintainer pages keep the token in.
pub const COOKIE: &str = "antidote_maintainer";

/// A request from a maintainer.
#[derive(Debug, Clone, Copy)]
pub struct Maintainer;

/// Equal without telling, through timing, how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| super::session::cookie(&parts.headers, COOKIE))
}

impl FromRequestParts<AppState> for Maintainer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned())
        };
        if state.maintainer_tokens.is_empty() {
            return Err(unauthorized(
                "maintainer routes are disabled on this installation (set ANTIDOTE_MAINTAINER_TOKENS)",
            ));
        }
        let Some(token) = presented(parts) else {
            return Err(unauthorized(
                "maintainer route: send `Authorization: Bearer <token>`",
            ));
        };
        if state
            .maintainer_tokens
            .iter()
            .any(|t| same(t.as_bytes(), token.as_bytes()))
        {
            Ok(Maintainer)
        } else {
            Err(unauthorized("that maintainer token is not valid here"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
