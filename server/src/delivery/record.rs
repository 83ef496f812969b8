//! Recording attempts. What an attempt does to its delivery and endpoint is decided by
//! `plan`, a pure function the dispatcher calls as soon as the answer arrives; the rows are
//! written by one `Recorder` task per process, which commits whatever outcomes have queued up
//! while its previous transaction ran (group commit): one transaction and a handful of
//! statements for many attempts, instead of five round trips each (SPEC §6, "write attempt
//! logs and completions in batches").

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::{AccountId, AttemptId, EndpointId, EndpointStatus};
use serde::Serialize;
use sqlx::{postgres::PgArguments, query::Query, PgPool, Postgres, Row};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    attempt::AttemptResult,
    dispatcher::HealthEvents,
    error::EngineError,
    health::{self, Change, Health},
    retry::{self, Decision},
    store::DueDelivery,
};
use crate::{config::RetrySchedule, metrics, wake::Announcer};

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 1000;
/// Outcomes waiting for the recorder before senders are held back.
const QUEUE: usize = 10_000;
/// Writers per process, each with its own share of the endpoints. One writer's cycle
/// (statement, then the WAL flush of its commit) paced every endpoint's pipeline; two
/// overlap, one running its statement while the other's commit flushes (BENCHMARKS.md,
/// step 9). An endpoint always goes to the same writer, so its outcomes commit in order.
const WRITERS: usize = 2;

/// What one attempt changes, decided before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `delivered`, `pending` (a retry is scheduled) or `failed` (dead-lettered).
    pub delivery_status: &'static str,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub health: Health,
    pub change: Change,
    /// While failing, the breaker stays open until this delivery's next try: one probe per
    /// backoff step, the rest wait without spending attempts (SPEC §6).
    pub breaker_until: Option<DateTime<Utc>>,
    /// The endpoint's new `last_error`; `None` keeps the old one (a success).
    pub last_error: Option<String>,
    /// Whether the endpoint row must be written: its health moved, or an error is to be
    /// kept. A success on a healthy endpoint writes nothing there.
    pub endpoint_changed: bool,
}

impl Plan {
    /// False once the endpoint is failing or disabled: stop sending to it for now.
    pub fn keep_sending(&self) -> bool {
        self.health.status == EndpointStatus::Healthy
    }
}

/// Decides the delivery's next state and the endpoint's health after one attempt.
/// `attempt_count`: the attempts already spent from the delivery's current budget;
/// `previous_try`: when the last of them was recorded (`DueDelivery::previous_try_at`).
/// `jitter` is uniform in [-1, 1] (retry::random_jitter_unit); `now` is when the answer came.
pub fn plan(
    before: &Health,
    attempt_count: i32,
    previous_try: Option<DateTime<Utc>>,
    result: &AttemptResult,
    schedule: &RetrySchedule,
    jitter: f64,
    now: std::time::SystemTime,
) -> Plan {
    let failed_attempts = (attempt_count + 1) as u32;
    let decision = if result.success() {
        None
    } else {
        let retry_after = result.retry_after.as_deref().and_then(|v| retry::parse_retry_after(v, now));
        Some(retry::decide(schedule, failed_attempts, result.status, retry_after, jitter))
    };
    let now_utc: DateTime<Utc> = now.into();
    let tried = health::Tried { dead_lettered: matches!(decision, Some(Decision::Dead)), previous_at: previous_try };
    let (after, change) = health::after_attempt(before, result.success(), result.status, tried, now_utc);
    let next_attempt_at = match decision {
        Some(Decision::Retry { after }) => {
            Some(now_utc + ChronoDuration::from_std(after).unwrap_or(ChronoDuration::hours(24)))
        }
        _ => None,
    };
    let delivery_status = match decision {
        None => "delivered",
        Some(Decision::Retry { .. }) => "pending",
        Some(Decision::Dead) => "failed",
    };
    let breaker_until = if after.status == EndpointStatus::Failing { next_attempt_at } else { None };
    let endpoint_changed = after != *before || !result.success() || change != Change::None;
    Plan {
        endpoint_changed,
        delivery_status,
        next_attempt_at,
        breaker_until,
        last_error: (!result.success()).then(|| describe(result)),
        health: after,
        change,
    }
}

/// A job for apalis to run, queued by the recorder in the transaction of the change that
/// causes it. `queue` and `args` are what `PostgresStorage<T>` reads: `T`'s type name and its
/// JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    pub queue: &'static str,
    pub args: Vec<u8>,
}

