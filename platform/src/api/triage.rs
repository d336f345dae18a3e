//! The maintainers' triage of feedback (DESIGN §8, §9): the queue, one report with its whole
//! session, and changes (status, assignee, priority, note, duplicate_of).
//!
//! Reports are read from ClickHouse (`feedback FINAL`). A change is validated by
//! [`antidote_feedback::Change::apply`] against the report's current state and published on
//! `feedback.updated` as one message carrying the new state (next revision) and its
//! `feedback_activity` row, so both are stored or neither; `feedback.updated` is emitted as
//! an event too. The answer waits (briefly) until ClickHouse shows the new revision, so the
//! pages read their own writes. Two maintainers changing the same revision: JetStream's
//! de-duplication (`Nats-Msg-Id` = ID and revision) keeps the first, the second gets 409.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::maintainer::Maintainer;
use super::timeline::{SessionTimeline, session_timeline};
use crate::backend::local::is_id;
use antidote_feedback::{Category, Change, ChangeError, Status, Triage};
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::{FeedbackActivityRow, FeedbackRow, FeedbackUpdate, Severity};
use antidote_telemetry::triage::{self, Queue, QueueFilter, ReportSummary};

/// The queue's filters.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// A status, `open` (new, triaged, in_progress) or `closed`; several comma-separated.
    /// Empty: every status.
    #[serde(default)]
    pub status: Option<String>,
    /// A lesson slug.
    #[serde(default)]
    pub lesson: Option<String>,
    /// `lesson_content`, `lab_not_working`, `terminal` or `other`.
    #[serde(default)]
    pub category: Option<String>,
    /// Text in the message or contact, or a report or session ID.
    #[serde(default)]
    pub q: Option<String>,
    /// Only reports at most this many hours old (empty: any age).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<u32>)]
    pub max_age_hours: Option<u32>,
}

/// A number that may come as an empty form field (`max_age_hours=`): empty means none.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    let s: Option<String> = Option::deserialize(de)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "max_age_hours must be a whole number of hours, got `{s}`"
            ))
        }),
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl QueueQuery {
    /// The ClickHouse filter, or which parameter is wrong.
    pub fn filter(&self, now: time::OffsetDateTime) -> Result<QueueFilter, ApiError> {
        let unprocessable =
            |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", m);
        let mut statuses = Vec::new();
        for word in non_empty(&self.status)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            let group: Vec<Status> = match word {
                "open" => Status::ALL.into_iter().filter(|s| !s.is_closed()).collect(),
                "closed" => Status::ALL.into_iter().filter(|s| s.is_closed()).collect(),
                w => vec![
                    w.parse::<Status>()
                        .map_err(|e| unprocessable(format!("status: {e}, open or closed")))?,
                ],
            };
            for s in group {
                if !statuses.iter().any(|x| x == s.as_str()) {
                    statuses.push(s.as_str().to_owned());
                }
            }
        }
        let category = non_empty(&self.category)
            .map(|c| {
                c.parse::<Category>()
                    .map(|c| c.as_str().to_owned())
                    .map_err(|e| unprocessable(format!("category: {e}")))
            })
            .transpose()?;
        let text = non_empty(&self.q);
        if let Some(t) = &text
            && t.chars().count() > 200
        {
            return Err(unprocessable(
                "q: the search text is limited to 200 characters".to_owned(),
            ));
        }
        Ok(QueueFilter {
            statuses,
            lesson: non_empty(&self.lesson),
            category,
            created_since: self
                .max_age_hours
                .map(|h| now - time::Duration::hours(i64::from(h))),
            text,
        })
    }
}

fn unavailable(e: clickhouse::error::Error) -> ApiError {
    ApiError::unavailable(format!("cannot read feedback from ClickHouse: {e}"))
}

/// The queue for `query` (also what the queue page shows).
pub async fn read_queue(state: &AppState, query: &QueueQuery) -> Result<Queue, ApiError> {
    let filter = query.filter(time::OffsetDateTime::now_utc())?;
    triage::queue(state.clickhouse()?, &filter)
        .await
        .map_err(unavailable)
}

/// The triage queue.
#[utoipa::path(
    get,
    path = "/api/v1/triage/feedback",
    tag = "maintainers",
    params(QueueQuery),
    security(("maintainer" = [])),
    responses(
        (status = 200, description = "Groups of likely duplicates, newest first: each the newest report's fields plus count, feedback_ids, first_created_at", body = Object),
        (status = 401, description = "No or wrong maintainer token", body = ErrorBody),
        (status = 422, description = "A filter out of its values (named in the message)", body = ErrorBody),
        (status = 503, description = "ClickHouse unreachable or not configured", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _maintainer: Maintainer,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Queue>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            format!(
                "bad filter: {}",
                e.body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
            ),
        )
    })?;
    Ok(Json(read_queue(&state, &query).await?))
}

