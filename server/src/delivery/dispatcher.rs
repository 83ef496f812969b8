//! The delivery loop of a worker process: lease endpoints with due work, send their
//! deliveries in order within the rate limit, record each attempt, repeat. Woken by
//! LISTEN/NOTIFY at ingest, with a short backstop poll for retries coming due.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::{watch, Semaphore};

use super::{
    attempt::{self, AttemptRequest},
    health::Change,
    rate_limit::SlidingWindow,
    record::{record, Recorded},
    signing::WebhookSecret,
    store::{self, ClaimedEndpoint},
};
use crate::{config::RetrySchedule, engine::DeliveryEngine, ingest::NOTIFY_CHANNEL};

/// How often to look for retries that came due when no notification arrives.
const BACKSTOP_POLL: Duration = Duration::from_millis(500);
/// Deliveries fetched per query for one endpoint.
const BATCH: i64 = 20;

/// What the dispatcher tells the rest of the system about endpoint health changes.
pub trait HealthEvents: Send + Sync + 'static {
    fn changed(&self, endpoint_id: &str, change: &Change, last_error: &str);
}

pub struct Dispatcher {
    pub pool: PgPool,
    pub engine: Arc<DeliveryEngine>,
    pub schedule: RetrySchedule,
    pub worker_id: String,
    /// Longer than an attempt can take, so a live worker never loses its lease mid-send.
    pub lease: Duration,
    pub concurrency: usize,
    pub events: Arc<dyn HealthEvents>,
}

impl Dispatcher {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(mut l) => l.listen(NOTIFY_CHANNEL).await.ok().map(|_| l),
            Err(err) => {
                tracing::warn!(%err, "LISTEN unavailable; polling only");
                None
            }
        };
        tracing::info!(worker = %self.worker_id, "dispatcher started");
        while !*shutdown.borrow() {
            let free = slots.available_permits();
            let claimed = if free == 0 { Vec::new() } else { self.claim(free).await };
            let busy = !claimed.is_empty() && claimed.len() == free;
            for endpoint in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let (me, stop) = (self.clone(), shutdown.clone());
                tokio::spawn(async move {
                    me.drain(endpoint, stop).await;
                    drop(permit);
                });
            }
            if !busy {
                wait_for_work(&mut listener, &mut shutdown).await;
            }
        }
        // Graceful shutdown: in-flight attempts finish and leases are released.
        let _ = slots.acquire_many(self.concurrency as u32).await;
        tracing::info!(worker = %self.worker_id, "dispatcher stopped");
    }

    async fn claim(&self, free: usize) -> Vec<ClaimedEndpoint> {
        match store::claim_endpoints(&self.pool, &self.worker_id, free as i64, self.lease).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(%err, "claiming endpoints failed; retrying shortly");
                tokio::time::sleep(BACKSTOP_POLL).await;
                Vec::new()
            }
        }
    }

    /// Sends an endpoint's due deliveries in order, one at a time, within its rate limit.
    #[tracing::instrument(skip_all, fields(endpoint = %endpoint.id))]
    async fn drain(&self, endpoint: ClaimedEndpoint, shutdown: watch::Receiver<bool>) {
        if let Err(err) = self.drain_inner(&endpoint, &shutdown).await {
            tracing::warn!(%err, "sending stopped by a database error; the lease will expire");
            return;
        }
        if let Err(err) = store::release_lease(&self.pool, &endpoint.id, &self.worker_id).await {
            tracing::warn!(%err, "could not release the lease; it will expire");
        }
    }

    async fn drain_inner(&self, claimed: &ClaimedEndpoint, shutdown: &watch::Receiver<bool>) -> sqlx::Result<()> {
        let mut window = SlidingWindow::new(claimed.rate_limit.max(1) as u32, store::recent_sends(&self.pool, &claimed.id).await?);
        // While the breaker is half-open only one probe goes out.
        let batch = if claimed.status == "failing" { 1 } else { BATCH };
        loop {
            // Re-read per batch so edits (URL, secret rotation, rate limit) apply promptly.
            let Some(endpoint) = store::current(&self.pool, &claimed.id, &self.worker_id).await? else {
                return Ok(()); // disabled meanwhile, or the lease was lost
            };
            if endpoint.rate_limit as u32 != window.limit() {
                window = SlidingWindow::new(endpoint.rate_limit.max(1) as u32, store::recent_sends(&self.pool, &endpoint.id).await?);
            }
            let secrets: Vec<WebhookSecret> = endpoint.secrets.iter().filter_map(|s| WebhookSecret::parse(s).ok()).collect();
            let due = store::due_deliveries(&self.pool, &endpoint.id, batch).await?;
            if due.is_empty() {
                return Ok(());
            }
            for delivery in &due {
                if *shutdown.borrow() {
                    return Ok(());
                }
                let wait = window.wait(std::time::Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if !store::renew_lease(&self.pool, &endpoint.id, &self.worker_id, self.lease).await? {
                    tracing::warn!("lease lost; another worker owns this endpoint now");
                    return Ok(());
                }
                let remaining = window.remaining_after_one(std::time::Instant::now());
                let started_at = Utc::now();
                let result = attempt::send(
                    self.engine.client(),
                    self.engine.guard(),
                    AttemptRequest {
                        url: &endpoint.url,
                        msg_id: &delivery.event_id,
                        body: &delivery.payload,
                        secrets: &secrets,
                        rate_limit: Some((window.limit(), remaining)),
                    },
                )
                .await;
                window.record(std::time::Instant::now());
                let recorded = record(&self.pool, &endpoint.id, &endpoint.account_id, delivery, &result, started_at, &self.schedule).await?;
                self.report(&endpoint.id, &recorded);
                if !recorded.keep_sending {
                    return Ok(());
                }
            }
            if batch == 1 {
                return Ok(());
            }
        }
    }

    fn report(&self, endpoint_id: &str, recorded: &Recorded) {
        if recorded.change != Change::None {
            tracing::info!(endpoint = endpoint_id, change = ?recorded.change, "endpoint health changed");
            self.events.changed(endpoint_id, &recorded.change, &recorded.last_error);
        }
    }
}

async fn wait_for_work(listener: &mut Option<PgListener>, shutdown: &mut watch::Receiver<bool>) {
    let notified = async {
        match listener.as_mut() {
            Some(l) => {
                let _ = l.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = notified => {}
        _ = tokio::time::sleep(BACKSTOP_POLL) => {}
        _ = shutdown.changed() => {}
    }
}
