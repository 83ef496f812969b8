//! The delivery loop of a worker process: lease endpoints with due work, send their
//! deliveries in order within the rate limit, hand each outcome to the recorder, repeat.
//! Woken in memory by this process's ingest and by LISTEN for other processes' (`wake`),
//! with a short backstop poll for retries coming due.
//!
//! Per endpoint, a batch costs a share of one query (re-read the settings and fetch the due
//! deliveries of every endpoint that asks at once, `fetcher`; renewing the lease once a
//! quarter lease on a statement of its own) and one wait for the recorder's commit; attempts are written in batches by
//! `record`. The commit wait at the end of each batch is what keeps this correct: a delivery
//! is never fetched again before its previous attempt is on disk.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::{oneshot, watch, Notify, Semaphore};

use super::{
    attempt::{self, AttemptRequest, Target},
    error::EngineError,
    fetcher::Fetcher,
    health::{Change, Health},
    rate_limit::SlidingWindow,
    record::{self, Outcome, QueuedJob, RecorderHandle},
    retry,
    signing::WebhookSecret,
    store::{self, ClaimedEndpoint},
};
use crate::{
    config::RetrySchedule,
    dashboard_port::EnginePort,
    wake::{self, Announcer, Wakers, ATTEMPTS_CHANNEL, DELIVERIES_CHANNEL},
};

/// How often to look for retries that came due when no notification arrives.
const BACKSTOP_POLL: Duration = Duration::from_millis(500);
/// Claims are at least this far apart, however many notifications arrive.
const CLAIM_SPACING: Duration = Duration::from_millis(20);
/// Deliveries fetched per query for one endpoint; the rate limit's maximum.
const BATCH: i64 = 100;
/// How long an endpoint that ran out of due work keeps its lease waiting for more, so a
/// steady trickle of events does not pay for a claim, a lease and a rate-window read each.
const LINGER: Duration = Duration::from_secs(1);
/// Open delivery logs hear of new attempts at most this often from one process.
const LIVE_ANNOUNCE_EVERY: Duration = Duration::from_millis(100);
/// While lingering, how often to look for retries coming due.
const LINGER_POLL: Duration = Duration::from_millis(500);
/// Pause before restarting a dispatcher that ended unexpectedly.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the dispatcher tells the rest of the system about endpoint health changes.
pub trait HealthEvents: Send + Sync + 'static {
    /// The job (an email to the owners) a health change causes, if any. The recorder queues it
    /// in the transaction that records the change, so a crash can't lose it.
    fn job_for(&self, endpoint_id: &str, change: &Change, last_error: &str) -> Option<QueuedJob>;
}

pub struct Dispatcher {
    pub pool: PgPool,
    pub port: Arc<EnginePort>,
    pub schedule: RetrySchedule,
    pub worker_id: String,
    /// Longer than an attempt can take, so a live worker never loses its lease mid-send.
    pub lease: Duration,
    /// Endpoints sent to at once; 0 turns dispatching off in this process.
    pub concurrency: usize,
    /// Sent-but-uncommitted outcomes one endpoint may have: what a crash can make it re-send.
    pub max_uncommitted: usize,
    pub events: Arc<dyn HealthEvents>,
}

