//! Schema migrations. Written as SQL so the partial indexes and constraints are exactly
//! what the queries of the delivery engine and the log viewer need.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_tables;
mod m20261129_000002_delivery_engine;
mod m20261129_000003_bulk_retries;
mod m20261130_000004_hot_path;
mod m20261130_000005_ingest_quota_windows;
mod m20261130_000006_delivery_queue;
mod m20261130_000007_endpoint_health_times;
mod m20261130_000008_retry_budget;
mod m20261130_000009_lean_log;
mod m20261130_000010_recover;
mod m20261130_000011_test_sends;
mod m20261130_000012_invitations;
mod m20261130_000013_bulk_retry_filters;
mod m20261201_000014_owner_notices;
mod m20261207_000015_sent_headers;
mod m20261207_000016_attempt_days;
mod m20261207_000017_event_days;

pub struct Migrator;

/// Every migration is plain SQL: run one script on the migration's connection.
pub(crate) async fn run_sql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await.map(|_| ())
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_tables::Migration),
            Box::new(m20261129_000002_delivery_engine::Migration),
            Box::new(m20261129_000003_bulk_retries::Migration),
            Box::new(m20261130_000004_hot_path::Migration),
            Box::new(m20261130_000005_ingest_quota_windows::Migration),
            Box::new(m20261130_000006_delivery_queue::Migration),
            Box::new(m20261130_000007_endpoint_health_times::Migration),
            Box::new(m20261130_000008_retry_budget::Migration),
            Box::new(m20261130_000009_lean_log::Migration),
            Box::new(m20261130_000010_recover::Migration),
            Box::new(m20261130_000011_test_sends::Migration),
            Box::new(m20261130_000012_invitations::Migration),
            Box::new(m20261130_000013_bulk_retry_filters::Migration),
            Box::new(m20261201_000014_owner_notices::Migration),
            Box::new(m20261207_000015_sent_headers::Migration),
            Box::new(m20261207_000016_attempt_days::Migration),
            Box::new(m20261207_000017_event_days::Migration),
        ]
    }
}