/// One attempt to write: the attempt row, and the plan for its delivery and endpoint.
#[derive(Debug)]
pub struct Outcome {
    pub endpoint_id: EndpointId,
    pub account_id: AccountId,
    pub delivery: DueDelivery,
    pub result: AttemptResult,
    pub started_at: DateTime<Utc>,
    pub plan: Plan,
    /// Answered once the transaction holding this outcome has committed (or given up).
    pub committed: Option<oneshot::Sender<Result<(), EngineError>>>,
}

/// The sending side of the process's recorder.
#[derive(Clone)]
pub struct RecorderHandle {
    writers: Arc<[mpsc::Sender<Outcome>]>,
}

impl RecorderHandle {
    /// Queues an outcome; the returned receiver answers when it is committed. Outcomes of
    /// one endpoint are committed in the order they were submitted.
    pub async fn submit(&self, mut outcome: Outcome) -> oneshot::Receiver<Result<(), EngineError>> {
        let (done, rx) = oneshot::channel();
        outcome.committed = Some(done);
        let writer = &self.writers[writer_of(&outcome.endpoint_id, self.writers.len())];
        if let Err(mpsc::error::SendError(mut lost)) = writer.send(outcome).await {
            if let Some(done) = lost.committed.take() {
                let _ = done.send(Err(EngineError::RecorderStopped));
            }
        }
        rx
    }
}

/// Starts the recorder task; it ends when every handle is dropped and the queue is written.
/// `live` announces the endpoints of committed attempts to the open delivery logs. Once
/// `shutdown` is set, a database that stays unreachable for `GIVE_UP_AFTER_SHUTDOWN` makes
/// the recorder give up (the senders are told, so the process can stop): those outcomes were
/// sent but not recorded, and the endpoint's next lease holder re-sends them.
pub fn spawn(
    pool: PgPool,
    events: Arc<dyn HealthEvents>,
    live: Announcer,
    shutdown: watch::Receiver<bool>,
) -> (RecorderHandle, tokio::task::JoinHandle<()>) {
    metrics::install();
    let mut senders = Vec::with_capacity(WRITERS);
    let mut tasks = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let (tx, rx) = mpsc::channel(QUEUE / WRITERS);
        senders.push(tx);
        tasks.push(tokio::spawn(run(pool.clone(), events.clone(), live.clone(), shutdown.clone(), rx)));
    }
    let all = tokio::spawn(async move {
        for task in tasks {
            let _ = task.await;
        }
    });
    (RecorderHandle { writers: senders.into() }, all)
}

/// The writer an endpoint's outcomes go to: always the same one, so they commit in order.
fn writer_of(endpoint_id: &str, writers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    endpoint_id.hash(&mut hasher);
    (hasher.finish() % writers as u64) as usize
}

async fn run(
    pool: PgPool,
    events: Arc<dyn HealthEvents>,
    live: Announcer,
    shutdown: watch::Receiver<bool>,
    mut rx: mpsc::Receiver<Outcome>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let result = write_batch(&pool, events.as_ref(), &mut batch, &shutdown).await;
        let mut recorded: Vec<String> =
            batch.iter().zip(&result).filter(|(_, r)| r.is_ok()).map(|(o, _)| o.endpoint_id.to_string()).collect();
        recorded.dedup();
        live.announce(recorded);
        for (mut outcome, result) in batch.drain(..).zip(result) {
            if result.is_ok() {
                observe(&outcome);
                if outcome.plan.change != Change::None {
                    tracing::info!(endpoint = %outcome.endpoint_id, change = ?outcome.plan.change, "endpoint health changed");
                }
            }
            if let Some(done) = outcome.committed.take() {
                let _ = done.send(result.clone());
            }
        }
    }
}

