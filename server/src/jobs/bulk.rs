use apalis::prelude::*;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

/// Runs one bulk retry (see `crate::bulk_retry`); safe to run twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkRetryJob {
    pub id: String,
}

pub async fn run(job: BulkRetryJob, db: Data<DatabaseConnection>) -> Result<(), BoxDynError> {
    crate::bulk_retry::run(db.get_postgres_connection_pool(), &job.id).await?;
    tracing::info!(bulk_retry = %job.id, "bulk retry finished");
    Ok(())
}
