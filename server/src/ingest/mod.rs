//! Accepting events: validate, store the exact payload bytes, and fan out one delivery per
//! subscribed enabled endpoint, atomically (SPEC §6).
//!
//! Three ways in, one insert statement (`insert`):
//! - the API's common case (no `Idempotency-Key`, ids we generate) goes through
//!   `group_commit`: one task per process inserts what concurrent requests sent while its
//!   previous statement ran, in one statement and one commit;
//! - a request with an `Idempotency-Key` or client-chosen ids runs `ingest` in a transaction
//!   of its own, since it must see what earlier requests stored;
//! - `publish` is the outbox entry point for a host application that shares our database: it
//!   runs inside the caller's transaction, so events exist exactly when the caller's change
//!   commits, and it notifies the workers at that commit (the host process has no in-memory
//!   wake-up to use).

pub mod admission;
pub mod group_commit;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{AccountId, DeliveryId, EventId, EventType};
use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::{
    delivery::payload::payload_bytes,
    wake::{Announcer, Wakers, DELIVERIES_CHANNEL},
};

/// Largest `data.object` accepted per event, in bytes (413 beyond it).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Largest batch per request.
pub const MAX_BATCH: usize = 1000;
/// Largest request body: a full batch of maximal events, plus JSON overhead.
pub const MAX_REQUEST_BYTES: usize = MAX_BATCH * 1024 + MAX_EVENT_BYTES * 8;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Invalid(String),
    #[error("event {index}: data.object is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes per event")]
    TooLarge { index: usize, size: usize },
    #[error("event {index}: the id {id} is already used by another account's event; choose a new id")]
    IdTaken { index: usize, id: String },
    #[error("the server is shutting down; retry on another")]
    Stopped,
    #[error("the database is unavailable; retry later")]
    Unavailable,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Ingest as a process runs it: the group commit for the common case, a transaction for a
/// request that may repeat an earlier one, and the wake-ups after either commits.
pub struct Ingest {
    group: group_commit::GroupCommit,
    pool: sqlx::PgPool,
    wakers: Wakers,
    announcer: Announcer,
}

impl Ingest {
    /// `pool` is ingest's own (`db::role_pool`); `wakers` reach this process's dispatcher.
    pub fn start(pool: sqlx::PgPool, wakers: Wakers) -> Self {
        let announcer = Announcer::spawn(pool.clone(), DELIVERIES_CHANNEL, group_commit::ANNOUNCE_EVERY);
        let group = group_commit::GroupCommit::spawn(pool.clone(), wakers.clone(), announcer.clone());
        Ingest { group, pool, wakers, announcer }
    }

    /// True while the database is known to be unreachable.
    pub fn database_down(&self) -> bool {
        self.group.database_down()
    }

    /// Tells ingest about an error from its pool (the quota's reservations use it too).
    pub fn report_error(&self, err: &sqlx::Error) {
        self.group.report_error(&self.pool, err);
    }

    /// Checks the database at once with a direct connection (`GroupCommit::check_now`).
    pub fn check_database(&self) {
        self.group.check_now(&self.pool);
    }

    /// Ingest's own connections (the quota's reservations use them too).
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// Stores validated events for `account`; the ids in request order, once committed.
    pub async fn accept(
        &self,
        account: &AccountId,
        idempotency_key: Option<&str>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventId>, IngestError> {
        if !needs_transaction(idempotency_key, &events) {
            return self.group.publish(account.clone(), events).await;
        }
        let ids = ingest(&self.pool, account, idempotency_key, &events).await?;
        // Which endpoints got work is not known here: an account id just means "look".
        self.wakers.wake(account.as_str());
        self.announcer.announce(vec![account.to_string()]);
        Ok(ids)
    }
}

/// One event as the API receives it: `{type, data:{object}, id?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingEvent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: IncomingData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingData {
    pub object: Box<RawValue>,
}

/// An event that passed validation, with its final id.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    /// The client chose the id (a retry may repeat it); false for ids we generated.
    pub client_id: bool,
    pub event_type: EventType,
    pub object: Box<RawValue>,
}

