//! HTTP presentations through the platform:
//! `/livelessons/{id}/endpoints/{endpoint}/http/{presentation}/{path…}` is proxied to the
//! endpoint's port over the backend's management path, so the browser never needs a route
//! to an endpoint.
//!
//! Only the livelesson's own session gets through (anyone else: 404). The platform's
//! credentials (session cookie and header, maintainer token and cookie) are removed before
//! the request reaches the endpoint, and so are hop-by-hop headers; the endpoint cannot set
//! `antidote_*` cookies, and its answers — errors too — pass unchanged. The endpoint sees paths without the prefix; an application that
//! links with absolute paths must be configured with the prefix as its base URL.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::AppState;
use super::error::ApiError;
use super::session::Learner;

/// How long the endpoint may take to answer (headers; the body then streams).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The URL prefix of a presentation, as the UI links to it.
pub fn prefix(livelesson: &str, endpoint: &str, presentation: &str) -> String {
    format!("/livelessons/{livelesson}/endpoints/{endpoint}/http/{presentation}")
}

/// `…/http/{presentation}` without a trailing slash: redirect so relative links resolve.
pub async fn redirect(
    State(state): State<AppState>,
    learner: Learner,
    Path((id, endpoint, presentation)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    state.own_livelesson(&learner, &id).await?;
    let location = format!("{}/", prefix(&id, &endpoint, &presentation));
    Ok((
        axum::http::StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response())
}

/// `…/http/{presentation}/` — the presentation's root.
pub async fn root(
    state: State<AppState>,
    learner: Learner,
    Path((id, endpoint, presentation)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    forward(
        state,
        learner,
        (id, endpoint, presentation, String::new()),
        request,
    )
    .await
}

/// `…/http/{presentation}/{*path}`.
pub async fn path(
    state: State<AppState>,
    learner: Learner,
    Path(parts): Path<(String, String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    forward(state, learner, parts, request).await
}

async fn forward(
    State(state): State<AppState>,
    learner: Learner,
    (id, endpoint, presentation, rest): (String, String, String, String),
    request: Request,
) -> Result<Response, ApiError> {
    let ll = state.own_livelesson(&learner, &id).await?;
    let ep = super::livelessons::reachable_endpoint(&ll, &endpoint)?;
    let p = ep
        .presentations
        .iter()
        .find(|p| p.name == presentation && p.kind == "http")
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "endpoint `{endpoint}` has no http presentation `{presentation}`"
            ))
        })?;
    let stream = state
        .backend
        .connect(&ll.id, &endpoint, p.port)
        .await
        .map_err(|e| bad_gateway(format!("cannot reach `{endpoint}` port {}: {e}", p.port)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| bad_gateway(format!("`{endpoint}` port {} speaks no HTTP: {e}", p.port)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "http presentation connection ended");
        }
    });

    let (parts, body) = request.into_parts();
    // The path as the browser sent it (still percent-encoded), without our prefix: the
    // decoded `rest` would turn `%2F` into a separator and `%20` into an invalid URI.
    let raw = parts.uri.path();
    let mine = prefix(&id, &endpoint, &presentation);
    let mut target = raw
        .strip_prefix(&mine)
        .filter(|t| t.starts_with('/'))
        .map_or_else(|| format!("/{rest}"), str::to_owned);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut upstream = hyper::Request::builder()
        .method(parts.method)
        .uri(&target)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("cannot forward this request: {e}")))?;
    *upstream.headers_mut() = forwarded_headers(&parts.headers, &endpoint, p.port);
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(upstream))
        .await
        .map_err(|_| {
            bad_gateway(format!(
                "`{endpoint}` port {} did not answer within {} s",
                p.port,
                ANSWER_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| bad_gateway(format!("`{endpoint}` port {} failed: {e}", p.port)))?;
    let (mut parts, body) = answer.into_parts();
    for h in &HOP_BY_HOP {
        parts.headers.remove(h);
    }
    // The endpoint must not set (or overwrite) the platform's own cookies.
    let cookies: Vec<HeaderValue> = parts
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            !v.to_str()
                .is_ok_and(|c| c.trim_start().starts_with("antidote_"))
        })
        .cloned()
        .collect();
    parts.headers.remove(header::SET_COOKIE);
    for c in cookies {
        parts.headers.append(header::SET_COOKIE, c);
    }
    // The endpoint's own answer, errors included: the error middleware leaves it as it is.
    parts.extensions.insert(Proxied);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Marks an answer that came from an endpoint, not from the platform.
#[derive(Debug, Clone, Copy)]
pub struct Proxied;

fn bad_gateway(message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "bad_gateway", message)
}

/// The browser's headers as the endpoint should see them: no hop-by-hop headers, none of
/// the platform's credentials (session cookie or header, maintainer token or cookie), `Host`
/// naming the endpoint.
fn forwarded_headers(incoming: &HeaderMap, endpoint: &str, port: u16) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if HOP_BY_HOP.contains(name)
            || name == header::HOST
            || name == header::COOKIE
            || name == header::AUTHORIZATION
            || name.as_str() == super::session::HEADER
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    let cookies: Vec<&str> = incoming
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && !pair
                    .split('=')
                    .next()
                    .is_some_and(|name| name.trim().starts_with("antidote_"))
        })
        .collect();
    if !cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        out.insert(header::COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{endpoint}:{port}")) {
        out.insert(header::HOST, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_and_hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "antidote.example".parse().unwrap());
        h.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        h.insert(header::ACCEPT, "text/html".parse().unwrap());
        h.append(
            header::COOKIE,
            "antidote_session=abc123def4; app=1".parse().unwrap(),
        );
        h.append(
            header::COOKIE,
            "other=2; antidote_maintainer=secret".parse().unwrap(),
        );
        h.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        h.insert("x-antidote-session", "abc123def4".parse().unwrap());
        let out = forwarded_headers(&h, "web1", 8080);
        assert_eq!(out[header::HOST], "web1:8080");
        assert_eq!(out[header::COOKIE], "app=1; other=2");
        assert_eq!(out[header::ACCEPT], "text/html");
        assert!(out.get(header::CONNECTION).is_none());
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert!(out.get("x-antidote-session").is_none());

        let mut only_ours = HeaderMap::new();
        only_ours.insert(
            header::COOKIE,
            "antidote_session=abc123def4".parse().unwrap(),
        );
        assert!(
            forwarded_headers(&only_ours, "web1", 80)
                .get(header::COOKIE)
                .is_none()
        );
    }
}