/// Writes a batch; the result of each outcome, in order. A database outage must not lose
/// outcomes we hold: connection failures are retried until it returns (the senders wait
/// meanwhile, so nothing is sent twice by this process). A row the database refuses must
/// not hold up the others: then each is written alone, and one still refused is written
/// without the receiver's answer, which is the only part a receiver controls.
async fn write_batch(
    pool: &PgPool,
    events: &dyn HealthEvents,
    batch: &mut [Outcome],
    shutdown: &watch::Receiver<bool>,
) -> Vec<Result<(), EngineError>> {
    let mut delay = Duration::from_millis(100);
    let mut stopping_since: Option<Instant> = None;
    loop {
        match write(pool, events, batch).await {
            Ok(()) => return vec![Ok(()); batch.len()],
            Err(err) if is_refusal(&err) => break,
            Err(err) if give_up(&mut stopping_since, *shutdown.borrow(), Instant::now()) => {
                tracing::warn!(%err, outcomes = batch.len(), "stopping with the database unreachable; these will be re-sent");
                return vec![Err(EngineError::from(err)); batch.len()];
            }
            Err(err) => {
                tracing::warn!(%err, outcomes = batch.len(), "recording attempts failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    for i in 0..batch.len() {
        let one = &mut batch[i..=i];
        let mut result = write(pool, events, one).await;
        if let Err(err) = &result {
            if is_refusal(err) {
                tracing::warn!(%err, delivery = %one[0].delivery.id, "an attempt's answer could not be stored; storing it without");
                let r = &mut one[0].result;
                r.response_body = None;
                r.response_headers.clear();
                r.error = Some(format!("The receiver's answer could not be stored: {err}"));
                result = write(pool, events, one).await;
            }
        }
        results.push(result.map_err(EngineError::from));
    }
    results
}

/// After a shutdown began, how long the recorder keeps retrying an unreachable database.
const GIVE_UP_AFTER_SHUTDOWN: Duration = Duration::from_secs(10);

/// Whether to stop retrying: a shutdown has been under way for `GIVE_UP_AFTER_SHUTDOWN`
/// (`stopping_since` remembers when this recorder first saw it).
fn give_up(stopping_since: &mut Option<Instant>, stopping: bool, now: Instant) -> bool {
    if !stopping {
        return false;
    }
    now.saturating_duration_since(*stopping_since.get_or_insert(now)) >= GIVE_UP_AFTER_SHUTDOWN
}

/// The database understood the statement and refused it (a constraint, bad bytes), as
/// opposed to being unreachable: retrying the same rows cannot help.
fn is_refusal(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // An outage, or class 40 (serialization failure, deadlock): worth a retry.
            !(crate::db::outage_sqlstate(&code) || code.starts_with("40"))
        }
        sqlx::Error::Encode(_) | sqlx::Error::TypeNotFound { .. } | sqlx::Error::ColumnDecode { .. } => true,
        _ => false,
    }
}

fn observe(outcome: &Outcome) {
    let result = &outcome.result;
    let kind = match (result.status, result.success()) {
        (_, true) => "success",
        (Some(_), false) => "http_error",
        (None, false) => "network_error",
    };
    metrics::attempt(kind, result.elapsed);
    if outcome.delivery.attempt_count == 0 {
        let waited = outcome.started_at - outcome.delivery.created_at;
        metrics::first_attempt_delay(waited.to_std().unwrap_or_default());
    }
    if outcome.plan.delivery_status != "pending" {
        metrics::delivery_done(outcome.plan.delivery_status);
    }
}

/// Writes a batch: the attempts and the deliveries' new states in one statement, and, only
/// when some endpoint's health moved, the endpoint rows in the same transaction. The common
/// case (successes on healthy endpoints) is one statement and one commit, with no NOTIFY in
/// it: the live logs hear of it from the recorder's announcer after the commit.
///
/// Writing the same batch again is harmless: a commit whose answer was lost (PostgreSQL
/// stopped just after it) is retried by `write_batch`, and the outcomes it already wrote
/// find their deliveries moved on, so no attempt, health change or email is written twice.
pub async fn write(pool: &PgPool, events: &dyn HealthEvents, batch: &[Outcome]) -> sqlx::Result<()> {
    if !batch.iter().any(|o| o.plan.endpoint_changed) {
        record_attempts(&mut *pool.acquire().await?, batch).await?;
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let applied = record_attempts(&mut tx, batch).await?;
    let fresh: Vec<&Outcome> = batch.iter().filter(|o| applied.contains(o.delivery.id.as_str())).collect();
    update_endpoints(&mut tx, &fresh).await?;
    let jobs: Vec<QueuedJob> = fresh
        .iter()
        .filter_map(|o| {
            let error = o.plan.last_error.as_deref().unwrap_or("");
            events.job_for(&o.endpoint_id, &o.plan.change, error)
        })
        .collect();
    queue_jobs(&mut tx, &jobs).await?;
    tx.commit().await
}

/// Inserts jobs into apalis' queue table as its `PostgresStorage::push` does (same columns
/// and defaults: a ULID id, pending, 25 attempts, due now), but on our transaction: apalis
/// offers no public way to push inside a caller's transaction.
async fn queue_jobs(tx: &mut sqlx::PgConnection, jobs: &[QueuedJob]) -> sqlx::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = jobs.iter().map(|_| entity::ids::generate_unprefixed().to_ascii_uppercase()).collect();
    let queues: Vec<&str> = jobs.iter().map(|j| j.queue).collect();
    let args: Vec<&[u8]> = jobs.iter().map(|j| j.args.as_slice()).collect();
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
                                 idempotency_key)
         SELECT id, queue, args, 'Pending', 0, 25, now(), 0, ''::hstore, NULL
         FROM UNNEST($1::text[], $2::text[], $3::bytea[]) AS x(id, queue, args)",
    )
    .bind(&ids)
    .bind(&queues)
    .bind(&args)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One statement: move each delivery to its planned state, insert its attempt