/// Parses `{...}` or `{"events":[...]}` into validated events, naming the first problem.
pub fn parse_body(body: &[u8]) -> Result<Vec<NewEvent>, IngestError> {
    // Not an untagged enum: serde buffers those, and RawValue cannot come from a buffer.
    #[derive(Deserialize)]
    struct Batch {
        events: Option<Vec<Box<RawValue>>>,
    }
    let not_json = |e: serde_json::Error| IngestError::Invalid(format!("the body is not a JSON object: {e}"));
    // serde also reads a struct from a JSON array (`[[{…}]]`); only the documented shapes count.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(IngestError::Invalid("the body is not a JSON object: send one event or {\"events\":[…]}".into()));
    }
    let raw = match serde_json::from_slice::<Batch>(body).map_err(not_json)?.events {
        Some(events) => events,
        None => vec![serde_json::from_slice::<Box<RawValue>>(body).map_err(not_json)?],
    };
    if raw.is_empty() {
        return Err(IngestError::Invalid("the batch is empty; send at least one event".into()));
    }
    if raw.len() > MAX_BATCH {
        return Err(IngestError::Invalid(format!("the batch has {} events; the limit is {MAX_BATCH}", raw.len())));
    }
    raw.iter().enumerate().map(|(index, raw)| validate(index, raw)).collect()
}

fn validate(index: usize, raw: &RawValue) -> Result<NewEvent, IngestError> {
    if !raw.get().starts_with('{') {
        return Err(IngestError::Invalid(format!("event {index}: an event must be a JSON object")));
    }
    let event: IncomingEvent = serde_json::from_str(raw.get()).map_err(|e| {
        IngestError::Invalid(format!(
            "event {index}: {e}; expected {{\"type\", \"data\": {{\"object\": {{…}}}}, \"id\"?}}"
        ))
    })?;
    let event_type: EventType =
        event.event_type.parse().map_err(|e| IngestError::Invalid(format!("event {index}: {e}")))?;
    if !event.data.object.get().trim_start().starts_with('{') {
        return Err(IngestError::Invalid(format!("event {index}: data.object must be a JSON object")));
    }
    let size = event.data.object.get().len();
    if size > MAX_EVENT_BYTES {
        return Err(IngestError::TooLarge { index, size });
    }
    let client_id = event.id.is_some();
    let id = match event.id {
        Some(id) => id.parse().map_err(|e| IngestError::Invalid(format!("event {index}: {e}")))?,
        None => EventId::generate(),
    };
    Ok(NewEvent { id, client_id, event_type, object: event.data.object })
}

/// Stores the events and their deliveries inside the caller's transaction and notifies the
/// workers at its commit (the outbox); returns the ids in request order. Events whose id this
/// account already used are left as they are (a retried request is a no-op).
pub async fn publish(
    conn: &mut PgConnection,
    account: &AccountId,
    events: &[NewEvent],
) -> Result<Vec<EventId>, IngestError> {
    store(conn, account, events, true).await
}

async fn store(
    conn: &mut PgConnection,
    account: &AccountId,
    events: &[NewEvent],
    notify: bool,
) -> Result<Vec<EventId>, IngestError> {
    let now = Utc::now();
    let subs = subscriptions(conn, &[account.as_str()]).await?;
    let mut rows = Rows::default();
    rows.push(account, events, &subs, now);
    let notify = notify.then_some(account.as_str());
    let inserted: HashSet<String> = insert(conn, &rows, now, notify).await?.into_iter().collect();
    check_ids_are_ours(conn, account, events, &inserted).await?;
    crate::metrics::events_ingested(inserted.len());
    Ok(events.iter().map(|e| e.id.clone()).collect())
}

/// (account, event type) → the enabled endpoints of the account subscribed to it, in id
/// order.
pub(crate) type Subscriptions = HashMap<(String, String), Vec<String>>;

/// The subscriptions of several accounts in one query.
pub(crate) async fn subscriptions(conn: &mut PgConnection, accounts: &[&str]) -> sqlx::Result<Subscriptions> {
    let subs: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT s.account_id, s.event_type, s.endpoint_id FROM endpoint_event_types s
         JOIN endpoints e ON e.id = s.endpoint_id
         WHERE s.account_id = ANY($1) AND e.enabled ORDER BY s.endpoint_id",
    )
    .bind(accounts)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_type: Subscriptions = HashMap::new();
    for (account, event_type, endpoint_id) in subs {
        by_type.entry((account, event_type)).or_default().push(endpoint_id);
    }
    Ok(by_type)
}

/// Column arrays for one multi-row insert of events (of one or many accounts) and one
/// delivery per (event, subscribed endpoint). Delivery ids are generated here, in push
/// order, so the order events are pushed in is the order their endpoints receive them.
#[derive(Default)]
pub(crate) struct Rows {
    event_ids: Vec<String>,
    event_accounts: Vec<String>,
    event_types: Vec<&'static str>,
    payloads: Vec<String>,
    delivery_ids: Vec<String>,
    delivery_accounts: Vec<String>,
    delivery_events: Vec<String>,
    delivery_endpoints: Vec<String>,
    delivery_types: Vec<&'static str>,
}

