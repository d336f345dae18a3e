//! The learner web UI: server-rendered pages (catalog, lesson), our own script and style,
//! and xterm.js from npm (installed at build time into `web/node_modules`, never committed).
//!
//! Pages are plain HTML with every curriculum string escaped; guides go through
//! [`guide`]'s sanitiser. The page script (`assets/app.js`) talks only to the JSON API.

pub mod guide;
pub mod triage;

use std::collections::BTreeMap;
use std::path::Path;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::lessons::{self, LessonSummary};

const APP_JS: &str = include_str!("assets/app.js");
const FEEDBACK_JS: &str = include_str!("assets/feedback.js");
const TRIAGE_JS: &str = include_str!("assets/triage.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Front-end files from npm: URL name → path below `node_modules`.
const VENDOR: [(&str, &str); 3] = [
    ("xterm.js", "@xterm/xterm/lib/xterm.js"),
    ("xterm.css", "@xterm/xterm/css/xterm.css"),
    ("addon-fit.js", "@xterm/addon-fit/lib/addon-fit.js"),
];

/// The npm-provided files, read once at start.
#[derive(Debug, Default)]
pub struct Vendor {
    files: BTreeMap<&'static str, Vec<u8>>,
    /// What is missing and how to get it, shown on lesson pages.
    pub missing: Option<String>,
}

impl Vendor {
    /// Reads the files from `node_modules`; missing ones are reported, not fatal (the catalog
    /// and API work without them).
    pub fn load(node_modules: &Path) -> Vendor {
        let mut files = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, rel) in VENDOR {
            match std::fs::read(node_modules.join(rel)) {
                Ok(bytes) => {
                    files.insert(name, bytes);
                }
                Err(_) => missing.push(node_modules.join(rel).display().to_string()),
            }
        }
        let missing = (!missing.is_empty()).then(|| {
            format!(
                "terminal files are missing ({}); run `npm ci` in web/ (scripts/up.sh does)",
                missing.join(", ")
            )
        });
        Vendor { files, missing }
    }
}

