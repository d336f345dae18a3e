//! The OpenAPI 3 document, generated from the handlers' annotations and the request and
//! response types (utoipa) — never written by hand. Served at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{
    client_errors, error, feedback, lessons, livelessons, session, terminal, timeline, triage,
};

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
        feedback::submit,
        timeline::get,
        triage::list,
        triage::get,
        triage::update,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&MaintainerAuth)
)]
pub struct ApiDoc;

/// Declares the maintainer routes' bearer token.
struct MaintainerAuth;

impl utoipa::Modify for MaintainerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "maintainer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
