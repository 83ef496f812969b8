//! The endpoint rules, in one place for the dashboard's server functions and the REST API:
//! tenant scoping, roles, validation, reachability before save, secret rotation.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use entity::{
    api::{Endpoint, EndpointHealth, EndpointWithSecret, TestOutcome},
    endpoint_input::{EndpointInput, EndpointPatch},
    tables::{attempt, delivery, delivery_queue, endpoint, endpoint_event_type},
    AccountId, EndpointId, EndpointStatus, EventType,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, TransactionTrait,
};

use crate::{
    engine::{Engine, TestTarget},
    secret_box, Actor, ServiceError,
};

/// SPEC §5: the previous secret stays valid this long after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

pub async fn list(db: &DatabaseConnection, account: &AccountId) -> Result<Vec<Endpoint>, ServiceError> {
    let rows = endpoint::find_in(account).order_by_asc(endpoint::Column::CreatedAt).all(db).await?;
    let mut types: HashMap<EndpointId, Vec<EventType>> = HashMap::new();
    for sub in endpoint_event_type::find_in(account).all(db).await? {
        if let Ok(t) = sub.event_type.parse() {
            types.entry(sub.endpoint_id).or_default().push(t);
        }
    }
    rows.into_iter()
        .map(|row| {
            let event_types = types.remove(&row.id).unwrap_or_default();
            to_resource(row, event_types)
        })
        .collect()
}

