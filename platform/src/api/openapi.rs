//! The OpenAPI 3 document, generated from the handlers' annotations and the request and
//! response types (utoipa) — never written by hand. Served at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{client_errors, error, lessons, livelessons, session, terminal};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Antidote API",
        description = "Hands-on network-automation lessons in the browser. Learner routes identify the session by the `antidote_session` cookie or the `X-Antidote-Session` header. Every response carries `X-Request-Id`; errors are `{\"error\":{\"code\",\"message\",\"request_id\"}}`."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        session::create,
        lessons::list,
        lessons::get,
        livelessons::create,
        livelessons::get,
        livelessons::change_stage,
        livelessons::keepalive,
        livelessons::delete,
        livelessons::verify,
        terminal::open,
        client_errors::report,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
