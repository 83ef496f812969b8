use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// When an endpoint stopped being healthy (`failing_since`, SPEC §11; NULL while healthy) and
/// when its status last changed (`status_since`; NULL: not since it was created), so the
/// dashboard and the API can say "failing since" and "disabled since" (SPEC §8).
const UP: &str = r#"
ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS status_since timestamptz,
    ADD COLUMN IF NOT EXISTS failing_since timestamptz;
UPDATE endpoints SET failing_since = updated_at WHERE status <> 'healthy';
"#;

const DOWN: &str = r#"
ALTER TABLE endpoints DROP COLUMN IF EXISTS status_since, DROP COLUMN IF EXISTS failing_since;
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