/// One report and everything about its session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    /// The report as stored (latest revision).
    #[schema(value_type = Object)]
    pub feedback: FeedbackRow,
    /// What the page attached (endpoints, request and trace IDs, client errors).
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// Every triage action, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub activity: Vec<FeedbackActivityRow>,
    /// Reports of the same group (likely duplicates), newest first, this one included.
    #[schema(value_type = Vec<Object>)]
    pub group: Vec<ReportSummary>,
    /// Reports a maintainer marked as duplicates of this one.
    pub duplicates: Vec<String>,
    /// The session's events, spans, endpoint instances and livelessons (absent without a
    /// session).
    pub session: Option<SessionTimeline>,
    /// A Markdown summary with every ID, for a bug tracker.
    pub issue_markdown: String,
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_id(id, 10) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "`{id}` is not a report ID (10 characters a-z, 0-9)"
        )))
    }
}

fn no_report(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no report `{id}` (one sent in the last seconds may not be stored yet)"
    ))
}

/// Report `id` with its session (also what the report page shows).
pub async fn read_report(state: &AppState, id: &str) -> Result<Report, ApiError> {
    check_id(id)?;
    let ch = state.clickhouse()?;
    let feedback = triage::report(ch, id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| no_report(id))?;
    let (activity, group, duplicates) = tokio::try_join!(
        triage::activity(ch, id),
        triage::group_members(ch, &feedback.group_key),
        triage::duplicates_of(ch, id)
    )
    .map_err(unavailable)?;
    let session = if is_id(&feedback.session_id, 10) {
        Some(session_timeline(state, &feedback.session_id).await?)
    } else {
        None
    };
    let context = serde_json::from_str(&feedback.client_context).unwrap_or_else(|_| {
        // Clipped at the size limit: keep what there is, as text.
        serde_json::Value::String(feedback.client_context.clone())
    });
    let issue_markdown = issue_markdown(&feedback, &context, session.as_ref());
    Ok(Report {
        feedback,
        context,
        activity,
        group,
        duplicates,
        session,
        issue_markdown,
    })
}

/// One report with its session context.
#[utoipa::path(
    get,
    path = "/api/v1/triage/feedback/{id}",
    tag = "maintainers",
    params(("id" = String, Path, description = "Report ID (10 characters [a-z0-9])")),
    security(("maintainer" = [])),
    responses(
        (status = 200, description = "The report, its activity, its group, its session's timeline and a Markdown summary", body = Report),
        (status = 401, description = "No or wrong maintainer token", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 503, description = "ClickHouse unreachable or not configured", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _maintainer: Maintainer,
    Path(id): Path<String>,
) -> Result<Json<Report>, ApiError> {
    Ok(Json(read_report(&state, &id).await?))
}

/// A triage change (every field optional; `note` is added to the activity).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// `new`, `triaged`, `in_progress`, `resolved`, `wont_fix` or `duplicate`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<Status>,
    /// Who works on it (empty: nobody).
    #[serde(default)]
    pub assignee: Option<String>,
    /// `low`, `normal`, `high`, `urgent` (empty: none).
    #[serde(default)]
    pub priority: Option<String>,
    /// A note for the activity log.
    #[serde(default)]
    pub note: Option<String>,
    /// The report this one repeats (moves it to `duplicate`).
    #[serde(default)]
    pub duplicate_of: Option<String>,
    /// The revision the change was made on (as read, e.g. by the report page): if the report
    /// has moved on since, the change is refused with 409 instead of overwriting.
    #[serde(default)]
    pub revision: Option<u64>,
}

impl ChangeRequest {
    /// The change, and the revision it was made on.
    fn split(self) -> (Change, Option<u64>) {
        (
            Change {
                status: self.status,
                assignee: self.assignee,
                priority: self.priority,
                note: self.note,
                duplicate_of: self.duplicate_of,
            },
            self.revision,
        )
    }
}

/// A change, stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    /// The report's new state.
    #[schema(value_type = Object)]
    pub feedback: FeedbackRow,
    /// The `feedback_activity` row written.
    #[schema(value_type = Object)]
    pub activity: FeedbackActivityRow,
    /// Whether the queue already shows it (false: JetStream has it, ingest is behind).
    pub visible: bool,
}