impl Rows {
    pub(crate) fn push(&mut self, account: &AccountId, events: &[NewEvent], subs: &Subscriptions, now: DateTime<Utc>) {
        for event in events {
            let (id, kind) = (event.id.as_str(), event.event_type.as_str());
            self.event_ids.push(id.to_owned());
            self.event_accounts.push(account.to_string());
            self.event_types.push(kind);
            self.payloads.push(payload_bytes(id, kind, now, &event.object, account.as_str()));
            for endpoint in subs.get(&(account.to_string(), kind.to_owned())).into_iter().flatten() {
                self.delivery_ids.push(DeliveryId::generate().to_string());
                self.delivery_accounts.push(account.to_string());
                self.delivery_events.push(id.to_owned());
                self.delivery_endpoints.push(endpoint.clone());
                self.delivery_types.push(kind);
            }
        }
    }

    pub(crate) fn events(&self) -> usize {
        self.event_ids.len()
    }

    /// The endpoints that get deliveries, each once.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        let mut endpoints = self.delivery_endpoints.clone();
        endpoints.sort_unstable();
        endpoints.dedup();
        endpoints
    }
}

/// Inserts the events, and the deliveries of the events that were new with their queue rows,
/// in one statement (created exactly once: the unique (event_id, endpoint_id) makes a repeat a no-op). With
/// `notify`, the workers are notified at commit with that payload. Returns the ids inserted.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    rows: &Rows,
    now: DateTime<Utc>,
    notify: Option<&str>,
) -> sqlx::Result<Vec<String>> {
    // Data-modifying CTEs all run, and the deliveries' unique index is checked as they go.
    let row = bind_rows(
        sqlx::query(
            "WITH ev AS (
             INSERT INTO events (id, account_id, event_type, payload, created_at)
             SELECT id, a, t, p, $5 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS x(id, a, t, p)
             ON CONFLICT (id) DO NOTHING RETURNING id
         ), dl AS (
             INSERT INTO deliveries (id, account_id, event_id, endpoint_id, event_type, status, next_attempt_at,
                                     created_at, updated_at)
             SELECT d.id, d.a, d.ev, d.ep, d.t, 'pending', $5, $5, $5
             FROM UNNEST($6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) AS d(id, a, ev, ep, t)
             WHERE d.ev IN (SELECT id FROM ev)
             ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id, endpoint_id
         ), queued AS (
             INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at) SELECT endpoint_id, id, $5 FROM dl
         ), note AS (
             SELECT pg_notify($11, $12) WHERE $12 IS NOT NULL AND EXISTS (SELECT 1 FROM dl)
         )
         SELECT (SELECT array_agg(id) FROM ev) WHERE (SELECT count(*) FROM note) >= 0",
        ),
        rows,
        now,
    )
    .bind(DELIVERIES_CHANNEL)
    .bind(notify)
    .fetch_one(&mut *conn)
    .await?;
    let inserted: Option<Vec<String>> = row.try_get(0)?;
    Ok(inserted.unwrap_or_default())
}

/// `insert` for rows whose ids were all generated here, so nothing can conflict: plain
/// inserts, without `ON CONFLICT`'s speculative insertion (an extra WAL record per row) and
/// without the filter on new events. The group commit's statement.
pub(crate) async fn insert_new(conn: &mut PgConnection, rows: &Rows, now: DateTime<Utc>) -> sqlx::Result<()> {
    bind_rows(
        sqlx::query(
            "WITH ev AS (
             INSERT INTO events (id, account_id, event_type, payload, created_at)
             SELECT id, a, t, p, $5 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS x(id, a, t, p)
         ), dl AS (
             INSERT INTO deliveries (id, account_id, event_id, endpoint_id, event_type, status, next_attempt_at,
                                     created_at, updated_at)
             SELECT d.id, d.a, d.ev, d.ep, d.t, 'pending', $5, $5, $5
             FROM UNNEST($6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) AS d(id, a, ev, ep, t)
         )
         INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at)
         SELECT ep, id, $5 FROM UNNEST($6::text[], $9::text[]) AS q(id, ep)",
        ),
        rows,
        now,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Binds `rows` as $1 to $10, in the order both insert statements read them.
