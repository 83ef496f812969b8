use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An attempt's request headers as the lines they were sent as (`name: value`, one a line),
/// in plain text: the JSON object in `request_headers` cost a serializer in the engine and a
/// `jsonb` parse in PostgreSQL on every attempt, for a column only the attempt detail reads.
/// Rows written before keep their `request_headers`; new rows leave it NULL.
const UP: &str = r#"
ALTER TABLE attempts ADD COLUMN sent_headers text, ALTER COLUMN request_headers DROP NOT NULL;
"#;

/// Back to JSON objects: each line's name and value (a repeated name keeps its last value,
/// as `jsonb` did).
const DOWN: &str = r#"
UPDATE attempts SET request_headers = COALESCE((
    SELECT jsonb_object_agg(split_part(line, ': ', 1), substr(line, strpos(line, ': ') + 2) ORDER BY n)
    FROM regexp_split_to_table(sent_headers, E'\n') WITH ORDINALITY AS l(line, n)
    WHERE line <> ''
), '{}'::jsonb)
WHERE request_headers IS NULL;
ALTER TABLE attempts DROP COLUMN sent_headers, ALTER COLUMN request_headers SET NOT NULL;
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
