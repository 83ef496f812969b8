//! What PostgreSQL did for a scenario: commits, rows written and WAL from its statistics
//! views (and statements when `pg_stat_statements` is loaded), and the backlog of pending
//! deliveries sampled once a second: the snapshots through `psql`, the per-second samples
//! over one connection each (sqlx).

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use sqlx::{postgres::PgRow, Connection, PgConnection, Row};

pub fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").arg(url).args(["-Atqc", sql]).output().context("running psql")?;
    if !out.status.success() {
        bail!("psql `{sql}` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn count(url: &str, sql: &str) -> anyhow::Result<u64> {
    let text = psql(url, sql)?;
    text.trim().parse().with_context(|| format!("`{sql}` gave {text:?}, not a count"))
}

/// Whether `pg_stat_statements` is in `shared_preload_libraries` (its view only works then).
/// The shared server is never reconfigured: without it, statements are "n/a".
pub fn statements_loaded(admin_url: &str) -> bool {
    psql(admin_url, "SHOW shared_preload_libraries").is_ok_and(|s| s.contains("pg_stat_statements"))
}

/// The server settings a reader needs to compare runs on different machines: this workplace's
/// shared server once ran with `autovacuum = off`, which changes what a queue costs.
pub fn server_settings(admin_url: &str) -> anyhow::Result<String> {
    let sql = "SELECT 'PostgreSQL ' || current_setting('server_version') || ': ' || string_agg(n || ' = ' || \
               current_setting(n), ', ' ORDER BY n) FROM unnest(ARRAY['autovacuum', 'checkpoint_timeout', \
               'max_wal_size', 'shared_buffers', 'synchronous_commit', 'max_connections']) AS n";
    Ok(psql(admin_url, sql)?.trim().to_owned())
}

/// Cumulative counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `pg_stat_database.xact_commit` of the scenario database.
    pub commits: u64,
    /// `tup_inserted + tup_updated + tup_deleted` of the scenario database.
    pub rows: u64,
    /// `pg_stat_wal.wal_bytes`, cluster-wide.
    pub wal_bytes: u64,
    /// Sum of `pg_stat_statements.calls` in the scenario database, when loaded.
    pub statements: Option<u64>,
}

impl Snapshot {
    /// Backends report their counters when idle (at most a second late) and on exit, so read
    /// the final snapshot after the server has stopped.
    pub fn take(db_url: &str, statements: bool) -> anyhow::Result<Snapshot> {
        let line = psql(
            db_url,
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, (SELECT wal_bytes FROM pg_stat_wal) \
             FROM pg_stat_database WHERE datname = current_database()",
        )?;
        let fields: Vec<u64> = line.trim().split('|').map(|f| f.parse::<u64>()).collect::<Result<_, _>>()?;
        let [commits, rows, wal_bytes] = fields[..] else { bail!("pg_stat_database gave {line:?}") };
        let statements = if statements {
            Some(count(
                db_url,
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )?)
        } else {
            None
        };
        Ok(Snapshot { commits, rows, wal_bytes, statements })
    }
}

/// Database work per delivery (or per event, for the ingest rows).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub commits: f64,
    pub rows: f64,
    pub wal_bytes: f64,
    pub statements: Option<f64>,
}

/// `after − before`, divided by `units`; `None` when nothing was done.
pub fn per_unit(before: &Snapshot, after: &Snapshot, units: u64) -> Option<Cost> {
    if units == 0 {
        return None;
    }
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / units as f64;
    Some(Cost {
        commits: per(after.commits, before.commits),
        rows: per(after.rows, before.rows),
        wal_bytes: per(after.wal_bytes, before.wal_bytes),
        statements: before.statements.zip(after.statements).map(|(b, a)| per(a, b)),
    })
}

/// A query sampled once a second until `finish`, over one connection of its own: the backlog
/// (`Backlog`) and the WAL clock (`WalClock`) share it. (A `psql` process per sample cost 7 %
/// of the machine in the profile of 822f4c6, taken from what the server could use.)
pub struct Sampler<T> {
    samples: Arc<Mutex<Vec<(Instant, T)>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A backlog count (`pending_query` for deliveries, or another `count(*)` query).
pub type Backlog = Sampler<u64>;

impl<T: Send + 'static> Sampler<T> {
    fn every_second(db_url: String, sql: &'static str, decode: fn(&PgRow) -> anyhow::Result<T>) -> Self {
        Self::every(Duration::from_secs(1), db_url, sql, decode)
    }

    pub(crate) fn every(
        period: Duration,
        db_url: String,
        sql: &'static str,
        decode: fn(&PgRow) -> anyhow::Result<T>,
    ) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let out = samples.clone();
        let task = tokio::spawn(async move {
            let mut conn = match PgConnection::connect(&db_url).await {
                Ok(conn) => conn,
                Err(err) => return eprintln!("sampling `{sql}`: cannot connect: {err}"),
            };
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                let at = Instant::now();
                let row = sqlx::query(sql).fetch_one(&mut conn).await;
                if let Ok(sample) = row.map_err(anyhow::Error::from).and_then(|row| decode(&row)) {
                    out.lock().unwrap().push((at, sample));
                }
            }
        });
        Sampler { samples, stop, task }
    }

    /// The samples: (when, value).
    pub async fn finish(self) -> Vec<(Instant, T)> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// The pending deliveries: the queue table since engine step 3, the log's pending rows before
