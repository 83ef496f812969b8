//! `/settings/webhooks`: the customer's endpoints. The server functions here are thin:
//! each names the user and calls the one implementation in `service::endpoints`,
//! which the REST API calls too.

mod bulk_retry;
mod chart;
mod delivery_log;
mod endpoint_form;
mod event_picker;
mod form_page;
mod health_notice;
mod list_page;
mod recover;
mod secret_panel;
mod test_panel;

use entity::{
    api::{Delivery, DeliveryFilter, DeliveryPage, Endpoint, EndpointWithSecret, TestOutcome},
    endpoint_input::EndpointInput,
    EventType,
};
pub use form_page::{EditWebhookPage, NewWebhookPage};
use leptos::{prelude::*, server_fn::codec::Json};
pub use list_page::WebhooksPage;

use crate::AppError;

#[cfg(feature = "ssr")]
use crate::server::actor_and_context;

#[server(endpoint = "endpoints/list")]
pub async fn list_endpoints() -> Result<Vec<Endpoint>, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::list(&ctx.db, &actor.account_id).await?)
}

#[server(endpoint = "endpoints/get", input = Json)]
pub async fn get_endpoint(id: String) -> Result<Endpoint, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::get(&ctx.db, &actor, &id).await?)
}

#[server(endpoint = "endpoints/create", input = Json)]
pub async fn create_endpoint(input: EndpointInput) -> Result<EndpointWithSecret, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::create(&ctx.db, ctx.engine.as_ref(), &actor, input).await?)
}

#[server(endpoint = "endpoints/update", input = Json)]
pub async fn update_endpoint(id: String, input: EndpointInput) -> Result<Endpoint, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    let patch = entity::endpoint_input::EndpointPatch {
        url: Some(input.url),
        description: Some(input.description),
        event_types: Some(input.event_types),
        enabled: Some(input.enabled),
        rate_limit: Some(input.rate_limit),
    };
    Ok(service::endpoints::update(&ctx.db, ctx.engine.as_ref(), &actor, &id, patch).await?)
}

#[server(endpoint = "endpoints/set-enabled", input = Json)]
pub async fn set_endpoint_enabled(id: String, enabled: bool) -> Result<Endpoint, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    let patch = entity::endpoint_input::EndpointPatch { enabled: Some(enabled), ..Default::default() };
    Ok(service::endpoints::update(&ctx.db, ctx.engine.as_ref(), &actor, &id, patch).await?)
}

#[server(endpoint = "endpoints/delete", input = Json)]
pub async fn delete_endpoint(id: String) -> Result<(), AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::delete(&ctx.db, &actor, &id).await?)
}

#[server(endpoint = "endpoints/secret", input = Json)]
pub async fn reveal_secret(id: String) -> Result<String, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::secret(&ctx.db, &actor, &id).await?.secret)
}

#[server(endpoint = "endpoints/rotate-secret", input = Json)]
pub async fn rotate_secret(id: String) -> Result<String, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::rotate_secret(&ctx.db, ctx.engine.as_ref(), &actor, &id).await?.secret)
}

#[server(endpoint = "deliveries/list", input = Json)]
pub async fn list_deliveries(endpoint_id: String, filter: DeliveryFilter) -> Result<DeliveryPage, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::list(&ctx.db, &actor, &endpoint_id, &filter).await?)
}

#[server(endpoint = "deliveries/get", input = Json)]
pub async fn get_delivery(id: String) -> Result<Delivery, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::get(&ctx.db, &actor, &id).await?)
}

/// Retry (failed) or, with `replay`, Replay (delivered).
#[server(endpoint = "deliveries/resend", input = Json)]
pub async fn resend_delivery(id: String, replay: bool) -> Result<Delivery, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::resend(&ctx.db, &actor, &id, replay).await?)
}

#[server(endpoint = "endpoints/stats", input = Json)]
pub async fn endpoint_stats(endpoint_id: String, days: i32) -> Result<Vec<entity::api::StatBucket>, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::stats(&ctx.db, &actor, &endpoint_id, days).await?)
}

#[server(endpoint = "deliveries/bulk-count", input = Json)]
pub async fn bulk_retry_count(endpoint_id: String, range: entity::api::BulkRetryRange) -> Result<i64, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::bulk_retry_count(&ctx.db, ctx.engine.as_ref(), &actor, &endpoint_id, &range).await?)
}

#[server(endpoint = "deliveries/bulk-start", input = Json)]
pub async fn bulk_retry_start(
    endpoint_id: String,
    range: entity::api::BulkRetryRange,
) -> Result<entity::api::BulkRetry, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::bulk_retry_start(&ctx.db, ctx.engine.as_ref(), &actor, &endpoint_id, &range).await?)
}

#[server(endpoint = "deliveries/bulk-status", input = Json)]
pub async fn bulk_retry_status(id: String) -> Result<entity::api::BulkRetry, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(ctx.engine.bulk_retry_status(actor.account_id.as_str(), &id).await?)
}

#[server(endpoint = "deliveries/recover", input = Json)]
pub async fn recover_start(
    endpoint_id: String,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<entity::api::BulkRetry, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::deliveries::recover_start(&ctx.db, ctx.engine.as_ref(), &actor, &endpoint_id, since).await?)
}

#[server(endpoint = "endpoints/test", input = Json)]
pub async fn send_test_event(id: String, event_type: EventType) -> Result<TestOutcome, AppError> {
    let (actor, ctx) = actor_and_context().await?;
    Ok(service::endpoints::send_test(&ctx.db, ctx.engine.as_ref(), &actor, &id, event_type).await?)
}