/// (`request_body` left NULL: the body sent is the event's payload, which the log shows),
/// and take it off the queue at its final outcome (or move its queue row to the retry's due
/// time). An outcome applies only while its delivery is still pending at the attempt count
/// it was sent at: that fences a replayed batch, and a send whose delivery was meanwhile
/// deleted. Returns the deliveries it moved.
///
/// The queue rows are found one by one from the outcomes (`queued`: at the address the fetch
/// read them from when the row there is still the delivery's, else by key) and then deleted
/// or moved by their row address, so no plan can read the queue through
/// whatever the planner believes of its size. A join of the queue with the batch left that
/// choice to the planner, and a queue vacuumed while empty (`reltuples` 0) made it put the
/// queue outside a nested loop: 1-2 s per 1,000-outcome flush (BENCHMARKS.md, 6 Dec 2026).
/// `later` filters the outcomes to the retries before its join as well as in its row
/// addresses: without it the join fetched every final outcome's queue row by address (four
/// buffers each) only to drop it, in every flush.
async fn record_attempts(conn: &mut sqlx::PgConnection, batch: &[Outcome]) -> sqlx::Result<HashSet<String>> {
    let mut cols = AttemptColumns::default();
    let (mut delivery_status, mut next_attempt_at) = (Vec::with_capacity(batch.len()), Vec::with_capacity(batch.len()));
    let mut queue_rows = Vec::with_capacity(batch.len());
    for o in batch {
        let of = AttemptOf {
            account_id: &o.account_id,
            delivery_id: &o.delivery.id,
            endpoint_id: &o.endpoint_id,
            event_type: &o.delivery.event_type,
            number: o.delivery.attempt_count + 1,
            at: o.started_at,
        };
        cols.push(of, &o.result);
        delivery_status.push(o.plan.delivery_status);
        next_attempt_at.push(o.plan.next_attempt_at);
        queue_rows.push(o.delivery.queue_row.as_deref());
    }
    let moved = cols
        .bind(sqlx::query(concat!(
            "WITH x AS (
                 SELECT * FROM UNNEST($3::text[], $4::text[], $6::int4[], $15::text[], $16::timestamptz[], $17::text[])
                     AS x(id, ep, n, status, next, at)
             ), moved AS (
                 UPDATE deliveries d SET status = x.status, attempt_count = d.attempt_count + 1,
                     next_attempt_at = x.next, updated_at = now()
                 FROM x WHERE d.id = x.id AND d.status = 'pending' AND d.attempt_count = x.n - 1
                 RETURNING d.id
             ), attempt AS (",
            insert_attempts!(),
            "    WHERE a.delivery_id IN (SELECT id FROM moved)
             ), queued AS (
                 SELECT x.status, COALESCE(x.next, now()) AS due, COALESCE(
                            (SELECT q.ctid FROM delivery_queue q
                             WHERE q.ctid = x.at::tid AND q.endpoint_id = x.ep AND q.delivery_id = x.id),
                            (SELECT q.ctid FROM delivery_queue q WHERE q.endpoint_id = x.ep AND q.delivery_id = x.id)
                        ) AS row
                 FROM x WHERE x.id IN (SELECT id FROM moved)
             ), done AS (
                 DELETE FROM delivery_queue
                 WHERE ctid = ANY (ARRAY(SELECT row FROM queued WHERE status <> 'pending'))
             ), later AS (
                 UPDATE delivery_queue q SET due_at = queued.due FROM queued
                 WHERE queued.status = 'pending'
                   AND q.ctid = ANY (ARRAY(SELECT row FROM queued WHERE status = 'pending')) AND q.ctid = queued.row
             )
             SELECT id FROM moved",
        )))
        .bind(delivery_status)
        .bind(next_attempt_at)
        .bind(queue_rows)
        .fetch_all(&mut *conn)
        .await?;
    Ok(moved.iter().map(|row| row.get(0)).collect())
}

