use apalis::prelude::*;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use service::accounts;

/// Periodic cleanup of rows that have outlived their purpose, and the attempt log's next
/// day partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Housekeeping;

/// How long delivery logs are kept (`WEBHOOKS_LOG_RETENTION`).
#[derive(Debug, Clone, Copy)]
pub struct Retention(pub std::time::Duration);

pub async fn run(
    _job: Housekeeping,
    db: Data<DatabaseConnection>,
    retention: Data<Retention>,
) -> Result<(), BoxDynError> {
    let sessions = accounts::delete_expired_sessions(&db).await?;
    let Retention(keep) = *retention;
    let pool = db.get_postgres_connection_pool();
    let made = crate::log_partitions::ensure(pool, chrono::Utc::now()).await?;
    let pruned = crate::retention::prune(pool, keep).await?;
    tracing::info!(expired_sessions = sessions, partitions_made = made.len(), ?pruned, "housekeeping done");
    Ok(())
}