/// What a drain shares with the loop that started it.
struct DrainContext {
    recorder: RecorderHandle,
    fetcher: Fetcher,
    /// Wakes this endpoint's drain when work for it is published.
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Dispatcher {
    /// Runs the dispatcher until shutdown, starting it again should it ever end or panic
    /// before then: a process whose HTTP side is up must not silently stop delivering.
    pub async fn supervise(self: Arc<Self>, stop: watch::Receiver<bool>) {
        loop {
            let ended = tokio::spawn(self.clone().run(stop.clone())).await;
            if *stop.borrow() {
                return;
            }
            match ended {
                Err(err) if err.is_panic() => tracing::error!(%err, "the dispatcher panicked; restarting it"),
                _ => tracing::error!("the dispatcher stopped without being asked to; restarting it"),
            }
            tokio::time::sleep(RESTART_DELAY).await;
        }
    }

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.concurrency == 0 {
            tracing::info!("dispatching is off in this process (WEBHOOKS_DISPATCH_CONCURRENCY=0)");
            let _ = shutdown.wait_for(|stop| *stop).await;
            return;
        }
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let live = Announcer::spawn(self.pool.clone(), ATTEMPTS_CHANNEL, LIVE_ANNOUNCE_EVERY);
        let (recorder, recording) = record::spawn(self.pool.clone(), self.events.clone(), live, shutdown.clone());
        let fetcher = Fetcher::spawn(self.pool.clone(), self.worker_id.clone());
        let wakers = self.port.wakers().clone();
        let draining = Draining::default();
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(mut l) => l.listen(DELIVERIES_CHANNEL).await.ok().map(|_| l),
            Err(err) => {
                tracing::warn!(%err, "LISTEN unavailable; polling only");
                None
            }
        };
        tracing::info!(worker = %self.worker_id, concurrency = self.concurrency, "dispatcher started");
        while !*shutdown.borrow() {
            let claimed_at = Instant::now();
            let free = slots.available_permits();
            let claimed = if free == 0 { Vec::new() } else { self.claim(free, &draining.ids()).await };
            let busy = !claimed.is_empty() && claimed.len() == free;
            for endpoint in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let me = self.clone();
                let ctx = DrainContext {
                    recorder: recorder.clone(),
                    fetcher: fetcher.clone(),
                    wake: wakers.of(&endpoint.id),
                    slots: slots.clone(),
                    shutdown: shutdown.clone(),
                };
                let guard = draining.enter(&endpoint.id);
                tokio::spawn(async move {
                    me.drain(endpoint, ctx).await;
                    drop(guard);
                    drop(permit);
                });
            }
            if !busy {
                wait_for_work(&mut listener, &mut shutdown, &wakers).await;
            }
            tokio::time::sleep(CLAIM_SPACING.saturating_sub(claimed_at.elapsed())).await;
        }
        // Graceful shutdown: in-flight attempts finish, their outcomes are written, leases
        // are released.
        let _ = slots.acquire_many(self.concurrency as u32).await;
        drop(recorder);
        let _ = recording.await;
        tracing::info!(worker = %self.worker_id, "dispatcher stopped");
    }

    /// `busy`: endpoints this process is still draining. Their lease may have run out while
    /// a drain waited for the database; claiming them again would start a second drain.
    async fn claim(&self, free: usize, busy: &[String]) -> Vec<ClaimedEndpoint> {
        match store::claim_endpoints(&self.pool, &self.worker_id, free as i64, self.lease, busy).await {
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
    async fn drain(&self, endpoint: ClaimedEndpoint, mut ctx: DrainContext) {
        if let Err(err) = self.drain_inner(endpoint.clone(), &mut ctx).await {
            tracing::warn!(%err, "sending stopped by a database error; the lease will expire");
            return;
        }
        if let Err(err) = store::release_lease(&self.pool, &endpoint.id, &self.worker_id).await {
            tracing::warn!(%err, "could not release the lease; it will expire");
        }
    }

    async fn drain_inner(&self, mut endpoint: ClaimedEndpoint, ctx: &mut DrainContext) -> Result<(), EngineError> {
        let mut window =
            SlidingWindow::new(endpoint.rate_limit.max(1) as u32, store::recent_sends(&self.pool, &endpoint.id).await?);
        // The claim just set the lease.
        let mut refreshed = Instant::now();
        let mut idle_since: Option<Instant> = None;
        loop {
            let probing = endpoint.status == entity::EndpointStatus::Failing;
            // While the breaker is half-open only one probe goes out.
            let batch = if probing { 1 } else { BATCH };
            // Listen before looking, so a notification for work committed after the query
            // below is never missed.
            let wake = ctx.wake.clone();
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Re-read the settings and fetch the due work in one round trip, renewing the lease
            // once a quarter of it has passed (a renewal is a write and a commit; a read is not).
            // The read joins the other drains' in one statement (`fetcher`).
            let renew = refreshed.elapsed() >= self.lease / 4;
            let fetched = if renew {
                store::renew_and_fetch(&self.pool, &endpoint.id, &self.worker_id, self.lease, batch).await?
            } else {
                ctx.fetcher.fetch(&endpoint.id, batch).await?
            };
            let Some((current, due)) = fetched else {
                return Ok(()); // disabled meanwhile, or the lease was lost
            };
            if renew {
                refreshed = Instant::now();
            }
            if current.rate_limit as u32 != window.limit() {
                let recent = store::recent_sends(&self.pool, &current.id).await?;
                window = SlidingWindow::new(current.rate_limit.max(1) as u32, recent);
            }
            endpoint = current;
            if due.is_empty() {
                let idle = *idle_since.get_or_insert_with(Instant::now);
                if idle.elapsed() >= LINGER || ctx.slots.available_permits() == 0 || *ctx.shutdown.borrow() {
                    return Ok(());
                }
                // Look again when work for this endpoint is published, or a retry may have come due.
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(LINGER_POLL) => {}
                    _ = ctx.shutdown.changed() => return Ok(()),
                }
                continue;
            }
            idle_since = None;
            let keep_sending = self.send_batch(&mut endpoint, due, &mut window, &mut refreshed, ctx).await?;
            // Every slot taken: other endpoints may be waiting for one, so yield after each
            // batch; the claim serves endpoints least recently released first (round robin).
            let others_may_wait = ctx.slots.available_permits() == 0;
            if !keep_sending || probing || others_may_wait || *ctx.shutdown.borrow() {
                return Ok(());
            }
        }
    }

    /// Sends one batch in order and waits until its outcomes are committed. Returns whether
    /// the endpoint may be sent more (it is not failing or disabled).
    async fn send_batch(
        &self,
        endpoint: &mut ClaimedEndpoint,
        due: Vec<store::DueDelivery>,
        window: &mut SlidingWindow,
        refreshed: &mut Instant,
        ctx: &mut DrainContext,
    ) -> Result<bool, EngineError> {
        let secrets: Vec<WebhookSecret> =
            endpoint.secrets.iter().filter_map(|s| WebhookSecret::parse(s).ok()).collect();
        let target = Target::new(&endpoint.url, &secrets);
        let mut health = Health {
            status: endpoint.status,
            consecutive_failures: endpoint.consecutive_failures,
            failing_since: endpoint.failing_since,
        };
        let mut uncommitted: VecDeque<oneshot::Receiver<Result<(), EngineError>>> = VecDeque::new();
        let mut keep_sending = true;
        for delivery in due {
            if *ctx.shutdown.borrow() {
                break;
            }
            while uncommitted.len() >= self.max_uncommitted {
                if let Some(commit) = uncommitted.pop_front() {
                    commit.await.map_err(|_| EngineError::RecorderStopped)??;
                }
            }
            let wait = window.wait(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            // A slow batch (a low rate limit, slow receivers) renews its lease as it goes.
            if refreshed.elapsed() >= self.lease / 4 {
                if store::renew(&self.pool, &endpoint.id, &self.worker_id, self.lease).await?.is_none() {
                    tracing::warn!("lease lost; another worker owns this endpoint now");
                    keep_sending = false;
                    break;
                }
                *refreshed = Instant::now();
            }
            let remaining = window.remaining_after_one(Instant::now());
            let started_at = Utc::now();
            let result = attempt::send(
                self.port.client(),
                self.port.guard(),
                AttemptRequest {
                    target: &target,
                    msg_id: &delivery.event_id,
                    body: delivery.payload.clone(),
                    rate_limit: Some((window.limit(), remaining)),
                },
            )
            .await;
            window.record(Instant::now());
            let jitter = retry::random_jitter_unit(&mut rand::thread_rng());
            let plan = record::plan(
                &health,
                delivery.attempt_count - delivery.budget_from,
                delivery.previous_try_at,
                &result,
                &self.schedule,
                jitter,
                std::time::SystemTime::now(),
            );
            health = plan.health.clone();
            keep_sending = plan.keep_sending();
            let outcome = Outcome {
                endpoint_id: endpoint.id.clone(),
                account_id: endpoint.account_id.clone(),
                delivery,
                result,
                started_at,
                plan,
                committed: None,
            };
            uncommitted.push_back(ctx.recorder.submit(outcome).await);
            if !keep_sending {
                break;
            }
        }
        endpoint.status = health.status;
        endpoint.consecutive_failures = health.consecutive_failures;
        endpoint.failing_since = health.failing_since;
        // One recorder commits in queue order: once the last outcome is on disk, all are.
        if let Some(commit) = uncommitted.pop_back() {
            commit.await.map_err(|_| EngineError::RecorderStopped)??;
        }
        Ok(keep_sending)
    }
}

/// Endpoints with a drain running in this process.
#[derive(Default, Clone)]
struct Draining(Arc<std::sync::Mutex<HashSet<String>>>);

struct DrainingGuard(Draining, String);

impl Draining {
    fn enter(&self, id: &str) -> DrainingGuard {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned());
        DrainingGuard(self.clone(), id.to_owned())
    }

    fn ids(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

impl Drop for DrainingGuard {
    fn drop(&mut self) {
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

/// Waits for new work: another process's notification (each endpoint it names is passed on
/// to its drain here, if any), an in-memory wake for an endpoint with no drain here, the
/// backstop poll, or shutdown. Notifications already buffered are passed on too: one claim
/// serves them all.
async fn wait_for_work(listener: &mut Option<PgListener>, shutdown: &mut watch::Receiver<bool>, wakers: &Wakers) {
    let notified = async {
        match listener.as_mut() {
            Some(l) => match l.recv().await {
                Ok(n) => {
                    wake::names(n.payload()).for_each(|a| wakers.wake(a));
                    while let Some(n) = l.next_buffered() {
                        wake::names(n.payload()).for_each(|a| wakers.wake(a));
                    }
                }
                // The listener reconnects on the next recv; don't spin meanwhile.
                Err(_) => tokio::time::sleep(BACKSTOP_POLL).await,
            },
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = notified => {}
        _ = wakers.claim_wanted() => {}
        _ = tokio::time::sleep(BACKSTOP_POLL) => {}
        _ = shutdown.changed() => {}
    }
}
