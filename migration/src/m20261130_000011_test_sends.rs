use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Test sends are logged like deliveries and marked as tests (issue 12): an event, a
/// delivery and its one attempt. A column with a constant default costs no table rewrite,
/// and ingest's insert leaves it to the default.
const UP: &str = "ALTER TABLE deliveries ADD COLUMN test boolean NOT NULL DEFAULT false;";

const DOWN: &str = "ALTER TABLE deliveries DROP COLUMN test;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, DOWN).await
    }
}
