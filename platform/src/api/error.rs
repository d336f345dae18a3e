//! The error shape of DESIGN §9 and the request ID every response carries.
//!
//! Handlers return [`ApiError`]; it becomes a response whose JSON body is written by
//! [`request_context`], the outermost middleware, which knows the request ID. The same
//! middleware turns every other 4xx/5xx (axum's own rejections: malformed JSON, wrong content
//! type, oversized body, unknown route) into that shape, so no error leaves as plain text.
//! The web UI's pages answer their errors as HTML pages of their own, left alone here.

use std::time::Instant;

use antidote_telemetry::metrics::{HttpLabels, RouteLabels, metrics};
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;
use tracing::field::Empty;
use utoipa::ToSchema;

use super::AppState;

/// The request header and response header carrying the request ID.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The response header naming the request's trace (W3C trace ID, hex).
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// The ID of the request being served (a UUID), in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An error a handler answers with: status, stable code and a message for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// `{"error": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and the request ID to quote when reporting it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `bad_request`, `unprocessable`, ...
    pub code: String,
    pub message: String,
    pub request_id: String,
}

/// The stable code for a status when the error did not come from a handler.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// The method as a metric label: the standard ones by name, anything else `other` (any
/// token is a valid method, and labels must stay few).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A usable request ID from the client, or a fresh one.
fn request_id_of(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .to_string()
}

/// Outermost middleware: assigns the request ID, writes error bodies, reports server errors.
pub async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = request_id_of(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The maintainers' pages and static files belong to no learner session, even when the
    // browser also carries one: a report's trace tree stays the learner's.
    let session = if path.starts_with("/triage") || path.starts_with("/assets/") {
        String::new()
    } else {
        super::session::session_hint(request.headers())
    };
    // The route as declared (`/api/v1/livelessons/{id}`): metric labels never carry IDs.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    // The server span of this request: continues the caller's trace (`traceparent`), and
    // everything the request causes — the scheduler's work included — joins it.
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.method = %method,
        http.route = %route,
        http.status_code = Empty,
        request.id = %request_id,
        session.id = %session,
        lesson = Empty,
        livelesson.id = Empty,
        otel.status_code = Empty,
    );
    antidote_telemetry::setup::set_parent_from_http(&span, request.headers());

    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    let m = metrics();
    let method_label = method_label(&method);
    m.http_requests
        .get_or_create(&HttpLabels {
            method: method_label.to_owned(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    m.http_duration
        .get_or_create(&RouteLabels {
            method: method_label.to_owned(),
            route,
        })
        .observe(started.elapsed().as_secs_f64());
    // JSON errors pass as they are, and so do the UI's own error pages (HTML for people).
    let already_shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    // An endpoint's own answer (http presentations) is the endpoint's business, not ours.
    let proxied = response
        .extensions()
        .get::<super::http_presentation::Proxied>()
        .is_some();
    if (status.is_client_error() || status.is_server_error()) && !already_shaped && !proxied {
        let (code, message) = match response.extensions_mut().remove::<ApiError>() {
            Some(e) => (e.code.to_owned(), e.message),
            None => {
                let (parts, body) = response.into_parts();
                let text = axum::body::to_bytes(body, 4096)
                    .await
                    .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                    .unwrap_or_default();
                response = Response::from_parts(parts, Body::empty());
                let message = if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("request failed")
                        .to_owned()
                } else {
                    text
                };
                (code_for(status).to_owned(), message)
            }
        };
        // Logged inside the request's span, so the record carries its trace and session.
        if status.is_client_error() {
            span.in_scope(|| {
                tracing::info!(%method, %path, status = status.as_u16(), request_id, code, detail = %message, "request refused");
            });
        }
        if status.is_server_error() {
            span.in_scope(|| {
                tracing::error!(%method, %path, request_id, code, detail = %message, "request failed");
            });
            // Published in the background: a 5xx while NATS is slow or down must not wait
            // for it.
            let (state, session, request_id, method, path, message) = (
                state.clone(),
                session.clone(),
                request_id.clone(),
                method.clone(),
                path.clone(),
                message.clone(),
            );
            tokio::spawn(
                async move {
                    state
                        .report_http_error(&session, &request_id, &method, &path, status, &message)
                        .await;
                }
                .instrument(span.clone()),
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                request_id: request_id.clone(),
            },
        };
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        let json = serde_json::to_vec(&body).unwrap_or_default();
        response = Response::from_parts(parts, Body::from(json));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    // The trace this request belongs to, for the page to quote in feedback reports.
    let (trace_id, _) = span.in_scope(antidote_telemetry::setup::current_ids);
    if let Ok(value) = HeaderValue::from_str(&trace_id)
        && !trace_id.is_empty()
    {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_has_a_code() {
        for s in [400u16, 401, 403, 404, 405, 409, 413, 415, 422, 503] {
            let status = StatusCode::from_u16(s).unwrap();
            assert_ne!(code_for(status), "error", "{s}");
        }
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), "internal");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"AAAA1").unwrap()),
            "other"
        );
    }

    #[test]
    fn client_request_ids_are_kept_only_when_they_are_uuids() {
        let id = "0b0d3c4e-7f11-4a52-9f5e-1d2c3b4a5f60";
        let r = Request::builder()
            .header(REQUEST_ID_HEADER, id)
            .body(Body::empty())
            .unwrap();
        assert_eq!(request_id_of(&r), id);
        let r = Request::builder()
            .header(REQUEST_ID_HEADER, "<script>")
            .body(Body::empty())
            .unwrap();
        assert!(uuid::Uuid::parse_str(&request_id_of(&r)).is_ok());
    }
}
