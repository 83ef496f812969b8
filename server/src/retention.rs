//! Log retention (SPEC §8): attempts, finished deliveries and their events older than
//! `WEBHOOKS_LOG_RETENTION` are removed. Attempts go a day at a time, by dropping the day
//! partitions that ended before the cutoff (`log_partitions`); what the two catch-all
//! partitions hold, deliveries and events are deleted in small batches, each its own short
//! statement, so pruning never holds locks on the log tables for long. Pending deliveries
//! are kept whatever their age: nothing accepted is dropped.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::log_partitions;

const BATCH: i64 = 5_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Day partitions of attempts dropped.
    pub attempt_days: usize,
    /// Attempts deleted row by row, from the catch-all partitions.
    pub attempts: u64,
    pub deliveries: u64,
    pub events: u64,
}

pub async fn prune(pool: &PgPool, retention: Duration) -> sqlx::Result<Pruned> {
    prune_at(pool, retention, Utc::now()).await
}

/// [`prune`] as if it were `now`.
pub async fn prune_at(pool: &PgPool, retention: Duration, now: DateTime<Utc>) -> sqlx::Result<Pruned> {
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    let attempt_days = log_partitions::drop_expired(pool, cutoff).await?.len();
    let mut attempts = 0;
    // By `ctid` of each partition itself: in the partitioned table a `ctid` is not unique.
    for catch_all in [
        "DELETE FROM attempts_before WHERE ctid = ANY(ARRAY(SELECT ctid FROM attempts_before WHERE attempted_at < $1 LIMIT $2))",
        "DELETE FROM attempts_default WHERE ctid = ANY(ARRAY(SELECT ctid FROM attempts_default WHERE attempted_at < $1 LIMIT $2))",
    ] {
        attempts += in_batches(pool, cutoff, catch_all).await?;
    }
    // A finished delivery goes once its last update, its last attempt, is past the cutoff:
    // within the hour, not at the next midnight, so each run deletes an hour's deliveries
    // instead of one run a day deleting a whole day's. Its last attempt is in a day that is
    // still kept, so the log never shows a delivery without attempts; its attempts follow
    // when their day is dropped, up to a day later, and until then count only in the
    // endpoint's stats, which read attempts by time anyway.
    let deliveries = in_batches(
        pool,
        cutoff,
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status <> 'pending'
             AND created_at < $1 AND updated_at < $1 LIMIT $2)",
    )
    .await?;
    let events = in_batches(
        pool,
        cutoff,
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < $1
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id) LIMIT $2)",
    )
    .await?;
    in_batches(
        pool,
        cutoff,
        "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
    )
    .await?;
    Ok(Pruned { attempt_days, attempts, deliveries, events })
}

async fn in_batches(pool: &PgPool, cutoff: DateTime<Utc>, sql: &'static str) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sql).bind(cutoff).bind(BATCH).execute(pool).await?.rows_affected();
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}
