//! Keeps the delivery queue small on disk. Every attempt that finishes a delivery deletes its
//! queue row, so at 10,000 deliveries/s the table makes 10,000 dead rows a second, each with
//! its index entries. Autovacuum visits a database once per `autovacuum_naptime` (60 s by
//! default), and a server may run with it off: left alone, the dead rows pile up and every
//! fetch, claim and admission count reads through them (the bench's e2e-100 on a server with
//! autovacuum off: 280,000 dead rows under ~15,000 live ones after 60 s, and delivery sagging
//! as they grew). So every process that delivers looks at the queue's dead rows every
//! `CHECK_EVERY` and vacuums it once they outnumber the live ones (ENGINE.md, "Traps").

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

/// How often the statistics are read.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Below this many dead rows a vacuum is not worth its fixed cost, however small the queue.
pub const MIN_DEAD_ROWS: i64 = 5_000;

/// Whether the queue is worth vacuuming: its dead rows outnumber its live ones (it is more
/// than half garbage), and there are enough of them to pay for the visit.
pub fn worth_vacuuming(dead: i64, live: i64) -> bool {
    dead >= MIN_DEAD_ROWS && dead >= live
}

/// Runs until `stop` turns true. Errors are logged and the next check tries again: a vacuum
/// is an optimisation, never a reason to stop delivering.
pub async fn run(pool: PgPool, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if let Err(err) = vacuum_if_worth_it(&pool).await {
            tracing::warn!(%err, "looking after the delivery queue's dead rows failed");
        }
    }
}

/// Reads the queue's statistics and vacuums it when `worth_vacuuming`; true when it did.
pub async fn vacuum_if_worth_it(pool: &PgPool) -> sqlx::Result<bool> {
    let counts: Option<(i64, i64)> = sqlx::query_as(
        "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables
         WHERE relid = 'delivery_queue'::regclass",
    )
    .fetch_optional(pool)
    .await?;
    let Some((dead, live)) = counts else { return Ok(false) };
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
}
