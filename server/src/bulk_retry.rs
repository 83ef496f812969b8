//! Bulk retry and recovery (SPEC §8), each an apalis job that records its progress in
//! `bulk_retries` (`kind`):
//! - a bulk retry queues an endpoint's failed deliveries of a time range (or those waiting
//!   for a retry; of some event types) for a new attempt now.
//!   Idempotent: a second start while one runs returns it, and a delivery is re-queued only
//!   if it failed before the bulk retry began, so a re-run job never sends anything twice.
//! - a recovery creates deliveries for the events since a time that the endpoint subscribes
//!   to and never got (it was disabled, or subscribed later). Idempotent: one delivery per
//!   (event, endpoint) is a unique key, so a re-run or a second recovery adds nothing twice.

use std::future::Future;

use chrono::{DateTime, Utc};
use entity::{
    api::{BulkRetry, BulkRetryRange},
    BulkRetryId, DeliveryId,
};
use sqlx::{postgres::PgRow, PgPool, Row};

const BATCH: i64 = 500;

fn from_row(r: PgRow) -> BulkRetry {
    BulkRetry {
        id: r.get("id"),
        kind: r.get("kind"),
        endpoint_id: r.get("endpoint_id"),
        since: r.get("since"),
        until: r.get("until"),
        status: r.get("status"),
        event_types: r
            .get::<String, _>("event_types")
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        total: r.get("total"),
        done: r.get("done"),
        state: r.get("state"),
        created_at: r.get("created_at"),
    }
}

/// The deliveries a bulk retry would pick: its endpoint's, created in `[since, until)`, with
/// the status resent (a pending one only once attempted: it waits for a retry), of the types
/// named (`$4`: comma-separated, empty for all). The alias `d` is the delivery; `$1`..`$5`
/// are endpoint, since, until, types and status.
macro_rules! picked {
    () => {
        "d.endpoint_id = $1 AND d.created_at >= $2 AND d.created_at < $3
         AND ($4 = '' OR d.event_type = ANY(string_to_array($4, ',')))
         AND d.status = $5 AND (d.status = 'failed' OR d.attempt_count > 0)"
    };
}

pub async fn count(pool: &PgPool, endpoint_id: &str, range: &BulkRetryRange) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(concat!("SELECT count(*) FROM deliveries d WHERE ", picked!()))
        .bind(endpoint_id)
        .bind(range.since)
        .bind(range.until)
        .bind(range.event_types_key())
        .bind(range.target_status().as_str())
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// Creates the bulk retry row, or returns the one already running for the same range and
/// filters (`false`).
pub async fn create(
    pool: &PgPool,
    account_id: &str,
    endpoint_id: &str,
    range: &BulkRetryRange,
) -> sqlx::Result<(BulkRetry, bool)> {
    let total = count(pool, endpoint_id, range).await?;
    let (status, types) = (range.target_status().as_str(), range.event_types_key());
    let insert = |id: BulkRetryId| {
        sqlx::query(
            "INSERT INTO bulk_retries (id, account_id, endpoint_id, since, until, total, status, event_types)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (endpoint_id, since, until, status, event_types)
                 WHERE state = 'running' AND kind = 'retry' DO NOTHING
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(account_id)
        .bind(endpoint_id)
        .bind(range.since)
        .bind(range.until)
        .bind(total.min(i64::from(i32::MAX)) as i32)
        .bind(status)
        .bind(types.clone())
        .fetch_optional(pool)
    };
    let running = || {
        sqlx::query(
            "SELECT * FROM bulk_retries
             WHERE endpoint_id = $1 AND since = $2 AND until = $3 AND status = $4 AND event_types = $5
               AND state = 'running' AND kind = 'retry'",
        )
        .bind(endpoint_id)
        .bind(range.since)
        .bind(range.until)
        .bind(status)
        .bind(types.clone())
        .fetch_optional(pool)
    };
    start_or_join(insert, running).await
}

/// Inserts a new row, or returns the running one its unique index conflicts with (`false`).
/// That one can finish between the insert that conflicts with it and the read that looks for
/// it; then its key is free again and the insert is tried again.
async fn start_or_join<I, R>(
    insert: impl Fn(BulkRetryId) -> I,
    running: impl Fn() -> R,
) -> sqlx::Result<(BulkRetry, bool)>
where
    I: Future<Output = sqlx::Result<Option<PgRow>>>,
    R: Future<Output = sqlx::Result<Option<PgRow>>>,
{
    loop {
        if let Some(row) = insert(BulkRetryId::generate()).await? {
            return Ok((from_row(row), true));
        }
        if let Some(row) = running().await? {
            return Ok((from_row(row), false));
        }
    }
}

pub async fn get(pool: &PgPool, account_id: &str, id: &str) -> sqlx::Result<Option<BulkRetry>> {
    let row = sqlx::query("SELECT * FROM bulk_retries WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(from_row))
}

/// The job body: a bulk retry or a recovery, by the row's kind.
pub async fn run(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    let row = sqlx::query("SELECT * FROM bulk_retries WHERE id = $1").bind(id).fetch_optional(pool).await?;
    let Some(row) = row else { return Ok(()) }; // its endpoint was deleted
    let account_id: String = row.get("account_id");
    let job = from_row(row);
    match (job.state.as_str(), job.kind.as_str()) {
        ("running", "recover") => recover(pool, &account_id, &job).await,
        ("running", _) => retry(pool, &job).await,
        _ => Ok(()), // finished
    }
}

/// Re-queues in batches, recording progress, then marks it finished.
async fn retry(pool: &PgPool, job: &BulkRetry) -> sqlx::Result<()> {
    let id = job.id.as_str();
    loop {
        let mut tx = pool.begin().await?;
        let queued = sqlx::query(concat!(
            "WITH picked AS (
                      SELECT d.id FROM deliveries d
                      WHERE ",
            picked!(),
            " AND d.updated_at < $6
                      ORDER BY d.id LIMIT $7 FOR UPDATE OF d SKIP LOCKED),
                  requeued AS (
                      UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), updated_at = now(),
                                             budget_from = d.attempt_count
                      FROM picked WHERE d.id = picked.id RETURNING d.endpoint_id, d.id)
             INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at) SELECT endpoint_id, id, now() FROM requeued
             ON CONFLICT (endpoint_id, delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at"
        ))
        .bind(&job.endpoint_id)
        .bind(job.since)
        .bind(job.until)
        .bind(job.event_types.join(","))
        .bind(&job.status)
        .bind(job.created_at)
        .bind(BATCH)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let finished = queued < BATCH as u64;
        progress(&mut tx, id, queued as i32, finished).await?;
        tx.commit().await?;
        if finished {
            return Ok(());
        }
    }
}

