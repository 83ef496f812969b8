//! Day partitions of the delivery log: attempts and events. `attempts` is partitioned by
//! `attempted_at`, `events` by `id` (time-ordered ids, so a UTC day's events are a range of
//! ids; a key must hold the partition key for PostgreSQL to keep it unique), one partition
//! per UTC day named `attempts_pYYYYMMDD` and `events_pYYYYMMDD`, so retention drops a day's
//! partition (a catalog change, whatever the day holds) instead of deleting its rows one by
//! one: at 10,000 deliveries/s a day is 864 million attempts and as many events, and deleting
//! them and vacuuming after costs the database 40-65 % of the time inserting them took and
//! most of their WAL again (`bench/retention.sh` measures it).
//!
//! Two catch-alls keep an insert from ever failing for want of a partition: `*_before` holds
//! everything before the first day partition (the rows from before the migration that
//! introduced the days), `*_default` anything past the days made ahead (and an event whose
//! client-supplied id says a time with no day partition), which stays empty of our own rows
//! while [`ensure`] runs (at every start and in every housekeeping run). Retention deletes
//! from those two in batches, as it did from the whole table.
//!
//! A day of events is dropped only once no delivery of its events is left
//! ([`drop_expired_events`]): a pending delivery keeps its payload whatever its age.
//!
//! The plan, which partitions should exist and which have expired, is pure ([`wanted`],
//! [`expired`], [`Log::bounds`]); the catalog work is [`ensure`] and the two drops.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};

/// Days made ahead of today, so a process that misses a housekeeping run or two still finds
/// its day's partition. The migrations make the same three.
pub const AHEAD_DAYS: u64 = 2;

/// A DDL statement waits at most 5 s for the parent table's lock, then gives up until the
/// next run: attaching takes a lock that conflicts with nothing on the hot path, but
/// dropping locks out the hot path's inserts while it waits behind a long dashboard query.
/// A drop that gives up skips that day only; the run goes on with the rest.
const SET_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// A log partitioned by day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// By `attempted_at`.
    Attempts,
    /// By `id`: a day is the ids from the lowest of its first millisecond on.
    Events,
}

impl Log {
    pub const ALL: [Log; 2] = [Log::Attempts, Log::Events];

    pub fn table(self) -> &'static str {
        match self {
            Log::Attempts => "attempts",
            Log::Events => "events",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Log::Attempts => "attempts_p",
            Log::Events => "events_p",
        }
    }

    /// The partition key's column.
    fn key(self) -> &'static str {
        match self {
            Log::Attempts => "attempted_at",
            Log::Events => "id",
        }
    }

    /// The catch-all partitions, deleted from by rows.
    pub fn catch_alls(self) -> [String; 2] {
        [format!("{}_before", self.table()), format!("{}_default", self.table())]
    }

    pub fn name(self, day: DayPartition) -> String {
        format!("{}{}", self.prefix(), day.0.format("%Y%m%d"))
    }

    /// The day of a partition's name; `None` for the catch-alls and anything else.
    pub fn parse(self, name: &str) -> Option<DayPartition> {
        let digits = name.strip_prefix(self.prefix())?;
        (digits.len() == 8).then_some(())?;
        NaiveDate::parse_from_str(digits, "%Y%m%d").ok().map(DayPartition)
    }

    /// The day's partition bounds, `[from, until)`, as SQL literals of the key's type.
    pub fn bounds(self, day: DayPartition) -> (String, String) {
        let (from, until) = match self {
            Log::Attempts => (day.from().to_rfc3339(), day.until().to_rfc3339()),
            Log::Events => day.event_ids(),
        };
        (format!("'{from}'"), format!("'{until}'"))
    }
}

/// The lowest event id made at `at` or later (the migration's `event_day_bound`).
pub fn event_id_from(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    format!("{}{}", entity::EventId::PREFIX, entity::ids::lowest_at(ms))
}

/// The day whose partition holds the event `id`, by the time its id says; `None` for an id
/// that says no time (a client's that is not one of ours in form), which the catch-alls hold.
pub fn event_day(id: &str) -> Option<DayPartition> {
    let encoded = id.strip_prefix(entity::EventId::PREFIX).unwrap_or(id);
    let ms = i64::try_from(entity::ids::millis_of(encoded)?).ok()?;
    DateTime::from_timestamp_millis(ms).map(DayPartition::of)
}

/// One UTC day: `[day 00:00, next day 00:00)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DayPartition(pub NaiveDate);

impl DayPartition {
    pub fn of(at: DateTime<Utc>) -> DayPartition {
        DayPartition(at.date_naive())
    }

    pub fn from(self) -> DateTime<Utc> {
        self.0.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    }

    /// The first instant not in the partition.
    pub fn until(self) -> DateTime<Utc> {
        DayPartition(self.0 + Days::new(1)).from()
    }

    /// The day's event ids, `[from, until)`.
    pub fn event_ids(self) -> (String, String) {
        (event_id_from(self.from()), event_id_from(self.until()))
    }
}