/// it (so the bench measures older binaries too; a count over the log without its pending
/// index would scan the whole log each second).
pub fn pending_query(db_url: &str) -> anyhow::Result<&'static str> {
    let queue = psql(db_url, "SELECT to_regclass('delivery_queue') IS NOT NULL")?;
    Ok(if queue.trim() == "t" {
        "SELECT count(*) FROM delivery_queue"
    } else {
        "SELECT count(*) FROM deliveries WHERE status = 'pending'"
    })
}

impl Backlog {
    pub fn start(db_url: String, sql: &'static str) -> Backlog {
        Sampler::every_second(db_url, sql, |row| Ok(row.try_get::<i64, _>(0)?.max(0) as u64))
    }
}

/// WAL written and checkpoints begun, sampled once a second beside the backlog: a second
/// when deliveries dip can then be told apart as one where a checkpoint began (after it,
/// the first change to every page logs the whole page, so WAL jumps).
pub type WalClock = Sampler<WalSample>;

/// The cluster's WAL position and the start of its last completed checkpoint, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalSample {
    /// `pg_current_wal_lsn()` in bytes.
    pub lsn: u64,
    /// `pg_control_checkpoint().checkpoint_time`, Unix seconds: when the checkpoint began.
    pub checkpoint_began: i64,
}

const WAL_CLOCK: &str = "SELECT (pg_current_wal_lsn() - '0/0')::bigint, \
                         extract(epoch FROM checkpoint_time)::bigint FROM pg_control_checkpoint()";

impl WalClock {
    pub fn start(db_url: String) -> WalClock {
        Sampler::every_second(db_url, WAL_CLOCK, |row| {
            Ok(WalSample { lsn: row.try_get::<i64, _>(0)?.max(0) as u64, checkpoint_began: row.try_get(1)? })
        })
    }
}

/// Per whole second after `origin` (whose Unix time is `origin_unix`): the WAL bytes written
/// in it (from consecutive samples, credited to the later one's second; `None` without two
/// samples) and whether a checkpoint began in it (known once that checkpoint completed and
/// was seen by a later sample).
pub fn wal_per_second(
    samples: &[(Instant, WalSample)],
    origin: Instant,
    origin_unix: i64,
    seconds: usize,
) -> (Vec<Option<u64>>, Vec<bool>) {
    let mut wal = vec![None; seconds];
    let mut began = vec![false; seconds];
    for pair in samples.windows(2) {
        let ((_, a), (at, b)) = (pair[0], pair[1]);
        if let Some(slot) = wal.get_mut(at.saturating_duration_since(origin).as_secs() as usize) {
            *slot = Some(slot.unwrap_or(0) + b.lsn.saturating_sub(a.lsn));
        }
    }
    let mut seen: Vec<i64> = samples.iter().map(|(_, s)| s.checkpoint_began).collect();
    seen.dedup();
    for t in seen.into_iter().skip(1) {
        if let Some(slot) = usize::try_from(t - origin_unix).ok().and_then(|i| began.get_mut(i)) {
            *slot = true;
        }
    }
    (wal, began)
}

/// The backlog of each whole second after `origin` (the last sample taken in it; the previous
/// second's value when a second has none), `None` before the first sample.
pub fn backlog_per_second(samples: &[(Instant, u64)], origin: Instant, seconds: usize) -> Vec<Option<u64>> {
    let mut series = vec![None; seconds];
    for (at, n) in samples {
        if let Some(slot) = series.get_mut(at.saturating_duration_since(origin).as_secs() as usize) {
            *slot = Some(*n);
        }
    }
    for i in 1..series.len() {
        if series[i].is_none() {
            series[i] = series[i - 1];
        }
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_the_delta_per_unit() {
        let before = Snapshot { commits: 100, rows: 1_000, wal_bytes: 50_000, statements: None };
        let after = Snapshot { commits: 300, rows: 7_000, wal_bytes: 250_000, statements: None };
        let cost = per_unit(&before, &after, 100).expect("units > 0");
        assert_eq!(cost, Cost { commits: 2.0, rows: 60.0, wal_bytes: 2_000.0, statements: None });
        assert_eq!(per_unit(&before, &after, 0), None);
        let with = |s: Snapshot, n| Snapshot { statements: Some(n), ..s };
        let cost = per_unit(&with(before, 10), &with(after, 510), 100).expect("units > 0");
        assert_eq!(cost.statements, Some(5.0));
        assert_eq!(per_unit(&with(before, 10), &after, 100).expect("units").statements, None);
    }

    #[test]
    fn wal_series_credits_each_delta_to_its_second_and_marks_checkpoints_that_began_in_the_window() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let s = |lsn, checkpoint_began| WalSample { lsn, checkpoint_began };
        // A checkpoint that began before the window (999) is the starting state, not a mark;
        // the one that began at 1,002 is seen once it completes, at the 3.1 s sample.
        let samples = [
            (at(100), s(1_000, 999)),
            (at(1_100), s(5_000, 999)),
            (at(2_100), s(9_000, 999)),
            (at(3_100), s(29_000, 1_002)),
        ];
        let (wal, began) = wal_per_second(&samples, t0, 1_000, 5);
        assert_eq!(wal, vec![None, Some(4_000), Some(4_000), Some(20_000), None]);
        assert_eq!(began, vec![false, false, true, false, false]);
    }

    #[test]
    fn backlog_series_holds_the_last_sample_of_each_second() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let samples = [(at(1_100), 50), (at(1_900), 40), (at(3_500), 10)];
        assert_eq!(backlog_per_second(&samples, t0, 5), vec![None, Some(40), Some(40), Some(10), Some(10)]);
    }
}
