//! Maintainer routes' authentication: `Authorization: Bearer <token>` (or the web UI's
//! `antidote_maintainer` cookie) naming one of the configured tokens
//! (`ANTIDOTE_MAINTAINER_TOKENS`, each `token` or `name:token`; the name is who triage
//! activity is recorded as). A learner's session never counts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::AppState;
use super::error::ApiError;

/// The cookie the maintainer pages keep the token in.
pub const COOKIE: &str = "antidote_maintainer";

/// A request from a maintainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintainer {
    /// Who triage activity is recorded as (`maintainer` for an unnamed token).
    pub name: String,
}

/// One configured token and the name it stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// `name:token` (name of letters, digits, `.`, `_`, `-`) or a bare `token`; `None` for an
    /// empty entry.
    pub fn parse(entry: &str) -> Option<Token> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        let named = entry.split_once(':').filter(|(name, secret)| {
            !name.is_empty()
                && !secret.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
        Some(match named {
            Some((name, secret)) => Token {
                name: name.to_owned(),
                secret: secret.to_owned(),
            },
            None => Token {
                name: "maintainer".to_owned(),
                secret: entry.to_owned(),
            },
        })
    }
}

/// Equal without telling, through timing, how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| super::session::cookie(headers, COOKIE))
}

/// The maintainer `token` stands for.
pub fn check_token(tokens: &[Token], token: &str) -> Result<Maintainer, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    if tokens.is_empty() {
        return Err(unauthorized(
            "maintainer routes are disabled on this installation (set ANTIDOTE_MAINTAINER_TOKENS)",
        ));
    }
    // Compare with every token, so timing tells nothing about which one matched.
    let found = tokens.iter().fold(None, |found, t| {
        if same(t.secret.as_bytes(), token.as_bytes()) {
            Some(t)
        } else {
            found
        }
    });
    found
        .map(|t| Maintainer {
            name: t.name.clone(),
        })
        .ok_or_else(|| unauthorized("that maintainer token is not valid here"))
}

/// The maintainer behind a request's bearer token or cookie.
pub fn check(state: &AppState, headers: &HeaderMap) -> Result<Maintainer, ApiError> {
    match presented(headers) {
        Some(token) => check_token(&state.maintainer_tokens, &token),
        None if state.maintainer_tokens.is_empty() => check_token(&[], ""),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "maintainer route: send `Authorization: Bearer <token>`".to_owned(),
        )),
    }
}

impl FromRequestParts<AppState> for Maintainer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(state, &parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_may_carry_a_name() {
        let tokens: Vec<Token> = ["ana:s3cret", "plain-token", " ", "a b:c"]
            .iter()
            .filter_map(|e| Token::parse(e))
            .collect();
        assert_eq!(tokens.len(), 3);
        assert_eq!(check_token(&tokens, "s3cret").unwrap().name, "ana");
        assert_eq!(
            check_token(&tokens, "plain-token").unwrap().name,
            "maintainer"
        );
        assert_eq!(check_token(&tokens, "a b:c").unwrap().name, "maintainer");
        assert!(check_token(&tokens, "ana:s3cret").is_err());
        assert!(check_token(&tokens, "").is_err());
        assert!(!format!("{:?}", tokens[0]).contains("s3cret"));
        assert!(
            check_token(&[], "x")
                .unwrap_err()
                .message
                .contains("disabled")
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
