use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// SPEC §8: a manual retry or bulk retry starts a fresh attempt budget. `budget_from` is the
/// delivery's `attempt_count` when its current budget began (0: at its creation); the retry
/// schedule counts only the attempts after it, while attempt numbers keep counting up.
const UP: &str = r#"
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS budget_from integer NOT NULL DEFAULT 0;
"#;

const DOWN: &str = r#"
ALTER TABLE deliveries DROP COLUMN IF EXISTS budget_from;
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
