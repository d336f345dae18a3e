//! `POST /api/v1/client-errors`: errors the browser saw, published as `client.error` events
//! with the session (when the request names one) so they line up with the server's view.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::session::session_hint;
use crate::backend::local::is_id;
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::Severity;

/// Longest message kept.
pub const MAX_MESSAGE: usize = 2000;

/// A browser-side error.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientErrorReport {
    /// What went wrong (longer messages are cut to 2000 characters).
    #[schema(min_length = 1)]
    pub message: String,
    /// Where it was caught (`window.onerror`, `promise`, ...).
    #[serde(default)]
    pub source: Option<String>,
    /// The page's URL.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub stack: Option<String>,
    /// The livelesson the page was showing.
    #[serde(default)]
    pub livelesson_id: Option<String>,
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Records a browser-side error as a `client.error` event.
#[utoipa::path(
    post,
    path = "/api/v1/client-errors",
    tag = "telemetry",
    request_body = ClientErrorReport,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<ClientErrorReport>,
) -> Result<StatusCode, ApiError> {
    if body.message.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "`message` must not be empty",
        ));
    }
    let mut e = Event::new(kind::CLIENT_ERROR, "browser", Severity::Error)
        .message(clip(&body.message, MAX_MESSAGE));
    e.session_id = session_hint(&headers);
    if let Some(id) = body.livelesson_id.as_deref().filter(|id| is_id(id, 10)) {
        // The livelesson, lesson and stage come from our own records, and only for the
        // reporting session's own livelesson: nobody attaches reports to someone else's lab.
        match state.livelessons.get(id).await {
            Ok(Some(ll)) if !e.session_id.is_empty() && ll.session_id == e.session_id => {
                e.livelesson_id = ll.id.clone();
                e.lesson = ll.lesson.clone();
                e.stage = i16::try_from(ll.stage).unwrap_or(i16::MAX);
            }
            _ => e = e.attr("claimed_livelesson_id", id),
        }
    }
    if let Some(source) = &body.source {
        e = e.attr("source", clip(source, 200));
    }
    if let Some(url) = &body.url {
        e = e.attr("url", clip(url, 1000));
    }
    if let Some(stack) = &body.stack {
        e = e.attr("stack", clip(stack, 4000));
    }
    if let Some(agent) = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        e = e.attr("user_agent", clip(agent, 300));
    }
    state.client.event(e).await;
    Ok(StatusCode::NO_CONTENT)
}
