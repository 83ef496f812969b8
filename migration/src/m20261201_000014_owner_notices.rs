use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// When the owners were last warned that an endpoint is failing, and last told it recovered:
/// a flapping endpoint (a flaky receiver turns failing and back dozens of times a minute) gets
/// one warning an hour and one recovery notice per warning, not an email per flap.
const UP: &str = r#"
ALTER TABLE endpoints ADD COLUMN owners_warned_at timestamptz, ADD COLUMN owners_told_recovered_at timestamptz;
"#;

const DOWN: &str = r#"
ALTER TABLE endpoints DROP COLUMN owners_warned_at, DROP COLUMN owners_told_recovered_at;
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