/// The events of the endpoint's account in `[since, until)` of a type it subscribes to and
/// with no delivery to it, in publication order.
macro_rules! missing {
    () => {
        "FROM events ev
         WHERE ev.account_id = $1 AND ev.created_at >= $2 AND ev.created_at < $3
           AND ev.event_type IN (SELECT event_type FROM endpoint_event_types WHERE endpoint_id = $4)
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = ev.id AND d.endpoint_id = $4)"
    };
}

/// Starts a recovery of what the endpoint missed since `since`, or returns the one already
/// running for it (`false`).
pub async fn create_recovery(
    pool: &PgPool,
    account_id: &str,
    endpoint_id: &str,
    since: DateTime<Utc>,
) -> sqlx::Result<(BulkRetry, bool)> {
    let until = Utc::now();
    let (total,): (i64,) = sqlx::query_as(concat!("SELECT count(*) ", missing!()))
        .bind(account_id)
        .bind(since)
        .bind(until)
        .bind(endpoint_id)
        .fetch_one(pool)
        .await?;
    let insert = |id: BulkRetryId| {
        sqlx::query(
            "INSERT INTO bulk_retries (id, kind, account_id, endpoint_id, since, until, total)
             VALUES ($1, 'recover', $2, $3, $4, $5, $6)
             ON CONFLICT (endpoint_id) WHERE state = 'running' AND kind = 'recover' DO NOTHING
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(account_id)
        .bind(endpoint_id)
        .bind(since)
        .bind(until)
        .bind(total.min(i64::from(i32::MAX)) as i32)
        .fetch_optional(pool)
    };
    let running = || {
        sqlx::query("SELECT * FROM bulk_retries WHERE endpoint_id = $1 AND state = 'running' AND kind = 'recover'")
            .bind(endpoint_id)
            .fetch_optional(pool)
    };
    start_or_join(insert, running).await
}

/// Creates the missing deliveries page by page (each page one transaction, with its
/// progress), queued behind what the endpoint already has, in publication order.
async fn recover(pool: &PgPool, account_id: &str, job: &BulkRetry) -> sqlx::Result<()> {
    let mut after: (DateTime<Utc>, String) = (job.since, String::new());
    loop {
        let page: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(concat!(
            "SELECT ev.id, ev.event_type, ev.created_at ",
            missing!(),
            " AND (ev.created_at, ev.id) > ($5, $6) ORDER BY ev.created_at, ev.id LIMIT $7"
        ))
        .bind(account_id)
        .bind(job.since)
        .bind(job.until)
        .bind(&job.endpoint_id)
        .bind(after.0)
        .bind(&after.1)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let finished = page.len() < BATCH as usize;
        let ids: Vec<String> = page.iter().map(|_| DeliveryId::generate().to_string()).collect();
        let events: Vec<&str> = page.iter().map(|(id, _, _)| id.as_str()).collect();
        let types: Vec<&str> = page.iter().map(|(_, t, _)| t.as_str()).collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "WITH dl AS (
                 INSERT INTO deliveries (id, account_id, event_id, endpoint_id, event_type, status, next_attempt_at,
                                         created_at, updated_at)
                 SELECT d.id, $1, d.ev, $2, d.t, 'pending', now(), now(), now()
                 FROM UNNEST($3::text[], $4::text[], $5::text[]) AS d(id, ev, t)
                 ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id
             )
             INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at) SELECT $2, id, now() FROM dl",
        )
        .bind(account_id)
        .bind(&job.endpoint_id)
        .bind(&ids)
        .bind(&events)
        .bind(&types)
        .execute(&mut *tx)
        .await?;
        progress(&mut tx, &job.id, page.len() as i32, finished).await?;
        tx.commit().await?;
        if finished {
            return Ok(());
        }
        if let Some((id, _, at)) = page.into_iter().last() {
            after = (at, id);
        }
    }
}

/// Records `n` more done (and the end, when `finished`) in the transaction that did them,
/// and wakes the dispatchers when something was queued.
async fn progress(tx: &mut sqlx::PgConnection, id: &str, n: i32, finished: bool) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bulk_retries SET done = LEAST(total, done + $2),
             state = CASE WHEN $3 THEN 'finished' ELSE state END,
             finished_at = CASE WHEN $3 THEN now() ELSE finished_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(n)
    .bind(finished)
    .execute(&mut *tx)
    .await?;
    if n > 0 {
        sqlx::query("SELECT pg_notify($1, 'bulk')").bind(crate::wake::DELIVERIES_CHANNEL).execute(&mut *tx).await?;
    }
    Ok(())
}