/// The day partitions that should exist at `now`: today's and [`AHEAD_DAYS`] after it.
pub fn wanted(now: DateTime<Utc>) -> Vec<DayPartition> {
    let today = DayPartition::of(now).0;
    (0..=AHEAD_DAYS).map(|ahead| DayPartition(today + Days::new(ahead))).collect()
}

/// The day partitions of `log` among `existing` whose every row is older than `cutoff`:
/// their day ends at or before it. A day that straddles the cutoff stays whole, so a row is
/// kept up to a day longer than the retention, never shorter.
pub fn expired<'a>(log: Log, existing: impl IntoIterator<Item = &'a str>, cutoff: DateTime<Utc>) -> Vec<DayPartition> {
    let mut days: Vec<DayPartition> =
        existing.into_iter().filter_map(|name| log.parse(name)).filter(|day| day.until() <= cutoff).collect();
    days.sort();
    days
}

/// The names of `log`'s partitions, catch-alls included.
pub async fn existing(conn: impl sqlx::PgExecutor<'_>, log: Log) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::regclass ORDER BY 1",
    )
    .bind(log.table())
    .fetch_all(conn)
    .await
}

/// Makes the day partitions [`wanted`] at `now` that do not exist yet, of both logs; returns
/// them. Each is created apart and attached (a lock that inserts and reads do not wait for),
/// after taking over any rows of its day that went to the default partition meanwhile.
/// Several processes may run this at once: a partition another made first is skipped.
pub async fn ensure(pool: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<(Log, DayPartition)>> {
    let mut made = Vec::new();
    for log in Log::ALL {
        let have = existing(pool, log).await?;
        for day in wanted(now).into_iter().filter(|day| !have.contains(&log.name(*day))) {
            match attach(pool, log, day).await {
                Ok(()) => made.push((log, day)),
                // Another process created it between our look and our create: 42P07, or 23505
                // when both inserted the catalog rows at once.
                Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P07" | "23505")) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(made)
}

async fn attach(pool: &PgPool, log: Log, day: DayPartition) -> sqlx::Result<()> {
    let (table, key, name) = (log.table(), log.key(), log.name(day));
    let (from, until) = log.bounds(day);
    let mut tx = pool.begin().await?;
    sqlx::query(SET_LOCK_TIMEOUT).execute(&mut *tx).await?;
    ddl(
        &mut tx,
        format!("CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"),
    )
    .await?;
    // Attaching checks that the default partition holds nothing of this day; move what it does.
    ddl(
        &mut tx,
        format!(
            "WITH moved AS (DELETE FROM {table}_default WHERE {key} >= {from} AND {key} < {until} RETURNING *)
             INSERT INTO {name} SELECT * FROM moved"
        ),
    )
    .await?;
    ddl(&mut tx, format!("ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({until})")).await?;
    tx.commit().await
}

/// What a drop of expired days did with them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DayDrops {
    pub dropped: Vec<DayPartition>,
    /// Expired days of events that deliveries of its events still hold (pending ones, say,
    /// held by a disabled endpoint): retention deletes its events without deliveries by rows
    /// instead. Always empty for attempts.
    pub kept: Vec<DayPartition>,
    /// Expired days whose drop gave up waiting for its lock (`lock_timeout`): the next run
    /// tries again, and the days after them are not held up.
    pub busy: Vec<DayPartition>,
}

/// Drops the day partitions of attempts that expired at `cutoff`, oldest first. An attempt is
/// only ever read beside its delivery, which goes by its own rule.
pub async fn drop_expired_attempts(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<DayDrops> {
    let mut out = DayDrops::default();
    for day in expired(Log::Attempts, existing(pool, Log::Attempts).await?.iter().map(String::as_str), cutoff) {
        let mut tx = pool.begin().await?;
        sqlx::query(SET_LOCK_TIMEOUT).execute(&mut *tx).await?;
        match ddl(&mut tx, format!("DROP TABLE {}", Log::Attempts.name(day))).await {
            Ok(()) => {
                tx.commit().await?;
                out.dropped.push(day);
            }
            Err(e) if lock_timed_out(&e) => {
                tx.rollback().await?;
                out.busy.push(busy(Log::Attempts, day));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Drops the day partitions of events that expired at `cutoff` and that no delivery points
/// into any more. The check is made again under the partition's exclusive lock, so an
/// ingest that adds a delivery to one of its events (a client-supplied id of that day)
/// either committed before it, and keeps the day, or waits and finds the day gone, its id
/// then going to the default partition.
pub async fn drop_expired_events(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> sqlx::Result<DayDrops> {
    let mut out = DayDrops::default();
    let days = expired(Log::Events, existing(&mut *conn, Log::Events).await?.iter().map(String::as_str), cutoff);
    for day in days {
        let (from, until) = day.event_ids();
        // First without the lock: just after retention deleted the day's last deliveries, this
        // walks their dead index entries (and marks them), which must not hold up the inserts
        // and reads that the partition's lock would. The second look finds them marked.
        if deliveries_left(&mut *conn, &from, &until).await? {
            out.kept.push(day);
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(SET_LOCK_TIMEOUT).execute(&mut *tx).await?;
        let name = Log::Events.name(day);
        let locked = async {
            ddl(&mut tx, format!("LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")).await?;
            match deliveries_left(&mut tx, &from, &until).await? {
                true => Ok(false),
                false => ddl(&mut tx, format!("DROP TABLE {name}")).await.map(|()| true),
            }
        }
        .await;
        match locked {
            Ok(true) => {
                tx.commit().await?;
                out.dropped.push(day);
            }
            Ok(false) => {
                tx.rollback().await?;
                out.kept.push(day);
            }
            Err(e) if lock_timed_out(&e) => {
                tx.rollback().await?;
                out.busy.push(busy(Log::Events, day));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Whether `e` is a statement that gave up waiting for its lock after `lock_timeout`.
fn lock_timed_out(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}

fn busy(log: Log, day: DayPartition) -> DayPartition {
    tracing::warn!(partition = %log.name(day), "an expired day's drop gave up waiting for its lock; the next run tries again");
    day
}

/// Whether a delivery of an event with an id in `[from, until)` is left: the deliveries'
/// unique `(event_id, endpoint_id)` index answers by its range.
async fn deliveries_left(conn: &mut PgConnection, from: &str, until: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deliveries WHERE event_id >= $1 AND event_id < $2)")
        .bind(from)
        .bind(until)
        .fetch_one(conn)
        .await
}

/// Runs a statement that names a partition or its bounds, which DDL cannot take as
/// parameters. Audited: every name and bound spliced in is made by [`Log`] from a date
/// (`attempts_p` or `events_p` and eight digits, RFC 3339 instants, ids of base32 digits),
/// never from input.
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
        assert_eq!(Log::Attempts.name(day), "attempts_p20261231");
        assert_eq!(Log::Events.name(day), "events_p20261231");
        assert_eq!((day.from(), day.until()), (at("2026-12-31T00:00:00Z"), at("2027-01-01T00:00:00Z")));
        assert_eq!(Log::Attempts.parse("attempts_p20261231"), Some(day));
        assert_eq!(Log::Events.parse("events_p20261231"), Some(day));
        for other in
            ["attempts_before", "attempts_default", "attempts_p2026123", "attempts_p20261332", "events_p20261231"]
        {
            assert_eq!(Log::Attempts.parse(other), None, "{other}");
        }
        assert_eq!(Log::Events.parse("attempts_p20261231"), None);
    }

    #[test]
    fn a_day_of_events_is_the_ids_made_in_it() {
        let day = DayPartition::of(at("2026-12-03T12:00:00Z"));
        let (from, until) = Log::Events.bounds(day);
        let ms = |s: &str| entity::ids::millis_of(&s.trim_matches('\'')["evt_".len()..]).unwrap() as i64;
        assert_eq!(ms(&from), day.from().timestamp_millis());
        assert_eq!(ms(&until), day.until().timestamp_millis());
        let last_ms = format!("'{}'", event_id_from(day.until() - chrono::Duration::milliseconds(1)));
        assert!(from < last_ms && last_ms < until, "{from} {last_ms} {until}");
        assert_eq!(Log::Attempts.bounds(day).0, "'2026-12-03T00:00:00+00:00'");
    }

    #[test]
    fn an_events_day_is_the_partition_its_id_falls_in() {
        let day = DayPartition::of(at("2026-12-03T12:00:00Z"));
        let (from, until) = day.event_ids();
        assert_eq!(event_day(&from), Some(day));
        let last = event_id_from(day.until() - chrono::Duration::milliseconds(1));
        assert_eq!(event_day(&last), Some(day));
        assert_eq!(event_day(&until), Some(DayPartition(day.0 + Days::new(1))));
        assert_eq!(event_day(&from["evt_".len()..]), Some(day), "unprefixed, as the id's digits");
        assert_eq!(event_day("evt_someone_elses"), None);
    }

    #[test]
    fn today_and_the_days_ahead_are_wanted() {
        let names: Vec<String> =
            wanted(at("2026-02-27T10:00:00Z")).into_iter().map(|day| Log::Attempts.name(day)).collect();
        assert_eq!(names, ["attempts_p20260227", "attempts_p20260228", "attempts_p20260301"]);
    }

    #[test]
    fn only_days_that_ended_by_the_cutoff_expire() {
        let existing =
            ["attempts_before", "attempts_p20261107", "attempts_p20261105", "attempts_p20261106", "attempts_default"];
        let cutoff = at("2026-11-07T00:00:00Z");
        assert_eq!(
            expired(Log::Attempts, existing, cutoff),
            [Log::Attempts.parse("attempts_p20261105").unwrap(), Log::Attempts.parse("attempts_p20261106").unwrap()]
        );
        // A second later the 7th has not ended either: it straddles the cutoff and stays.
        assert_eq!(expired(Log::Attempts, existing, cutoff + chrono::Duration::seconds(1)).len(), 2);
        assert!(expired(Log::Events, existing, cutoff).is_empty(), "another log's names");
    }
}
