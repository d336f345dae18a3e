//! Livelesson routes: create, read, stage change, keepalive, delete, verify.
//!
//! Every route resolves the livelesson through [`AppState::own_livelesson`]: a session sees
//! only its own livelessons, and anyone else's (or a malformed ID) is a plain 404.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::session::Learner;
use super::{AppState, client_error};
use crate::backend::LivelessonSpec;
use crate::livelesson::client::ClientError;
use crate::livelesson::{EndpointStatus, Failure, Livelesson, PresentationView, Status};
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::Severity;

/// `POST /api/v1/livelessons` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLivelesson {
    /// The lesson's slug.
    pub lesson: String,
    /// Stage to start at (counted from 0).
    #[serde(default)]
    pub stage: usize,
}

/// `PUT /api/v1/livelessons/{id}/stage` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageChange {
    pub stage: usize,
}

/// A livelesson as learners see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LivelessonView {
    pub id: String,
    pub session_id: String,
    pub lesson: String,
    pub stage: usize,
    pub status: Status,
    pub error: Option<Failure>,
    pub endpoints: Vec<EndpointView>,
    /// How many endpoints are reachable so far, of `endpoints.len()`.
    pub reachable: usize,
    /// RFC 3339.
    pub created_at: String,
    pub last_active_at: String,
}

/// One endpoint of a livelesson.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    pub name: String,
    pub image: String,
    pub state: EndpointStatus,
    /// The backend's name for it (local: the network namespace).
    pub instance: String,
    pub presentations: Vec<PresentationView>,
    /// The last reachability failure, when there was one.
    pub reachability_error: Option<String>,
    /// Exit code of the last configuration run (null: none, or it did not finish).
    pub configuration_exit_code: Option<i32>,
    /// The end of the last configuration run's output.
    pub configuration_output: Option<String>,
}

/// Accepted: the request is queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    pub status: Status,
}

/// The result of a stage's verify check.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResult {
    pub passed: bool,
    /// The check's output, and the lesson's hint when it failed.
    pub output: String,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
}

pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl From<&Livelesson> for LivelessonView {
    fn from(ll: &Livelesson) -> LivelessonView {
        LivelessonView {
            id: ll.id.clone(),
            session_id: ll.session_id.clone(),
            lesson: ll.lesson.clone(),
            stage: ll.stage,
            status: ll.status,
            error: ll.error.clone(),
            reachable: ll.reachable_count().0,
            endpoints: ll
                .endpoints
                .iter()
                .map(|e| EndpointView {
                    name: e.name.clone(),
                    image: e.image.clone(),
                    state: e.state,
                    instance: e.instance.clone(),
                    presentations: e.presentations.clone(),
                    reachability_error: e.reachability_error.clone(),
                    configuration_exit_code: e
                        .last_configuration
                        .as_ref()
                        .and_then(|c| c.exit_code),
                    configuration_output: e.last_configuration.as_ref().map(|c| c.output.clone()),
                })
                .collect(),
            created_at: rfc3339(ll.created_at),
            last_active_at: rfc3339(ll.last_active_at),
        }
    }
}

impl AppState {
    /// The livelesson `id` if it belongs to `learner`; 404 otherwise (also for bad IDs), or
    /// 401 when the learner's session does not exist. A livelesson that names the session
    /// proves the session exists, so the common case costs one KV read.
    pub async fn own_livelesson(
        &self,
        learner: &Learner,
        id: &str,
    ) -> Result<Livelesson, ApiError> {
        let found = if crate::backend::local::is_id(id, 10) {
            self.livelessons
                .get(id)
                .await
                .map_err(|e| client_error(ClientError::Store(e)))?
        } else {
            None
        };
        match found {
            Some(ll) if ll.session_id == learner.session_id => {
                let span = tracing::Span::current();
                span.record("livelesson.id", ll.id.as_str());
                span.record("lesson", ll.lesson.as_str());
                Ok(Livelesson::clone(&ll))
            }
            _ => {
                self.require_session(learner).await?;
                Err(ApiError::not_found(format!("unknown livelesson `{id}`")))
            }
        }
    }
}