fn bind_rows<'q>(query: PgQuery<'q>, rows: &'q Rows, now: DateTime<Utc>) -> PgQuery<'q> {
    query
        .bind(&rows.event_ids)
        .bind(&rows.event_accounts)
        .bind(&rows.event_types)
        .bind(&rows.payloads)
        .bind(now)
        .bind(&rows.delivery_ids)
        .bind(&rows.delivery_accounts)
        .bind(&rows.delivery_events)
        .bind(&rows.delivery_endpoints)
        .bind(&rows.delivery_types)
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// A client-supplied id that collides with another account's event is refused rather than
/// silently merged (tenants never share anything).
async fn check_ids_are_ours(
    conn: &mut PgConnection,
    account: &AccountId,
    events: &[NewEvent],
    inserted: &HashSet<String>,
) -> Result<(), IngestError> {
    let existing: Vec<&str> = events.iter().map(|e| e.id.as_str()).filter(|id| !inserted.contains(*id)).collect();
    if existing.is_empty() {
        return Ok(());
    }
    let foreign: Vec<(String,)> = sqlx::query_as("SELECT id FROM events WHERE id = ANY($1) AND account_id <> $2")
        .bind(&existing)
        .bind(account.as_str())
        .fetch_all(&mut *conn)
        .await?;
    match foreign.first() {
        Some((id,)) => {
            let index = events.iter().position(|e| e.id.as_str() == id).unwrap_or(0);
            Err(IngestError::IdTaken { index, id: id.clone() })
        }
        None => Ok(()),
    }
}

/// Whether a request must take the transactional path: it can repeat an earlier one.
pub fn needs_transaction(idempotency_key: Option<&str>, events: &[NewEvent]) -> bool {
    idempotency_key.is_some() || events.iter().any(|e| e.client_id)
}

/// The API path for a request that may repeat an earlier one: idempotency key, then the
/// insert, in one transaction. With a key seen before, the original ids come back and
/// nothing is stored again. No NOTIFY in this commit: the caller wakes the workers after it
/// (`wake`).
pub async fn ingest(
    pool: &sqlx::PgPool,
    account: &AccountId,
    idempotency_key: Option<&str>,
    events: &[NewEvent],
) -> Result<Vec<EventId>, IngestError> {
    let mut tx: Transaction<'_, Postgres> = pool.begin().await?;
    if let Some(key) = idempotency_key {
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        // A concurrent request with the same key waits here on the primary key until the
        // first commits, then sees its row.
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (account_id, key, event_ids) VALUES ($1, $2, $3)
             ON CONFLICT (account_id, key) DO NOTHING",
        )
        .bind(account.as_str())
        .bind(key)
        .bind(serde_json::json!(ids))
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            let (stored,): (serde_json::Value,) =
                sqlx::query_as("SELECT event_ids FROM idempotency_keys WHERE account_id = $1 AND key = $2")
                    .bind(account.as_str())
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            let ids: Vec<String> = serde_json::from_value(stored).unwrap_or_default();
            return Ok(ids.into_iter().filter_map(|id| id.parse().ok()).collect());
        }
    }
    let ids = store(&mut tx, account, events, false).await?;
    tx.commit().await?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_event_and_a_batch_both_parse() {
        let one = parse_body(br#"{"type":"task.completed","data":{"object":{"id":"t1"}}}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].event_type, EventType::TaskCompleted);
        assert_eq!(one[0].object.get(), r#"{"id":"t1"}"#, "object bytes are kept as sent");
        let batch = parse_body(br#"{"events":[{"type":"task.created","data":{"object":{}}},{"type":"user.joined","data":{"object":{"a":1}}}]}"#).unwrap();
        assert_eq!(batch.len(), 2);
        assert_ne!(batch[0].id, batch[1].id);
    }

    #[test]
    fn problems_are_named_with_the_event_index() {
        let err = |body: &str| parse_body(body.as_bytes()).unwrap_err().to_string();
        assert!(err(r#"{"type":"task.exploded","data":{"object":{}}}"#)
            .contains("event 0: unknown event type `task.exploded`"));
        assert!(err(
            r#"{"events":[{"type":"task.created","data":{"object":{}}},{"type":"task.created","data":{"object":[1]}}]}"#
        )
        .contains("event 1: data.object must be a JSON object"));
        assert!(err(r#"{"type":"task.created","data":{}}"#).contains("object"));
        assert!(err(r#"{"type":"task.created","data":{"object":{}},"id":"nope"}"#).contains("not a valid event id"));
        assert!(err(r#"{"events":[]}"#).contains("empty"));
        assert!(err("not json").contains("not a JSON object"));
    }

    #[test]
    fn oversized_objects_and_batches_are_refused() {
        let big = format!(r#"{{"type":"task.created","data":{{"object":{{"x":"{}"}}}}}}"#, "a".repeat(MAX_EVENT_BYTES));
        let object_size = MAX_EVENT_BYTES + r#"{"x":""}"#.len();
        assert!(
            matches!(parse_body(big.as_bytes()), Err(IngestError::TooLarge { index: 0, size }) if size == object_size)
        );
        let one = r#"{"type":"task.created","data":{"object":{}}}"#;
        let many = format!(r#"{{"events":[{}]}}"#, vec![one; MAX_BATCH + 1].join(","));
        assert!(parse_body(many.as_bytes()).unwrap_err().to_string().contains("limit is 1000"));
    }
}
