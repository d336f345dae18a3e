//! `GET /api/v1/sessions/{id}/timeline` (maintainers): everything that happened to one
//! session — events, spans, endpoint instances from ClickHouse, and its livelessons as they
//! are now.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::livelessons::LivelessonView;
use super::maintainer::Maintainer;
use crate::backend::local::is_id;
use antidote_telemetry::timeline::{self, Timeline};

/// A session's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionTimeline {
    /// `session_id`, `events`, `spans`, `endpoints` (instance, node, backend, reachability
    /// checks, configuration runs) and `feedback` (the session's reports) from ClickHouse.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub timeline: Timeline,
    /// The session's livelessons now (empty once they are deleted).
    pub livelessons: Vec<LivelessonView>,
}

/// The timeline of session `id`.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/timeline",
    tag = "maintainers",
    params(("id" = String, Path, description = "Session ID (10 characters [a-z0-9])")),
    security(("maintainer" = [])),
    responses(
        (status = 200, description = "Events, spans, endpoints and livelessons of the session", body = SessionTimeline),
        (status = 401, description = "No or wrong maintainer token", body = ErrorBody),
        (status = 404, description = "Not a session ID", body = ErrorBody),
        (status = 503, description = "ClickHouse unreachable or not configured", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _maintainer: Maintainer,
    Path(id): Path<String>,
) -> Result<Json<SessionTimeline>, ApiError> {
    if !is_id(&id, 10) {
        return Err(ApiError::not_found(format!(
            "`{id}` is not a session ID (10 characters a-z, 0-9)"
        )));
    }
    Ok(Json(session_timeline(&state, &id).await?))
}

/// Session `id`'s timeline from ClickHouse and its livelessons from the bucket.
pub async fn session_timeline(state: &AppState, id: &str) -> Result<SessionTimeline, ApiError> {
    let ch = state.clickhouse()?;
    let timeline = timeline::session_timeline(ch, id).await.map_err(|e| {
        ApiError::unavailable(format!("cannot read the session from ClickHouse: {e}"))
    })?;
    let mut livelessons: Vec<LivelessonView> = state
        .livelessons
        .values()
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read livelessons: {e}")))?
        .iter()
        .filter(|ll| ll.session_id == id)
        .map(|ll| LivelessonView::from(&**ll))
        .collect();
    livelessons.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(SessionTimeline {
        timeline,
        livelessons,
    })
}