/// Endpoint `name` of `ll`, if its instance can be reached now (the livelesson is READY or
/// CONFIGURING and the endpoint got past creation): 404 for an unknown endpoint, 409 while
/// it is not reachable yet. What terminals and http presentations connect to.
pub fn reachable_endpoint<'a>(
    ll: &'a Livelesson,
    name: &str,
) -> Result<&'a crate::livelesson::EndpointState, ApiError> {
    let ep = ll
        .endpoints
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!("lesson `{}` has no endpoint `{name}`", ll.lesson))
        })?;
    let usable = matches!(ll.status, Status::Ready | Status::Configuring)
        && !matches!(ep.state, EndpointStatus::Pending | EndpointStatus::Failed);
    if !usable {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!(
                "livelesson `{}` is {} and endpoint `{name}` is {:?}; it opens once it is reachable",
                ll.id, ll.status, ep.state
            ),
        ));
    }
    Ok(ep)
}

/// Asks for the session's livelesson of a lesson. A session has one livelesson per lesson:
/// asking again returns the existing one as it is (its stage unchanged — move it with
/// `PUT /api/v1/livelessons/{id}/stage`); a FAILED one is replaced by a fresh one.
#[utoipa::path(
    post,
    path = "/api/v1/livelessons",
    tag = "livelessons",
    request_body = CreateLivelesson,
    responses(
        (status = 202, description = "Queued (or already running)", body = LivelessonView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Unknown lesson", body = ErrorBody),
        (status = 409, description = "The lesson cannot run on this installation", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Stage out of range, unknown fields or wrong types", body = ErrorBody),
        (status = 503, description = "NATS unreachable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    learner: Learner,
    Json(body): Json<CreateLivelesson>,
) -> Result<(StatusCode, Json<LivelessonView>), ApiError> {
    state.require_session(&learner).await?;
    state.lesson(&body.lesson)?;
    if let Some(reason) = state.unavailable_reason(&body.lesson) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson_unavailable",
            format!("lesson `{}` cannot run here: {reason}", body.lesson),
        ));
    }
    let ll = state
        .client
        .request_livelesson(
            &state.curriculum,
            &learner.session_id,
            &body.lesson,
            body.stage,
        )
        .await
        .map_err(client_error)?;
    let span = tracing::Span::current();
    span.record("livelesson.id", ll.id.as_str());
    span.record("lesson", ll.lesson.as_str());
    Ok((StatusCode::ACCEPTED, Json(LivelessonView::from(&ll))))
}

/// The livelesson with the state of each endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/livelessons/{id}",
    tag = "livelessons",
    params(("id" = String, Path, description = "Livelesson ID (10 characters [a-z0-9])")),
    responses(
        (status = 200, description = "The livelesson", body = LivelessonView),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a livelesson of this session", body = ErrorBody),
        (status = 503, description = "NATS unreachable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    learner: Learner,
    Path(id): Path<String>,
) -> Result<Json<LivelessonView>, ApiError> {
    let ll = state.own_livelesson(&learner, &id).await?;
    Ok(Json(LivelessonView::from(&ll)))
}

/// Moves a READY livelesson to another stage (its configuration is applied).
#[utoipa::path(
    put,
    path = "/api/v1/livelessons/{id}/stage",
    tag = "livelessons",
    params(("id" = String, Path, description = "Livelesson ID")),
    request_body = StageChange,
    responses(
        (status = 202, description = "Stage change queued", body = Accepted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a livelesson of this session", body = ErrorBody),
        (status = 409, description = "Not READY", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Stage out of range, unknown fields or wrong types", body = ErrorBody),
        (status = 503, description = "NATS unreachable", body = ErrorBody),
    )
)]
pub async fn change_stage(
    State(state): State<AppState>,
    learner: Learner,
    Path(id): Path<String>,
    Json(body): Json<StageChange>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let ll = state.own_livelesson(&learner, &id).await?;
    state
        .client
        .change_stage(&state.curriculum, &ll.id, body.stage)
        .await
        .map_err(client_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: ll.id,
            status: ll.status,
        }),
    ))
}

