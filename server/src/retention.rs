//! Log retention (SPEC §8): attempts, finished deliveries and their events older than
//! `WEBHOOKS_LOG_RETENTION` are removed. Attempts and events go a day at a time, by dropping
//! the day partitions that ended before the cutoff (`log_partitions`); a day of events only
//! once none of its deliveries is left. Deliveries, what the catch-all partitions hold, and
//! the events of an expired day that a delivery still holds are deleted in small batches,
//! each its own short statement, so pruning never holds locks on the log tables for long.
//! Pending deliveries are kept whatever their age: nothing accepted is dropped.
//!
//! Deleting by rows is the expensive part: at 10,000 deliveries/s an hour's expiry is 36
//! million deliveries, some 170 s of one backend (BENCHMARKS.md). Run flat out, that is a
//! burst beside the hot path every hour; so a run is paced ([`Pace`]): after each batch it
//! waits in proportion to the time the batch took. And it runs in one process at a time,
//! under an advisory lock: every process queues housekeeping, and two runs would only
//! contend for the same rows.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{pool::PoolConnection, PgConnection, PgPool, Postgres};
use tokio::sync::watch;

use crate::log_partitions::{self, DayDrops, Log};

const BATCH: i64 = 5_000;
/// The advisory lock a run holds (`pg_try_advisory_lock`), on its own connection.
pub const LOCK: i64 = 0x7765_6268_6f6f_6b72; // "webhookr"

/// How much of one database backend's time retention may take: after a batch that took `t`,
/// it waits `t × (1 − share) / share`, so its batches fill `share` of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    share: f64,
}

impl Pace {
    /// No pauses: batches back to back.
    pub const UNPACED: Pace = Pace { share: 1.0 };

    /// `share` of one backend, above 0 and at most 1.
    pub fn new(share: f64) -> Option<Pace> {
        (share > 0.0 && share <= 1.0).then_some(Pace { share })
    }

    pub fn share(self) -> f64 {
        self.share
    }

    /// The wait after a batch that kept the database busy for `busy`.
    pub fn pause_after(self, busy: Duration) -> Duration {
        busy.mul_f64((1.0 - self.share) / self.share)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Day partitions of attempts dropped.
    pub attempt_days: usize,
    /// Day partitions of events dropped.
    pub event_days: usize,
    /// Expired day partitions of either log whose drop gave up waiting for its lock.
    pub busy_days: usize,
    /// Attempts deleted row by row, from the catch-all partitions.
    pub attempts: u64,
    pub deliveries: u64,
    pub events: u64,
}

/// Prunes what is older than `retention`, or returns `None` at once if another run holds the
/// lock (in this process or another).
/// `stop` turning true (shutdown) ends the run between batches.
pub async fn prune(
    pool: &PgPool,
    retention: Duration,
    pace: Pace,
    stop: watch::Receiver<bool>,
) -> sqlx::Result<Option<Pruned>> {
    prune_at(pool, retention, Utc::now(), pace, stop).await
}

/// [`prune`] as if it were `now`.
pub async fn prune_at(
    pool: &PgPool,
    retention: Duration,
    now: DateTime<Utc>,
    pace: Pace,
    stop: watch::Receiver<bool>,
) -> sqlx::Result<Option<Pruned>> {
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    // Before taking the lock's connection, not under it: the drop takes a connection of its
    // own, and holding two at once could starve a small pool. Dropping is idempotent and
    // waits at most `lock_timeout`, so every process may do it.
    let attempt_days = log_partitions::drop_expired_attempts(pool, cutoff).await?;
    let mut held = LockHeld(Some(pool.acquire().await?));
    let conn = held.0.as_mut().expect("just acquired");
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LOCK).fetch_one(&mut **conn).await?;
    if !locked {
        held.0.take();
        return Ok(None);
    }
    let pruned = prune_locked(conn, cutoff, pace, stop, attempt_days).await;
    if sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut **conn).await.is_ok() {
        held.0.take(); // back to the pool, without the lock
    }
    pruned.map(Some)
}

/// The connection that holds the retention lock. A session lock outlives its statement, so
/// if the run ends before the lock is given back (an error, or cancelled at shutdown), the
/// connection is closed, which gives it back, rather than returned to the pool holding it.
struct LockHeld(Option<PoolConnection<Postgres>>);