/// Applies `change` to report `id` on behalf of `who` (the API's PATCH and the report page's
/// form), if the report is still at `made_on` (when given).
pub async fn change(
    state: &AppState,
    who: &Maintainer,
    id: &str,
    change: Change,
    made_on: Option<u64>,
) -> Result<Changed, ApiError> {
    check_id(id)?;
    let ch = state.clickhouse()?;
    if !state.nats_connected() {
        return Err(ApiError::unavailable(
            "the change could not be stored right now (NATS is unreachable); nothing changed — try again",
        ));
    }
    // One change at a time per process: the next one reads this one's revision.
    let _turn = state.triage_turn.lock().await;
    let current = triage::report(ch, id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| no_report(id))?;
    if let Some(seen) = made_on
        && seen != current.revision
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale",
            format!(
                "report `{id}` changed since you loaded it (revision {seen}, now {}, updated {}); reload it and apply your change again",
                current.revision,
                current
                    .updated_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        ));
    }
    // A later revision on its way to ClickHouse (ingest is behind): building on the one shown
    // would store a second revision of the same number.
    let published = crate::bus::published_revision(&state.client.js, &state.client.layout, id)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the report's revision: {e}")))?;
    if let Some(p) = published
        && p > current.revision
    {
        return Err(ApiError::conflict(format!(
            "report `{id}` has a change (revision {p}) that ClickHouse does not show yet (ingest is behind); reload once the queue shows it and try again"
        )));
    }
    if let Some(target) = change.duplicate_of.as_deref().map(str::trim)
        && is_id(target, 10)
        && target != id
        && target != current.duplicate_of
    {
        let refuse =
            |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", m);
        match triage::report(ch, target).await.map_err(unavailable)? {
            None => {
                return Err(refuse(format!(
                    "duplicate_of: there is no report `{target}`"
                )));
            }
            // Duplicates point at an original, never along a chain or in a circle.
            Some(t) if !t.duplicate_of.is_empty() => {
                return Err(refuse(format!(
                    "duplicate_of: `{target}` is itself a duplicate of `{}`; name that one",
                    t.duplicate_of
                )));
            }
            Some(_) => {}
        }
    }
    let status = current.status.parse::<Status>().map_err(|e| {
        ApiError::internal(format!(
            "report `{id}` has a stored status the flow does not know: {e}"
        ))
    })?;
    let triage_now = Triage {
        status,
        assignee: current.assignee.clone(),
        priority: current.priority.clone(),
        duplicate_of: current.duplicate_of.clone(),
    };
    let applied = change.apply(id, &triage_now).map_err(|e| match e {
        ChangeError::Transition { .. } => {
            ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
        }
        e => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            e.to_string(),
        ),
    })?;
    if applied.triage.status == Status::Duplicate && status != Status::Duplicate {
        let originals = triage::duplicates_of(ch, id)
            .await
            .map_err(unavailable)?
            .len();
        if originals > 0 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                format!(
                    "duplicate_of: `{id}` is the original of {originals} other report(s); point them at the new original first"
                ),
            ));
        }
    }
    let (ts, ts_ns) = super::feedback::now();
    let row = FeedbackRow {
        revision: current.revision + 1,
        updated_at: ts,
        status: applied.triage.status.as_str().to_owned(),
        assignee: applied.triage.assignee.clone(),
        priority: applied.triage.priority.clone(),
        duplicate_of: applied.triage.duplicate_of.clone(),
        ..current
    };
    let activity = FeedbackActivityRow {
        activity_id: uuid::Uuid::new_v4(),
        feedback_id: id.to_owned(),
        ts,
        ts_ns,
        actor: who.name.clone(),
        action: applied.action().to_owned(),
        changed_keys: applied.changed.iter().map(|c| c.0.to_owned()).collect(),
        old_values: applied.changed.iter().map(|c| c.1.clone()).collect(),
        new_values: applied.changed.iter().map(|c| c.2.clone()).collect(),
        note: applied.note.clone(),
    };
    let update = FeedbackUpdate { row, activity };
    let stored = crate::bus::publish_feedback_update(
        &state.client.js,
        &state.client.layout,
        &update,
    )
    .await
    .map_err(|e| {
        ApiError::unavailable(format!(
            "the change may not have been stored ({e}); reload the report to see whether it was"
        ))
    })?;
    if !stored {
        return Err(ApiError::conflict(format!(
            "report `{id}` changed meanwhile (another maintainer, or an earlier change ingest has not stored yet); reload it and try again"
        )));
    }
    let FeedbackUpdate { row, activity } = update;
    if let Err(e) = crate::bus::record_published_revision(
        &state.client.js,
        &state.client.layout,
        id,
        row.revision,
    )
    .await
    {
        // The change is stored; only the guard against building on it before ingest
        // catches up is weaker (JetStream's de-duplication still holds for an hour).
        tracing::warn!(error = %e, feedback_id = id, "cannot record the published revision");
    }
    let mut e = Event::new(kind::FEEDBACK_UPDATED, "api", Severity::Info)
        .message(format!(
            "report {id}: {} by {}: {}",
            activity.action,
            activity.actor,
            applied
                .changed
                .iter()
                .map(|(k, old, new)| format!("{k} {old:?} -> {new:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .attr("feedback_id", id)
        .attr("status", &row.status)
        .attr("actor", &activity.actor)
        .attr("revision", row.revision);
    e.session_id = row.session_id.clone();
    e.livelesson_id = row.livelesson_id.clone();
    e.lesson = row.lesson.clone();
    e.stage = row.stage;
    state.client.event(e).await;
    let visible = wait_visible(ch, id, row.revision, activity.activity_id).await;
    Ok(Changed {
        feedback: row,
        activity,
        visible,
    })
}

/// Waits up to 3 s until ClickHouse shows `revision` of report `id` and its activity row
/// (two feeds store them, each on its own flush).
async fn wait_visible(
    ch: &clickhouse::Client,
    id: &str,
    revision: u64,
    activity: uuid::Uuid,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut state_visible = false;
    loop {
        if !state_visible {
            state_visible =
                matches!(triage::report(ch, id).await, Ok(Some(r)) if r.revision >= revision);
        }
        if state_visible
            && let Ok(rows) = triage::activity(ch, id).await
            && rows.iter().any(|a| a.activity_id == activity)
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Changes a report's triage fields.
#[utoipa::path(
    patch,
    path = "/api/v1/triage/feedback/{id}",
    tag = "maintainers",
    params(("id" = String, Path, description = "Report ID (10 characters [a-z0-9])")),
    request_body = ChangeRequest,
    security(("maintainer" = [])),
    responses(
        (status = 200, description = "Stored and visible in the queue", body = Changed),
        (status = 202, description = "Stored (durable in JetStream); the queue shows it once ingest catches up", body = Changed),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or wrong maintainer token", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 409, description = "Not a move of the status flow (`invalid_transition`), or the report moved on since `revision` or meanwhile (`stale`, `conflict`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field out of bounds (named in the message)", body = ErrorBody),
        (status = 503, description = "NATS or ClickHouse unreachable: nothing changed", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    who: Maintainer,
    Path(id): Path<String>,
    Json(body): Json<ChangeRequest>,
) -> Result<(StatusCode, Json<Changed>), ApiError> {
    let (body, made_on) = body.split();
    let changed = change(&state, &who, &id, body, made_on).await?;
    let status = if changed.visible {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(changed)))
}

fn string_list(v: &serde_json::Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    serde_json::Value::String(s) => s.clone(),
                    other => other
                        .get("message")
                        .and_then(serde_json::Value::as_str)
                        .map_or_else(|| other.to_string(), str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The longest run of backticks in `s`.
fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// One line of Markdown inline code: no backtick run in the text can end it early, and
/// nothing in it renders (links, images, mentions).
fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let fence = "`".repeat(longest_backtick_run(&s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A fenced block of `text` that no fence inside it can close.
fn block(text: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
    format!("{fence}text\n{text}\n{fence}")
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The "Copy as issue" text: the learner's words quoted, every ID, each endpoint instance
/// and what failed, for a bug tracker.
pub fn issue_markdown(
    report: &FeedbackRow,
    context: &serde_json::Value,
    session: Option<&SessionTimeline>,
) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let stage = if report.stage >= 0 {
        format!(
            " stage {} (index {})",
            i32::from(report.stage) + 1,
            report.stage
        )
    } else {
        String::new()
    };
    let lesson = if report.lesson.is_empty() {
        "no lesson".to_owned()
    } else {
        report.lesson.clone()
    };
    let _ = writeln!(
        md,
        "## Feedback {}: {} — {lesson}{stage}\n",
        report.feedback_id, report.category
    );
    // The learner's words verbatim, where nothing renders.
    let _ = writeln!(md, "{}\n", block(&report.message));
    let rating = if report.rating > 0 {
        format!("{}/5", report.rating)
    } else {
        "none".to_owned()
    };
    let created = report
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // Fields the report does not have are left out rather than shown empty.
    for (k, raw, shown) in [
        (
            "Report",
            report.feedback_id.as_str(),
            code(&report.feedback_id),
        ),
        ("Status", report.status.as_str(), code(&report.status)),
        ("Submitted", created.as_str(), created.clone()),
        ("Rating", rating.as_str(), rating.clone()),
        (
            "Session",
            report.session_id.as_str(),
            code(&report.session_id),
        ),
        (
            "Livelesson",
            report.livelesson_id.as_str(),
            code(&report.livelesson_id),
        ),
        (
            "Lesson",
            report.lesson.as_str(),
            format!("{}{stage}", code(&report.lesson)),
        ),
        ("Page", report.page_url.as_str(), code(&report.page_url)),
        (
            "User agent",
            report.user_agent.as_str(),
            code(&report.user_agent),
        ),
    ] {
        if !raw.is_empty() {
            let _ = writeln!(md, "- **{k}:** {shown}");
        }
    }
    for (label, key) in [("Trace IDs", "traceIds"), ("Request IDs", "requestIds")] {
        let ids = string_list(context, key);
        if !ids.is_empty() {
            let ids: Vec<String> = ids.iter().map(|i| code(i)).collect();
            let _ = writeln!(md, "- **{label}:** {}", ids.join(", "));
        }
    }
    let errors = string_list(context, "errors");
    if !errors.is_empty() {
        let _ = writeln!(md, "\n### Client errors\n");
        for e in &errors {
            let _ = writeln!(md, "- {}", code(e));
        }
    }
    if let Some(session) = session {
        for ll in session
            .livelessons
            .iter()
            .filter(|ll| ll.id == report.livelesson_id)
        {
            let _ = writeln!(md, "\n### Livelesson now: {}", ll.status.as_str());
            if let Some(f) = &ll.error {
                let _ = writeln!(md, "\nFailed in {}: {}", code(&f.phase), code(&f.message));
            }
        }
        let endpoints: Vec<_> = session
            .timeline
            .endpoints
            .iter()
            .filter(|e| report.livelesson_id.is_empty() || e.livelesson_id == report.livelesson_id)
            .collect();
        if !endpoints.is_empty() {
            let _ = writeln!(md, "\n### Endpoint instances\n");
            for e in endpoints {
                let _ = writeln!(
                    md,
                    "- **{}** {} on {} ({}): last {}{}",
                    e.endpoint,
                    code(&e.instance),
                    if e.node.is_empty() { "?" } else { &e.node },
                    if e.backend.is_empty() {
                        "?"
                    } else {
                        &e.backend
                    },
                    e.last_event,
                    if e.failed { " — FAILED" } else { "" }
                );
                for c in e.reachability.iter().filter(|c| !c.reachable) {
                    let _ = writeln!(md, "  - unreachable: {}", code(&c.message));
                }
                for run in e.configurations.iter().filter(|r| !r.ok) {
                    let _ = writeln!(
                        md,
                        "  - configuration of stage {} failed (exit {}):\n\n{}",
                        run.stage,
                        code(&run.exit_code),
                        block(&tail(&run.output_tail, 20))
                    );
                }
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_filters_are_checked_and_named() {
        let now = time::OffsetDateTime::from_unix_timestamp(10 * 3600).unwrap();
        let q = QueueQuery {
            status: Some("open,duplicate".into()),
            category: Some("terminal".into()),
            lesson: Some(" ".into()),
            q: Some(" froze ".into()),
            max_age_hours: Some(2),
        };
        let f = q.filter(now).unwrap();
        assert_eq!(f.statuses, ["new", "triaged", "in_progress", "duplicate"]);
        assert_eq!(f.category.as_deref(), Some("terminal"));
        assert_eq!(f.lesson, None);
        assert_eq!(f.text.as_deref(), Some("froze"));
        assert_eq!(f.created_since.unwrap().unix_timestamp(), 8 * 3600);
        let bad = QueueQuery {
            status: Some("done".into()),
            ..QueueQuery::default()
        };
        let e = bad.filter(now).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.message.contains("status") && e.message.contains("`done`"),
            "{}",
            e.message
        );
        let bad = QueueQuery {
            category: Some("weather".into()),
            ..QueueQuery::default()
        };
        assert!(bad.filter(now).unwrap_err().message.contains("category"));
    }

    #[test]
    fn inline_code_survives_backticks() {
        assert_eq!(code("abc"), "`abc`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("a``b"), "```a``b```");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("two\nlines"), "`two lines`");
        assert_eq!(block("x ``` y"), "````text\nx ``` y\n````");
        assert_eq!(block("plain"), "```text\nplain\n```");
    }
}
