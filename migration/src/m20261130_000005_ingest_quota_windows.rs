use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The shared half of the ingest quota (`server/src/quota.rs`): per account, the second being
/// counted and how many events all processes have reserved in it. One row per account, updated
/// in place (a HOT update: nothing indexed changes).
const UP: &str = r#"
CREATE TABLE ingest_quota_windows (
    account_id  text PRIMARY KEY,
    second      bigint NOT NULL,
    used        bigint NOT NULL
);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS ingest_quota_windows;
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
