//! Accounts, users, API keys and login sessions: the only code that writes those tables.

use chrono::{Duration as ChronoDuration, Utc};
use entity::{
    tables::{account, invitation, session, user},
    team::InvitationLookup,
    AccountId, Role, UserId,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};
use serde::Serialize;

use crate::{passwords, tokens};

pub use entity::session::CurrentUser;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    #[error("no account with id {0}")]
    UnknownAccount(String),
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedAccount {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub api_key: String,
}

pub fn normalize_email(email: &str) -> Result<String, AccountError> {
    entity::team::normalize_email(email).map_err(|e| AccountError::Invalid(e.to_string()))
}

fn check_password(password: &str) -> Result<(), AccountError> {
    entity::team::check_password(password).map_err(|e| AccountError::Invalid(e.to_string()))
}

/// Creates an account, its owner and a first API key in one transaction.
pub async fn create_account(
    db: &DatabaseConnection,
    name: &str,
    owner_email: &str,
    owner_password: &str,
) -> Result<CreatedAccount, AccountError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AccountError::Invalid("the account name must not be empty".into()));
    }
    let account_id = AccountId::generate();
    let txn = db.begin().await?;
    account::Entity::insert(account::ActiveModel {
        id: Set(account_id.clone()),
        name: Set(name.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    let user_id = create_user(&txn, &account_id, owner_email, owner_password, Role::Owner).await?;
    let api_key = insert_api_key(&txn, &account_id).await?;
    txn.commit().await?;
    Ok(CreatedAccount { account_id, user_id, api_key })
}

pub async fn create_user(
    db: &impl ConnectionTrait,
    account: &AccountId,
    email: &str,
    password: &str,
    role: Role,
) -> Result<UserId, AccountError> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let taken = user::Entity::find().filter(user::Column::Email.eq(&email)).one(db).await?;
    if taken.is_some() {
        return Err(AccountError::EmailTaken(email));
    }
    let hash = passwords::hash_password(password).map_err(|e| AccountError::Hash(e.to_string()))?;
    let id = UserId::generate();
    user::Entity::insert(user::ActiveModel {
        id: Set(id.clone()),
        account_id: Set(account.clone()),
        email: Set(email),
        password_hash: Set(hash),
        role: Set(role),
        created_at: Set(Utc::now()),
    })
    .exec(db)
    .await?;
    Ok(id)
}

/// A new user of an existing account (the CLI's `user create`).
pub async fn add_user(
    db: &DatabaseConnection,
    account: &AccountId,
    email: &str,
    password: &str,
    role: Role,
) -> Result<UserId, AccountError> {
    if account::Entity::find_by_id(account).one(db).await?.is_none() {
        return Err(AccountError::UnknownAccount(account.to_string()));
    }
    create_user(db, account, email, password, role).await
}

/// Why an invitation could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The link is unknown, expired, withdrawn or used: the page says which.
    #[error("the invitation is not open: {0:?}")]
    Closed(InvitationLookup),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<DbErr> for AcceptError {
    fn from(err: DbErr) -> Self {
        AcceptError::Account(err.into())
    }
}

/// Accepts an invitation (SPEC §9): the user is created in its account with its role, and
/// the invitation is marked accepted in the same transaction, which holds its row locked, so
/// a link works once even when submitted twice at once.
pub async fn accept_invitation(
    db: &DatabaseConnection,
    token: &str,
    password: &str,
) -> Result<user::Model, AcceptError> {
    let txn = db.begin().await?;
    let found = invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(tokens::token_hash(token)))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(AcceptError::Closed(InvitationLookup::Unknown))?;
    let state = crate::team::lookup_state(&found, String::new(), Utc::now());
    let InvitationLookup::Open { email, role, .. } = state else {
        return Err(AcceptError::Closed(state));
    };
    let account = found.account_id.clone();
    let user_id = create_user(&txn, &account, &email, password, role).await?;
    let mut accepted: invitation::ActiveModel = found.into();
    accepted.accepted_at = Set(Some(Utc::now()));
    sea_orm::ActiveModelTrait::update(accepted, &txn).await?;
    let created = user::Entity::find_by_id(&user_id).one(&txn).await?;
    txn.commit().await?;
    created.ok_or_else(|| DbErr::RecordNotFound(user_id.to_string()).into())
}

