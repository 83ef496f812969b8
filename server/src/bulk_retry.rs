//! The bulk retry job (SPEC §8): does the work of a row of `bulk_retries`, which the service
//! layer (`service::bulk_retries`) creates, by its kind:
//! - a bulk retry queues an endpoint's failed deliveries of a time range (or those waiting
//!   for a retry; of some event types) for a new attempt now.
//!   Idempotent: a delivery is re-queued only if it failed before the bulk retry began, so a
//!   re-run job never sends anything twice.
//! - a recovery creates deliveries for the events since a time that the endpoint subscribes
//!   to and never got (it was disabled, or subscribed later). Idempotent: one delivery per
//!   (event, endpoint) is a unique key, so a re-run or a second recovery adds nothing twice.

use chrono::{DateTime, Utc};
use entity::{api::BulkRetry, BulkRetryKind, BulkRetryState, DeliveryId};
use sea_orm::SqlxPostgresConnector;
use service::{bulk_retries, bulk_retry_picked, recovery_missing};
use sqlx::PgPool;

const BATCH: i64 = 500;

/// The job body: a bulk retry or a recovery, by the row's kind.
pub async fn run(pool: &PgPool, id: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
    let Some(row) = bulk_retries::find(&db, id).await? else { return Ok(()) }; // its endpoint was deleted
    let account_id = row.account_id.clone();
    let job = bulk_retries::to_resource(row);
    match (job.state, job.kind) {
        (BulkRetryState::Running, BulkRetryKind::Recover) => Ok(recover(pool, &account_id, &job).await?),
        (BulkRetryState::Running, BulkRetryKind::Retry) => Ok(retry(pool, &job).await?),
        (BulkRetryState::Finished, _) => Ok(()),
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
            bulk_retry_picked!(),
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
        .bind(job.status.as_str())
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

/// Creates the missing deliveries page by page (each page one transaction, with its
/// progress), queued behind what the endpoint already has, in publication order.
async fn recover(pool: &PgPool, account_id: &str, job: &BulkRetry) -> sqlx::Result<()> {
    let mut after: (DateTime<Utc>, String) = (job.since, String::new());
    loop {
        let page: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(concat!(
            "SELECT ev.id, ev.event_type, ev.created_at ",
            recovery_missing!(),
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
