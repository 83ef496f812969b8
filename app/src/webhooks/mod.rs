//! `/settings/webhooks`: the customer's endpoints.

mod list_page;

pub use list_page::WebhooksPage;
use entity::api::Endpoint;
use leptos::prelude::*;

use crate::AppError;

#[server]
pub async fn list_endpoints() -> Result<Vec<Endpoint>, AppError> {
    let user = crate::server::require_user().await?;
    let ctx = crate::server::context()?;
    crate::server::endpoints::list(&ctx.db, &user.account_id).await
}
