//! Log retention (SPEC §8): attempts, finished deliveries and their events older than
//! `WEBHOOKS_LOG_RETENTION` are deleted in small batches, each its own short statement,
//! so pruning never holds locks on the log tables for long. Pending deliveries are kept
//! whatever their age: nothing accepted is dropped.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

const BATCH: i64 = 5_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub attempts: u64,
    pub deliveries: u64,
    pub events: u64,
}

pub async fn prune(pool: &PgPool, retention: Duration) -> sqlx::Result<Pruned> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    let attempts = in_batches(
        pool,
        cutoff,
        "DELETE FROM attempts WHERE ctid = ANY(ARRAY(SELECT ctid FROM attempts WHERE attempted_at < $1 LIMIT $2))",
    )
    .await?;
    let deliveries = in_batches(
        pool,
        cutoff,
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status <> 'pending' AND created_at < $1
             AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = deliveries.id) LIMIT $2)",
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
    Ok(Pruned { attempts, deliveries, events })
}

async fn in_batches(pool: &PgPool, cutoff: chrono::DateTime<Utc>, sql: &'static str) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sql).bind(cutoff).bind(BATCH).execute(pool).await?.rows_affected();
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}
