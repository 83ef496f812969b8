//! Keeps the delivery queue small on disk. Every attempt that finishes a delivery deletes its
//! queue row, so at 10,000 deliveries/s the table makes 10,000 dead rows a second, each with
//! its index entries. Autovacuum visits a database once per `autovacuum_naptime` (60 s by
//! default), and a server may run with it off: left alone, the dead rows pile up and every
//! fetch, claim and admission count reads through them (the bench's e2e-100 on a server with
//! autovacuum off: 280,000 dead rows under ~15,000 live ones after 60 s, and delivery sagging
//! as they grew). So every process that delivers looks at the queue's dead rows every
//! `VACUUM_CHECK_EVERY` and vacuums it once they outnumber the live ones (ENGINE.md, "Traps").
//!
//! A vacuum also tells the planner how many rows the table holds, and a queue swings from
//! empty to tens of thousands of rows within seconds. One vacuumed while nearly empty leaves
//! the planner sure that the queue has a row or so however large it grows. The recorder's
//! completion statement, when it still joined the queue with its outcomes, then scanned the
//! whole queue once per outcome (the bench's fan-out: 1,000-outcome flushes taking 1-2 s,
//! deliveries falling from 10,000/s to a few hundred, BENCHMARKS.md, 6 Dec 2026); it now
//! looks each row up from its outcome, but the fetch and the admission counts still plan
//! with the estimate. Autovacuum and autoanalyze can leave the same estimate behind. So each
//! check also compares the live rows with the planner's estimate and analyzes the table when
//! the estimate is far too low, every `ESTIMATE_CHECK_EVERY`: in the fan-out bench a queue
//! refilled within a second of a vacuum, and checking every 2 s left 4 s of slow flushes
//! (10,000 → 1,440 deliveries/s).

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

/// How often the dead rows are looked at.
pub const VACUUM_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often the planner's estimate is compared with the live rows (one catalog read; the
/// live count itself lags by up to a second, as sessions flush their statistics).
pub const ESTIMATE_CHECK_EVERY: Duration = Duration::from_millis(500);
/// Below this many dead rows a vacuum is not worth its fixed cost, however small the queue.
pub const MIN_DEAD_ROWS: i64 = 5_000;

/// Below this many live rows a wrong estimate cannot make a plan expensive.
pub const MIN_LIVE_ROWS_FOR_ESTIMATE: i64 = 1_000;

/// Whether the queue is worth vacuuming: its dead rows outnumber its live ones (it is more
/// than half garbage), and there are enough of them to pay for the visit.
pub fn worth_vacuuming(dead: i64, live: i64) -> bool {
    dead >= MIN_DEAD_ROWS && dead >= live
}

/// The rows the planner believes the table holds, as PostgreSQL estimates them: the density
/// of the last vacuum or analyze (`reltuples / relpages`) times the pages the table has now.
/// `None` when neither has run (`reltuples` -1) or the table had no pages then: the planner
/// then estimates from the row width and the current size, which follows the table.
pub fn planner_estimate(reltuples: f64, relpages: i64, pages_now: i64) -> Option<f64> {
    (reltuples >= 0.0 && relpages > 0).then(|| reltuples / relpages as f64 * pages_now as f64)
}

/// Whether the planner's estimate is low enough to pick a plan that scans the queue once per
/// outcome: the queue holds enough rows for that to hurt, and ten times what it is thought to.
pub fn estimate_too_low(live: i64, estimate: Option<f64>) -> bool {
    estimate.is_some_and(|estimate| live >= MIN_LIVE_ROWS_FOR_ESTIMATE && estimate * 10.0 < live as f64)
}

/// Runs until `stop` turns true. Errors are logged and the next check tries again: a vacuum
/// is an optimisation, never a reason to stop delivering. Without `vacuum` (autovacuum looks
/// after the dead rows) it still watches the estimate, which autovacuum can leave wrong too.
pub async fn run(pool: PgPool, vacuum: bool, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(ESTIMATE_CHECK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut vacuum_checked = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let vacuum_due = vacuum && vacuum_checked.elapsed() >= VACUUM_CHECK_EVERY;
        if vacuum_due {
            vacuum_checked = tokio::time::Instant::now();
        }
        if let Err(err) = look_after(&pool, vacuum_due).await {
            tracing::warn!(%err, "looking after the delivery queue failed");
        }
    }
}

/// One check: reads the queue's statistics once, vacuums it when `vacuum_due` and it is
/// `worth_vacuuming`, and otherwise analyzes it when the planner's estimate is far too low (a
/// vacuum leaves a fresh estimate behind).
async fn look_after(pool: &PgPool, vacuum_due: bool) -> sqlx::Result<()> {
    let Some(stats) = QueueStats::read(pool).await? else { return Ok(()) };
    if vacuum_due && vacuum_if_worth_it(pool, &stats).await? {
        return Ok(());
    }
    analyze_if_misjudged(pool, &stats).await?;
    Ok(())
}

