//! The apalis jobs on PostgreSQL: notification emails, bulk retries and housekeeping.
//! Deliveries are not jobs: the dispatcher sends them (the deliveries table is the queue,
//! SPEC §6 "How it must scale"); `startup::run_workers` runs both.

pub mod bulk;
mod housekeeping;
pub mod notify;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
pub use housekeeping::Housekeeping;
use sea_orm::DatabaseConnection;
use tokio::{sync::watch, task::JoinHandle};

use crate::{config::Config, email::Mailer};

/// How often housekeeping is queued. Several processes queueing it is harmless: it is
/// idempotent, and retention runs in one process at a time.
pub(crate) const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);
/// First and longest pause before restarting a failed apalis worker.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// How long running jobs get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The running apalis workers of one process.
pub struct Jobs {
    workers: Vec<JoinHandle<()>>,
    scheduler: JoinHandle<()>,
}

impl Jobs {
    /// Starts one worker per job type, named `<job>-<instance>-<generation>`, each restarted
    /// after a failure until `stop` turns true.
    pub fn start(
        db: &DatabaseConnection,
        config: &Config,
        instance: &str,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let pool = db.get_postgres_connection_pool();
        let housekeeping: PostgresStorage<Housekeeping> = PostgresStorage::new(pool);
        let emails: PostgresStorage<notify::NotifyJob> = PostgresStorage::new(pool);
        let bulk_retries: PostgresStorage<bulk::BulkRetryJob> = PostgresStorage::new(pool);
        let notifier = Arc::new(notify::Notifier {
            mailer: Mailer::from_config(config.smtp_url.as_deref(), &config.mail_dir, &config.mail_from)?,
            public_url: config.public_url(),
            attempt_timeout: config.attempt_timeout,
        });
        let retention = housekeeping::Retention(config.log_retention, config.retention_share);
        let supervised =
            |job: &str, monitor| tokio::spawn(supervise(stop.clone(), format!("{job}-{instance}"), monitor));
        let workers = vec![
            supervised("housekeeping", {
                let (db, storage, stop) = (db.clone(), housekeeping.clone(), stop.clone());
                Box::new(move |name| {
                    let (db, storage, stop) = (db.clone(), storage.clone(), stop.clone());
                    Monitor::new().register(move |_| {
                        WorkerBuilder::new(name.as_str())
                            .backend(storage.clone())
                            .data(db.clone())
                            .data(retention)
                            .data(stop.clone())
                            .build(housekeeping::run)
                    })
                })
            }),
            supervised("notify", {
                let db = db.clone();
                Box::new(move |name| {
                    let (db, storage, notifier) = (db.clone(), emails.clone(), notifier.clone());
                    Monitor::new().register(move |_| {
                        WorkerBuilder::new(name.as_str())
                            .backend(storage.clone().with_pubsub())
                            .data(db.clone())
                            .data(notifier.clone())
                            .build(notify::run)
                    })
                })
            }),
            supervised("bulk-retry", {
                let db = db.clone();
                Box::new(move |name| {
                    let (db, storage) = (db.clone(), bulk_retries.clone());
                    Monitor::new().register(move |_| {
                        WorkerBuilder::new(name.as_str())
                            .backend(storage.clone().with_pubsub())
                            .data(db.clone())
                            .build(bulk::run)
                    })
                })
            }),
        ];
        let scheduler = tokio::spawn(schedule_housekeeping(housekeeping));
        Ok(Jobs { workers, scheduler })
    }

    /// Waits for the workers to stop (after `stop` turned true) and stops the scheduler.
    pub async fn stopped(self) {
        for worker in self.workers {
            let _ = worker.await;
        }
        self.scheduler.abort();
    }
}

/// Builds the `Monitor` of one worker generation from the worker's name.
type MonitorFor = Box<dyn Fn(String) -> Monitor + Send>;

/// Runs one apalis worker (its own `Monitor`) until shutdown. A backend error (PostgreSQL
/// restarting, a dropped connection) ends an apalis worker for good; here it starts again,
/// after a pause that doubles while it keeps failing, so an outage neither stops the jobs
/// until the process restarts nor makes them spin. On shutdown running jobs get 30 s.
async fn supervise(mut stop: watch::Receiver<bool>, name: String, monitor: MonitorFor) {
    let mut pause = RESTART_MIN;
    for generation in 0.. {
        let monitor = monitor(format!("{name}-{generation}"));
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
            if tokio::time::timeout(SHUTDOWN_GRACE, run).await.is_err() {
                tracing::warn!(worker = %name, "jobs still running after the shutdown grace period");
            }
            return;
        };
        if *stop.borrow() {
            return;
        }
        if started.elapsed() > RESTART_MAX * 2 {
            pause = RESTART_MIN;
        }
        let error = ended.err().map(|e| e.to_string()).unwrap_or_else(|| "ended".to_owned());
        tracing::warn!(worker = %name, %error, retry_in_ms = pause.as_millis() as u64, "job worker failed; restarting it");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        pause = (pause * 2).min(RESTART_MAX);
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