/// The one statement that inserts attempt rows: `$1`..`$14` are [`AttemptColumns`]' arrays,
/// in its field order (`AttemptColumns::bind`). A macro so both writers can splice it into
/// their statement text at compile time.
macro_rules! insert_attempts {
    () => {
        "INSERT INTO attempts (id, account_id, delivery_id, endpoint_id, event_type, attempt_number, attempted_at,
             status_code, response_time_ms, success, error, sent_headers, response_headers, response_body)
         SELECT id, account_id, delivery_id, endpoint_id, event_type, attempt_number, attempted_at,
                status_code, response_time_ms, success, error, sent_headers, response_headers::jsonb, response_body
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::timestamptz[],
                     $8::int4[], $9::int4[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::text[])
              AS a(id, account_id, delivery_id, endpoint_id, event_type, attempt_number, attempted_at,
                   status_code, response_time_ms, success, error, sent_headers, response_headers, response_body)"
    };
}
use insert_attempts;

/// Which delivery an attempt belongs to, and its number and time.
struct AttemptOf<'a> {
    account_id: &'a str,
    delivery_id: &'a str,
    endpoint_id: &'a str,
    event_type: &'a str,
    number: i32,
    at: DateTime<Utc>,
}

/// The attempts table's columns, one array each, for `insert_attempts!`. They borrow from
/// the outcomes being written: an attempt's ids, error and answer are bound as they are,
/// not copied once more for the statement.
#[derive(Default)]
struct AttemptColumns<'a> {
    id: Vec<String>,
    account_id: Vec<&'a str>,
    delivery_id: Vec<&'a str>,
    endpoint_id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    attempt_number: Vec<i32>,
    attempted_at: Vec<DateTime<Utc>>,
    status_code: Vec<Option<i32>>,
    response_time_ms: Vec<i32>,
    success: Vec<bool>,
    error: Vec<Option<&'a str>>,
    sent_headers: Vec<String>,
    response_headers: Vec<Option<String>>,
    response_body: Vec<Option<&'a str>>,
}

impl<'a> AttemptColumns<'a> {
    fn push(&mut self, of: AttemptOf<'a>, r: &'a AttemptResult) {
        self.id.push(AttemptId::generate().to_string());
        self.account_id.push(of.account_id);
        self.delivery_id.push(of.delivery_id);
        self.endpoint_id.push(of.endpoint_id);
        self.event_type.push(of.event_type);
        self.attempt_number.push(of.number);
        self.attempted_at.push(of.at);
        self.status_code.push(r.status.map(i32::from));
        self.response_time_ms.push(r.elapsed.as_millis().min(i32::MAX as u128) as i32);
        self.success.push(r.success());
        self.error.push(r.error.as_deref());
        self.sent_headers.push(entity::header_lines::to_lines(&r.request_headers));
        self.response_headers.push(r.status.map(|_| headers_json(&r.response_headers)));
        self.response_body.push(r.response_body.as_deref());
    }

    /// Binds `$1`..`$14` of a statement built around `insert_attempts!`.
    fn bind<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.id)
            .bind(self.account_id)
            .bind(self.delivery_id)
            .bind(self.endpoint_id)
            .bind(self.event_type)
            .bind(self.attempt_number)
            .bind(self.attempted_at)
            .bind(self.status_code)
            .bind(self.response_time_ms)
            .bind(self.success)
            .bind(self.error)
            .bind(self.sent_headers)
            .bind(self.response_headers)
            .bind(self.response_body)
    }
}