/// Keeps the livelesson from being deleted as idle (the UI sends it while the page is open).
#[utoipa::path(
    post,
    path = "/api/v1/livelessons/{id}/keepalive",
    tag = "livelessons",
    params(("id" = String, Path, description = "Livelesson ID")),
    responses(
        (status = 204, description = "Refreshed"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a livelesson of this session", body = ErrorBody),
        (status = 503, description = "NATS unreachable", body = ErrorBody),
    )
)]
pub async fn keepalive(
    State(state): State<AppState>,
    learner: Learner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ll = state.own_livelesson(&learner, &id).await?;
    state.client.keepalive(&ll.id).await.map_err(client_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the livelesson (its endpoints are torn down).
#[utoipa::path(
    delete,
    path = "/api/v1/livelessons/{id}",
    tag = "livelessons",
    params(("id" = String, Path, description = "Livelesson ID")),
    responses(
        (status = 202, description = "Deletion queued", body = Accepted),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a livelesson of this session", body = ErrorBody),
        (status = 503, description = "NATS unreachable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    learner: Learner,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let ll = state.own_livelesson(&learner, &id).await?;
    state
        .client
        .delete(&ll.id, "learner")
        .await
        .map_err(client_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: ll.id,
            status: ll.status,
        }),
    ))
}

/// Runs a stage's verify check on the livelesson.
#[utoipa::path(
    post,
    path = "/api/v1/livelessons/{id}/stages/{stage}/verify",
    tag = "livelessons",
    params(
        ("id" = String, Path, description = "Livelesson ID"),
        ("stage" = usize, Path, description = "Stage (counted from 0)"),
    ),
    responses(
        (status = 200, description = "The check ran", body = VerifyResult),
        (status = 400, description = "Malformed stage", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a livelesson of this session, or the stage has no check", body = ErrorBody),
        (status = 409, description = "Not READY, or at another stage", body = ErrorBody),
        (status = 503, description = "The endpoint could not be reached", body = ErrorBody),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    learner: Learner,
    Path((id, stage)): Path<(String, usize)>,
) -> Result<Json<VerifyResult>, ApiError> {
    let ll = state.own_livelesson(&learner, &id).await?;
    let loaded = state.lesson(&ll.lesson)?;
    let check = loaded
        .lesson
        .stages
        .get(stage)
        .and_then(|s| s.verify.clone())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "lesson `{}` has no verify check for stage {stage}",
                ll.lesson
            ))
        })?;
    if ll.status != Status::Ready {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!(
                "livelesson `{}` is {}; verify needs READY",
                ll.id, ll.status
            ),
        ));
    }
    if ll.stage != stage {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_stage",
            format!(
                "livelesson `{}` is at stage {}; move it to stage {stage} (PUT …/stage) before checking that stage",
                ll.id, ll.stage
            ),
        ));
    }
    let spec = LivelessonSpec::for_lesson(&state.curriculum, &ll.id, &ll.session_id, &ll.lesson)
        .ok_or_else(|| ApiError::not_found(format!("unknown lesson `{}`", ll.lesson)))?;
    let run = state
        .backend
        .exec(
            &spec,
            &check.endpoint,
            &check.command,
            Duration::from_secs(u64::from(check.timeout)),
        )
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot run the check: {e}")))?;
    let passed = run.succeeded();
    // What a maintainer needs when the learner says "Verify says I failed".
    let mut e = Event::new(
        kind::STAGE_VERIFIED,
        "api",
        if passed {
            Severity::Info
        } else {
            Severity::Warn
        },
    )
    .message(if passed {
        format!("stage {stage} verified: passed")
    } else {
        format!("stage {stage} verified: failed")
    })
    .attr("passed", passed)
    .attr("endpoint_checked", &check.endpoint)
    .attr("exit_code", run.exit_code_text())
    .attr("output_tail", run.output_tail(2000));
    e.session_id = ll.session_id.clone();
    e.lesson = ll.lesson.clone();
    e.livelesson_id = ll.id.clone();
    e.stage = i16::try_from(stage).unwrap_or(i16::MAX);
    state.client.event(e).await;
    let mut output = run.output;
    if !passed && let Some(hint) = &check.failure_hint {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(hint);
    }
    Ok(Json(VerifyResult {
        passed,
        output,
        exit_code: run.exit_code,
        duration_ms: run.duration_ms,
    }))
}
