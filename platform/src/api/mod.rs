//! The api role: the JSON API of DESIGN §9 (axum), the web UI and terminal websockets.
//!
//! Request flow: [`error::request_context`] (request ID, JSON error bodies, `http.error`
//! events) → body limit → route. Learner routes take a [`session::Learner`] and reach only
//! that session's livelessons. Work is asked of schedulers through
//! [`crate::livelesson::client::Client`]; the backend is used directly only for what must be
//! answered now (terminals, verify checks).

pub mod client_errors;
pub mod error;
pub mod feedback;
pub mod http_presentation;
pub mod lessons;
pub mod livelessons;
pub mod maintainer;
pub mod openapi;
pub mod session;
pub mod terminal;
pub mod timeline;
pub mod triage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::curriculum::Curriculum;
use crate::livelesson::client::{Client, ClientError};
use crate::livelesson::view::View;
use crate::livelesson::{Livelesson, Session};
use crate::web::Vendor;
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::Severity;
use error::ApiError;

/// Largest request body accepted (JSON bodies are small; feedback messages are bounded too).
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub client: Client,
    pub curriculum: Arc<Curriculum>,
    pub backend: Arc<dyn Backend>,
    /// Lesson slug → why it cannot run on this backend (`None`: it can).
    pub availability: Arc<BTreeMap<String, Option<String>>>,
    pub vendor: Arc<Vendor>,
    /// Cancelled when the server stops: open terminals and bucket watches end.
    pub shutdown: CancellationToken,
    /// In-memory copies of the KV buckets for the reads every page polls.
    pub livelessons: View<Livelesson>,
    pub sessions: View<Session>,
    /// The contract database in ClickHouse, for the maintainers' views (`None`: not
    /// configured; those routes answer 503).
    pub telemetry: Option<clickhouse::Client>,
    /// Tokens that open the maintainer routes (none: they are closed).
    pub maintainer_tokens: Arc<Vec<maintainer::Token>>,
    /// Held while a triage change is applied: changes in this process happen one at a time.
    pub triage_turn: Arc<tokio::sync::Mutex<()>>,
    /// When `/metrics` last read the feedback backlog from ClickHouse (read at most every
    /// [`BACKLOG_REFRESH`], however often it is scraped).
    pub backlog_read: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How often `/metrics` reads the untriaged backlog from ClickHouse at most.
pub const BACKLOG_REFRESH: std::time::Duration = std::time::Duration::from_secs(15);

impl AppState {
    pub fn new(
        client: Client,
        curriculum: Arc<Curriculum>,
        backend: Arc<dyn Backend>,
        vendor: Vendor,
    ) -> AppState {
        let availability = curriculum
            .lessons
            .iter()
            .map(|(slug, l)| {
                (
                    slug.clone(),
                    backend.unavailable_reason(&l.lesson, &curriculum.images),
                )
            })
            .collect();
        let shutdown = CancellationToken::new();
        AppState {
            livelessons: View::follow(client.store.livelessons.clone(), shutdown.clone()),
            sessions: View::follow(client.store.sessions.clone(), shutdown.clone()),
            client,
            curriculum,
            backend,
            availability: Arc::new(availability),
            vendor: Arc::new(vendor),
            shutdown,
            telemetry: None,
            maintainer_tokens: Arc::new(Vec::new()),
            triage_turn: Arc::default(),
            backlog_read: Arc::default(),
        }
    }

    /// Reads the maintainers' views from `client` (already pointing at the database).
    pub fn with_telemetry(mut self, client: clickhouse::Client) -> AppState {
        self.telemetry = Some(client);
        self
    }

    /// Opens the maintainer routes to these tokens (`token` or `name:token`; empty ones are
    /// ignored).
    pub fn with_maintainer_tokens(mut self, tokens: Vec<String>) -> AppState {
        self.maintainer_tokens = Arc::new(
            tokens
                .iter()
                .filter_map(|t| maintainer::Token::parse(t))
                .collect(),
        );
        self
    }

    /// The contract database for the maintainers' views, or why there is none.
    pub fn clickhouse(&self) -> Result<&clickhouse::Client, ApiError> {
        self.telemetry.as_ref().ok_or_else(|| {
            ApiError::unavailable(
                "this api role has no ClickHouse configured (ANTIDOTE_CLICKHOUSE_URL)",
            )
        })
    }

    /// Whether NATS is connected now. Disconnected, a publish would wait in the client's
    /// buffer and might still go out after the caller was told it did not: writes that tell
    /// people "nothing was stored" refuse at once instead.
    pub fn nats_connected(&self) -> bool {
        self.client.js.client().connection_state() == async_nats::connection::State::Connected
    }

    /// Publishes `http.error` for a 5xx answer.
    pub async fn report_http_error(
        &self,
        session_id: &str,
        request_id: &str,
        method: &Method,
        path: &str,
        status: StatusCode,
        message: &str,
    ) {
        let mut e = Event::new(kind::HTTP_ERROR, "api", Severity::Error)
            .message(message)
            .attr("method", method)
            .attr("path", path)
            .attr("status", status.as_u16());
        e.session_id = session_id.to_owned();
        e.request_id = request_id.to_owned();
        self.client.event(e).await;
    }
}

