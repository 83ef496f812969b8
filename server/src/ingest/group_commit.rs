//! Group commit for ingest: one task per process stores what concurrent requests sent while
//! its previous statement ran, in one subscriptions query and one insert statement (one
//! commit, no transaction around them: the insert is atomic on its own). Every request gets
//! its answer only after that commit, so a 202 still means stored.
//!
//! One statement at a time, with delivery ids generated in the order the requests arrived:
//! within a process, an endpoint receives events in the order their requests were accepted.
//! A batch that fails is retried request by request, so one bad request never fails the
//! others, and each gets its own error.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::Utc;
use entity::{AccountId, EventId};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

use super::{insert_new, subscriptions, IngestError, NewEvent, Rows};
use crate::wake::{Announcer, Wakers};

/// Most events in one statement; a request is never split.
const MAX_EVENTS: usize = 5_000;
/// Requests waiting for the batcher before new ones wait to be queued.
const QUEUE: usize = 4_096;
/// While the database is unreachable, how often the background probe tries it.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long one probe waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Other processes' dispatchers hear about new work at most this often from this one.
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);

struct Request {
    account: AccountId,
    events: Vec<NewEvent>,
    done: oneshot::Sender<Result<(), IngestError>>,
}

/// The handle requests publish through.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Request>,
    down: Arc<AtomicBool>,
}

impl GroupCommit {
    /// Starts the batching task on `pool` (ingest's own connections). `wakers` reach this
    /// process's dispatcher in memory; `announcer` tells the other processes.
    pub fn spawn(pool: PgPool, wakers: Wakers, announcer: Announcer) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let down = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(pool, wakers, announcer, down.clone(), rx));
        GroupCommit { tx, down }
    }

    /// True while the database is known to be unreachable (a group failed to reach it and
    /// the probe has not reached it since).
    pub fn database_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// An error another part of ingest got from `pool`: an unreachable database marks it
    /// down for every request until the probe reaches it again.
    pub fn report_error(&self, pool: &PgPool, err: &sqlx::Error) {
        report(pool, &self.down, err);
    }

    /// A sign the database may be gone (a listener lost its connection, a lookup outside
    /// ingest timed out): one direct connection attempt decides at once whether to answer
    /// 503. Not the pool's acquire, which retries a refused connection for its whole
    /// timeout while requests pile up behind it.
    pub fn check_now(&self, pool: &PgPool) {
        if self.down.load(Ordering::Relaxed) {
            return;
        }
        let (pool, down) = (pool.clone(), self.down.clone());
        tokio::spawn(async move {
            let options = pool.connect_options();
            match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(&options)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(err)) => {
                    report(&pool, &down, &err);
                }
                Err(_) => {
                    report(&pool, &down, &sqlx::Error::PoolTimedOut);
                }
            }
        });
    }

    /// Stores the events (ids we generated, no idempotency key) and returns their ids once
    /// committed.
    pub async fn publish(&self, account: AccountId, events: Vec<NewEvent>) -> Result<Vec<EventId>, IngestError> {
        let ids = events.iter().map(|e| e.id.clone()).collect();
        let (done, answer) = oneshot::channel();
        self.tx.send(Request { account, events, done }).await.map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)??;
        Ok(ids)
    }
}

async fn run(
    pool: PgPool,
    wakers: Wakers,
    announcer: Announcer,
    down: Arc<AtomicBool>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut waiting: VecDeque<Request> = VecDeque::new();
    let mut received = Vec::new();
    loop {
        if waiting.is_empty() && rx.recv_many(&mut received, QUEUE).await == 0 {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            received.push(more);
        }
        waiting.extend(received.drain(..));
        let batch = take_batch(&mut waiting, MAX_EVENTS, |r| r.events.len());
        let endpoints = commit(&pool, batch, &down).await;
        for endpoint in &endpoints {
            wakers.wake(endpoint);
        }
        announcer.announce(endpoints);
    }
}

