//! `POST /api/v1/feedback`: a learner's report, with the context the page attaches.
//!
//! The report is validated ([`antidote_feedback::Submission`]), published to
//! `antidote.feedback.submitted` and answered 201 only once JetStream has stored it — so it
//! survives a ClickHouse outage; the ingest role writes it to `feedback`. The livelesson,
//! lesson and stage come from our own records when the report names the session's own
//! livelesson; the text is stored as sent (pages escape it).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::session::session_hint;
use crate::backend::local::{is_id, random_id};
use antidote_feedback::{Category, Submission};
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::metrics::{CategoryLabels, metrics};
use antidote_telemetry::rows::{FeedbackRow, Severity};

/// A learner's report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// `lesson_content`, `lab_not_working`, `terminal` or `other`.
    #[schema(value_type = String)]
    pub category: Category,
    /// 1 to 5.
    #[serde(default)]
    pub rating: Option<u8>,
    /// What happened (at most 4000 characters).
    pub message: String,
    /// How to reach the learner (at most 200 characters).
    #[serde(default)]
    pub contact: Option<String>,
    /// The livelesson the page shows (only the session's own is kept).
    #[serde(default)]
    pub livelesson_id: Option<String>,
    /// The lesson and stage the page shows, when there is no livelesson.
    #[serde(default)]
    pub lesson: Option<String>,
    #[serde(default)]
    pub stage: Option<u16>,
    #[serde(default)]
    pub page_url: Option<String>,
    /// What the page attaches without asking: endpoints and instances, last request and
    /// trace IDs, recent client errors.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Option<serde_json::Value>,
    /// The page's key for this report (8–64 characters of letters, digits, `-`, `_`): sent
    /// again with the same key within an hour (after a lost answer), it is stored once and
    /// the first report's ID is returned.
    #[serde(default)]
    pub submission_id: Option<String>,
}

fn valid_submission_id(s: &str) -> bool {
    (8..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The report is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackCreated {
    /// The report's reference, to quote.
    pub feedback_id: String,
}

/// Now, in the whole seconds the `feedback` tables keep, and in nanoseconds.
pub(super) fn now() -> (time::OffsetDateTime, u64) {
    let t = time::OffsetDateTime::now_utc();
    let ns = u64::try_from(t.unix_timestamp_nanos()).unwrap_or(0);
    (
        t.replace_nanosecond(0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        ns,
    )
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Submits a feedback report.
#[utoipa::path(
    post,
    path = "/api/v1/feedback",
    tag = "feedback",
    request_body = FeedbackRequest,
    responses(
        (status = 201, description = "Stored (durable in JetStream)", body = FeedbackCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field out of bounds (named in the message)", body = ErrorBody),
        (status = 503, description = "NATS unreachable: nothing stored, send again", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<FeedbackRequest>,
) -> Result<(StatusCode, Json<FeedbackCreated>), ApiError> {
    let submission = Submission {
        category: body.category,
        rating: body.rating,
        message: body.message,
        contact: body.contact,
    };
    submission.validate().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            e.to_string(),
        )
    })?;
    if let Some(k) = body.submission_id.as_deref()
        && !valid_submission_id(k)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "submission_id must be 8 to 64 characters of letters, digits, `-` and `_`",
        ));
    }
    let session_id = session_hint(&headers);
    // Lesson and stage from our records for the session's own livelesson; otherwise what
    // the page says, if the lesson exists.
    let mut livelesson_id = String::new();
    let mut lesson = String::new();
    let mut stage: i16 = -1;
    let mut failure: Option<String> = None;
    if let Some(id) = body.livelesson_id.as_deref().filter(|id| is_id(id, 10))
        && let Ok(Some(ll)) = state.livelessons.get(id).await
        && !session_id.is_empty()
        && ll.session_id == session_id
    {
        livelesson_id = ll.id.clone();
        lesson = ll.lesson.clone();
        stage = i16::try_from(ll.stage).unwrap_or(i16::MAX);
        failure = ll
            .error
            .as_ref()
            .filter(|_| ll.status == crate::livelesson::Status::Failed)
            // The livelesson's own ID (in instance names) would keep the same failure of
            // two labs apart.
            .map(|f| format!("{}: {}", f.phase, f.message).replace(&ll.id, "…"));
    } else if let Some(l) = body.lesson.as_deref()
        && state.curriculum.lessons.contains_key(l)
    {
        lesson = l.to_owned();
        stage = body.stage.and_then(|s| i16::try_from(s).ok()).unwrap_or(-1);
    }
    let context = body.context.unwrap_or(serde_json::Value::Null);
    // The error signature: why the lab failed, else the first client error the page saw.
    let signature = failure
        .as_deref()
        .or_else(|| {
            context
                .get("errors")
                .and_then(|e| e.get(0))
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(serde_json::Value::as_str)
        })
        .unwrap_or_default()
        .to_owned();
    let (now, _) = now();
    let row = FeedbackRow {
        feedback_id: random_id(10),
        created_at: now,
        updated_at: now,
        revision: 1,
        session_id: session_id.clone(),
        livelesson_id,
        lesson,
        stage,
        category: submission.category.as_str().to_owned(),
        rating: submission.rating.unwrap_or(0),
        message: submission.message,
        contact: submission.contact.unwrap_or_default(),
        page_url: clip(body.page_url.as_deref().unwrap_or_default(), 2000),
        user_agent: clip(
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            500,
        ),
        client_context: clip(&context.to_string(), 32 * 1024),
        status: antidote_feedback::Status::New.as_str().to_owned(),
        assignee: String::new(),
        priority: String::new(),
        group_key: String::new(),
        duplicate_of: String::new(),
    };
    let row = FeedbackRow {
        group_key: antidote_feedback::group_key(
            &row.lesson,
            row.stage,
            submission.category,
            &signature,
            &row.feedback_id,
        ),
        ..row
    };
    if !state.nats_connected() {
        return Err(ApiError::unavailable(
            "the report could not be stored right now (NATS is unreachable); nothing was saved — please send it again",
        ));
    }
    let msg_id = match body.submission_id.as_deref() {
        Some(key) => format!("submission-{}-{key}", row.session_id),
        None => format!("{}-1", row.feedback_id),
    };
    let stored = crate::bus::publish_feedback(&state.client.js, &state.client.layout, &row, &msg_id)
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "the report could not be stored right now ({e}); please send it again (with its submission_id it is stored once)"
            ))
        })?;
    if stored.feedback_id != row.feedback_id {
        // Sent before (its answer was lost): the same report, counted once.
        return Ok((
            StatusCode::CREATED,
            Json(FeedbackCreated {
                feedback_id: stored.feedback_id,
            }),
        ));
    }
    metrics()
        .feedback
        .get_or_create(&CategoryLabels {
            category: row.category.clone(),
        })
        .inc();
    let mut e = Event::new(kind::FEEDBACK_SUBMITTED, "api", Severity::Info)
        .message(clip(&row.message, 200))
        .attr("feedback_id", &row.feedback_id)
        .attr("category", &row.category);
    e.session_id = row.session_id.clone();
    e.livelesson_id = row.livelesson_id.clone();
    e.lesson = row.lesson.clone();
    e.stage = row.stage;
    state.client.event(e).await;
    Ok((
        StatusCode::CREATED,
        Json(FeedbackCreated {
            feedback_id: row.feedback_id,
        }),
    ))
}