/// A new API key for an existing account; the clear key is returned once.
pub async fn create_api_key(db: &DatabaseConnection, account: &AccountId) -> Result<String, AccountError> {
    if account::Entity::find_by_id(account).one(db).await?.is_none() {
        return Err(AccountError::UnknownAccount(account.to_string()));
    }
    insert_api_key(db, account).await
}

async fn insert_api_key(db: &impl ConnectionTrait, account: &AccountId) -> Result<String, AccountError> {
    Ok(crate::api_keys::insert(db, account).await?.key)
}

/// The account a bearer key belongs to, if the key exists and is not revoked.
pub async fn account_for_api_key(db: &DatabaseConnection, key: &str) -> Result<Option<AccountId>, DbErr> {
    crate::api_keys::account_for_key(db, key).await
}

/// Checks email and password; `None` for an unknown email or a wrong password alike.
pub async fn authenticate(db: &DatabaseConnection, email: &str, password: &str) -> Result<Option<user::Model>, DbErr> {
    let email = email.trim().to_lowercase();
    let found = user::Entity::find().filter(user::Column::Email.eq(email)).one(db).await?;
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    // Argon2 is CPU-heavy: keep it off the async workers.
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || passwords::verify_password(&password, stored.as_deref()))
        .await
        .unwrap_or(false);
    Ok(found.filter(|_| ok))
}

/// Starts a session and returns the cookie token (only its hash is stored).
pub async fn create_session(
    db: &DatabaseConnection,
    user: &user::Model,
    ttl: std::time::Duration,
) -> Result<String, DbErr> {
    let token = tokens::random_token(32);
    let now = Utc::now();
    let ttl = ChronoDuration::from_std(ttl).unwrap_or(ChronoDuration::hours(12));
    session::Entity::insert(session::ActiveModel {
        token_hash: Set(tokens::token_hash(&token)),
        user_id: Set(user.id.clone()),
        account_id: Set(user.account_id.clone()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
    })
    .exec(db)
    .await?;
    Ok(token)
}

/// The user behind a session token, if the session exists and has not expired.
pub async fn resolve_session(db: &DatabaseConnection, token: &str) -> Result<Option<CurrentUser>, DbErr> {
    let Some(sess) = session::Entity::find_by_id(tokens::token_hash(token)).one(db).await? else {
        return Ok(None);
    };
    if sess.expires_at <= Utc::now() {
        return Ok(None);
    }
    let Some(u) = user::Entity::find_by_id(&sess.user_id).one(db).await? else {
        return Ok(None);
    };
    let Some(acc) = account::Entity::find_by_id(&sess.account_id).one(db).await? else {
        return Ok(None);
    };
    let role = u.role;
    let (Ok(user_id), Ok(account_id)) = (u.id.parse(), acc.id.parse()) else {
        return Err(DbErr::Custom(format!("corrupt ids for session of user {}", u.id)));
    };
    Ok(Some(CurrentUser { user_id, account_id, account_name: acc.name, email: u.email, role }))
}

pub async fn delete_session(db: &DatabaseConnection, token: &str) -> Result<(), DbErr> {
    session::Entity::delete_by_id(tokens::token_hash(token)).exec(db).await?;
    Ok(())
}

/// Removes expired sessions; run from the worker's housekeeping.
pub async fn delete_expired_sessions(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let res = session::Entity::delete_many().filter(session::Column::ExpiresAt.lt(Utc::now())).exec(db).await?;
    Ok(res.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        assert!(normalize_email("ada").is_err());
        assert!(normalize_email("@example.com").is_err());
        assert!(normalize_email("ada@localhost").is_err());
    }
}
