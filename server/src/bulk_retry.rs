//! Bulk retry (SPEC §8): queue an endpoint's failed deliveries of a time range for a new
//! attempt, as an apalis job that records its progress. Idempotent: a second start while
//! one runs returns it, and a delivery is re-queued only if it failed before the bulk
//! retry began, so a re-run job never sends anything twice.

use entity::api::{BulkRetry, BulkRetryRange};
use sqlx::{postgres::PgRow, PgPool, Row};

const BATCH: i64 = 500;

fn from_row(r: PgRow) -> BulkRetry {
    BulkRetry {
        id: r.get("id"),
        endpoint_id: r.get("endpoint_id"),
        since: r.get("since"),
        until: r.get("until"),
        total: r.get("total"),
        done: r.get("done"),
        state: r.get("state"),
    }
}

pub async fn count(pool: &PgPool, endpoint_id: &str, range: &BulkRetryRange) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3",
    )
    .bind(endpoint_id)
    .bind(range.since)
    .bind(range.until)
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Creates the bulk retry row, or returns the one already running for the same range
/// (`false`). The running one can finish between the insert that conflicts with it and the
/// read that looks for it; then the range is free again and the insert is tried again.
pub async fn create(
    pool: &PgPool,
    account_id: &str,
    endpoint_id: &str,
    range: &BulkRetryRange,
) -> sqlx::Result<(BulkRetry, bool)> {
    let total = count(pool, endpoint_id, range).await?;
    loop {
        let id = format!("bulk_{}", entity::ids::encode_u128(uuid_like()));
        let inserted = sqlx::query(
            "INSERT INTO bulk_retries (id, account_id, endpoint_id, since, until, total)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (endpoint_id, since, until) WHERE state = 'running' DO NOTHING
             RETURNING *",
        )
        .bind(&id)
        .bind(account_id)
        .bind(endpoint_id)
        .bind(range.since)
        .bind(range.until)
        .bind(total as i32)
        .fetch_optional(pool)
        .await?;
        if let Some(row) = inserted {
            return Ok((from_row(row), true));
        }
        let running = sqlx::query(
            "SELECT * FROM bulk_retries WHERE endpoint_id = $1 AND since = $2 AND until = $3 AND state = 'running'",
        )
        .bind(endpoint_id)
        .bind(range.since)
        .bind(range.until)
        .fetch_optional(pool)
        .await?;
        if let Some(row) = running {
            return Ok((from_row(row), false));
        }
    }
}

fn uuid_like() -> u128 {
    (u128::from(chrono::Utc::now().timestamp_millis() as u64) << 80) | (rand::random::<u128>() >> 48)
}

pub async fn get(pool: &PgPool, account_id: &str, id: &str) -> sqlx::Result<Option<BulkRetry>> {
    let row = sqlx::query("SELECT * FROM bulk_retries WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(from_row))
}

/// The job body: re-queues in batches, recording progress, then marks it finished.
pub async fn run(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    loop {
        let mut tx = pool.begin().await?;
        let queued = sqlx::query(
            "WITH b AS (SELECT * FROM bulk_retries WHERE id = $1 AND state = 'running'),
                  picked AS (
                      SELECT d.id FROM deliveries d, b
                      WHERE d.endpoint_id = b.endpoint_id AND d.status = 'failed'
                        AND d.created_at >= b.since AND d.created_at < b.until AND d.updated_at < b.created_at
                      ORDER BY d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED),
                  requeued AS (
                      UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), updated_at = now(),
                                             budget_from = d.attempt_count
                      FROM picked WHERE d.id = picked.id RETURNING d.endpoint_id, d.id)
             INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at) SELECT endpoint_id, id, now() FROM requeued
             ON CONFLICT (endpoint_id, delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at",
        )
        .bind(id)
        .bind(BATCH)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let finished = queued < BATCH as u64;
        sqlx::query(
            "UPDATE bulk_retries SET done = LEAST(total, done + $2),
                 state = CASE WHEN $3 THEN 'finished' ELSE state END,
                 finished_at = CASE WHEN $3 THEN now() ELSE finished_at END
             WHERE id = $1",
        )
        .bind(id)
        .bind(queued as i32)
        .bind(finished)
        .execute(&mut *tx)
        .await?;
        if queued > 0 {
            sqlx::query("SELECT pg_notify($1, 'bulk')").bind(crate::wake::DELIVERIES_CHANNEL).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if finished {
            return Ok(());
        }
    }
}
