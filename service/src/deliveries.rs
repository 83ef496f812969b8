//! Delivery logs and manual recovery (SPEC §8), shared by the dashboard and the REST API.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    api::{Attempt, Delivery, DeliveryFilter, DeliveryPage, Endpoint, EventDetail, Throttle},
    header_lines,
    tables::{attempt, delivery, delivery_queue, endpoint, event},
    DeliveryStatus,
};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::ServiceError;
use crate::{endpoints, Actor};

pub const PAGE_SIZE: u64 = 50;

/// One page of an endpoint's deliveries, newest first.
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    endpoint_id: &str,
    filter: &DeliveryFilter,
) -> Result<DeliveryPage, ServiceError> {
    let endpoint = endpoints::get(db, actor, endpoint_id).await?; // 404 unless the actor's
    let mut query = delivery::find_in(&actor.account_id).filter(delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(status) = filter.status {
        query = query.filter(delivery::Column::Status.eq(status));
    }
    if let Some(t) = filter.event_type {
        query = query.filter(delivery::Column::EventType.eq(t.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(delivery::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(delivery::Column::CreatedAt.lt(until));
    }
    if let Some(event_id) = filter.event_id.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        query = query.filter(delivery::Column::EventId.eq(event_id));
    }
    if let Some(cursor) = &filter.cursor {
        query = query.filter(delivery::Column::Id.lt(cursor.as_str()));
    }
    let mut rows = query.order_by_desc(delivery::Column::Id).limit(PAGE_SIZE + 1).all(db).await?;
    let next_cursor = (rows.len() as u64 > PAGE_SIZE).then(|| {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|r| r.id.to_string())
    });
    let data = with_latest_attempts(db, actor, rows).await?;
    let throttled = match (&filter.cursor, endpoint.hold_reason()) {
        (None, None) => throttle(db, &endpoint).await?,
        _ => None, // later pages, or an endpoint held anyway: the hold is the reason
    };
    Ok(DeliveryPage { data, next_cursor: next_cursor.flatten(), throttled })
}

/// Whether more of the endpoint's deliveries are due than its rate limit sends in a second.
async fn throttle(db: &DatabaseConnection, endpoint: &Endpoint) -> Result<Option<Throttle>, ServiceError> {
    use sea_orm::{DbBackend, FromQueryResult, Statement};
    #[derive(FromQueryResult)]
    struct Due {
        due: i64,
    }
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT count(*) AS due FROM (SELECT 1 FROM delivery_queue WHERE endpoint_id = $1 AND due_at <= now() LIMIT $2) q",
        [endpoint.id.as_str().into(), Throttle::COUNT_CAP.into()],
    );
    let due = Due::find_by_statement(stmt).one(db).await?.map_or(0, |d| d.due);
    Ok(Throttle::of(due, endpoint.rate_limit))
}

/// The attempts of deliveries created at `created_at` or later. The attempt log is
/// partitioned by day, so this keeps a read to the days since then instead of one index per
/// day kept. A day of margin: an attempt is made after its delivery is created, but another
/// process's clock may run behind, and a test send is recorded after its attempt.
fn attempts_since(created_at: DateTime<Utc>) -> sea_orm::sea_query::SimpleExpr {
    attempt::Column::AttemptedAt.gte(created_at - chrono::Duration::days(1))
}

/// Deliveries as a log lists them: each with its latest attempt's summary.
async fn with_latest_attempts(
    db: &DatabaseConnection,
    actor: &Actor,
    rows: Vec<delivery::Model>,
) -> Result<Vec<Delivery>, ServiceError> {
    let ids: Vec<entity::DeliveryId> = rows.iter().map(|r| r.id.clone()).collect();
    let Some(oldest) = rows.iter().map(|r| r.created_at).min() else { return Ok(Vec::new()) };
    let mut latest: HashMap<entity::DeliveryId, attempt::Model> = HashMap::new();
    let attempts = attempt::find_in(&actor.account_id)
        .filter(attempt::Column::DeliveryId.is_in(ids))
        .filter(attempts_since(oldest))
        .all(db)
        .await?;
    for a in attempts {
        let newer = latest.get(&a.delivery_id).is_none_or(|b| a.attempt_number > b.attempt_number);
        if newer {
            latest.insert(a.delivery_id.clone(), a);
        }
    }
    rows.into_iter()
        .map(|row| {
            let last = latest.remove(&row.id);
            to_resource(row, last.as_ref())
        })
        .collect()
}

/// An event of the actor's account with its deliveries to every endpoint (SPEC §11): "what
/// happened to event X" without knowing which endpoints it went to. 404 for an event of
/// another account, as for one that does not exist.
pub async fn event(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<EventDetail, ServiceError> {
    let row = event::find_in(&actor.account_id)
        .filter(event::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let rows = delivery::find_in(&actor.account_id)
        .filter(delivery::Column::EventId.eq(id))
        .order_by_asc(delivery::Column::EndpointId)
        .all(db)
        .await?;
    Ok(EventDetail {
        id: row.id.into(),
        event_type: row.event_type,
        created_at: row.created_at,
        payload: row.payload,
        deliveries: with_latest_attempts(db, actor, rows).await?,
    })
}

/// One delivery with its payload and every attempt.
pub async fn get(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<Delivery, ServiceError> {
    let row = find(db, actor, id).await?;
    let attempts = attempt::find_in(&actor.account_id)
        .filter(attempt::Column::DeliveryId.eq(&row.id))
        .filter(attempts_since(row.created_at))
        .order_by_asc(attempt::Column::AttemptNumber)
        .all(db)
        .await?;
    let payload = event::Entity::find_by_id(&row.event_id).one(db).await?.map(|e| e.payload);
    let mut resource = to_resource(row, attempts.last())?;
    let sent = payload.as_deref().map(entity::body::truncate_body).unwrap_or_default();
    resource.attempts = attempts.into_iter().map(|a| to_attempt(a, &sent)).collect();
    resource.payload = payload;
    Ok(resource)
}

/// Retry sends a failed delivery again, or at once one that waits for its next retry (SPEC
/// §8 "resend now"); replay re-sends a delivered one (same webhook-id). Each starts a fresh
/// attempt budget and queues the delivery for an immediate attempt, recorded like any other.
pub async fn resend(db: &DatabaseConnection, actor: &Actor, id: &str, replay: bool) -> Result<Delivery, ServiceError> {
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    let row = find(db, actor, id).await?;
    let status = row.status;
    let allowed = match status {
        DeliveryStatus::Delivered => replay,
        DeliveryStatus::Failed | DeliveryStatus::Pending => !replay,
    };
    if !allowed {
        let message = if replay {
            format!("Replay applies to delivered deliveries; this one is {}.", status.as_str())
        } else {
            "Retry applies to failed deliveries and to pending ones; this one was delivered: replay it.".to_owned()
        };
        return Err(ServiceError::invalid("status", message));
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    let moved = delivery::Entity::update_many()
        .col_expr(delivery::Column::Status, Expr::value(DeliveryStatus::Pending))
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .col_expr(delivery::Column::BudgetFrom, Expr::col(delivery::Column::AttemptCount))
        .filter(delivery::Column::Id.eq(&row.id))
        .filter(delivery::Column::Status.eq(status)) // unchanged since it was read
        .exec(&txn)
        .await?;
    if moved.rows_affected == 1 {
        queue(&txn, &row, now).await?;
        // Asked for now: an open breaker lets the endpoint be tried now instead of at its
        // next probe.
        endpoint::Entity::update_many()
            .col_expr(endpoint::Column::BreakerUntil, Expr::value(None::<DateTime<Utc>>))
            .filter(endpoint::Column::Id.eq(&row.endpoint_id))
            .filter(endpoint::Column::BreakerUntil.gt(now))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    get(db, actor, id).await
}

/// Puts a delivery (back) on the engine's queue, due at `due`.
async fn queue(txn: &DatabaseTransaction, row: &delivery::Model, due: DateTime<Utc>) -> Result<(), DbErr> {
    let item = delivery_queue::ActiveModel {
        endpoint_id: Set(row.endpoint_id.clone()),
        delivery_id: Set(row.id.clone()),
        due_at: Set(due),
    };
    let on_conflict = OnConflict::columns([delivery_queue::Column::EndpointId, delivery_queue::Column::DeliveryId])
        .update_column(delivery_queue::Column::DueAt)
        .to_owned();
    delivery_queue::Entity::insert(item).on_conflict(on_conflict).exec_without_returning(txn).await?;
    Ok(())
}

async fn find(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<delivery::Model, ServiceError> {
    delivery::find_in(&actor.account_id)
        .filter(delivery::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound)
}

fn to_resource(row: delivery::Model, last: Option<&attempt::Model>) -> Result<Delivery, ServiceError> {
    Ok(Delivery {
        status: row.status,
        id: row.id.into(),
        event_id: row.event_id.into(),
        event_type: row.event_type,
        endpoint_id: row.endpoint_id.into(),
        attempt_count: row.attempt_count,
        created_at: row.created_at,
        next_attempt_at: row.next_attempt_at,
        last_attempt_at: last.map(|a| a.attempted_at),
        last_status_code: last.and_then(|a| a.status_code),
        last_error: last.and_then(|a| a.error.clone()),
        last_response_time_ms: last.map(|a| a.response_time_ms),
        payload: None,
        attempts: Vec::new(),
        test: row.test,
    })
}

/// `sent`: the event's payload as the log shows it, for attempts that store no copy of the
/// body (the engine sends the payload byte for byte).
fn to_attempt(a: attempt::Model, sent: &str) -> Attempt {
    Attempt {
        id: a.id.into(),
        attempted_at: a.attempted_at,
        attempt_number: a.attempt_number,
        status_code: a.status_code,
        response_time_ms: a.response_time_ms,
        success: a.success,
        error: a.error,
        // Rows written before `sent_headers` hold the JSON object instead.
        request_headers: match a.sent_headers {
            Some(lines) => header_lines::to_json(&lines),
            None => a.request_headers.unwrap_or_else(|| header_lines::to_json("")),
        },
        request_body: a.request_body.unwrap_or_else(|| sent.to_owned()),
        response_headers: a.response_headers,
        response_body: a.response_body,
    }
}

/// Checks the range and the endpoint's tenant, then asks the engine how many failed
/// deliveries a bulk retry would resend.
pub async fn bulk_retry_count(
    db: &DatabaseConnection,
    engine: &dyn crate::engine::Engine,
    actor: &Actor,
    endpoint_id: &str,
    range: &entity::api::BulkRetryRange,
) -> Result<i64, ServiceError> {
    check_range(range)?;
    endpoints::get(db, actor, endpoint_id).await?;
    engine.bulk_retry_count(endpoint_id, range).await
}

pub async fn bulk_retry_start(
    db: &DatabaseConnection,
    engine: &dyn crate::engine::Engine,
    actor: &Actor,
    endpoint_id: &str,
    range: &entity::api::BulkRetryRange,
) -> Result<entity::api::BulkRetry, ServiceError> {
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    check_range(range)?;
    endpoints::get(db, actor, endpoint_id).await?;
    engine.bulk_retry_start(actor.account_id.as_str(), endpoint_id, range).await
}

/// Recovery (SPEC §8): deliveries for the events since `since` that the endpoint subscribes
/// to and never got, for instance while it was disabled. Owners and admins; an enabled
/// endpoint (a disabled one would only hold them).
pub async fn recover_start(
    db: &DatabaseConnection,
    engine: &dyn crate::engine::Engine,
    actor: &Actor,
    endpoint_id: &str,
    since: DateTime<Utc>,
) -> Result<entity::api::BulkRetry, ServiceError> {
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    let endpoint = endpoints::get(db, actor, endpoint_id).await?;
    if !endpoint.enabled {
        return Err(ServiceError::invalid(
            "since",
            "Re-enable the endpoint first: a disabled endpoint is sent nothing.",
        ));
    }
    if since >= Utc::now() {
        return Err(ServiceError::invalid("since", "The start must be in the past."));
    }
    engine.recover_start(actor.account_id.as_str(), endpoint_id, since).await
}

fn check_range(range: &entity::api::BulkRetryRange) -> Result<(), ServiceError> {
    if range.since >= range.until {
        return Err(ServiceError::invalid("since", "The start of the range must be before its end."));
    }
    if range.target_status() == DeliveryStatus::Delivered {
        return Err(ServiceError::invalid(
            "status",
            "A bulk retry resends `failed` deliveries, or `pending` ones waiting for a retry; replay a delivered one from its row.",
        ));
    }
    Ok(())
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct BucketRow {
    bucket: chrono::DateTime<Utc>,
    total: i64,
    succeeded: i64,
    avg_ms: f64,
}

/// Success and latency of an endpoint's attempts over the last `days` (1: hourly buckets,
/// otherwise daily), from the attempts table.
pub async fn stats(
    db: &DatabaseConnection,
    actor: &Actor,
    endpoint_id: &str,
    days: i32,
) -> Result<Vec<entity::api::StatBucket>, ServiceError> {
    use sea_orm::{DbBackend, FromQueryResult, Statement};
    endpoints::get(db, actor, endpoint_id).await?;
    let unit = if days <= 1 { "hour" } else { "day" };
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT date_trunc($3, attempted_at) AS bucket, count(*) AS total,
                count(*) FILTER (WHERE success) AS succeeded, avg(response_time_ms)::float8 AS avg_ms
         FROM attempts
         WHERE endpoint_id = $1 AND account_id = $2 AND attempted_at > now() - make_interval(days => $4)
         GROUP BY 1 ORDER BY 1",
        [endpoint_id.into(), actor.account_id.as_str().into(), unit.into(), days.clamp(1, 31).into()],
    );
    let rows = BucketRow::find_by_statement(stmt).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| entity::api::StatBucket { start: r.bucket, total: r.total, succeeded: r.succeeded, avg_ms: r.avg_ms })
        .collect())
}
