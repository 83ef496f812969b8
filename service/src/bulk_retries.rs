//! Bulk retries and recoveries (SPEC §8) as rows of `bulk_retries` (`kind`): counting what
//! one would resend, starting one (or joining the one already running), reading progress.
//! The job that does the work runs in the server crate and reads its row with `find`.
//! - a bulk retry queues an endpoint's failed deliveries of a time range (or those waiting
//!   for a retry; of some event types) for a new attempt now. A second start while one runs
//!   returns it.
//! - a recovery creates deliveries for the events since a time that the endpoint subscribes
//!   to and never got. One runs per endpoint at a time.

use chrono::{DateTime, Utc};
use entity::{
    api::{BulkRetry, BulkRetryRange},
    tables::bulk_retry,
    BulkRetryId, BulkRetryKind as Kind, BulkRetryState, DeliveryStatus,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter, Select, Statement,
};

/// The deliveries a bulk retry would pick: its endpoint's, created in `[since, until)`, with
/// the status resent (a pending one only once attempted: it waits for a retry), of the types
/// named (`$4`: comma-separated, empty for all). The alias `d` is the delivery; `$1`..`$5`
/// are endpoint, since, until, types and status. A macro, so the job's statement in the
/// server crate is built from the same text at compile time.
#[macro_export]
macro_rules! bulk_retry_picked {
    () => {
        "d.endpoint_id = $1 AND d.created_at >= $2 AND d.created_at < $3
         AND ($4 = '' OR d.event_type = ANY(string_to_array($4, ',')))
         AND d.status = $5 AND (d.status = 'failed' OR d.attempt_count > 0)"
    };
}

/// The events of the endpoint's account in `[since, until)` of a type it subscribes to and
/// with no delivery to it: what a recovery creates deliveries for. `$1`..`$4` are account,
/// since, until and endpoint.
#[macro_export]
macro_rules! recovery_missing {
    () => {
        "FROM events ev
         WHERE ev.account_id = $1 AND ev.created_at >= $2 AND ev.created_at < $3
           AND ev.event_type IN (SELECT event_type FROM endpoint_event_types WHERE endpoint_id = $4)
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = ev.id AND d.endpoint_id = $4)"
    };
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

async fn count_of(db: &impl ConnectionTrait, stmt: Statement) -> Result<i64, DbErr> {
    Ok(Count::find_by_statement(stmt).one(db).await?.map_or(0, |c| c.n))
}

/// How many deliveries a bulk retry of `range` would resend now.
pub async fn count(db: &impl ConnectionTrait, endpoint_id: &str, range: &BulkRetryRange) -> Result<i64, DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        concat!("SELECT count(*) AS n FROM deliveries d WHERE ", bulk_retry_picked!()),
        [
            endpoint_id.into(),
            range.since.into(),
            range.until.into(),
            range.event_types_key().into(),
            range.target_status().as_str().into(),
        ],
    );
    count_of(db, stmt).await
}

/// Creates the bulk retry row, or returns the one already running for the same range and
/// filters (`false`).
pub async fn create(
    db: &impl ConnectionTrait,
    account_id: &str,
    endpoint_id: &str,
    range: &BulkRetryRange,
) -> Result<(BulkRetry, bool), DbErr> {
    let new = NewRow {
        kind: Kind::Retry,
        account_id,
        endpoint_id,
        since: range.since,
        until: range.until,
        total: count(db, endpoint_id, range).await?,
        status: range.target_status(),
        event_types: range.event_types_key(),
    };
    let running = running(Kind::Retry, endpoint_id)
        .filter(bulk_retry::Column::Since.eq(new.since))
        .filter(bulk_retry::Column::Until.eq(new.until))
        .filter(bulk_retry::Column::Status.eq(new.status))
        .filter(bulk_retry::Column::EventTypes.eq(new.event_types.as_str()));
    start_or_join(db, &new, running).await
}

