//! `/api/v1/openapi.json`, generated from the handlers' annotations (utoipa), never by hand.

use axum::{routing::get, Json, Router};
use utoipa::{
    openapi::{
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, ObjectBuilder, Ref, ResponseBuilder, Type,
    },
    Modify, OpenApi,
};

use super::{deliveries, endpoints, error::ErrorBody, events, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "Webhooks API", version = "1", description = "Configure webhook endpoints and publish events."),
    paths(
        endpoints::list, endpoints::create, endpoints::show, endpoints::update, endpoints::remove,
        endpoints::secret, endpoints::rotate, endpoints::test_send, events::create, events::show,
        events::event_types,
        deliveries::list, deliveries::show, deliveries::retry, deliveries::replay,
        deliveries::bulk_retry, deliveries::bulk_retry_status, deliveries::recover
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &CommonResponses, &EventTypeNames),
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

/// Answers every operation can give besides its own (found by schemathesis, issue 7): 401
/// without a valid key; 422 and 413 when a request body is rejected before the handler runs.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete, &mut item.put];
            for operation in operations.into_iter().flatten() {
                add_error(operation, "401", "Missing or invalid API key");
                if operation.request_body.is_some() {
                    add_error(operation, "413", "The request body is larger than allowed");
                    add_error(operation, "422", "The request body was not accepted");
                }
            }
        }
    }
}

/// The derived `EventType` schema lists the Rust variant names (`TaskCreated`): the serde
/// renames come from a macro the derive cannot see through. The wire names are the
/// catalogue's (found by schemathesis: every endpoint answer "violated" the schema).
struct EventTypeNames;

impl Modify for EventTypeNames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let names = entity::EventType::ALL.map(entity::EventType::as_str);
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .description(Some("An event type of the catalogue."))
            .build();
        if let Some(components) = openapi.components.as_mut() {
            components.schemas.insert("EventType".to_owned(), schema.into());
        }
    }
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let response = ResponseBuilder::new().description(description).content("application/json", body).build();
    operation.responses.responses.entry(status.to_owned()).or_insert(response.into());
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
