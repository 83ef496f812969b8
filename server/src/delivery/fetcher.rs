//! One fetch statement per round for all of this process's drains (issue 11). Each drain
//! used to read its endpoint and due deliveries with a statement of its own after every
//! batch; with hundreds of endpoints leased, that was a statement per one or two deliveries.
//! Now a drain hands its request to the fetcher task, which answers every request that
//! queued up while its previous statement ran with one `store::fetch_due` (group fetch, as
//! the recorder group-commits). Renewals stay on their own statement: they write and wait
//! for a commit, and come once per quarter lease.
//!
//! A round's payloads are a second statement (`store::with_payloads`: `events` is
//! partitioned by day, and joined in the fetch it would be pruned row by row). It runs in a
//! task of its own while the next round's fetch goes ahead, so the rounds wait for one round
//! trip each, as before, not two. No endpoint is in two rounds at once: a drain asks again
//! only after its answer, payloads included, came back.

use std::collections::HashMap;

use entity::EndpointId;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::{
    error::EngineError,
    store::{self, ClaimedEndpoint, DueDelivery},
};

/// Most endpoints answered by one statement.
const MAX_ROUND: usize = 512;

/// What a drain gets: its endpoint as it is now and its due deliveries, `None` when the
/// endpoint was disabled meanwhile or the lease was lost; `Err` is a database error.
pub type Fetched = Result<Option<(ClaimedEndpoint, Vec<DueDelivery>)>, EngineError>;

struct Request {
    endpoint_id: String,
    limit: i64,
    reply: oneshot::Sender<Fetched>,
}

/// The drains' side of the fetcher task.
#[derive(Clone)]
pub struct Fetcher {
    tx: mpsc::Sender<Request>,
}

impl Fetcher {
    /// Starts the task; it ends when every handle is dropped.
    pub fn spawn(pool: PgPool, worker: String) -> Fetcher {
        let (tx, rx) = mpsc::channel(MAX_ROUND * 2);
        tokio::spawn(run(pool, worker, rx));
        Fetcher { tx }
    }

    pub async fn fetch(&self, endpoint_id: &str, limit: i64) -> Fetched {
        let (reply, answer) = oneshot::channel();
        let request = Request { endpoint_id: endpoint_id.to_owned(), limit, reply };
        self.tx.send(request).await.map_err(|_| EngineError::FetcherStopped)?;
        answer.await.map_err(|_| EngineError::FetcherStopped)?
    }
}

async fn run(pool: PgPool, worker: String, mut rx: mpsc::Receiver<Request>) {
    let mut round = Vec::with_capacity(MAX_ROUND);
    while rx.recv_many(&mut round, MAX_ROUND).await > 0 {
        let ids: Vec<&str> = round.iter().map(|r| r.endpoint_id.as_str()).collect();
        let limits: Vec<i64> = round.iter().map(|r| r.limit).collect();
        let result = store::fetch_due(&pool, &worker, &ids, &limits).await;
        let requests = std::mem::replace(&mut round, Vec::with_capacity(MAX_ROUND));
        match result {
            Ok(found) => {
                tokio::spawn(answer(pool.clone(), requests, found));
            }
            Err(err) => reply_all(requests, EngineError::from(err)),
        }
    }
}

/// Reads the payloads of one round's deliveries and answers its requests.
async fn answer(pool: PgPool, requests: Vec<Request>, found: Vec<(ClaimedEndpoint, Vec<DueDelivery>)>) {
    let (endpoints, mut lists): (Vec<ClaimedEndpoint>, Vec<Vec<DueDelivery>>) = found.into_iter().unzip();
    if let Err(err) = store::with_payloads(&pool, &mut lists).await {
        return reply_all(requests, EngineError::from(err));
    }
    let mut found: HashMap<EndpointId, (ClaimedEndpoint, Vec<DueDelivery>)> =
        endpoints.into_iter().zip(lists).map(|(e, due)| (e.id.clone(), (e, due))).collect();
    for request in requests {
        let _ = request.reply.send(Ok(found.remove(request.endpoint_id.as_str())));
    }
}

fn reply_all(requests: Vec<Request>, err: EngineError) {
    for request in requests {
        let _ = request.reply.send(Err(err.clone()));
    }
}
