use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// When an endpoint's status last changed, so the dashboard and the API can say "failing
/// since" and "disabled since" (issue 12). NULL: unchanged since the endpoint was created.
const UP: &str = r#"
ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS status_since timestamptz;
"#;

const DOWN: &str = r#"
ALTER TABLE endpoints DROP COLUMN IF EXISTS status_since;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, DOWN).await
    }
}
