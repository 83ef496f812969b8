use apalis::prelude::*;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use service::accounts;

/// Periodic cleanup of rows that have outlived their purpose, and the delivery log's next
/// day partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Housekeeping;

/// How long delivery logs are kept (`WEBHOOKS_LOG_RETENTION`), and how fast what is older
/// is deleted (`WEBHOOKS_RETENTION_SHARE`).
#[derive(Debug, Clone, Copy)]
pub struct Retention(pub std::time::Duration, pub crate::retention::Pace);

pub async fn run(
    _job: Housekeeping,
    db: Data<DatabaseConnection>,
    retention: Data<Retention>,
    stop: Data<tokio::sync::watch::Receiver<bool>>,
) -> Result<(), BoxDynError> {
    let sessions = accounts::delete_expired_sessions(&db).await?;
    let Retention(keep, pace) = *retention;
    let pool = db.get_postgres_connection_pool();
    let made = crate::log_partitions::ensure(pool, chrono::Utc::now()).await?;
    let started = std::time::Instant::now();
    match crate::retention::prune(pool, keep, pace, (*stop).clone()).await? {
        // Runs are queued hourly; one that outlasts the hour means deletes are made more slowly
        // than the log grows, and the backlog of expired rows grows with it.
        Some(pruned) if started.elapsed() > super::HOUSEKEEPING_EVERY => tracing::warn!(
            ?pruned,
            took_s = started.elapsed().as_secs(),
            share = pace.share(),
            "log retention took longer than the hour between runs, so it is falling behind the log; \
             raise WEBHOOKS_RETENTION_SHARE if this lasts"
        ),
        Some(pruned) => tracing::info!(
            expired_sessions = sessions,
            partitions_made = made.len(),
            ?pruned,
            took_s = started.elapsed().as_secs(),
            "housekeeping done"
        ),
        None => tracing::info!(
            expired_sessions = sessions,
            partitions_made = made.len(),
            "housekeeping done; retention is already running in another process"
        ),
    }
    Ok(())
}
