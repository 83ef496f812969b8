//! The account's team (SPEC §9): owners and admins invite people by email, change roles and
//! remove users; members only see the list. The rules are `entity::team`'s pure functions;
//! this module loads what they judge and applies what they allow. A team change locks the
//! account row, so two owners demoting each other at once cannot leave it without an owner.

use chrono::{DateTime, Duration, Utc};
use entity::{
    tables::{account, invitation, session, user},
    team::{self, InvitationLookup, InviteInput, Member, PendingInvitation, Target, Team, TeamRuleError},
    AccountId, InvitationId, Role,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::ServiceError;
use crate::{outbox::Outbox, tokens, UserActor};

fn to_member(u: user::Model) -> Result<Member, ServiceError> {
    Ok(Member { role: u.role, id: u.id.into(), email: u.email, joined_at: u.created_at })
}

fn to_pending(i: invitation::Model) -> Result<PendingInvitation, ServiceError> {
    Ok(PendingInvitation {
        role: i.role,
        id: i.id.into(),
        email: i.email,
        created_at: i.created_at,
        expires_at: i.expires_at,
    })
}

/// What an invitation row means now: open, or why its link no longer works.
pub fn lookup_state(i: &invitation::Model, account_name: String, now: DateTime<Utc>) -> InvitationLookup {
    match (i.accepted_at, i.revoked_at) {
        (Some(_), _) => InvitationLookup::Accepted,
        (_, Some(_)) => InvitationLookup::Revoked,
        _ if i.expires_at <= now => InvitationLookup::Expired,
        (None, None) => InvitationLookup::Open { account_name, email: i.email.clone(), role: i.role },
    }
}

fn pending() -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(invitation::Column::AcceptedAt.is_null())
        .add(invitation::Column::RevokedAt.is_null())
        .add(invitation::Column::ExpiresAt.gt(Utc::now()))
}

pub async fn list(db: &DatabaseConnection, me: &UserActor) -> Result<Team, ServiceError> {
    let account = &me.account_id;
    let members = user::find_in(account).order_by_asc(user::Column::CreatedAt).all(db).await?;
    let invitations = if me.role.can_write() {
        invitation::find_in(account).filter(pending()).order_by_desc(invitation::Column::CreatedAt).all(db).await?
    } else {
        Vec::new()
    };
    Ok(Team {
        members: members.into_iter().map(to_member).collect::<Result<_, _>>()?,
        invitations: invitations.into_iter().map(to_pending).collect::<Result<_, _>>()?,
        you: me.user_id.to_string(),
        your_role: me.role,
    })
}

/// Locks the account row for the rest of `txn`: team changes of one account take turns.
async fn lock_account(txn: &impl ConnectionTrait, account: &AccountId) -> Result<(), ServiceError> {
    account::Entity::find_by_id(account).lock_exclusive().one(txn).await?.ok_or(ServiceError::NotFound)?;
    Ok(())
}

async fn owners(txn: &impl ConnectionTrait, account: &AccountId) -> Result<usize, ServiceError> {
    let n = user::find_in(account).filter(user::Column::Role.eq(Role::Owner)).count(txn).await?;
    Ok(n as usize)
}

async fn find_user(txn: &impl ConnectionTrait, account: &AccountId, id: &str) -> Result<user::Model, ServiceError> {
    user::find_in(account).filter(user::Column::Id.eq(id)).one(txn).await?.ok_or(ServiceError::NotFound)
}

