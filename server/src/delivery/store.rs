//! The delivery engine's SQL. No transaction is ever held across an HTTP call: claims are
//! leases on endpoint rows, and attempts are recorded in batches by `record`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::log_partitions::event_day;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use entity::{AccountId, DeliveryId, EndpointId, EndpointStatus, EventId};
use sqlx::{PgPool, Row};

/// An endpoint this worker holds the lease of, with what sending to it needs. Its `Debug`
/// leaves the secrets out (SPEC §7: secrets never reach the logs).
#[derive(Clone)]
pub struct ClaimedEndpoint {
    pub id: EndpointId,
    pub account_id: AccountId,
    pub url: String,
    pub rate_limit: i32,
    pub status: EndpointStatus,
    pub consecutive_failures: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for ClaimedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedEndpoint")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("url", &self.url)
            .field("rate_limit", &self.rate_limit)
            .field("status", &self.status)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("failing_since", &self.failing_since)
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub event_type: String,
    pub attempt_count: i32,
    /// `attempt_count` when the current attempt budget began (a manual or bulk retry).
    pub budget_from: i32,
    /// When the delivery's previous try in its current budget was recorded; `None` before
    /// its first (the endpoint's disable rule compares it with the failing spell).
    pub previous_try_at: Option<DateTime<Utc>>,
    /// The bytes to send, shared by every attempt without a copy (reqwest takes `Bytes` as is).
    pub payload: Bytes,
    pub created_at: DateTime<Utc>,
    /// Where the fetch read the delivery's queue row (its `ctid`, as text): the recorder looks
    /// there first, one buffer instead of a descent of the queue's key. `None`, or a row
    /// that has moved or gone since, and it finds the row by its key.
    pub queue_row: Option<String>,
}

/// Leases up to `n` enabled endpoints with due deliveries whose breaker is closed.
/// `SKIP LOCKED` lets several workers claim side by side without waiting on each other; the
/// `EXISTS` probe reads the endpoint's first queue rows (the queue's primary key), so the
/// cost does not grow with the backlog.
pub async fn claim_endpoints(
    pool: &PgPool,
    worker: &str,
    n: i64,
    lease: Duration,
    busy: &[String],
) -> sqlx::Result<Vec<ClaimedEndpoint>> {
    let rows = sqlx::query(
        "WITH picked AS (
             SELECT e.id FROM endpoints e
             WHERE e.enabled AND e.id <> ALL($4)
               AND (e.lease_until IS NULL OR e.lease_until < now())
               AND (e.breaker_until IS NULL OR e.breaker_until <= now())
               AND EXISTS (SELECT 1 FROM delivery_queue q WHERE q.endpoint_id = e.id AND q.due_at <= now())
             ORDER BY e.lease_until NULLS FIRST
             LIMIT $1
             FOR UPDATE OF e SKIP LOCKED
         )
         UPDATE endpoints e
         SET lease_until = now() + make_interval(secs => $2), lease_owner = $3
         FROM picked WHERE e.id = picked.id
         RETURNING e.id, e.account_id, e.url, e.rate_limit, e.status, e.consecutive_failures, e.failing_since, e.secret,
                   e.previous_secret, e.previous_secret_expires_at",
    )
    .bind(n)
    .bind(lease.as_secs_f64())
    .bind(worker)
    .bind(busy)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(to_claimed).collect())
}

fn to_claimed(r: &sqlx::postgres::PgRow) -> ClaimedEndpoint {
    let secrets = entity::tables::endpoint::signing_set(
        r.get::<String, _>("secret"),
        r.get("previous_secret"),
        r.get("previous_secret_expires_at"),
        Utc::now(),
    );
    ClaimedEndpoint {
        id: r.get("id"),
        account_id: r.get("account_id"),
        url: r.get("url"),
        rate_limit: r.get("rate_limit"),
        // The column's CHECK constraint allows only the three; a value this build does not know
        // is read as healthy, as the dispatcher always did.
        status: r.get("status"),
        consecutive_failures: r.get("consecutive_failures"),
        failing_since: r.get("failing_since"),
        secrets: service::secret_box::open_all(secrets), // SPEC §7: sealed at rest
    }
}

/// Renews the lease and reads the endpoint as it is now, while it is still enabled and
/// leased by `worker`, in one round trip: a URL, secret or rate-limit change takes effect at
/// the next batch, not at the next lease. `None`: disabled meanwhile, or the lease was lost.
pub async fn renew(
    pool: &PgPool,
    endpoint_id: &str,
    worker: &str,
    lease: Duration,
) -> sqlx::Result<Option<ClaimedEndpoint>> {
    let row = sqlx::query(
        "UPDATE endpoints SET lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND enabled AND lease_owner = $2
         RETURNING id, account_id, url, rate_limit, status, consecutive_failures, failing_since, secret, previous_secret,
                   previous_secret_expires_at",
    )
    .bind(endpoint_id)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(to_claimed))
}