/// The UI's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(catalog_page))
        .route("/lessons/{slug}", get(lesson_page))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/assets/feedback.js",
            get(|| async { asset(FEEDBACK_JS, "text/javascript") }),
        )
        .route("/triage", get(triage::queue_page))
        .route("/triage/login", axum::routing::post(triage::login))
        .route("/triage/logout", axum::routing::post(triage::logout))
        .route(
            "/triage/feedback/{id}",
            get(triage::report_page).post(triage::save),
        )
        .route(
            "/assets/triage.js",
            get(|| async { asset(TRIAGE_JS, "text/javascript") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route("/assets/vendor/{file}", get(vendor))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn vendor(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
) -> Result<Response, ApiError> {
    let bytes = state
        .vendor
        .files
        .get(file.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no asset `{file}`")))?;
    let content_type = if file.ends_with(".css") {
        "text/css"
    } else {
        "text/javascript"
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        bytes.clone(),
    )
        .into_response())
}

/// Text escaped for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe to embed in a `<script type="application/json">` element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A whole HTML document: our style, `header`, `body`, then `scripts`.
fn shell(title: &str, header: &str, body: &str, scripts: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Antidote</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/vendor/xterm.css">
<link rel="stylesheet" href="/assets/app.css">
</head><body>
{header}
{body}
{scripts}
</body></html>"#,
        title = escape(title)
    )
}

/// A learner page: the header with the Feedback button, and its dialog.
fn page(title: &str, body: &str, scripts: &str) -> Html<String> {
    let body = format!(
        r#"{body}
<dialog id="feedback" class="feedback">
<form id="feedback-form" method="dialog">
<h2>Tell us what happened</h2>
<label>What is it about?
<select id="feedback-category" required>
<option value="lab_not_working">The lab is not working</option>
<option value="terminal">The terminal</option>
<option value="lesson_content">The lesson's content</option>
<option value="other">Something else</option>
</select></label>
<label>How was it? (optional)
<select id="feedback-rating"><option value="">—</option><option value="1">1 (poor)</option><option value="2">2</option><option value="3">3</option><option value="4">4</option><option value="5">5 (great)</option></select></label>
<label>Message
<textarea id="feedback-message" maxlength="4000" rows="5" required></textarea></label>
<label>Contact (optional)
<input id="feedback-contact" maxlength="200" autocomplete="email"></label>
<p class="hint" id="feedback-hint">We attach this page's lab, its endpoints and recent errors, so you need not describe them.</p>
<p id="feedback-status" role="status"></p>
<div class="actions"><button type="button" id="feedback-cancel" class="secondary">Close</button>
<button type="submit" id="feedback-send">Send</button></div>
</form></dialog>"#
    );
    Html(shell(
        title,
        r#"<header class="top"><a class="brand" href="/">Antidote</a><span class="tagline">hands-on network automation</span>
<button type="button" id="feedback-open" class="feedback-open">Feedback</button></header>"#,
        &body,
        &format!("{scripts}\n<script src=\"/assets/feedback.js\"></script>"),
    ))
}

async fn catalog_page(State(state): State<AppState>) -> Html<String> {
    let mut by_category: BTreeMap<String, Vec<LessonSummary>> = BTreeMap::new();
    for l in state.catalog() {
        by_category.entry(l.category.clone()).or_default().push(l);
    }
    let mut body = String::from(r#"<main class="catalog"><h1>Lessons</h1>"#);
    for (category, lessons) in &by_category {
        body.push_str(&format!(
            r#"<section class="category" data-category="{c}"><h2>{c}</h2><ul>"#,
            c = escape(category)
        ));
        for l in lessons {
            if l.available {
                body.push_str(&format!(
                    r#"<li class="lesson available" data-slug="{slug}"><a href="/lessons/{slug}">{name}</a><p>{about}</p><p class="meta">{stages} stage(s)</p></li>"#,
                    slug = escape(&l.slug),
                    name = escape(&l.name),
                    about = escape(&l.description),
                    stages = l.stage_count,
                ));
            } else {
                body.push_str(&format!(
                    r#"<li class="lesson unavailable" data-slug="{slug}"><span class="name">{name}</span><p class="reason">Unavailable here: {reason}</p></li>"#,
                    slug = escape(&l.slug),
                    name = escape(&l.name),
                    reason = escape(l.unavailable_reason.as_deref().unwrap_or("")),
                ));
            }
        }
        body.push_str("</ul></section>");
    }
    body.push_str("</main>");
    page("Lessons", &body, "")
}

#[derive(Debug, Deserialize)]
struct LessonQuery {
    stage: Option<usize>,
}

/// An error as a page for people (the API's JSON shape is for programs).
pub fn error_page(e: ApiError) -> Response {
    let body = format!(
        r#"<main class="catalog"><h1>{}</h1><p class="error" id="page-error">{}</p><p><a href="/">Back to the lessons</a></p></main>"#,
        escape(e.status.canonical_reason().unwrap_or("Error")),
        escape(&e.message)
    );
    (e.status, page("Error", &body, "")).into_response()
}

async fn lesson_page(
    state: State<AppState>,
    headers: axum::http::HeaderMap,
    slug: UrlPath<String>,
    query: Result<Query<LessonQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(q) => q,
        Err(e) => {
            tracing::debug!(error = %e, "bad lesson page query");
            return error_page(ApiError::bad_request(
                "the address is malformed: stage must be a whole number from 0 (e.g. ?stage=1)",
            ));
        }
    };
    // Whether the page's first request can go out without making a session first (no 401
    // on a learner's first visit).
    let session = crate::api::session::session_hint(&headers);
    let has_session =
        !session.is_empty() && matches!(state.sessions.get(&session).await, Ok(Some(_)));
    lesson_html(state, slug, query, has_session)
        .await
        .unwrap_or_else(error_page)
}

async fn lesson_html(
    State(state): State<AppState>,
    UrlPath(slug): UrlPath<String>,
    Query(query): Query<LessonQuery>,
    has_session: bool,
) -> Result<Response, ApiError> {
    let loaded = state.lesson(&slug)?;
    let detail = lessons::detail(&state, loaded);
    let count = loaded.lesson.stages.len();
    let stage = query.stage.unwrap_or(0);
    if stage >= count {
        return Err(ApiError::not_found(format!(
            "lesson `{slug}` has {count} stage(s), numbered from 0; there is no stage {stage}"
        )));
    }
    let st = &loaded.lesson.stages[stage];
    let guide = guide::render(&loaded.dir, stage, st.guide_type).unwrap_or_else(|e| {
        tracing::warn!(lesson = %slug, stage, error = %e, "guide cannot be shown");
        format!(
            r#"<p class="error">This stage's guide cannot be shown: {}</p>"#,
            escape(&e.to_string())
        )
    });
    let nav = {
        let prev = if stage > 0 {
            format!(
                r#"<a class="button" id="prev-stage" href="/lessons/{}?stage={}">← Previous</a>"#,
                escape(&slug),
                stage - 1
            )
        } else {
            String::new()
        };
        let next = if stage + 1 < count {
            format!(
                r#"<a class="button" id="next-stage" href="/lessons/{}?stage={}">Next →</a>"#,
                escape(&slug),
                stage + 1
            )
        } else {
            String::new()
        };
        let verify = match &detail.stages[stage].verify {
            Some(what) => format!(
                r#"<button type="button" id="verify" title="{}">Verify</button>"#,
                escape(what)
            ),
            None => String::new(),
        };
        let st_view = &detail.stages[stage];
        let help = {
            let hints: String = st_view
                .hints
                .iter()
                .map(|h| format!(r#"<li hidden>{}</li>"#, guide::inline(h)))
                .collect();
            let hint_button = if st_view.hints.is_empty() {
                String::new()
            } else {
                format!(
                    r#"<button type="button" id="hint" class="secondary">Show a hint ({} available)</button><ol id="hints" class="hints">{hints}</ol>"#,
                    st_view.hints.len()
                )
            };
            let solution = st_view
                .solution
                .as_ref()
                .map(|sol| {
                    format!(
                        r#"<details id="solution" class="solution"><summary>Show the solution</summary><pre><code>{}</code></pre></details>"#,
                        escape(sol)
                    )
                })
                .unwrap_or_default();
            format!(r#"<section class="help">{hint_button}{solution}</section>"#)
        };
        format!(
            r#"<nav class="stages">{prev}{verify}{next}</nav><pre id="verify-result" hidden></pre>{help}"#
        )
    };
    let lab = match (&detail.unavailable_reason, &state.vendor.missing) {
        (Some(reason), _) => format!(
            r#"<section class="lab"><p class="error" id="unavailable">This lesson cannot run here: {}</p></section>"#,
            escape(reason)
        ),
        (None, missing) => format!(
            r#"<section class="lab" id="lab">
<div id="status" class="status" role="status">Starting the lab…</div>
<div id="progress" class="progress"><div class="bar"></div></div>
<div id="failure" class="failure" hidden></div>
<div id="tabs" class="tabs" role="tablist"></div>
<div id="terminals" class="terminals"></div>
{warn}</section>"#,
            warn = missing
                .as_ref()
                .map(|m| format!(r#"<p class="error">{}</p>"#, escape(m)))
                .unwrap_or_default()
        ),
    };
    let body = format!(
        r#"<main class="lesson-page">
<section class="guide-pane">
<h1 id="lesson-name">{name}</h1>
<h2 id="stage-title">Stage {human} of {count}: {title}</h2>
<article id="guide" class="guide" data-stage="{stage}">{guide}</article>
{nav}
</section>
{lab}
</main>"#,
        name = escape(&loaded.lesson.name),
        human = stage + 1,
        title = escape(&st.description),
    );
    let data = serde_json::json!({
        "lesson": slug,
        "stage": stage,
        "stageCount": count,
        "available": detail.available,
        "endpoints": detail.endpoints,
        "hasSession": has_session,
    });
    let scripts = format!(
        r#"<script id="page-data" type="application/json">{}</script>
<script src="/assets/vendor/xterm.js"></script>
<script src="/assets/vendor/addon-fit.js"></script>
<script src="/assets/app.js"></script>"#,
        script_json(&data)
    );
    Ok((
        StatusCode::OK,
        // Never served from a cache: the page says whether the learner has a session yet,
        // and a stale "no" would make a new one and lose the running lab.
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        page(
            &format!("{} — {}", loaded.lesson.name, st.description),
            &body,
            &scripts,
        ),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        let json = script_json(&serde_json::json!({"x": "</script><!--"}));
        assert!(!json.contains('<'), "{json}");
    }
}