/// The front requests whose events fit in `max` (at least one request, however large).
fn take_batch<T>(waiting: &mut VecDeque<T>, max: usize, size: impl Fn(&T) -> usize) -> Vec<T> {
    let mut batch = Vec::new();
    let mut total = 0;
    while let Some(next) = waiting.front() {
        if !batch.is_empty() && total + size(next) > max {
            break;
        }
        total += size(next);
        batch.extend(waiting.pop_front());
    }
    batch
}

/// Stores a batch and answers each request; returns the endpoints that got new deliveries.
/// Once a group finds the database unreachable, groups are answered 503 at once until a
/// background probe reaches it again: the group commit never waits out the pool's acquire
/// timeout on a request's behalf, so requests do not pile up during an outage.
async fn commit(pool: &PgPool, batch: Vec<Request>, down: &Arc<AtomicBool>) -> Vec<String> {
    if down.load(Ordering::Relaxed) {
        answer_all(batch, || IngestError::Unavailable);
        return Vec::new();
    }
    let err = match store(pool, &batch).await {
        Ok(endpoints) => {
            for request in batch {
                let _ = request.done.send(Ok(()));
            }
            return endpoints;
        }
        Err(err) => err,
    };
    if report(pool, down, &err) {
        answer_all(batch, || IngestError::Unavailable);
        return Vec::new();
    }
    if batch.len() == 1 {
        if let Some(request) = batch.into_iter().next() {
            let _ = request.done.send(Err(IngestError::Db(err)));
        }
        return Vec::new();
    }
    tracing::warn!(%err, requests = batch.len(), "a group insert failed; storing its requests one by one");
    let mut woken = Vec::new();
    for request in batch {
        match store(pool, std::slice::from_ref(&request)).await {
            Ok(endpoints) => {
                woken.extend(endpoints);
                let _ = request.done.send(Ok(()));
            }
            Err(err) => {
                let _ = request.done.send(Err(err.into()));
            }
        }
    }
    woken
}

/// When `err` says the database is unreachable, marks it down (starting the probe once) and
/// returns true.
fn report(pool: &PgPool, down: &Arc<AtomicBool>, err: &sqlx::Error) -> bool {
    if !crate::db::unavailable(err) {
        return false;
    }
    if !down.swap(true, Ordering::Relaxed) {
        tracing::warn!(%err, "the database is unreachable; answering ingest with 503 until it is back");
        tokio::spawn(probe(pool.clone(), down.clone()));
    }
    true
}

/// Tries the database until it answers, then lets the group commit use it again.
async fn probe(pool: PgPool, down: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if let Ok(Ok(mut conn)) = tokio::time::timeout(PROBE_TIMEOUT, pool.acquire()).await {
            if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                down.store(false, Ordering::Relaxed);
                tracing::info!("the database is reachable again; ingest resumes");
                return;
            }
        }
    }
}

/// Answers every request of a group with the same kind of error.
fn answer_all(batch: Vec<Request>, error: impl Fn() -> IngestError) {
    for request in batch {
        let _ = request.done.send(Err(error()));
    }
}

async fn store(pool: &PgPool, batch: &[Request]) -> sqlx::Result<Vec<String>> {
    let mut accounts: Vec<&str> = batch.iter().map(|r| r.account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut conn = pool.acquire().await?;
    let subs = subscriptions(&mut conn, &accounts).await?;
    let now = Utc::now();
    let mut rows = Rows::default();
    for request in batch {
        rows.push(&request.account, &request.events, &subs, now);
    }
    insert_new(&mut conn, &rows, now).await?;
    crate::metrics::events_ingested(rows.events());
    Ok(rows.endpoints())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_whole_requests_up_to_the_limit() {
        let mut waiting: VecDeque<usize> = [400, 300, 500, 10].into_iter().collect();
        assert_eq!(take_batch(&mut waiting, 1000, |n| *n), vec![400, 300], "500 more would pass 1,000");
        assert_eq!(take_batch(&mut waiting, 1000, |n| *n), vec![500, 10]);
        assert!(take_batch(&mut waiting, 1000, |n| *n).is_empty());
        let mut huge: VecDeque<usize> = [5000, 1].into_iter().collect();
        assert_eq!(take_batch(&mut huge, 1000, |n| *n), vec![5000], "one request is never split");
    }
}