/// Completes a fetch statement: `$head` defines `ep` (endpoint columns for `to_claimed` and
/// `lim`, the most deliveries wanted); this selects each endpoint with up to `lim` of its due
/// deliveries in event order (`to_due`), one row per delivery or one empty row when none is
/// due. One text for both fetches, so they cannot drift apart. The payloads come from a
/// second statement ([`with_payloads`]): joined here, each delivery's event would be looked
/// up in a day-partitioned `events` with the partition chosen at run time, row by row.
macro_rules! with_due_deliveries {
    ($head:literal) => {
        concat!(
            $head,
            "
         SELECT ep.*, d.id AS delivery_id, d.event_id, d.event_type, d.attempt_count, d.budget_from,
                d.previous_try_at, d.created_at AS delivery_created_at, d.queue_row
         FROM ep LEFT JOIN LATERAL (
             SELECT d.id, d.event_id, d.event_type, d.attempt_count, d.budget_from, d.created_at,
                    CASE WHEN d.attempt_count > d.budget_from THEN d.updated_at END AS previous_try_at,
                    q.ctid::text AS queue_row
             FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
             WHERE q.endpoint_id = ep.id AND q.due_at <= now()
             ORDER BY q.delivery_id LIMIT ep.lim
         ) d ON true
         ORDER BY ep.id, d.id"
        )
    };
}

/// Renews the lease, reads the endpoint as it is now and fetches its due deliveries in event
/// order, in one round trip (once a quarter lease; the reads between go through `fetch_many`).
/// Both come from one statement snapshot, so a settings change committed before these
/// deliveries were published applies to them. `None`: the endpoint was disabled meanwhile,
/// or the lease was lost.
pub async fn renew_and_fetch(
    pool: &PgPool,
    endpoint_id: &str,
    worker: &str,
    lease: Duration,
    limit: i64,
) -> sqlx::Result<Option<(ClaimedEndpoint, Vec<DueDelivery>)>> {
    let rows = sqlx::query(with_due_deliveries!(
        "WITH ep AS (
             UPDATE endpoints SET lease_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND enabled AND lease_owner = $2
             RETURNING id, account_id, url, rate_limit, status, consecutive_failures, failing_since, secret, previous_secret,
                       previous_secret_expires_at, $4::int8 AS lim
         )"
    ))
    .bind(endpoint_id)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let endpoint = to_claimed(first);
    let mut due: Vec<Vec<DueDelivery>> = vec![rows.iter().filter_map(to_due).collect()];
    with_payloads(pool, &mut due).await?;
    Ok(Some((endpoint, due.pop().unwrap_or_default())))
}

/// `renew_and_fetch` without the renewal, for many endpoints in one statement: the
/// dispatcher's drains ask at once, and one round trip answers them all (`fetcher`). Each
/// endpoint comes back as it is now with up to its `limit` due deliveries in event order, or
/// not at all when it was disabled meanwhile or its lease was lost. The payloads are not
/// read yet: [`with_payloads`] does that.
pub async fn fetch_due(
    pool: &PgPool,
    worker: &str,
    endpoints: &[&str],
    limits: &[i64],
) -> sqlx::Result<Vec<(ClaimedEndpoint, Vec<DueDelivery>)>> {
    let rows = sqlx::query(with_due_deliveries!(
        "WITH req AS (
             SELECT * FROM UNNEST($1::text[], $2::int8[]) AS r(id, lim)
         ), ep AS (
             SELECT e.id, e.account_id, e.url, e.rate_limit, e.status, e.consecutive_failures, e.failing_since, e.secret,
                    e.previous_secret, e.previous_secret_expires_at, req.lim
             FROM req JOIN endpoints e ON e.id = req.id
             WHERE e.enabled AND e.lease_owner = $3 AND e.lease_until > now()
         )"
    ))
    .bind(endpoints)
    .bind(limits)
    .bind(worker)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<(ClaimedEndpoint, Vec<DueDelivery>)> = Vec::new();
    for r in &rows {
        let id: &str = r.get("id");
        if out.last().is_none_or(|(e, _)| e.id.as_str() != id) {
            out.push((to_claimed(r), Vec::new()));
        }
        if let (Some(due), Some((_, list))) = (to_due(r), out.last_mut()) {
            list.push(due);
        }
    }
    Ok(out)
}

/// Reads the payloads of every delivery in `lists` in one statement and sets them; a
/// delivery whose event is gone is left out, as the join it replaces left it out. The
/// events are read a day at a time, each day's ids bounded by their lowest and highest, so
/// PostgreSQL reads each from its day's partition alone (the bounds prune the others before
/// the statement runs) rather than choosing one per row.
pub async fn with_payloads(pool: &PgPool, lists: &mut [Vec<DueDelivery>]) -> sqlx::Result<()> {
    let mut ids: Vec<&str> = lists.iter().flatten().map(|d| d.event_id.as_str()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    let days = by_day(&ids);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(payload_sql(days.len())));
    for day in &days {
        query = query.bind(day[0]).bind(day[day.len() - 1]).bind(*day);
    }
    let rows = query.fetch_all(pool).await?;
    let payloads: HashMap<String, Bytes> =
        rows.iter().map(|r| (r.get("id"), Bytes::from(r.get::<String, _>("payload")))).collect();
    let mut missing = 0;
    for list in lists.iter_mut() {
        list.retain_mut(|d| match payloads.get(d.event_id.as_str()) {
            Some(payload) => {
                d.payload = payload.clone();
                true
            }
            None => {
                missing += 1;
                false
            }
        });
    }
    if missing > 0 {
        tracing::warn!(missing, "due deliveries whose event is gone were left out of the fetch");
    }
    Ok(())
}