/// An endpoint a user disabled while its batch was in flight keeps `disabled`: the plan
/// was made for an enabled endpoint and must not turn it back into `healthy`.
/// The endpoint rows take the plan of their last outcome in the batch (outcomes of one
/// endpoint arrive in the order its single lease holder made them); `last_error` the last
/// failure's. Rows are locked in id order so two recorders never deadlock.
async fn update_endpoints(tx: &mut sqlx::PgConnection, batch: &[&Outcome]) -> sqlx::Result<()> {
    let changed: HashSet<&str> =
        batch.iter().filter(|o| o.plan.endpoint_changed).map(|o| o.endpoint_id.as_str()).collect();
    let mut last: HashMap<&str, (&Plan, Option<&str>)> = HashMap::new();
    for o in batch.iter().filter(|o| changed.contains(o.endpoint_id.as_str())) {
        let error = o.plan.last_error.as_deref().or_else(|| last.get(o.endpoint_id.as_str()).and_then(|(_, e)| *e));
        last.insert(o.endpoint_id.as_str(), (&o.plan, error));
    }
    let mut ids: Vec<&str> = last.keys().copied().collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    let (mut statuses, mut failures, mut breakers, mut errors, mut reasons) = (vec![], vec![], vec![], vec![], vec![]);
    for id in &ids {
        let (plan, error) = last[id];
        statuses.push(plan.health.status.as_str());
        failures.push(plan.health.consecutive_failures);
        breakers.push(plan.breaker_until);
        errors.push(error);
        reasons.push(match &plan.change {
            Change::Disable { reason } => Some(reason.as_str()),
            _ => None,
        });
    }
    sqlx::query("SELECT 1 FROM endpoints WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE endpoints e SET status = CASE WHEN e.enabled THEN x.status ELSE e.status END,
             status_since = CASE WHEN e.enabled AND (x.status <> e.status OR x.reason IS NOT NULL) THEN now()
                                 ELSE e.status_since END,
             failing_since = CASE WHEN NOT e.enabled THEN e.failing_since WHEN x.status = 'healthy' THEN NULL
                                  ELSE COALESCE(e.failing_since, now()) END,
             consecutive_failures = x.failures, breaker_until = x.breaker,
             last_error = COALESCE(x.error, e.last_error),
             enabled = e.enabled AND x.reason IS NULL, disabled_reason = COALESCE(x.reason, e.disabled_reason),
             updated_at = now()
         FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::timestamptz[], $5::text[], $6::text[])
              AS x(id, status, failures, breaker, error, reason)
         WHERE e.id = x.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&failures)
    .bind(&breakers)
    .bind(&errors)
    .bind(&reasons)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A test send to log: the sample event, sent once, outside the queue.
pub struct TestSend<'a> {
    pub account_id: &'a str,
    pub endpoint_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub created: DateTime<Utc>,
    pub result: &'a AttemptResult,
}

/// Logs a test send as what it was: an event, its delivery marked `test` (delivered or
/// failed at its one attempt; a test is not retried and does not move the endpoint's
/// health) and the attempt, in one statement.
pub async fn write_test_send(pool: &PgPool, sent: &TestSend<'_>) -> sqlx::Result<()> {
    let r = sent.result;
    let status = if r.success() { "delivered" } else { "failed" };
    let delivery_id = entity::DeliveryId::generate().to_string();
    let mut attempt = AttemptColumns::default();
    let of = AttemptOf {
        account_id: sent.account_id,
        delivery_id: &delivery_id,
        endpoint_id: sent.endpoint_id,
        event_type: sent.event_type,
        number: 1,
        at: sent.created,
    };
    attempt.push(of, r);
    attempt
        .bind(sqlx::query(concat!(
            "WITH ev AS (
                 INSERT INTO events (id, account_id, event_type, payload, created_at) VALUES ($15, $16, $17, $18, $19)
             ), dl AS (
                 INSERT INTO deliveries (id, account_id, event_id, endpoint_id, event_type, status, attempt_count,
                                         created_at, updated_at, test)
                 VALUES ($20, $16, $15, $21, $17, $22, 1, $19, now(), true)
             )",
            insert_attempts!(),
        )))
        .bind(sent.event_id)
        .bind(sent.account_id)
        .bind(sent.event_type)
        .bind(sent.payload)
        .bind(sent.created)
        .bind(delivery_id.as_str())
        .bind(sent.endpoint_id)
        .bind(status)
        .execute(pool)
        .await?;
    Ok(())
}