/// Starts a recovery of what the endpoint missed since `since`, or returns the one already
/// running for it (`false`).
pub async fn create_recovery(
    db: &impl ConnectionTrait,
    account_id: &str,
    endpoint_id: &str,
    since: DateTime<Utc>,
) -> Result<(BulkRetry, bool), DbErr> {
    let until = Utc::now();
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        concat!("SELECT count(*) AS n ", recovery_missing!()),
        [account_id.into(), since.into(), until.into(), endpoint_id.into()],
    );
    let new = NewRow {
        kind: Kind::Recover,
        account_id,
        endpoint_id,
        since,
        until,
        total: count_of(db, stmt).await?,
        // The columns' defaults: a recovery has no status or type filter.
        status: DeliveryStatus::Failed,
        event_types: String::new(),
    };
    start_or_join(db, &new, running(Kind::Recover, endpoint_id)).await
}

/// The unique index that lets one of the kind run at a time (migrations
/// `bulk_retry_filters` and `recover`): an insert conflicting with it starts nothing.
fn running_conflict(kind: Kind) -> &'static str {
    match kind {
        Kind::Retry => {
            "ON CONFLICT (endpoint_id, since, until, status, event_types)
                 WHERE state = 'running' AND kind = 'retry' DO NOTHING"
        }
        Kind::Recover => "ON CONFLICT (endpoint_id) WHERE state = 'running' AND kind = 'recover' DO NOTHING",
    }
}

struct NewRow<'a> {
    kind: Kind,
    account_id: &'a str,
    endpoint_id: &'a str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    total: i64,
    status: DeliveryStatus,
    event_types: String,
}

/// The running rows of `kind` for the endpoint.
fn running(kind: Kind, endpoint_id: &str) -> Select<bulk_retry::Entity> {
    bulk_retry::Entity::find()
        .filter(bulk_retry::Column::EndpointId.eq(endpoint_id))
        .filter(bulk_retry::Column::State.eq(BulkRetryState::Running))
        .filter(bulk_retry::Column::Kind.eq(kind))
}

/// Inserts a new row, or returns the running one its unique index conflicts with (`false`).
/// That one can finish between the insert that conflicts with it and the read that looks for
/// it; then its key is free again and the insert is tried again. The insert is one raw
/// statement: `ON CONFLICT` on a partial index, returning nothing when it conflicts.
async fn start_or_join(
    db: &impl ConnectionTrait,
    new: &NewRow<'_>,
    running: Select<bulk_retry::Entity>,
) -> Result<(BulkRetry, bool), DbErr> {
    loop {
        let insert = Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO bulk_retries (id, kind, account_id, endpoint_id, since, until, total, status, event_types)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 {}
                 RETURNING id, kind, account_id, endpoint_id, since, until, status, event_types, total, done, state,
                           created_at, finished_at",
                running_conflict(new.kind)
            ),
            [
                BulkRetryId::generate().to_string().into(),
                new.kind.as_str().into(),
                new.account_id.into(),
                new.endpoint_id.into(),
                new.since.into(),
                new.until.into(),
                (new.total.min(i64::from(i32::MAX)) as i32).into(),
                new.status.as_str().into(),
                new.event_types.as_str().into(),
            ],
        );
        if let Some(row) = bulk_retry::Entity::find().from_raw_sql(insert).one(db).await? {
            return Ok((to_resource(row), true));
        }
        if let Some(row) = running.clone().one(db).await? {
            return Ok((to_resource(row), false));
        }
    }
}

/// A bulk retry of the account, for its progress; another account's is not found.
pub async fn get(db: &impl ConnectionTrait, account_id: &str, id: &str) -> Result<Option<BulkRetry>, DbErr> {
    let row = bulk_retry::Entity::find()
        .filter(bulk_retry::Column::Id.eq(id))
        .filter(bulk_retry::Column::AccountId.eq(account_id))
        .one(db)
        .await?;
    Ok(row.map(to_resource))
}

/// The row a job works on, whichever the account.
pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<bulk_retry::Model>, DbErr> {
    bulk_retry::Entity::find().filter(bulk_retry::Column::Id.eq(id)).one(db).await
}

pub fn to_resource(row: bulk_retry::Model) -> BulkRetry {
    BulkRetry {
        id: row.id.into(),
        kind: row.kind,
        endpoint_id: row.endpoint_id.into(),
        since: row.since,
        until: row.until,
        status: row.status,
        event_types: row.event_types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        total: row.total,
        done: row.done,
        state: row.state,
        created_at: row.created_at,
    }
}