/// The HTTP answer to a failed livelesson request.
pub fn client_error(e: ClientError) -> ApiError {
    let message = e.to_string();
    match e {
        ClientError::UnknownLesson(_) | ClientError::UnknownLivelesson(_) => {
            ApiError::not_found(message)
        }
        ClientError::StageOutOfRange { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "stage_out_of_range",
            message,
        ),
        ClientError::UnknownSession(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "no_session", message)
        }
        ClientError::NotReady { .. } => ApiError::new(StatusCode::CONFLICT, "not_ready", message),
        ClientError::Store(_) | ClientError::Publish(_) => ApiError::unavailable(message),
    }
}

/// The whole HTTP surface: API, UI, health.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/sessions", post(session::create))
        .route("/api/v1/sessions/{id}/timeline", get(timeline::get))
        .route("/api/v1/lessons", get(lessons::list))
        .route("/api/v1/lessons/{slug}", get(lessons::get))
        .route("/api/v1/livelessons", post(livelessons::create))
        .route(
            "/api/v1/livelessons/{id}",
            get(livelessons::get).delete(livelessons::delete),
        )
        .route(
            "/api/v1/livelessons/{id}/stage",
            put(livelessons::change_stage),
        )
        .route(
            "/api/v1/livelessons/{id}/keepalive",
            post(livelessons::keepalive),
        )
        .route(
            "/api/v1/livelessons/{id}/stages/{stage}/verify",
            post(livelessons::verify),
        )
        .route(
            "/api/v1/livelessons/{id}/endpoints/{endpoint}/terminal",
            get(terminal::open),
        )
        .route("/api/v1/client-errors", post(client_errors::report))
        .route("/api/v1/feedback", post(feedback::submit))
        .route("/api/v1/triage/feedback", get(triage::list))
        .route(
            "/api/v1/triage/feedback/{id}",
            get(triage::get).patch(triage::update),
        )
        .route(
            "/livelessons/{id}/endpoints/{endpoint}/http/{presentation}",
            any(http_presentation::redirect),
        )
        .route(
            "/livelessons/{id}/endpoints/{endpoint}/http/{presentation}/",
            any(http_presentation::root),
        )
        .route(
            "/livelessons/{id}/endpoints/{endpoint}/http/{presentation}/{*path}",
            any(http_presentation::path),
        )
        .merge(crate::web::routes())
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            error::request_context,
        ))
        .with_state(state)
}

/// Unknown routes: a JSON error for programs (`/api/…`), a page for people elsewhere.
async fn no_route(method: Method, uri: axum::http::Uri) -> Response {
    let e = ApiError::not_found(format!("no route for {method} {}", uri.path()));
    if uri.path().starts_with("/api/") || method != Method::GET {
        e.into_response()
    } else {
        crate::web::error_page(e)
    }
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: NATS is connected (every learner action needs it).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = String),
        (status = 503, description = "NATS is not connected", body = error::ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.client.js.client().connection_state() {
        async_nats::connection::State::Connected => "ready".into_response(),
        other => {
            ApiError::unavailable(format!("NATS is not connected ({other:?})")).into_response()
        }
    }
}

/// Prometheus metrics of this process (OpenMetrics text). Livelessons by state are counted
/// from the livelessons bucket at scrape time, so every api replica reports the same.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    use crate::livelesson::Status;
    match state.livelessons.values().await {
        Ok(all) => {
            let count = |s: Status| {
                i64::try_from(all.iter().filter(|ll| ll.status == s).count()).unwrap_or(i64::MAX)
            };
            antidote_telemetry::metrics::metrics().set_livelessons(
                [
                    Status::Initialized,
                    Status::Booting,
                    Status::Configuring,
                    Status::Ready,
                    Status::Failed,
                ]
                .map(|s| (s.as_str(), count(s))),
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot count livelessons for /metrics"),
    }
    let backlog_due = state.backlog_read.lock().is_ok_and(|mut last| {
        let due = last.is_none_or(|t| t.elapsed() >= BACKLOG_REFRESH);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    });
    if let Some(ch) = state.telemetry.as_ref().filter(|_| backlog_due) {
        // The untriaged backlog; a slow or absent ClickHouse keeps the last values.
        match tokio::time::timeout(
            std::time::Duration::from_secs(2),
            antidote_telemetry::triage::backlog(ch),
        )
        .await
        {
            Ok(Ok(b)) => {
                let m = antidote_telemetry::metrics::metrics();
                m.feedback_untriaged
                    .set(i64::try_from(b.count).unwrap_or(i64::MAX));
                m.feedback_oldest_untriaged
                    .set(b.oldest_age_seconds(time::OffsetDateTime::now_utc()));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the feedback backlog for /metrics")
            }
            Err(_) => tracing::warn!("ClickHouse took over 2 s for the feedback backlog"),
        }
    }
    exposition()
}

/// This process's metrics as an HTTP answer.
fn exposition() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            antidote_telemetry::metrics::CONTENT_TYPE,
        )],
        antidote_telemetry::metrics::encode(),
    )
        .into_response()
}

/// `/metrics` and `/healthz` alone, for the roles that run no api (scheduler, ingest).
pub async fn serve_metrics(
    listen: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for metrics: {e}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(|| async { exposition() }));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(addr)
}

/// Serves `router` on `listen` until `shutdown`; returns the address actually bound.
pub async fn serve(
    state: AppState,
    listen: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let terminals = state.shutdown.clone();
    let app = router(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                terminals.cancel();
            })
            .await
    });
    Ok((addr, task))
}