impl Drop for LockHeld {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// The row deletes and the drops of event days, on the connection that holds the lock, after
/// the attempts' days went as `attempt_days` says.
async fn prune_locked(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    pace: Pace,
    stop: watch::Receiver<bool>,
    attempt_days: DayDrops,
) -> sqlx::Result<Pruned> {
    let mut run = Deletes { conn, cutoff, pace, stop };
    let mut attempts = 0;
    for catch_all in Log::Attempts.catch_alls() {
        attempts += run.in_batches("attempts", by_ctid(&catch_all, "attempted_at < $1")).await?;
    }
    // A finished delivery goes once its last update, its last attempt, is past the cutoff:
    // within the hour, not at the next midnight, so each run deletes an hour's deliveries
    // instead of one run a day deleting a whole day's. Its last attempt is in a day that is
    // still kept, so the log never shows a delivery without attempts; its attempts follow
    // when their day is dropped, up to a day later, and until then count only in the
    // endpoint's stats, which read attempts by time anyway.
    let deliveries = run
        .in_batches(
            "deliveries",
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status <> 'pending'
                 AND created_at < $1 AND updated_at < $1 LIMIT $2)"
                .to_owned(),
        )
        .await?;
    // After the deliveries: a day of events goes once none of its deliveries is left.
    let stopping = *run.stop.borrow();
    let days = match stopping {
        true => DayDrops::default(),
        false => log_partitions::drop_expired_events(&mut *run.conn, cutoff).await?,
    };
    // What is left by rows: the catch-alls, and the expired days a delivery still holds.
    let mut events = 0;
    let by_rows = Log::Events.catch_alls().into_iter().chain(days.kept.iter().map(|day| Log::Events.name(*day)));
    for table in by_rows {
        let unheld = "created_at < $1 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = t.id)";
        events += run.in_batches("events", by_ctid(&table, unheld)).await?;
    }
    run.in_batches("idempotency_keys", by_ctid("idempotency_keys", "created_at < $1")).await?;
    Ok(Pruned {
        attempt_days: attempt_days.dropped.len(),
        event_days: days.dropped.len(),
        busy_days: attempt_days.busy.len() + days.busy.len(),
        attempts,
        deliveries,
        events,
    })
}

/// Deletes up to `$2` rows of `table` (aliased `t` in `filter`) matching `filter`, by `ctid`
/// of the partition itself: in a partitioned table a `ctid` is not unique. `table` is a
/// partition name made by `log_partitions` or a literal, never input.
fn by_ctid(table: &str, filter: &str) -> String {
    format!("DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} t WHERE {filter} LIMIT $2))")
}

/// The row deletes of one run: paced, and ended between batches when the process shuts
/// down (what is left goes in a later run), so a SIGTERM does not wait out a pause.
struct Deletes<'a> {
    conn: &'a mut PgConnection,
    cutoff: DateTime<Utc>,
    pace: Pace,
    stop: watch::Receiver<bool>,
}

impl Deletes<'_> {
    /// `sql` again until it deletes less than a batch, pausing after each full batch;
    /// counted in `webhooks_retention_deleted_total` under `table`.
    async fn in_batches(&mut self, table: &'static str, sql: String) -> sqlx::Result<u64> {
        let mut total = 0;
        while !*self.stop.borrow() {
            let started = Instant::now();
            let deleted = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(self.cutoff)
                .bind(BATCH)
                .execute(&mut *self.conn)
                .await?
                .rows_affected();
            total += deleted;
            crate::metrics::retention_deleted(table, deleted);
            if deleted < BATCH as u64 {
                break;
            }
            let stopping = async {
                // A sender gone is no signal: then only the pause ends the wait.
                if self.stop.wait_for(|stopped| *stopped).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(self.pace.pause_after(started.elapsed())) => {}
                _ = stopping => {}
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_share_waits_three_times_what_the_batch_took() {
        let pace = Pace::new(0.25).unwrap();
        assert_eq!(pace.pause_after(Duration::from_millis(100)), Duration::from_millis(300));
        assert_eq!(Pace::new(0.5).unwrap().pause_after(Duration::from_millis(80)), Duration::from_millis(80));
    }

    #[test]
    fn unpaced_batches_run_back_to_back() {
        assert_eq!(Pace::UNPACED.pause_after(Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(Pace::new(1.0), Some(Pace::UNPACED));
    }

    #[test]
    fn a_share_must_be_above_zero_and_at_most_one() {
        for share in [0.0, -0.5, 1.01, f64::NAN] {
            assert_eq!(Pace::new(share), None, "{share}");
        }
    }
}
