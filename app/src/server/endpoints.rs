//! Endpoint queries, always scoped to one account.

use std::collections::HashMap;

use entity::{
    api::Endpoint,
    tables::{endpoint, endpoint_event_type},
    AccountId, EventType,
};
use sea_orm::{DatabaseConnection, QueryOrder};

use crate::AppError;

pub async fn list(db: &DatabaseConnection, account: &AccountId) -> Result<Vec<Endpoint>, AppError> {
    let rows = endpoint::find_in(account)
        .order_by_asc(endpoint::Column::CreatedAt)
        .all(db)
        .await?;
    let mut types: HashMap<String, Vec<EventType>> = HashMap::new();
    for sub in endpoint_event_type::find_in(account).all(db).await? {
        if let Ok(t) = sub.event_type.parse() {
            types.entry(sub.endpoint_id).or_default().push(t);
        }
    }
    rows.into_iter()
        .map(|row| {
            let event_types = types.remove(&row.id).unwrap_or_default();
            to_resource(row, event_types)
        })
        .collect()
}

pub fn to_resource(row: endpoint::Model, mut event_types: Vec<EventType>) -> Result<Endpoint, AppError> {
    event_types.sort();
    Ok(Endpoint {
        id: row.id.parse().map_err(AppError::internal)?,
        status: row.status.parse().map_err(AppError::internal)?,
        url: row.url,
        description: row.description,
        event_types,
        enabled: row.enabled,
        rate_limit: row.rate_limit,
        created_at: row.created_at,
    })
}
