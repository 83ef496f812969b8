//! Day partitions of the attempt log. `attempts` is partitioned by `attempted_at`, one
//! partition per UTC day named `attempts_pYYYYMMDD`, so retention drops a day's partition
//! (a catalog change, whatever the day holds) instead of deleting its rows one by one: at
//! 10,000 deliveries/s a day is 864 million attempts, and deleting them and vacuuming after
//! costs the database 40-65 % of the time inserting them took and 90 % of its WAL
//! (`bench/retention.sh` measures both).
//!
//! Two catch-alls keep an insert from ever failing for want of a partition:
//! `attempts_before` holds everything before the first day partition (the rows from before
//! the migration that introduced the days), `attempts_default` anything past the days made
//! ahead, which stays empty while [`ensure`] runs (at every start and in every housekeeping
//! run). Retention deletes from those two in batches, as it did from the whole table.
//!
//! The plan, which partitions should exist and which have expired, is pure ([`wanted`],
//! [`expired`]); the catalog work is [`ensure`] and [`drop_expired`].

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::PgPool;

/// Days made ahead of today, so a process that misses a housekeeping run or two still finds
/// its day's partition. The migration makes the same three.
pub const AHEAD_DAYS: u64 = 2;

/// A DDL statement waits at most 5 s for the parent table's lock, then gives up until the
/// next run: attaching takes a lock that conflicts with nothing on the hot path, but
/// dropping locks out the recorder's inserts while it waits behind a long dashboard query.
const SET_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

const PREFIX: &str = "attempts_p";

/// The partition of one UTC day: `[day 00:00, next day 00:00)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DayPartition(pub NaiveDate);

impl DayPartition {
    pub fn of(at: DateTime<Utc>) -> DayPartition {
        DayPartition(at.date_naive())
    }

    pub fn name(self) -> String {
        format!("{PREFIX}{}", self.0.format("%Y%m%d"))
    }

    /// The day of a partition's name; `None` for the catch-alls and anything else.
    pub fn parse(name: &str) -> Option<DayPartition> {
        let digits = name.strip_prefix(PREFIX)?;
        (digits.len() == 8).then_some(())?;
        NaiveDate::parse_from_str(digits, "%Y%m%d").ok().map(DayPartition)
    }

    pub fn from(self) -> DateTime<Utc> {
        self.0.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    }

    /// The first instant not in the partition.
    pub fn until(self) -> DateTime<Utc> {
        DayPartition(self.0 + Days::new(1)).from()
    }
}

/// The day partitions that should exist at `now`: today's and [`AHEAD_DAYS`] after it.
pub fn wanted(now: DateTime<Utc>) -> Vec<DayPartition> {
    let today = DayPartition::of(now).0;
    (0..=AHEAD_DAYS).map(|ahead| DayPartition(today + Days::new(ahead))).collect()
}

/// The day partitions among `existing` whose every row is older than `cutoff`: their day
/// ends at or before it. A day that straddles the cutoff stays whole, so an attempt is kept
/// up to a day longer than the retention, never shorter.
pub fn expired<'a>(existing: impl IntoIterator<Item = &'a str>, cutoff: DateTime<Utc>) -> Vec<DayPartition> {
    let mut days: Vec<DayPartition> =
        existing.into_iter().filter_map(DayPartition::parse).filter(|day| day.until() <= cutoff).collect();
    days.sort();
    days
}

/// The names of `attempts`' partitions, catch-alls included.
pub async fn existing(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'attempts'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}

/// Makes the day partitions [`wanted`] at `now` that do not exist yet; returns their days.
/// Each is created apart and attached (a lock that inserts and reads do not wait for),
/// after taking over any rows of its day that went to the default partition meanwhile.
/// Several processes may run this at once: a partition another made first is skipped.
pub async fn ensure(pool: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<DayPartition>> {
    let have = existing(pool).await?;
    let mut made = Vec::new();
    for day in wanted(now).into_iter().filter(|day| !have.contains(&day.name())) {
        match attach(pool, day).await {
            Ok(()) => made.push(day),
            // Another process created it between our look and our create: 42P07, or 23505
            // when both inserted the catalog rows at once.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P07" | "23505")) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(made)
}

async fn attach(pool: &PgPool, day: DayPartition) -> sqlx::Result<()> {
    let (name, from, until) = (day.name(), day.from().to_rfc3339(), day.until().to_rfc3339());
    let mut tx = pool.begin().await?;
    sqlx::query(SET_LOCK_TIMEOUT).execute(&mut *tx).await?;
    ddl(
        &mut tx,
        format!("CREATE TABLE {name} (LIKE attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"),
    )
    .await?;
    // Attaching checks that the default partition holds nothing of this day; move what it does.
    ddl(
        &mut tx,
        format!(
            "WITH moved AS (DELETE FROM attempts_default WHERE attempted_at >= '{from}' AND attempted_at < '{until}'
                            RETURNING *)
             INSERT INTO {name} SELECT * FROM moved"
        ),
    )
    .await?;
    ddl(&mut tx, format!("ALTER TABLE attempts ATTACH PARTITION {name} FOR VALUES FROM ('{from}') TO ('{until}')"))
        .await?;
    tx.commit().await
}

/// Drops the day partitions that expired at `cutoff`; returns their days, oldest first.
pub async fn drop_expired(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<Vec<DayPartition>> {
    let days = expired(existing(pool).await?.iter().map(String::as_str), cutoff);
    for day in &days {
        let mut tx = pool.begin().await?;
        sqlx::query(SET_LOCK_TIMEOUT).execute(&mut *tx).await?;
        ddl(&mut tx, format!("DROP TABLE {}", day.name())).await?;
        tx.commit().await?;
    }
    Ok(days)
}

/// Runs a statement that names a partition or its bounds, which DDL cannot take as
/// parameters. Audited: every name and bound spliced in is made by [`DayPartition`] from a
/// date (`attempts_p` and eight digits, RFC 3339 instants), never from input.
async fn ddl(tx: &mut sqlx::PgTransaction<'_>, sql: String) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **tx).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_is_named_and_bounded_in_utc() {
        let day = DayPartition::of(at("2026-12-31T23:59:59.999Z"));
        assert_eq!(day.name(), "attempts_p20261231");
        assert_eq!((day.from(), day.until()), (at("2026-12-31T00:00:00Z"), at("2027-01-01T00:00:00Z")));
        assert_eq!(DayPartition::parse("attempts_p20261231"), Some(day));
        for other in ["attempts_before", "attempts_default", "attempts_p2026123", "attempts_p20261332", "events"] {
            assert_eq!(DayPartition::parse(other), None, "{other}");
        }
    }

    #[test]
    fn today_and_the_days_ahead_are_wanted() {
        let names: Vec<String> = wanted(at("2026-02-27T10:00:00Z")).into_iter().map(DayPartition::name).collect();
        assert_eq!(names, ["attempts_p20260227", "attempts_p20260228", "attempts_p20260301"]);
    }

    #[test]
    fn only_days_that_ended_by_the_cutoff_expire() {
        let existing =
            ["attempts_before", "attempts_p20261107", "attempts_p20261105", "attempts_p20261106", "attempts_default"];
        let cutoff = at("2026-11-07T00:00:00Z");
        assert_eq!(
            expired(existing, cutoff),
            [DayPartition::parse("attempts_p20261105").unwrap(), DayPartition::parse("attempts_p20261106").unwrap()]
        );
        // A second later the 7th has not ended either: it straddles the cutoff and stays.
        assert_eq!(expired(existing, cutoff + chrono::Duration::seconds(1)).len(), 2);
    }
}
