//! Maintainer routes' authentication: `Authorization: Bearer <token>` naming one of the
//! configured tokens (`ANTIDOTE_MAINTAINER_TOKENS`, each `token` or `name:token`; the name is
//! who triage activity is recorded as), or the web UI's `antidote_maintainer` cookie. The
//! cookie never holds a token: it is `v1~NAME~EXPIRY~MAC`, an HMAC-SHA256 by that token of
//! the name and expiry, so it ends at its expiry (checked here, not by the browser), works on
//! every api replica with the same tokens, and dies when the token is rotated. A learner's
//! session never counts.

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

/// How long a sign-in lasts.
pub const SIGN_IN_SECONDS: u64 = 12 * 3600;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn cookie_mac(secret: &str, name: &str, expiry: u64) -> Option<HmacSha256> {
    use hmac::KeyInit;
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    hmac::Mac::update(
        &mut mac,
        format!("antidote-maintainer|{name}|{expiry}").as_bytes(),
    );
    Some(mac)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The cookie value signing `maintainer` in until `now + SIGN_IN_SECONDS` (unix seconds).
pub fn sign_in_cookie(tokens: &[Token], maintainer: &Maintainer, now: u64) -> Option<String> {
    let token = tokens.iter().find(|t| t.name == maintainer.name)?;
    let expiry = now + SIGN_IN_SECONDS;
    let mac = cookie_mac(&token.secret, &token.name, expiry)?;
    let tag = hmac::Mac::finalize(mac).into_bytes();
    Some(format!("v1~{}~{expiry}~{}", token.name, hex(&tag)))
}

/// The maintainer a sign-in cookie value stands for at `now`.
pub fn check_cookie(tokens: &[Token], value: &str, now: u64) -> Result<Maintainer, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    let mut parts = value.split('~');
    let (Some("v1"), Some(name), Some(expiry), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next().and_then(|e| e.parse::<u64>().ok()),
        parts.next().and_then(unhex),
        parts.next(),
    ) else {
        return Err(unauthorized(
            "the sign-in cookie is not one of ours: sign in again",
        ));
    };
    if expiry <= now {
        return Err(unauthorized("the sign-in has expired: sign in again"));
    }
    tokens
        .iter()
        .filter(|t| t.name == name)
        .find(|t| {
            cookie_mac(&t.secret, name, expiry)
                .is_some_and(|mac| hmac::Mac::verify_slice(mac, &tag).is_ok())
        })
        .map(|t| Maintainer {
            name: t.name.clone(),
        })
        .ok_or_else(|| {
            unauthorized("the sign-in is no longer valid (the token changed?): sign in again")
        })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

/// Now, in unix seconds (sign-in expiry).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

/// The maintainer behind a request's bearer token or sign-in cookie.
pub fn check(state: &AppState, headers: &HeaderMap) -> Result<Maintainer, ApiError> {
    let tokens = &state.maintainer_tokens;
    if tokens.is_empty() {
        return check_token(&[], "");
    }
    if let Some(token) = bearer(headers) {
        return check_token(tokens, &token);
    }
    match super::session::cookie(headers, COOKIE) {
        Some(value) if !value.is_empty() => check_cookie(tokens, &value, now_unix()),
        _ => Err(ApiError::new(
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
    fn sign_in_cookies_are_signed_and_expire() {
        let tokens: Vec<Token> = ["ana:s3cret", "bo:other"]
            .iter()
            .filter_map(|e| Token::parse(e))
            .collect();
        let ana = Maintainer { name: "ana".into() };
        let cookie = sign_in_cookie(&tokens, &ana, 1000).unwrap();
        assert!(!cookie.contains("s3cret"), "{cookie}");
        assert!(cookie.starts_with(&format!("v1~ana~{}~", 1000 + SIGN_IN_SECONDS)));
        assert_eq!(check_cookie(&tokens, &cookie, 2000).unwrap(), ana);
        // Past its expiry, with its expiry changed, as someone else, or after the token
        // changed: refused.
        let e = check_cookie(&tokens, &cookie, 1000 + SIGN_IN_SECONDS).unwrap_err();
        assert!(e.message.contains("expired"), "{}", e.message);
        let longer = cookie.replace(&(1000 + SIGN_IN_SECONDS).to_string(), "99999999999");
        assert!(check_cookie(&tokens, &longer, 2000).is_err());
        let as_bo = cookie.replacen("~ana~", "~bo~", 1);
        assert!(check_cookie(&tokens, &as_bo, 2000).is_err());
        let rotated: Vec<Token> = Token::parse("ana:new-secret").into_iter().collect();
        assert!(check_cookie(&rotated, &cookie, 2000).is_err());
        for junk in [
            "s3cret",
            "v1~ana~x~00",
            "v1~ana~5000~zz",
            "v1~ana~5000~00~x",
            "",
        ] {
            assert!(check_cookie(&tokens, junk, 2000).is_err(), "{junk}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
