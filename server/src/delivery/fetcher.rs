//! One fetch statement per round for all of this process's drains (issue 11). Each drain
//! used to read its endpoint and due deliveries with a statement of its own after every
//! batch; with hundreds of endpoints leased, that was a statement per one or two deliveries.
//! Now a drain hands its request to the fetcher task, which answers every request that
//! queued up while its previous statement ran with one `store::fetch_many` (group fetch, as
//! the recorder group-commits). Renewals stay on their own statement: they write and wait
//! for a commit, and come once per quarter lease.

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
        let result = store::fetch_many(&pool, &worker, &ids, &limits).await;
        match result {
            Ok(found) => {
                let mut found: HashMap<EndpointId, (ClaimedEndpoint, Vec<DueDelivery>)> =
                    found.into_iter().map(|(e, due)| (e.id.clone(), (e, due))).collect();
                for request in round.drain(..) {
                    let _ = request.reply.send(Ok(found.remove(request.endpoint_id.as_str())));
                }
            }
            Err(err) => {
                let err = EngineError::from(err);
                for request in round.drain(..) {
                    let _ = request.reply.send(Err(err.clone()));
                }
            }
        }
    }
}
