//! sea-orm entities, one module per table. Tables that belong to an account expose
//! `find_in(account)` so a query that forgets the tenant has to be written on purpose.

pub mod account;
pub mod api_key;
pub mod attempt;
pub mod bulk_retry;
pub mod delivery;
pub mod delivery_queue;
pub mod endpoint;
pub mod endpoint_event_type;
pub mod event;
pub mod idempotency_key;
pub mod ingest_quota_window;
pub mod invitation;
pub mod session;
pub mod user;

/// Implements the tenant scope for an entity with an `account_id` column.
macro_rules! tenant_scoped {
    () => {
        pub fn find_in(account: &crate::AccountId) -> sea_orm::Select<Entity> {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            Entity::find().filter(Column::AccountId.eq(account.as_str()))
        }
    };
}
pub(crate) use tenant_scoped;
