//! Background work. `serve` and `worker` both run `run_workers`; any number of processes
//! can run it against one database. Deliveries go through the dispatcher (the deliveries
//! table is the queue, SPEC §6 "How it must scale"); apalis on PostgreSQL runs the other
//! jobs: notification emails and housekeeping.

pub mod bulk;
mod housekeeping;
pub mod notify;

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
pub use housekeeping::Housekeeping;
use sea_orm::DatabaseConnection;

use crate::{
    config::Config,
    delivery::dispatcher::Dispatcher,
    engine::DeliveryEngine,
    notify::Mailer,
};

/// How often housekeeping is queued. Several processes queueing it is harmless: it is
/// idempotent.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Runs the dispatcher and the apalis workers until `shutdown` resolves, then lets
/// in-flight attempts and jobs finish.
pub async fn run_workers(
    db: DatabaseConnection,
    config: Arc<Config>,
    engine: Arc<DeliveryEngine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = db.get_postgres_connection_pool().clone();
    let housekeeping: PostgresStorage<Housekeeping> = PostgresStorage::new(&pool);
    let emails: PostgresStorage<notify::NotifyJob> = PostgresStorage::new(&pool);
    let bulk_retries: PostgresStorage<bulk::BulkRetryJob> = PostgresStorage::new(&pool);
    let notifier = Arc::new(notify::Notifier {
        mailer: Mailer::from_config(config.smtp_url.as_deref(), &config.mail_dir, &config.mail_from)?,
        public_url: config.public_url(),
    });
    let dispatcher = Arc::new(Dispatcher {
        pool: pool.clone(),
        engine,
        schedule: config.retry_schedule.clone(),
        worker_id: format!("{}-{}", std::process::id(), entity::ids::encode_u128(rand::random::<u128>())),
        lease: config.attempt_timeout * 2 + Duration::from_secs(10),
        concurrency: config.dispatch_concurrency.max(1),
        events: Arc::new(notify::QueueNotifications { storage: emails.clone() }),
    });
    let retention = config.log_retention;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let dispatching = tokio::spawn(dispatcher.run(stop_rx));
    let scheduler = tokio::spawn(schedule_housekeeping(housekeeping.clone()));
    let monitor = Monitor::new()
        .register({
            let db = db.clone();
            move |_| {
                WorkerBuilder::new("housekeeping")
                    .backend(housekeeping.clone())
                    .data(db.clone())
                    .data(housekeeping::Retention(retention))
                    .build(housekeeping::run)
            }
        })
        .register({
            let db = db.clone();
            move |_| {
                WorkerBuilder::new("notify")
                    .backend(emails.clone().with_pubsub())
                    .data(db.clone())
                    .data(notifier.clone())
                    .build(notify::run)
            }
        })
        .register({
            let db = db.clone();
            move |_| WorkerBuilder::new("bulk-retry").backend(bulk_retries.clone().with_pubsub()).data(db.clone()).build(bulk::run)
        })
        .shutdown_timeout(Duration::from_secs(30));
    tracing::info!("workers started");
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            Ok(())
        })
        .await;
    scheduler.abort();
    let _ = dispatching.await;
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
