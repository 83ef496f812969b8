//! Background work on apalis with PostgreSQL storage. `serve` and `worker` both run
//! `run_workers`; several processes can run it against one database.

mod housekeeping;

use std::{future::Future, time::Duration};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use sea_orm::DatabaseConnection;

pub use housekeeping::Housekeeping;

/// How often housekeeping is queued. Several processes queueing it is harmless: it is
/// idempotent.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Runs the workers until `shutdown` resolves, then lets in-flight jobs finish.
pub async fn run_workers(
    db: DatabaseConnection,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = db.get_postgres_connection_pool().clone();
    let storage: PostgresStorage<Housekeeping> = PostgresStorage::new(&pool);
    let scheduler = tokio::spawn(schedule_housekeeping(storage.clone()));
    let monitor = Monitor::new()
        .register({
            let db = db.clone();
            move |_| {
                WorkerBuilder::new("housekeeping")
                    .backend(storage.clone())
                    .data(db.clone())
                    .build(housekeeping::run)
            }
        })
        .shutdown_timeout(Duration::from_secs(30));
    tracing::info!("workers started");
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await;
    scheduler.abort();
    tracing::info!("workers stopped");
    result.map_err(|e| anyhow::anyhow!("worker monitor failed: {e}"))
}

async fn schedule_housekeeping(mut storage: PostgresStorage<Housekeeping>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        if let Err(err) = storage.push(Housekeeping).await {
            tracing::warn!(%err, "could not queue housekeeping");
        }
    }
}
