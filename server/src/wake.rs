//! Wake-ups, kept out of the hot commits (ENGINE.md, "Traps"): a transaction that runs
//! `NOTIFY` takes a cluster-wide lock through its WAL flush, so notifying commits run one at
//! a time. Here a process wakes its own dispatcher in memory, and tells the other processes
//! with at most one `NOTIFY` statement per interval, in a transaction of its own that holds
//! no data.
//!
//! A payload names endpoints (both channels; an account id or any other name on the
//! deliveries channel just means "look"), several at once separated by commas; `names`
//! reads either shape, so an older single-name payload still works.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};

/// Workers LISTEN here; the payload names endpoints that have new deliveries.
pub const DELIVERIES_CHANNEL: &str = "webhooks_deliveries";
/// Live delivery logs LISTEN here; the payload names endpoints with new attempts.
pub const ATTEMPTS_CHANNEL: &str = "webhooks_attempts";
/// API key caches LISTEN here; the payload is a revoked key's hash. Declared beside the
/// dashboard service that NOTIFYs it, listed here so every channel has one home.
pub use service::api_keys::REVOKED_CHANNEL;
/// PostgreSQL refuses payloads of 8,000 bytes or more.
const PAYLOAD_LIMIT: usize = 7_900;

/// The names one notification payload carries.
pub fn names(payload: &str) -> impl Iterator<Item = &str> {
    payload.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Packs names into as few payloads as fit under `limit` bytes each. A name longer than the
/// limit on its own is dropped: ids are 30 bytes, so only a bug could produce one.
pub fn payloads<'a>(names: impl IntoIterator<Item = &'a str>, limit: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for name in names.into_iter().filter(|n| !n.is_empty() && n.len() <= limit) {
        if !current.is_empty() && current.len() + 1 + name.len() > limit {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(name);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// In-memory wake-ups of this process's dispatcher, by endpoint: a drain that ran out of
/// work waits on its endpoint's `Notify`; new work for an endpoint with no drain here wakes
/// the claim loop instead. So a steady load to endpoints already being drained costs no
/// claim queries at all.
#[derive(Default, Clone)]
pub struct Wakers {
    endpoints: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    claim: Arc<Notify>,
}

impl Wakers {
    /// The notify the drain of `endpoint_id` waits on; holding it marks the drain as live.
    pub fn of(&self, endpoint_id: &str) -> Arc<Notify> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner()).entry(endpoint_id.to_owned()).or_default().clone()
    }

    /// New work for `name` (an endpoint id; any other name, such as an account id, just means
    /// "look"): wake its drain if one is live in this process, else the claim loop.
    pub fn wake(&self, name: &str) {
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        match endpoints.get(name) {
            // The map holds one reference; a live drain holds another.
            Some(notify) if Arc::strong_count(notify) > 1 => notify.notify_waiters(),
            _ => self.claim.notify_one(),
        }
    }

    /// Resolves after the next `wake` that found no live drain (or at once if one came since
    /// the last wait).
    pub async fn claim_wanted(&self) {
        self.claim.notified().await
    }
}

/// Sends the names it is given as notifications on one channel, at most one statement per
/// `every`, gathering what arrives in between. A failed send is logged and dropped: the
/// listeners' backstop polls find the work anyway.
#[derive(Clone)]
pub struct Announcer {
    tx: mpsc::UnboundedSender<Vec<String>>,
}

impl Announcer {
    /// Starts the sending task; it ends when every handle is dropped.
    pub fn spawn(pool: PgPool, channel: &'static str, every: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(announce(pool, channel, every, rx));
        Announcer { tx }
    }

    pub fn announce(&self, names: Vec<String>) {
        if !names.is_empty() {
            let _ = self.tx.send(names);
        }
    }
}

async fn announce(pool: PgPool, channel: &'static str, every: Duration, mut rx: mpsc::UnboundedReceiver<Vec<String>>) {
    let mut received = Vec::new();
    loop {
        if rx.recv_many(&mut received, 1024).await == 0 {
            return;
        }
        let mut unique: HashSet<String> = received.drain(..).flatten().collect();
        while let Ok(more) = rx.try_recv() {
            unique.extend(more);
        }
        let texts = payloads(unique.iter().map(String::as_str), PAYLOAD_LIMIT);
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
            .bind(channel)
            .bind(&texts)
            .execute(&pool)
            .await;
        if let Err(err) = sent {
            tracing::warn!(%err, channel, "could not notify other processes; their polls will find the work");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_keep_every_name() {
        let names: Vec<String> = (0..1000).map(|i| format!("acc_{i:026}")).collect();
        let packed = payloads(names.iter().map(String::as_str), 7_900);
        assert!(packed.len() > 1, "30,000 bytes of names need several payloads");
        assert!(packed.iter().all(|p| p.len() <= 7_900));
        let back: Vec<&str> = packed.iter().flat_map(|p| super::names(p)).collect();
        assert_eq!(back, names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn a_single_name_payload_reads_as_one_name() {
        assert_eq!(names("ep_1").collect::<Vec<_>>(), vec!["ep_1"]);
        assert_eq!(names("a,,b, c").collect::<Vec<_>>(), vec!["a", "b", "c"]);
        assert!(payloads(Vec::<&str>::new(), 10).is_empty());
        assert_eq!(payloads(["toolongname", "ok"], 5), vec!["ok".to_owned()]);
    }

    #[tokio::test]
    async fn a_wake_reaches_a_live_drain_or_else_the_claim_loop() {
        let wakers = Wakers::default();
        let draining = wakers.of("ep_a");
        {
            let woken = draining.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            wakers.wake("ep_a");
            woken.await;
        }
        let claim = wakers.claim_wanted();
        tokio::pin!(claim);
        assert!(futures_poll_now(claim.as_mut()).is_none(), "a live drain takes the work: no claim");
        wakers.wake("ep_b"); // no drain here
        claim.await;
        drop(draining);
        wakers.wake("ep_a"); // its drain ended
        wakers.claim_wanted().await;
    }

    /// Polls a future once without a runtime wait.
    fn futures_poll_now<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