pub async fn get(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<Endpoint, ServiceError> {
    let row = find_row(db, &actor.account_id, id).await?;
    let types = event_types_of(db, &row.id).await?;
    to_resource(row, types)
}

pub async fn create(
    db: &DatabaseConnection,
    engine: &dyn Engine,
    actor: &Actor,
    input: EndpointInput,
) -> Result<EndpointWithSecret, ServiceError> {
    let account = actor.writer()?;
    let url = checked_url(engine, &input, None).await?;
    let now = Utc::now();
    let secret = engine.new_secret();
    let row = endpoint::ActiveModel {
        id: Set(EndpointId::generate()),
        account_id: Set(account.clone()),
        url: Set(url),
        description: Set(input.description.trim().to_owned()),
        enabled: Set(input.enabled),
        status: Set(status_for(input.enabled)),
        disabled_reason: Set(None),
        consecutive_failures: Set(0),
        rate_limit: Set(input.rate_limit),
        secret: Set(secret_box::seal(&secret)),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        lease_until: Set(None),
        lease_owner: Set(None),
        breaker_until: Set(None),
        last_error: Set(None),
        status_since: Set(None),
        failing_since: Set(None),
        owners_warned_at: Set(None),
        owners_told_recovered_at: Set(None),
    };
    let txn = db.begin().await?;
    let row = row.insert(&txn).await?;
    replace_event_types(&txn, &row, &input.event_types).await?;
    txn.commit().await?;
    let endpoint = to_resource(row, input.event_types)?;
    Ok(EndpointWithSecret { endpoint, secret })
}

pub async fn update(
    db: &DatabaseConnection,
    engine: &dyn Engine,
    actor: &Actor,
    id: &str,
    patch: EndpointPatch,
) -> Result<Endpoint, ServiceError> {
    let account = actor.writer()?;
    let row = find_row(db, account, id).await?;
    let current = to_input(&row, event_types_of(db, &row.id).await?);
    let input = patch.apply(current);
    let url = checked_url(engine, &input, Some(&row.url)).await?;
    let was_enabled = row.enabled;
    let mut active = row.into_active_model();
    active.url = Set(url);
    active.description = Set(input.description.trim().to_owned());
    active.rate_limit = Set(input.rate_limit);
    active.updated_at = Set(Utc::now());
    if input.enabled != was_enabled {
        apply_enabled(&mut active, input.enabled);
    }
    let txn = db.begin().await?;
    let row = active.update(&txn).await?;
    replace_event_types(&txn, &row, &input.event_types).await?;
    txn.commit().await?;
    to_resource(row, input.event_types)
}

/// Turning an endpoint on clears its failure history so queued deliveries flow again
/// (SPEC §6); turning it off marks it disabled.
fn apply_enabled(active: &mut endpoint::ActiveModel, enabled: bool) {
    active.enabled = Set(enabled);
    active.status = Set(status_for(enabled));
    active.status_since = Set(Some(Utc::now()));
    // Off: unhealthy from now unless it already was; on: healthy again.
    if enabled {
        active.failing_since = Set(None);
    } else if active.failing_since.as_ref().is_none() {
        active.failing_since = Set(Some(Utc::now()));
    }
    if enabled {
        active.consecutive_failures = Set(0);
        active.disabled_reason = Set(None);
        active.breaker_until = Set(None);
    } else {
        active.disabled_reason = Set(Some("Disabled by a user.".to_owned()));
    }
}

pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<(), ServiceError> {
    let account = actor.writer()?;
    let row = find_row(db, account, id).await?;
    // The delivery log has no foreign keys (they cost a row lock and a WAL record per
    // delivery on the hot path), so its rows go here, with the endpoint, in one transaction.
    let txn = db.begin().await?;
    attempt::Entity::delete_many().filter(attempt::Column::EndpointId.eq(&row.id)).exec(&txn).await?;
    delivery::Entity::delete_many().filter(delivery::Column::EndpointId.eq(&row.id)).exec(&txn).await?;
    delivery_queue::Entity::delete_many().filter(delivery_queue::Column::EndpointId.eq(&row.id)).exec(&txn).await?;
    endpoint::Entity::delete_by_id(row.id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// The signing secret in clear, for owners and admins (and API keys, which act as admins).
/// SPEC §9: members never see a signing secret.
pub async fn secret(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<EndpointWithSecret, ServiceError> {
    let row = find_row(db, &actor.account_id, id).await?;
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    let secret = open(&row.secret)?;
    let types = event_types_of(db, &row.id).await?;
    Ok(EndpointWithSecret { endpoint: to_resource(row, types)?, secret })
}

/// A new secret; the old one keeps signing alongside it for 24 h (SPEC §5).
pub async fn rotate_secret(
    db: &DatabaseConnection,
    engine: &dyn Engine,
    actor: &Actor,
    id: &str,
) -> Result<EndpointWithSecret, ServiceError> {
    let account = actor.writer()?;
    let row = find_row(db, account, id).await?;
    let secret = engine.new_secret();
    // Re-sealed, so a plaintext row written before the key was set gets encrypted too.
    let previous = secret_box::seal(&open(&row.secret)?);
    let mut active = row.into_active_model();
    active.previous_secret = Set(Some(previous));
    active.previous_secret_expires_at = Set(Some(Utc::now() + Duration::hours(ROTATION_OVERLAP_HOURS)));
    active.secret = Set(secret_box::seal(&secret));
    active.updated_at = Set(Utc::now());
    let row = active.update(db).await?;
    let types = event_types_of(db, &row.id).await?;
    Ok(EndpointWithSecret { endpoint: to_resource(row, types)?, secret })
}

pub async fn send_test(
    db: &DatabaseConnection,
    engine: &dyn Engine,
    actor: &Actor,
    id: &str,
    event_type: EventType,
) -> Result<TestOutcome, ServiceError> {
    let account = actor.writer()?;
    let row = find_row(db, account, id).await?;
    let target = TestTarget {
        account_id: row.account_id.to_string(),
        endpoint_id: row.id.to_string(),
        url: row.url.clone(),
        secrets: signing_secrets(&row)?,
        rate_limit: row.rate_limit,
    };
    Ok(engine.send_test(target, event_type).await)
}

/// The secrets that sign a request now, in clear: the current one, and the previous one
/// while its overlap lasts.
pub fn signing_secrets(row: &endpoint::Model) -> Result<Vec<String>, ServiceError> {
    let previous = row.previous_secret.as_deref();
    endpoint::signing_set(row.secret.as_str(), previous, row.previous_secret_expires_at, Utc::now())
        .into_iter()
        .map(open)
        .collect()
}

/// A stored secret in clear; a value that cannot be opened is an operator error (wrong or
/// missing `WEBHOOKS_ENCRYPTION_KEY`), logged and never shown.
fn open(stored: &str) -> Result<String, ServiceError> {
    secret_box::open(stored).map_err(ServiceError::internal)
}

/// Validates the input and, when the URL is new, checks it is reachable (SPEC §7).
async fn checked_url(
    engine: &dyn Engine,
    input: &EndpointInput,
    current: Option<&str>,
) -> Result<String, ServiceError> {
    let errors = input.errors();
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let url = input.normalized_url().ok_or_else(|| ServiceError::invalid("url", "Enter a valid https:// URL."))?;
    if current != Some(url.as_str()) {
        engine.check_reachable(&url).await.map_err(|reason| ServiceError::invalid("url", reason.to_string()))?;
    }
    Ok(url)
}

/// The endpoint if it exists in this account; another account's id is simply not found.
async fn find_row(db: &DatabaseConnection, account: &AccountId, id: &str) -> Result<endpoint::Model, ServiceError> {
    let id: EndpointId = id.parse().map_err(|_| ServiceError::NotFound)?;
    endpoint::find_in(account).filter(endpoint::Column::Id.eq(id.as_str())).one(db).await?.ok_or(ServiceError::NotFound)
}

async fn event_types_of(db: &DatabaseConnection, endpoint_id: &str) -> Result<Vec<EventType>, ServiceError> {
    let rows = endpoint_event_type::Entity::find()
        .filter(endpoint_event_type::Column::EndpointId.eq(endpoint_id))
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|r| r.event_type.parse().ok()).collect())
}

async fn replace_event_types(
    db: &impl ConnectionTrait,
    row: &endpoint::Model,
    types: &[EventType],
) -> Result<(), ServiceError> {
    endpoint_event_type::Entity::delete_many()
        .filter(endpoint_event_type::Column::EndpointId.eq(&row.id))
        .exec(db)
        .await?;
    let mut unique = types.to_vec();
    unique.sort();
    unique.dedup();
    let rows = unique.into_iter().map(|t| endpoint_event_type::ActiveModel {
        endpoint_id: Set(row.id.clone()),
        event_type: Set(t.as_str().to_owned()),
        account_id: Set(row.account_id.clone()),
    });
    endpoint_event_type::Entity::insert_many(rows).exec_without_returning(db).await?;
    Ok(())
}

fn status_for(enabled: bool) -> EndpointStatus {
    if enabled {
        EndpointStatus::Healthy
    } else {
        EndpointStatus::Disabled
    }
}

fn to_input(row: &endpoint::Model, event_types: Vec<EventType>) -> EndpointInput {
    EndpointInput {
        url: row.url.clone(),
        description: row.description.clone(),
        event_types,
        enabled: row.enabled,
        rate_limit: row.rate_limit,
    }
}

pub fn to_resource(row: endpoint::Model, mut event_types: Vec<EventType>) -> Result<Endpoint, ServiceError> {
    event_types.sort();
    event_types.dedup();
    Ok(Endpoint {
        id: row.id.parse().map_err(ServiceError::internal)?,
        status: row.status,
        url: row.url,
        description: row.description,
        event_types,
        enabled: row.enabled,
        rate_limit: row.rate_limit,
        health: EndpointHealth {
            consecutive_failures: row.consecutive_failures,
            last_error: row.last_error,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since,
            status_since: row.status_since.unwrap_or(row.created_at),
            next_attempt_at: row.breaker_until.filter(|_| row.enabled),
        },
        created_at: row.created_at,
    })
}
