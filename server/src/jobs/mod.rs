//! Background work. `serve` and `worker` both run `run_workers`; any number of processes
//! can run it against one database. Deliveries go through the dispatcher (the deliveries
//! table is the queue, SPEC §6 "How it must scale"); apalis on PostgreSQL runs the other
//! jobs: notification emails and housekeeping.

pub mod bulk;
mod housekeeping;
pub mod notify;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
pub use housekeeping::Housekeeping;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use crate::{config::Config, dashboard_port::EnginePort, delivery::dispatcher::Dispatcher, notify::Mailer};

/// How often housekeeping is queued. Several processes queueing it is harmless: it is
/// idempotent.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);
/// Pause before restarting a dispatcher that ended unexpectedly.
const DISPATCHER_RESTART_DELAY: Duration = Duration::from_secs(1);
/// First and longest pause before restarting a failed apalis worker.
const JOB_RESTART_MIN: Duration = Duration::from_millis(500);
const JOB_RESTART_MAX: Duration = Duration::from_secs(30);
/// How long running jobs get to finish on shutdown.
const JOB_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs the dispatcher and the apalis workers until `shutdown` resolves, then lets
/// in-flight attempts and jobs finish.
pub async fn run_workers(
    db: DatabaseConnection,
    config: Arc<Config>,
    engine: Arc<EnginePort>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = db.get_postgres_connection_pool().clone();
    let housekeeping: PostgresStorage<Housekeeping> = PostgresStorage::new(&pool);
    let emails: PostgresStorage<notify::NotifyJob> = PostgresStorage::new(&pool);
    let bulk_retries: PostgresStorage<bulk::BulkRetryJob> = PostgresStorage::new(&pool);
    let notifier = Arc::new(notify::Notifier {
        mailer: Mailer::from_config(config.smtp_url.as_deref(), &config.mail_dir, &config.mail_from)?,
        public_url: config.public_url(),
        attempt_timeout: config.attempt_timeout,
    });
    // One name per process and restart: apalis registers a worker name under a session
    // advisory lock, so a name another process (or another of our pooled connections) still
    // holds would refuse to start.
    let instance = format!("{}-{}", std::process::id(), entity::ids::encode_u128(rand::random::<u128>()));
    let dispatcher = Arc::new(Dispatcher {
        // Its own connections: an ingest flood or a slow dashboard query can't starve sending.
        pool: crate::db::role_pool(&config, config.dispatch_pool_size())?,
        port: engine,
        schedule: config.retry_schedule.clone(),
        worker_id: instance.clone(),
        lease: config.attempt_timeout * 2 + Duration::from_secs(10),
        concurrency: config.dispatch_concurrency,
        events: Arc::new(notify::QueueNotifications),
    });
    let retention = config.log_retention;
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatching = tokio::spawn(supervise(dispatcher, stop_rx.clone()));
    let scheduler = tokio::spawn(schedule_housekeeping(housekeeping.clone()));
    let jobs = [
        tokio::spawn(supervise_jobs(stop_rx.clone(), {
            let (db, name) = (db.clone(), format!("housekeeping-{instance}"));
            move |generation| {
                let (db, name, storage) = (db.clone(), format!("{name}-{generation}"), housekeeping.clone());
                Monitor::new().register(move |_| {
                    WorkerBuilder::new(name.as_str())
                        .backend(storage.clone())
                        .data(db.clone())
                        .data(housekeeping::Retention(retention))
                        .build(housekeeping::run)
                })
            }
        })),
        tokio::spawn(supervise_jobs(stop_rx.clone(), {
            let (db, name) = (db.clone(), format!("notify-{instance}"));
            move |generation| {
                let (db, name, storage, notifier) =
                    (db.clone(), format!("{name}-{generation}"), emails.clone(), notifier.clone());
                Monitor::new().register(move |_| {
                    WorkerBuilder::new(name.as_str())
                        .backend(storage.clone().with_pubsub())
                        .data(db.clone())
                        .data(notifier.clone())
                        .build(notify::run)
                })
            }
        })),
        tokio::spawn(supervise_jobs(stop_rx, {
            let (db, name) = (db.clone(), format!("bulk-retry-{instance}"));
            move |generation| {
                let (db, name, storage) = (db.clone(), format!("{name}-{generation}"), bulk_retries.clone());
                Monitor::new().register(move |_| {
                    WorkerBuilder::new(name.as_str())
                        .backend(storage.clone().with_pubsub())
                        .data(db.clone())
                        .build(bulk::run)
                })
            }
        })),
    ];
    tracing::info!("workers started");
    shutdown.await;
    let _ = stop_tx.send(true);
    for job in jobs {
        let _ = job.await;
    }
    scheduler.abort();
    let _ = dispatching.await;
    tracing::info!("workers stopped");
    Ok(())
}

/// Runs the dispatcher until shutdown, starting it again should it ever end or panic
/// before then: a process whose HTTP side is up must not silently stop delivering.
async fn supervise(dispatcher: Arc<Dispatcher>, stop: watch::Receiver<bool>) {
    loop {
        let ended = tokio::spawn(dispatcher.clone().run(stop.clone())).await;
        if *stop.borrow() {
            return;
        }
        match ended {
            Err(err) if err.is_panic() => tracing::error!(%err, "the dispatcher panicked; restarting it"),
            _ => tracing::error!("the dispatcher stopped without being asked to; restarting it"),
        }
        tokio::time::sleep(DISPATCHER_RESTART_DELAY).await;
    }
}

/// Runs one apalis worker (its own `Monitor`) until shutdown. A backend error (PostgreSQL
/// restarting, a dropped connection) ends an apalis worker for good; here it starts again,
/// after a pause that doubles while it keeps failing, so an outage neither stops the jobs
/// until the process restarts nor makes them spin. On shutdown running jobs get 30 s.
async fn supervise_jobs(mut stop: watch::Receiver<bool>, monitor: impl Fn(usize) -> Monitor) {
    let mut pause = JOB_RESTART_MIN;
    for generation in 0.. {
        let monitor = monitor(generation);
        let context = monitor.context();
        let name = context.workers().first().map(|w| w.name().to_owned()).unwrap_or_default();
        let started = Instant::now();
        let run = monitor.run();
        tokio::pin!(run);
        let ended = tokio::select! {
            ended = &mut run => Some(ended),
            _ = stop.wait_for(|stopped| *stopped) => None,
        };
        let Some(ended) = ended else {
            let _ = context.shutdown();
            if tokio::time::timeout(JOB_SHUTDOWN_GRACE, run).await.is_err() {
                tracing::warn!(worker = %name, "jobs still running after the shutdown grace period");
            }
            return;
        };
        if *stop.borrow() {
            return;
        }
        if started.elapsed() > JOB_RESTART_MAX * 2 {
            pause = JOB_RESTART_MIN;
        }
        let error = ended.err().map(|e| e.to_string()).unwrap_or_else(|| "ended".to_owned());
        tracing::warn!(worker = %name, %error, retry_in_ms = pause.as_millis() as u64, "job worker failed; restarting it");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        pause = (pause * 2).min(JOB_RESTART_MAX);
    }
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