/// Header pairs as the text of a JSON object with lowercased names, written straight into
/// one string (no `serde_json::Value` per attempt). A repeated name is written twice and
/// the `jsonb` column keeps its last value.
fn headers_json<N: AsRef<str>>(headers: &[(N, String)]) -> String {
    struct Pairs<'h, N>(&'h [(N, String)]);
    impl<N: AsRef<str>> Serialize for Pairs<'_, N> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(name, value)| (lowercase(name.as_ref()), value)))
        }
    }
    fn lowercase(name: &str) -> Cow<'_, str> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        }
    }
    serde_json::to_string(&Pairs(headers)).expect("string pairs serialise")
}

fn describe(result: &AttemptResult) -> String {
    match (&result.error, result.status) {
        (Some(error), _) => error.clone(),
        (None, Some(code)) => format!("HTTP {code}"),
        (None, None) => "no response".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn result(status: Option<u16>) -> AttemptResult {
        AttemptResult {
            status,
            elapsed: Duration::from_millis(5),
            request_headers: vec![],
            response_headers: vec![],
            response_body: None,
            retry_after: None,
            error: status.is_none().then(|| "Connection refused".to_owned()),
        }
    }

    fn schedule() -> RetrySchedule {
        RetrySchedule(vec![Duration::from_secs(60), Duration::from_secs(300)])
    }

    #[test]
    fn the_recorder_gives_up_only_once_a_shutdown_has_lasted_the_grace() {
        let t0 = Instant::now();
        let mut since = None;
        assert!(!give_up(&mut since, false, t0 + Duration::from_secs(3600)), "never while running");
        assert!(!give_up(&mut since, true, t0), "a shutdown starts the clock");
        assert!(!give_up(&mut since, true, t0 + GIVE_UP_AFTER_SHUTDOWN - Duration::from_millis(1)));
        assert!(give_up(&mut since, true, t0 + GIVE_UP_AFTER_SHUTDOWN));
    }

    #[test]
    fn only_a_moved_health_or_a_failure_writes_the_endpoint_row() {
        let healthy = Health::healthy();
        let now = SystemTime::now();
        assert!(!plan(&healthy, 0, None, &result(Some(200)), &schedule(), 0.0, now).endpoint_changed);
        assert!(plan(&healthy, 0, None, &result(Some(500)), &schedule(), 0.0, now).endpoint_changed);
        let one_failure = Health { consecutive_failures: 1, ..Health::healthy() };
        assert!(
            plan(&one_failure, 0, None, &result(Some(200)), &schedule(), 0.0, now).endpoint_changed,
            "the count resets"
        );
    }

    const HEALTHY: Health = Health::healthy();

    #[test]
    fn a_success_delivers_and_keeps_the_last_error() {
        let p = plan(&HEALTHY, 0, None, &result(Some(204)), &schedule(), 0.5, SystemTime::now());
        assert_eq!(p.delivery_status, "delivered");
        assert_eq!(p.next_attempt_at, None);
        assert_eq!(p.last_error, None);
        assert!(p.keep_sending());
    }

    #[test]
    fn a_failure_schedules_the_next_retry_from_the_answer_time() {
        let now = SystemTime::now();
        let p = plan(&HEALTHY, 0, None, &result(Some(500)), &schedule(), 0.5, now);
        assert_eq!(p.delivery_status, "pending");
        let next = p.next_attempt_at.expect("a retry");
        let delay = (next - DateTime::<Utc>::from(now)).num_seconds();
        assert!((54..=66).contains(&delay), "1 min ± 10 %, got {delay} s");
        assert_eq!(p.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!(p.health.consecutive_failures, 1);
        assert_eq!(p.breaker_until, None, "a healthy endpoint keeps its breaker closed");
    }

    #[test]
    fn the_last_retry_dead_letters_and_a_failing_endpoint_opens_its_breaker() {
        let p = plan(&HEALTHY, 2, None, &result(None), &schedule(), 0.5, SystemTime::now());
        assert_eq!(p.delivery_status, "failed");
        let failing = Health { consecutive_failures: 4, ..Health::healthy() };
        let p = plan(&failing, 0, None, &result(Some(503)), &schedule(), 0.5, SystemTime::now());
        assert_eq!(p.change, Change::BecameFailing);
        assert_eq!(p.breaker_until, p.next_attempt_at);
        assert!(!p.keep_sending());
    }

    #[test]
    fn gone_disables_at_once_with_a_reason() {
        let p = plan(&HEALTHY, 0, None, &result(Some(410)), &schedule(), 0.5, SystemTime::now());
        assert!(matches!(p.change, Change::Disable { .. }));
        assert!(!p.keep_sending());
    }
}
