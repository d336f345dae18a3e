//! The maintainers' pages: the triage queue (`/triage`) and a report's page
//! (`/triage/feedback/{id}`) with the learner's words, the session's events, trace tree and
//! endpoint instances, the activity, and the triage form. Server-rendered from the same
//! functions as the triage API ([`crate::api::triage`]); every stored string is escaped.
//!
//! The maintainer token is kept in an HttpOnly, SameSite=Strict cookie set by the login form;
//! forms are also refused when a browser says they come from another origin.

use axum::Form;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{escape, shell};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::maintainer::{self, COOKIE};
use crate::api::triage::{self, QueueQuery, Report};
use antidote_feedback::{Category, Change, PRIORITIES, Status};
use antidote_telemetry::timeline::span_trees;
use antidote_telemetry::triage::Queue;

fn maintainer_page(title: &str, body: &str) -> String {
    shell(
        title,
        r#"<header class="top"><a class="brand" href="/triage">Antidote triage</a><span class="tagline">feedback from learners</span>
<form method="post" action="/triage/logout" class="logout"><button type="submit" class="secondary">Sign out</button></form></header>"#,
        body,
        r#"<script src="/assets/triage.js"></script>"#,
    )
}

/// Maintainer pages are never cached nor framed by another site.
fn html(status: StatusCode, page: String) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            ),
        ],
        axum::response::Html(page),
    )
        .into_response()
}

/// The sign-in page; `next` is the maintainer page to go on to.
fn login_page(status: StatusCode, message: Option<&str>, next: &str) -> Response {
    login_page_with(status, message.map(|m| (m, true)), next)
}

/// The sign-in page with a message (`true`: an error) above the form.
fn login_page_with(status: StatusCode, message: Option<(&str, bool)>, next: &str) -> Response {
    let message = message
        .map(|(m, error)| {
            if error {
                format!(
                    r#"<p class="error" id="login-error" role="alert">{}</p>"#,
                    escape(m)
                )
            } else {
                format!(
                    r#"<p class="saved" id="login-notice" role="status">{}</p>"#,
                    escape(m)
                )
            }
        })
        .unwrap_or_default();
    let body = format!(
        r#"<main class="catalog triage"><h1>Maintainers</h1>
<p>The triage queue needs a maintainer token (<code>ANTIDOTE_MAINTAINER_TOKENS</code>).</p>{message}
<form method="post" action="/triage/login" id="login"><label>Token <input type="password" name="token" id="token" autocomplete="current-password" required autofocus></label>
<input type="hidden" name="next" value="{next}">
<button type="submit" id="login-send">Sign in</button></form></main>"#,
        next = escape(next),
    );
    html(
        status,
        shell(
            "Maintainers",
            r#"<header class="top"><a class="brand" href="/">Antidote</a><span class="tagline">maintainers</span></header>"#,
            &body,
            "",
        ),
    )
}

/// Where to go after signing in: a maintainer page of this site, nothing else.
fn next_page(next: &str) -> &str {
    let ok = next.starts_with("/triage")
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok { next } else { "/triage" }
}

fn error_html(e: &ApiError) -> String {
    format!(
        r#"<p class="error" id="page-error">{}</p>"#,
        escape(&e.message)
    )
}

/// The maintainer behind the request, or the login page (going on to `here`) to answer with.
fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<maintainer::Maintainer, Box<Response>> {
    maintainer::check(state, headers).map_err(|e| {
        let had_cookie =
            crate::api::session::cookie(headers, COOKIE).is_some_and(|c| !c.is_empty());
        Box::new(login_page(
            StatusCode::UNAUTHORIZED,
            had_cookie.then_some(e.message.as_str()),
            next_page(here),
        ))
    })
}

