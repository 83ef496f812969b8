//! `/api/v1/openapi.json`, generated from the handlers' annotations (utoipa), never by hand.

use axum::{routing::get, Json, Router};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{deliveries, endpoints, error::ErrorBody, events, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "Webhooks API", version = "1", description = "Configure webhook endpoints and publish events."),
    paths(
        endpoints::list, endpoints::create, endpoints::show, endpoints::update, endpoints::remove,
        endpoints::secret, endpoints::rotate, endpoints::test_send, events::create,
        deliveries::list, deliveries::show, deliveries::retry, deliveries::replay,
        deliveries::bulk_retry, deliveries::bulk_retry_status
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