/// Invites `input.email` with `input.role` and queues the email with the link. Inviting an
/// email that already has a pending invitation re-sends: a new link replaces the old one
/// (which stops working), with a fresh expiry and the role now chosen.
pub async fn invite(
    db: &DatabaseConnection,
    outbox: &dyn Outbox,
    me: &UserActor,
    input: InviteInput,
) -> Result<PendingInvitation, ServiceError> {
    team::check_invite(me.role, input.role).map_err(|e| match e {
        TeamRuleError::OwnersOnly => ServiceError::invalid("role", e.to_string()),
        e => e.into(),
    })?;
    let email = team::normalize_email(&input.email).map_err(|e| ServiceError::invalid("email", e.to_string()))?;
    let token = tokens::random_token(32);
    let txn = db.begin().await?;
    lock_account(&txn, &me.account_id).await?;
    if user::Entity::find().filter(user::Column::Email.eq(&email)).one(&txn).await?.is_some() {
        let message = "This email already belongs to a user. An email can be on one account only.";
        return Err(ServiceError::invalid("email", message));
    }
    let now = Utc::now();
    invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
        .filter(invitation::Column::AccountId.eq(me.account_id.as_str()))
        .filter(invitation::Column::Email.eq(&email))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    let row = invitation::Model {
        id: InvitationId::generate(),
        account_id: me.account_id.clone(),
        email,
        role: input.role,
        token_hash: tokens::token_hash(&token),
        invited_by: Some(me.user_id.clone()),
        created_at: now,
        expires_at: now + Duration::days(team::INVITATION_DAYS),
        accepted_at: None,
        revoked_at: None,
    };
    invitation::Entity::insert(invitation::ActiveModel::from(row.clone())).exec(&txn).await?;
    txn.commit().await?;
    if let Err(err) = outbox.invitation(&row.id, &token).await {
        // No email, no invitation: the page says it failed, and a retry starts clean.
        invitation::Entity::delete_by_id(&row.id).exec(db).await?;
        return Err(err);
    }
    to_pending(row)
}

/// Gives a user of the account another role; it applies at their next request (sessions
/// read the role every time).
pub async fn change_role(
    db: &DatabaseConnection,
    me: &UserActor,
    id: &str,
    role: Role,
) -> Result<Member, ServiceError> {
    if !me.role.can_write() {
        return Err(ServiceError::Forbidden);
    }
    let txn = db.begin().await?;
    lock_account(&txn, &me.account_id).await?;
    let target = find_user(&txn, &me.account_id, id).await?;
    let current = target.role;
    team::check_role_change(me.role, Target { id, role: current }, role, owners(&txn, &me.account_id).await?)?;
    let mut active: user::ActiveModel = target.into();
    active.role = Set(role);
    let updated = active.update(&txn).await?;
    txn.commit().await?;
    to_member(updated)
}

/// Removes a user of the account; their sessions go with them, so they are logged out at
/// once.
pub async fn remove(db: &DatabaseConnection, me: &UserActor, id: &str) -> Result<(), ServiceError> {
    if !me.role.can_write() {
        return Err(ServiceError::Forbidden);
    }
    let txn = db.begin().await?;
    lock_account(&txn, &me.account_id).await?;
    let target = find_user(&txn, &me.account_id, id).await?;
    let role = target.role;
    team::check_remove(me.role, me.user_id.as_str(), Target { id, role }, owners(&txn, &me.account_id).await?)?;
    session::Entity::delete_many().filter(session::Column::UserId.eq(id)).exec(&txn).await?;
    user::Entity::delete_many().filter(user::Column::Id.eq(id)).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Withdraws a pending invitation (again: no change); its link stops working.
pub async fn revoke_invitation(db: &DatabaseConnection, me: &UserActor, id: &str) -> Result<(), ServiceError> {
    if !me.role.can_write() {
        return Err(ServiceError::Forbidden);
    }
    let found = invitation::find_in(&me.account_id)
        .filter(invitation::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound)?;
    // An owner invitation is an owner's to withdraw, as an owner is an owner's to remove.
    team::check_invite(me.role, found.role)?;
    if found.revoked_at.is_some() || found.accepted_at.is_some() {
        return Ok(());
    }
    let mut active: invitation::ActiveModel = found.into();
    active.revoked_at = Set(Some(Utc::now()));
    active.update(db).await?;
    Ok(())
}

/// The invitation behind a link's token, for the public invitation page.
pub async fn lookup(db: &DatabaseConnection, token: &str) -> Result<InvitationLookup, ServiceError> {
    let Some(found) =
        invitation::Entity::find().filter(invitation::Column::TokenHash.eq(tokens::token_hash(token))).one(db).await?
    else {
        return Ok(InvitationLookup::Unknown);
    };
    let name = account::Entity::find_by_id(&found.account_id).one(db).await?.map(|a| a.name);
    Ok(match name {
        Some(name) => lookup_state(&found, name, Utc::now()),
        None => InvitationLookup::Unknown,
    })
}