/// Sorted ids split where their day partition changes. (Every stored event id is one of ours
/// in form, a client's too; one that were not would make a group of its own.)
fn by_day<'a, 'i>(ids: &'a [&'i str]) -> Vec<&'a [&'i str]> {
    ids.chunk_by(|a, b| event_day(a) == event_day(b)).collect()
}

/// The payload statement for `days` days: per day, its lowest id, its highest and its ids.
fn payload_sql(days: usize) -> String {
    (0..days)
        .map(|d| {
            let (lo, hi, ids) = (3 * d + 1, 3 * d + 2, 3 * d + 3);
            format!("SELECT id, payload FROM events WHERE id >= ${lo} AND id <= ${hi} AND id = ANY(${ids})")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The delivery columns of a fetch row; `None` on the row of an endpoint with nothing due.
fn to_due(r: &sqlx::postgres::PgRow) -> Option<DueDelivery> {
    Some(DueDelivery {
        id: r.get::<Option<DeliveryId>, _>("delivery_id")?,
        event_id: r.get("event_id"),
        event_type: r.get("event_type"),
        attempt_count: r.get("attempt_count"),
        budget_from: r.get("budget_from"),
        previous_try_at: r.get("previous_try_at"),
        payload: Bytes::new(), // set by `with_payloads`
        created_at: r.get("delivery_created_at"),
        queue_row: r.get("queue_row"),
    })
}

/// When attempts to this endpoint completed in the last second, as local instants: the
/// previous lease holder's sends count against the rate limit too.
pub async fn recent_sends(pool: &PgPool, endpoint_id: &str) -> sqlx::Result<Vec<Instant>> {
    let ages: Vec<(f64,)> = sqlx::query_as(
        "SELECT extract(epoch FROM now() - done)::float8 FROM (
             SELECT attempted_at + response_time_ms * interval '1 millisecond' AS done FROM attempts
             WHERE endpoint_id = $1 AND attempted_at > now() - interval '32 seconds'
         ) a WHERE done > now() - interval '1 second'",
    )
    .bind(endpoint_id)
    .fetch_all(pool)
    .await?;
    let now = Instant::now();
    Ok(ages.into_iter().filter_map(|(age,)| now.checked_sub(Duration::from_secs_f64(age.max(0.0)))).collect())
}

/// Ends the lease now. `lease_until` keeps the release time rather than NULL: claims take
/// never-leased endpoints first, then the ones released longest ago, so with more backlogged
/// endpoints than free slots every endpoint gets its turn (round robin), and one just
/// released does not jump the queue.
pub async fn release_lease(pool: &PgPool, endpoint_id: &str, worker: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE endpoints SET lease_until = now(), lease_owner = NULL WHERE id = $1 AND lease_owner = $2")
        .bind(endpoint_id)
        .bind(worker)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_at(ms: u64, n: u128) -> String {
        let encoded = entity::ids::lowest_at(ms);
        format!("evt_{}{}", &encoded[..10], &entity::ids::encode_u128(n)[10..])
    }

    #[test]
    fn a_rounds_events_are_read_a_day_at_a_time() {
        let midnight = 1_796_256_000_000; // 2026-12-03T00:00:00Z
        let mut ids = [
            event_at(midnight - 1, 1),
            event_at(midnight, 2),
            event_at(midnight - 60_000, 3),
            event_at(midnight + 3_600_000, 4),
            "evt_someone_elses".to_owned(),
        ];
        ids.sort();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let days: Vec<Vec<&str>> = by_day(&ids).into_iter().map(<[&str]>::to_vec).collect();
        assert_eq!(days.len(), 3, "{days:?}");
        assert_eq!(days[0], [event_at(midnight - 60_000, 3), event_at(midnight - 1, 1)]);
        assert_eq!(days[1], [event_at(midnight, 2), event_at(midnight + 3_600_000, 4)]);
        assert_eq!(days[2], ["evt_someone_elses"]);
    }

    #[test]
    fn each_day_binds_its_bounds_and_ids() {
        assert_eq!(payload_sql(1), "SELECT id, payload FROM events WHERE id >= $1 AND id <= $2 AND id = ANY($3)");
        assert!(payload_sql(2)
            .ends_with("UNION ALL SELECT id, payload FROM events WHERE id >= $4 AND id <= $5 AND id = ANY($6)"));
    }
}
