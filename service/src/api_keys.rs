//! Account API keys (SPEC §9): owners and admins create them (shown once), list them with
//! their last use and revoke them; members see none of it. Keys are stored as hashes.

use chrono::{Duration, Utc};
use entity::{
    api::{ApiKeyInfo, CreatedApiKey},
    tables::api_key,
    AccountId, ApiKeyId,
};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Statement, TransactionTrait,
};

use crate::ServiceError;
use crate::{tokens, Actor};

/// Server processes cache keys; a revocation tells them on this channel (payload: the key's
/// hash), so a revoked key is refused at once, not when the cache entry expires.
pub const REVOKED_CHANNEL: &str = "webhooks_api_keys_revoked";

/// `last_used_at` is written at most this often per key: a busy key costs no write per request.
const LAST_USE_PRECISION: Duration = Duration::minutes(1);

fn to_info(k: api_key::Model) -> ApiKeyInfo {
    ApiKeyInfo {
        id: k.id.into(),
        prefix: k.key_prefix,
        created_at: k.created_at,
        last_used_at: k.last_used_at,
        revoked_at: k.revoked_at,
    }
}

/// A new key for the account; the clear key is returned once and only its hash is kept.
pub async fn insert(db: &impl ConnectionTrait, account: &AccountId) -> Result<CreatedApiKey, DbErr> {
    let key = tokens::new_api_key();
    let row = api_key::Model {
        id: ApiKeyId::generate(),
        account_id: account.clone(),
        key_hash: tokens::token_hash(&key),
        key_prefix: tokens::key_prefix(&key),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    api_key::Entity::insert(api_key::ActiveModel::from(row.clone())).exec(db).await?;
    Ok(CreatedApiKey { info: to_info(row), key })
}

/// The account a bearer key belongs to, if the key exists and is not revoked; notes the use.
pub async fn account_for_key(db: &DatabaseConnection, key: &str) -> Result<Option<AccountId>, DbErr> {
    let Some(found) = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(tokens::token_hash(key)))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let now = Utc::now();
    if found.last_used_at.is_none_or(|at| now - at >= LAST_USE_PRECISION) {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(&found.id))
            .exec(db)
            .await?;
    }
    Ok(found.account_id.parse().ok())
}

pub async fn list(db: &DatabaseConnection, actor: &Actor) -> Result<Vec<ApiKeyInfo>, ServiceError> {
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    let keys = api_key::find_in(&actor.account_id).order_by_desc(api_key::Column::CreatedAt).all(db).await?;
    Ok(keys.into_iter().map(to_info).collect())
}

pub async fn create(db: &DatabaseConnection, actor: &Actor) -> Result<CreatedApiKey, ServiceError> {
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    Ok(insert(db, &actor.account_id).await?)
}

/// Revokes a key of the actor's account (again: no change), and tells every server process
/// to forget it in the same transaction (`REVOKED_CHANNEL`).
pub async fn revoke(db: &DatabaseConnection, actor: &Actor, id: &str) -> Result<ApiKeyInfo, ServiceError> {
    if !actor.can_write {
        return Err(ServiceError::Forbidden);
    }
    let key = api_key::find_in(&actor.account_id)
        .filter(api_key::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound)?;
    if key.revoked_at.is_some() {
        return Ok(to_info(key));
    }
    let hash = key.key_hash.clone();
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(Utc::now()));
    let txn = db.begin().await?;
    let updated = sea_orm::ActiveModelTrait::update(active, &txn).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [REVOKED_CHANNEL.into(), hash.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(to_info(updated))
}