/// The sign-in form (no `Debug`: it holds the token).
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !crate::api::terminal::same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("Sign in from this site's own page."),
            "/triage",
        );
    }
    let token = form.token.trim();
    let who = match maintainer::check_token(&state.maintainer_tokens, token) {
        Ok(who) => who,
        Err(e) => {
            return login_page(
                StatusCode::UNAUTHORIZED,
                Some(&e.message),
                next_page(&form.next),
            );
        }
    };
    // The cookie carries a signed, expiring sign-in, never the token itself.
    let Some(value) =
        maintainer::sign_in_cookie(&state.maintainer_tokens, &who, maintainer::now_unix())
    else {
        return login_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("Cannot sign in right now."),
            next_page(&form.next),
        );
    };
    let mut response = Redirect::to(next_page(&form.next)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/triage; HttpOnly; SameSite=Strict; Max-Age={}",
        maintainer::SIGN_IN_SECONDS
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

pub async fn logout(headers: HeaderMap) -> Response {
    if !crate::api::terminal::same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("Sign out from this site's own page."),
            "/triage",
        );
    }
    let mut response = Redirect::to("/triage?signed_out=1").into_response();
    // Also the site-wide cookie of earlier versions, which /triage would still receive.
    for path in ["/triage", "/"] {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0"
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

fn options(values: &[(&str, &str)], selected: &str) -> String {
    values
        .iter()
        .map(|(v, label)| {
            format!(
                r#"<option value="{v}"{sel}>{label}</option>"#,
                v = escape(v),
                label = escape(label),
                sel = if *v == selected { " selected" } else { "" }
            )
        })
        .collect()
}

/// A stage as the learner saw it ("Stage 1 of 2" is index 0), the index in a tooltip.
fn stage_text(stage: i16) -> String {
    if stage >= 0 {
        format!(
            r#"<span title="stage index {stage} (?stage={stage} in the API)" data-stage="{stage}">{}</span>"#,
            i32::from(stage) + 1
        )
    } else {
        "—".to_owned()
    }
}

fn age(created: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let s = (now - created).whole_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `ts_ns` as `HH:MM:SS.mmm` UTC (the date is on the page once).
fn clock(ts_ns: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn queue_html(state: &AppState, query: &QueueQuery, queue: Result<Queue, ApiError>) -> String {
    let now = time::OffsetDateTime::now_utc();
    let status_values: Vec<(&str, &str)> =
        [("", "any status"), ("open", "open"), ("closed", "closed")]
            .into_iter()
            .chain(Status::ALL.iter().map(|s| (s.as_str(), s.as_str())))
            .collect();
    let category_values: Vec<(&str, &str)> = std::iter::once(("", "any category"))
        .chain(Category::ALL.iter().map(|c| (c.as_str(), c.as_str())))
        .collect();
    let lesson_values: Vec<(&str, &str)> = std::iter::once(("", "any lesson"))
        .chain(
            state
                .curriculum
                .lessons
                .keys()
                .map(|k| (k.as_str(), k.as_str())),
        )
        .collect();
    let max_age = query
        .max_age_hours
        .map(|h| h.to_string())
        .unwrap_or_default();
    let age_values = [
        ("", "any age"),
        ("1", "last hour"),
        ("24", "last day"),
        ("168", "last week"),
        ("720", "last 30 days"),
    ];
    let mut body = format!(
        r#"<main class="catalog triage"><h1>Feedback queue</h1>
<form method="get" action="/triage" class="filters" id="filters">
<select name="status" id="filter-status" aria-label="Status">{status}</select>
<select name="lesson" id="filter-lesson" aria-label="Lesson">{lesson}</select>
<select name="category" id="filter-category" aria-label="Category">{category}</select>
<select name="max_age_hours" id="filter-age" aria-label="Age">{age}</select>
<input name="q" id="filter-q" type="search" aria-label="Search" placeholder="text, report or session ID" value="{q}">
<button type="submit" id="filter-apply">Show</button></form>"#,
        status = options(&status_values, query.status.as_deref().unwrap_or_default()),
        lesson = options(&lesson_values, query.lesson.as_deref().unwrap_or_default()),
        category = options(
            &category_values,
            query.category.as_deref().unwrap_or_default()
        ),
        age = options(&age_values, &max_age),
        q = escape(query.q.as_deref().unwrap_or_default()),
    );
    match queue {
        Err(e) => body.push_str(&error_html(&e)),
        Ok(q) if q.items.is_empty() => {
            body.push_str(r#"<p id="queue-empty">No reports match.</p>"#)
        }
        Ok(q) => {
            body.push_str(&format!(
                r#"<p class="meta">{} report(s) in {} group(s){}.</p>
<div class="scroll"><table class="queue" id="queue"><thead><tr><th>Received</th><th>Lesson</th><th>Stage</th><th>Category</th><th>Status</th><th>Reports</th><th>Message</th><th>Assignee</th><th>Priority</th></tr></thead><tbody>"#,
                q.reports,
                q.items.len(),
                if q.truncated {
                    " — only the newest were read: narrow the filter"
                } else {
                    ""
                }
            ));
            for item in &q.items {
                let r = &item.latest;
                body.push_str(&format!(
                    r#"<tr class="report" data-feedback-id="{id}" data-status="{status}" data-count="{count}">
<td title="{created}">{age} ago</td><td class="lesson-slug">{lesson}</td><td class="stage">{stage}</td><td>{category}</td><td class="status-cell"><span class="badge {status}">{status}</span>{dup}</td>
<td class="count">{count_text}</td><td class="message"><a href="/triage/feedback/{id}">{message}</a></td><td>{assignee}</td><td>{priority}</td></tr>"#,
                    id = escape(&r.feedback_id),
                    status = escape(&r.status),
                    count = item.count,
                    count_text = if item.count > 1 {
                        format!("×{}", item.count)
                    } else {
                        "1".to_owned()
                    },
                    created = rfc3339(r.created_at),
                    age = age(r.created_at, now),
                    lesson = escape(or_dash(&r.lesson)),
                    stage = stage_text(r.stage),
                    dup = if r.duplicate_of.is_empty() {
                        String::new()
                    } else {
                        format!(
                            r#" of <a href="/triage/feedback/{d}">{d}</a>"#,
                            d = escape(&r.duplicate_of)
                        )
                    },
                    category = escape(&r.category),
                    message = escape(&r.message),
                    assignee = escape(&r.assignee),
                    priority = escape(&r.priority),
                ));
            }
            body.push_str("</tbody></table></div>");
        }
    }
    body.push_str("</main>");
    maintainer_page("Feedback queue", &body)
}

pub async fn queue_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if uri.query() == Some("signed_out=1") {
        return login_page_with(StatusCode::OK, Some(("Signed out.", false)), "/triage");
    }
    if let Err(login) = signed_in(&state, &headers, "/triage") {
        return *login;
    }
    let mut query = match query {
        Ok(Query(q)) => q,
        Err(rejection) => {
            let e = ApiError::bad_request(format!(
                "The address is malformed: {}",
                rejection
                    .body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
            ));
            let open = QueueQuery {
                status: Some("open".to_owned()),
                ..QueueQuery::default()
            };
            return html(e.status, queue_html(&state, &open, Err(e)));
        }
    };
    // The queue opens on what needs attention.
    if query.status.is_none() {
        query.status = Some("open".to_owned());
    }
    let queue = triage::read_queue(&state, &query).await;
    let status = match &queue {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    };
    html(status, queue_html(&state, &query, queue))
}

/// Everything that happened to the report in triage, oldest first.
fn activity_html(r: &Report) -> String {
    let f = &r.feedback;
    let mut b = String::new();
    b.push_str(r#"<section><h2>Activity</h2><ul id="activity">"#);
    b.push_str(&format!(
        "<li>{} submitted by the learner</li>",
        rfc3339(f.created_at)
    ));
    for a in &r.activity {
        let changes: Vec<String> = a
            .changed_keys
            .iter()
            .zip(a.old_values.iter().zip(&a.new_values))
            .map(|(k, (old, new))| {
                format!(
                    "{}: {} → {}",
                    escape(k),
                    escape(if old.is_empty() { "—" } else { old }),
                    escape(if new.is_empty() { "—" } else { new })
                )
            })
            .collect();
        b.push_str(&format!(
            r#"<li class="activity" data-action="{action}">{at} <b>{actor}</b> {changes}{note}</li>"#,
            action = escape(&a.action),
            at = rfc3339(a.ts),
            actor = escape(&a.actor),
            changes = changes.join(", "),
            note = if a.note.is_empty() {
                String::new()
            } else {
                format!(r#" <q class="note">{}</q>"#, escape(&a.note))
            },
        ));
    }
    b.push_str("</ul></section>");
    b
}

/// What the triage form shows: the report's fields, or what the maintainer typed when a save
/// was refused (nothing typed is lost).
#[derive(Debug, Clone, Default)]
pub struct FormValues {
    status: String,
    assignee: String,
    priority: String,
    duplicate_of: String,
    note: String,
}

impl FormValues {
    fn of(f: &antidote_telemetry::rows::FeedbackRow) -> FormValues {
        FormValues {
            status: f.status.clone(),
            assignee: f.assignee.clone(),
            priority: f.priority.clone(),
            duplicate_of: f.duplicate_of.clone(),
            note: String::new(),
        }
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "—" } else { s }
}

fn report_html(r: &Report, notice: Option<Result<&str, &ApiError>>, form: &FormValues) -> String {
    let f = &r.feedback;
    let mut b = String::new();
    b.push_str(&format!(
        r#"<main class="catalog triage report" data-feedback-id="{id}"><p><a href="/triage">← queue</a></p>
<h1>Report {id} <span class="badge {status}" id="report-status">{status}</span></h1>
<p class="meta">{category} · lesson <b id="report-lesson">{lesson}</b> · stage <b id="report-stage">{stage}</b> · rating {rating} · received {created}</p>
<blockquote class="message" id="report-message">{message}</blockquote>
<dl class="facts"><dt>Session</dt><dd id="report-session">{session}</dd><dt>Livelesson</dt><dd>{ll}</dd><dt>Contact</dt><dd>{contact}</dd><dt>Page</dt><dd>{url}</dd><dt>Browser</dt><dd>{ua}</dd><dt>Assignee</dt><dd>{assignee}</dd><dt>Priority</dt><dd>{priority}</dd>{dup}{dups}</dl>"#,
        id = escape(&f.feedback_id),
        status = escape(&f.status),
        category = escape(&f.category),
        lesson = escape(if f.lesson.is_empty() { "—" } else { &f.lesson }),
        stage = stage_text(f.stage),
        rating = if f.rating > 0 {
            format!("{}/5", f.rating)
        } else {
            "—".to_owned()
        },
        created = rfc3339(f.created_at),
        message = escape(&f.message),
        session = if f.session_id.is_empty() {
            "— (sent without a session)".to_owned()
        } else {
            format!(
                r#"{s} · <a href="/triage?status=&amp;q={s}">its reports</a>"#,
                s = escape(&f.session_id)
            )
        },
        ll = escape(or_dash(&f.livelesson_id)),
        contact = escape(or_dash(&f.contact)),
        url = escape(or_dash(&f.page_url)),
        ua = escape(or_dash(&f.user_agent)),
        assignee = escape(or_dash(&f.assignee)),
        priority = escape(or_dash(&f.priority)),
        dups = if r.duplicates.is_empty() {
            String::new()
        } else {
            format!(
                r#"<dt>Its duplicates</dt><dd id="report-duplicates">{}</dd>"#,
                r.duplicates
                    .iter()
                    .map(|d| format!(r#"<a href="/triage/feedback/{d}">{d}</a>"#, d = escape(d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        dup = if f.duplicate_of.is_empty() {
            String::new()
        } else {
            format!(
                r#"<dt>Duplicate of</dt><dd><a href="/triage/feedback/{d}">{d}</a></dd>"#,
                d = escape(&f.duplicate_of)
            )
        },
    ));

    // The triage form: the moves the flow allows from here.
    let current: Status = f.status.parse().unwrap_or(Status::New);
    let moves: Vec<(&str, &str)> = std::iter::once((current.as_str(), current.as_str()))
        .chain(
            Status::ALL
                .iter()
                .filter(|s| current.can_move_to(**s))
                .map(|s| (s.as_str(), s.as_str())),
        )
        .collect();
    let priorities: Vec<(&str, &str)> = std::iter::once(("", "—"))
        .chain(PRIORITIES.iter().map(|p| (*p, *p)))
        .collect();
    let notice = match notice {
        Some(Ok(m)) => format!(
            r#"<p class="saved" id="triage-notice" role="status">{}</p>"#,
            escape(m)
        ),
        Some(Err(e)) => format!(
            r#"<p class="error" id="triage-error" role="alert">{}</p>"#,
            escape(&e.message)
        ),
        None => String::new(),
    };
    b.push_str(&format!(
        r#"<section class="triage-form"><h2>Triage</h2>{notice}
<form method="post" action="/triage/feedback/{id}" id="triage" aria-describedby="triage-error">
<label>Status <select name="status" id="triage-status">{moves}</select></label>
<label>Assignee <input name="assignee" id="triage-assignee" maxlength="100" value="{assignee}"></label>
<label>Priority <select name="priority" id="triage-priority">{priorities}</select></label>
<label>Duplicate of <input name="duplicate_of" id="triage-duplicate" maxlength="10" placeholder="report ID" value="{dup}"></label>
<label class="wide">Note <textarea name="note" id="triage-note" maxlength="4000" rows="2">{note}</textarea></label>
<input type="hidden" name="revision" value="{revision}">
<button type="submit" id="triage-save">Save</button></form></section>"#,
        revision = f.revision,
        id = escape(&f.feedback_id),
        moves = options(&moves, &form.status),
        assignee = escape(&form.assignee),
        priorities = options(&priorities, &form.priority),
        dup = escape(&form.duplicate_of),
        note = escape(&form.note),
    ));
    // What was done so far, next to where the next step is taken.
    b.push_str(&activity_html(r));

    b.push_str(&format!(
        r#"<section><h2>Copy as issue</h2><button type="button" id="copy-issue">Copy as issue</button> <span id="copy-status" role="status"></span>
<textarea id="issue-markdown" readonly rows="8">{}</textarea></section>"#,
        escape(&r.issue_markdown)
    ));

    // What the page attached.
    b.push_str(r#"<section><h2>What the learner's page attached</h2><dl class="facts" id="report-context">"#);
    let text_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (label, key) in [("Request IDs", "requestIds"), ("Trace IDs", "traceIds")] {
        if let Some(ids) = r.context.get(key).and_then(serde_json::Value::as_array)
            && !ids.is_empty()
        {
            let ids: Vec<String> = ids
                .iter()
                .map(|i| format!("<code>{}</code>", escape(&text_of(i))))
                .collect();
            b.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", ids.join(" ")));
        }
    }
    if let Some(errors) = r
        .context
        .get("errors")
        .and_then(serde_json::Value::as_array)
        && !errors.is_empty()
    {
        b.push_str("<dt>Client errors</dt><dd><ul class=\"plain\">");
        for e in errors {
            let m = e.get("message").map_or_else(|| text_of(e), text_of);
            b.push_str(&format!("<li><code>{}</code></li>", escape(&m)));
        }
        b.push_str("</ul></dd>");
    }
    if let Some(eps) = r
        .context
        .get("endpoints")
        .and_then(serde_json::Value::as_array)
        && !eps.is_empty()
    {
        b.push_str("<dt>Endpoints</dt><dd><ul class=\"plain\">");
        for e in eps {
            let field = |k: &str| e.get(k).map(text_of).unwrap_or_default();
            b.push_str(&format!(
                "<li>{} <code>{}</code> {}</li>",
                escape(&field("name")),
                escape(&field("instance")),
                escape(&field("state"))
            ));
        }
        b.push_str("</ul></dd>");
    }
    if let serde_json::Value::String(raw) = &r.context {
        b.push_str(&format!(
            "<dt>Raw</dt><dd><code>{}</code></dd>",
            escape(raw)
        ));
    }
    b.push_str("</dl></section>");

    if let Some(s) = &r.session {
        // The livelesson as it is now.
        for ll in s.livelessons.iter().filter(|ll| ll.id == f.livelesson_id) {
            b.push_str(&format!(
                r#"<section id="livelesson-now"><h2>Livelesson now: <span class="status" data-state="{st}">{st}</span></h2>{err}</section>"#,
                st = ll.status.as_str(),
                err = ll
                    .error
                    .as_ref()
                    .map(|e| format!(
                        r#"<p class="error">Failed in {}: {}</p>"#,
                        escape(&e.phase),
                        escape(&e.message)
                    ))
                    .unwrap_or_default(),
            ));
        }
        // Every endpoint instance of the session.
        b.push_str(r#"<section><h2>Endpoint instances</h2>"#);
        if s.timeline.endpoints.is_empty() {
            b.push_str("<p>No endpoint events recorded for this session.</p>");
        }
        b.push_str(r#"<div id="instances">"#);
        for e in &s.timeline.endpoints {
            b.push_str(&format!(
                r#"<article class="instance{failed}" data-endpoint="{ep}" data-instance="{inst}"><h3>{ep} <code class="instance-name">{inst}</code></h3>
<p class="meta">livelesson {ll} · node {node} · backend {backend} · last {last} at {at}{failed_text}</p>"#,
                failed = if e.failed { " failed" } else { "" },
                ep = escape(&e.endpoint),
                inst = escape(&e.instance),
                ll = escape(&e.livelesson_id),
                node = escape(if e.node.is_empty() { "?" } else { &e.node }),
                backend = escape(if e.backend.is_empty() { "?" } else { &e.backend }),
                last = escape(&e.last_event),
                at = clock(e.last_ts_ns),
                failed_text = if e.failed { " · FAILED" } else { "" },
            ));
            if !e.reachability.is_empty() {
                b.push_str("<ul class=\"checks\">");
                for c in &e.reachability {
                    b.push_str(&format!(
                        "<li class=\"{}\">{} {}{}</li>",
                        if c.reachable { "ok" } else { "bad" },
                        clock(c.ts_ns),
                        if c.reachable {
                            "reachable"
                        } else {
                            "unreachable"
                        },
                        if c.message.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", escape(&c.message))
                        }
                    ));
                }
                b.push_str("</ul>");
            }
            for run in &e.configurations {
                b.push_str(&format!(
                    r#"<details class="config-run {cls}"{open}><summary>{at} stage {stage} configuration {result} (exit {exit}, {ms} ms)</summary><pre class="output">{out}</pre></details>"#,
                    cls = if run.ok { "ok" } else { "bad" },
                    open = if run.ok { "" } else { " open" },
                    at = clock(run.ts_ns),
                    stage = run.stage,
                    result = if run.ok { "ok" } else { "FAILED" },
                    exit = escape(if run.exit_code.is_empty() { "?" } else { &run.exit_code }),
                    ms = escape(&run.duration_ms),
                    out = escape(&run.output_tail),
                ));
            }
            b.push_str("</article>");
        }
        b.push_str("</div></section>");

        // Times below are clock times of this day (UTC); the date is said once.
        let day = s
            .timeline
            .events
            .first()
            .and_then(|e| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.ts_ns)).ok())
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        b.push_str(&format!(
            r#"<section><h2>Events ({n})</h2><p class="meta">Times are UTC, from {day}.</p><div class="scroll"><table class="events" id="events"><thead><tr><th>Time (UTC)</th><th>Kind</th><th>Endpoint</th><th>Message</th><th>Trace</th></tr></thead><tbody>"#,
            n = s.timeline.events.len(),
        ));
        let traced: std::collections::HashSet<&str> = s
            .timeline
            .spans
            .iter()
            .map(|sp| sp.trace_id.as_str())
            .collect();
        for e in &s.timeline.events {
            let short = escape(e.trace_id.get(..8).unwrap_or(&e.trace_id));
            let trace = if traced.contains(e.trace_id.as_str()) {
                format!(
                    r##"<a href="#trace-{}" title="{}"><code>{short}</code></a>"##,
                    escape(&e.trace_id),
                    escape(&e.trace_id)
                )
            } else {
                format!("<code>{short}</code>")
            };
            b.push_str(&format!(
                r#"<tr class="event sev-{sev:?}" data-kind="{kind}"><td>{at}</td><td>{kind}</td><td>{ep}</td><td>{msg}</td><td>{trace}</td></tr>"#,
                sev = e.severity,
                kind = escape(&e.kind),
                at = clock(e.ts_ns),
                ep = escape(&e.endpoint),
                msg = escape(&e.message),
                trace = trace,
            ));
        }
        b.push_str("</tbody></table></div></section>");

        b.push_str(&format!(
            r#"<section><h2>Trace tree ({} spans)</h2><ul class="spans" id="spans">"#,
            s.timeline.spans.len()
        ));
        let mut anchored = std::collections::HashSet::new();
        for (depth, span) in span_trees(&s.timeline.spans) {
            let error = span.status_code.eq_ignore_ascii_case("error");
            // The first root of each trace is where the events table's trace links land.
            let anchor = if depth == 0 && anchored.insert(span.trace_id.as_str()) {
                format!(r#" id="trace-{}""#, escape(&span.trace_id))
            } else {
                String::new()
            };
            b.push_str(&format!(
                r#"<li class="span{err}"{anchor} data-name="{name}" style="padding-left:{pad}rem"><span class="at">{at}</span> <span class="span-name">{name}</span> <span class="dur">{ms:.1} ms</span> <span class="meta">{service}{ep}{trace}</span>{msg}</li>"#,
                at = clock(span.ts_ns),
                err = if error { " error" } else { "" },
                name = escape(&span.name),
                pad = depth.min(12),
                ms = span.duration_ns as f64 / 1e6,
                service = escape(&span.service),
                ep = if span.instance.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", escape(&span.instance))
                },
                trace = if depth == 0 {
                    format!(" · trace {}", escape(&span.trace_id))
                } else {
                    String::new()
                },
                msg = if span.status_message.is_empty() {
                    String::new()
                } else {
                    format!(r#" <span class="error">{}</span>"#, escape(&span.status_message))
                },
            ));
        }
        b.push_str("</ul></section>");
    }

    if r.group.len() > 1 {
        b.push_str(&format!(
            r#"<section><h2>Same group ({} reports)</h2><ul id="group">"#,
            r.group.len()
        ));
        for g in &r.group {
            b.push_str(&format!(
                r#"<li><a href="/triage/feedback/{id}">{id}</a> {at} <span class="badge {st}">{st}</span> {msg}</li>"#,
                id = escape(&g.feedback_id),
                at = rfc3339(g.created_at),
                st = escape(&g.status),
                msg = escape(&g.message),
            ));
        }
        b.push_str("</ul></section>");
    }
    b.push_str("</main>");
    maintainer_page(&format!("Report {}", f.feedback_id), &b)
}

#[derive(Debug, Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn report_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SavedQuery>,
) -> Response {
    if let Err(login) = signed_in(&state, &headers, &format!("/triage/feedback/{id}")) {
        return *login;
    }
    match triage::read_report(&state, &id).await {
        Ok(r) => {
            let notice = q.saved.as_deref().map(|s| {
                if s == "pending" {
                    "Saved; the queue shows it once ingest catches up."
                } else {
                    "Saved."
                }
            });
            let form = FormValues::of(&r.feedback);
            html(StatusCode::OK, report_html(&r, notice.map(Ok), &form))
        }
        Err(e) => html(
            e.status,
            maintainer_page(
                "Report",
                &format!(
                    r#"<main class="catalog triage"><p><a href="/triage">← queue</a></p>{}</main>"#,
                    error_html(&e)
                ),
            ),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct TriageForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    duplicate_of: String,
    #[serde(default)]
    note: String,
    /// The revision the page showed.
    #[serde(default)]
    revision: String,
}

pub async fn save(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(form): Form<TriageForm>,
) -> Response {
    let who = match signed_in(&state, &headers, &format!("/triage/feedback/{id}")) {
        Ok(m) => m,
        Err(login) => return *login,
    };
    let result = if crate::api::terminal::same_origin(&headers) {
        match form.status.trim() {
            "" => Ok(None),
            s => s.parse::<Status>().map(Some).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable",
                    e.to_string(),
                )
            }),
        }
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "this form must be sent from this site's own page",
        ))
    };
    let result = match result {
        Ok(status) => {
            let change = Change {
                status,
                assignee: Some(form.assignee.clone()),
                priority: Some(form.priority.clone()),
                note: Some(form.note.clone()),
                duplicate_of: Some(form.duplicate_of.clone()),
            };
            match form.revision.trim() {
                "" => triage::change(&state, &who, &id, change, None).await,
                r => match r.parse::<u64>() {
                    Ok(r) => triage::change(&state, &who, &id, change, Some(r)).await,
                    Err(_) => Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unprocessable",
                        format!("revision `{r}` is not a number"),
                    )),
                },
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(changed) => Redirect::to(&format!(
            "/triage/feedback/{id}?saved={}",
            if changed.visible { "1" } else { "pending" }
        ))
        .into_response(),
        Err(e) => match triage::read_report(&state, &id).await {
            // The page again, with the error at the form and the note kept.
            Ok(r) => {
                let typed = FormValues {
                    status: form.status.clone(),
                    assignee: form.assignee.clone(),
                    priority: form.priority.clone(),
                    duplicate_of: form.duplicate_of.clone(),
                    note: form.note.clone(),
                };
                html(e.status, report_html(&r, Some(Err(&e)), &typed))
            }
            Err(_) => html(
                e.status,
                maintainer_page(
                    "Report",
                    &format!(r#"<main class="catalog triage">{}</main>"#, error_html(&e)),
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_clocks_read_well() {
        let now = time::OffsetDateTime::from_unix_timestamp(100_000).unwrap();
        let t = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert_eq!(age(t(99_990), now), "10 s");
        assert_eq!(age(t(100_000 - 7200), now), "2 h");
        assert_eq!(age(t(100_000 + 5), now), "0 s");
        assert_eq!(clock(3_723_004_000_000), "01:02:03.004");
    }
}