/// What PostgreSQL's statistics say of the queue, read in one catalog query.
#[derive(Debug, Clone, Copy)]
pub struct QueueStats {
    /// Live and dead rows, as sessions have reported them (lags by up to a second).
    pub live: i64,
    pub dead: i64,
    /// The planner's `reltuples` and `relpages`, as the last vacuum or analyze left them.
    pub reltuples: f32,
    pub relpages: i32,
    /// The table's size now, in pages.
    pub pages_now: i64,
}

impl QueueStats {
    /// `None` when the queue table does not exist (a database not migrated yet).
    pub async fn read(pool: &PgPool) -> sqlx::Result<Option<Self>> {
        let row: Option<(i64, i64, f32, i32, i64)> = sqlx::query_as(
            "SELECT s.n_live_tup, s.n_dead_tup, c.reltuples, c.relpages,
                    pg_relation_size(c.oid) / current_setting('block_size')::int8
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.relid = to_regclass('delivery_queue')",
        )
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|(live, dead, reltuples, relpages, pages_now)| Self { live, dead, reltuples, relpages, pages_now }))
    }

    fn estimate(&self) -> Option<f64> {
        planner_estimate(f64::from(self.reltuples), i64::from(self.relpages), self.pages_now)
    }
}

/// Vacuums the queue when `stats` say it is `worth_vacuuming`; true when it did.
pub async fn vacuum_if_worth_it(pool: &PgPool, stats: &QueueStats) -> sqlx::Result<bool> {
    let QueueStats { dead, live, .. } = *stats;
    if !worth_vacuuming(dead, live) {
        return Ok(false);
    }
    let started = std::time::Instant::now();
    // SKIP_LOCKED: when another process is vacuuming it already, this one has nothing to add.
    // TRUNCATE false: giving back the empty pages at the end of the table would take a lock
    // that stops every insert and delete for a moment, and the queue grows back anyway. The
    // simple-query protocol: VACUUM cannot run in the implicit transaction of a prepared
    // statement.
    sqlx::raw_sql("VACUUM (SKIP_LOCKED, TRUNCATE false) delivery_queue").execute(pool).await?;
    tracing::debug!(dead, live, took = ?started.elapsed(), "vacuumed the delivery queue");
    Ok(true)
}

/// Analyzes the queue when `stats` show the planner's estimate `estimate_too_low`; true when
/// it did.
pub async fn analyze_if_misjudged(pool: &PgPool, stats: &QueueStats) -> sqlx::Result<bool> {
    let (live, estimate) = (stats.live, stats.estimate());
    if !estimate_too_low(live, estimate) {
        return Ok(false);
    }
    // ANALYZE samples at most 30,000 rows and does not block inserts or deletes.
    sqlx::raw_sql("ANALYZE delivery_queue").execute(pool).await?;
    tracing::debug!(live, ?estimate, "analyzed the delivery queue");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_vacuumed_once_it_is_more_garbage_than_rows_and_the_garbage_is_worth_it() {
        assert!(!worth_vacuuming(4_999, 0), "too few dead rows to pay for a visit");
        assert!(worth_vacuuming(MIN_DEAD_ROWS, 0));
        assert!(!worth_vacuuming(20_000, 30_000), "a long backlog is mostly live rows");
        assert!(worth_vacuuming(30_000, 30_000));
        assert!(worth_vacuuming(280_000, 15_000), "the bench's e2e-100 after 60 s");
    }

    #[test]
    fn the_planners_estimate_scales_the_last_density_to_the_current_size() {
        assert_eq!(planner_estimate(-1.0, 0, 500), None, "never vacuumed nor analyzed");
        assert_eq!(planner_estimate(0.0, 0, 500), None, "vacuumed while it had no pages");
        assert_eq!(planner_estimate(0.0, 400, 500), Some(0.0), "vacuumed while empty");
        assert_eq!(planner_estimate(2_000.0, 100, 300), Some(6_000.0));
    }

    #[test]
    fn a_queue_thought_empty_while_it_holds_thousands_is_misjudged() {
        assert!(estimate_too_low(20_000, Some(1.0)), "the bench's fan-out after a vacuum at an empty moment");
        assert!(!estimate_too_low(20_000, Some(5_000.0)), "within ten times: plans stay index lookups");
        assert!(!estimate_too_low(MIN_LIVE_ROWS_FOR_ESTIMATE - 1, Some(0.0)), "too small to matter");
        assert!(!estimate_too_low(20_000, None), "no estimate kept: the planner goes by the table's size");
    }
}
