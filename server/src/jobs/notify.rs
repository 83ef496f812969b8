//! Emails as apalis jobs, so a slow or failing SMTP server never holds up deliveries or a
//! page: endpoint health (SPEC §6: a warning when failing, a notice when disabled, and word
//! when it recovers) and team invitations (SPEC §9).

use std::sync::Arc;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use entity::{
    paths,
    tables::{account, endpoint, invitation, user},
    EndpointId, InvitationId,
};
use sea_orm::{sea_query::Expr, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use service::{outbox::Outbox, ServiceError};

use crate::{
    delivery::{dispatcher::HealthEvents, health::Change, health::FAILING_AFTER, record::QueuedJob},
    email::{disabled_notice, failing_warning, invitation_email, recovered_notice, Mailer},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NotifyJob {
    Failing {
        endpoint_id: String,
        last_error: String,
    },
    Disabled {
        endpoint_id: String,
        reason: String,
    },
    Recovered {
        endpoint_id: String,
    },
    /// The job carries the link's token: the invitations table keeps only its hash.
    Invitation {
        invitation_id: String,
        token: String,
    },
}

/// Everything the handler needs besides the database.
pub struct Notifier {
    pub mailer: Mailer,
    pub public_url: String,
    /// How long an attempt may take, which the failing warning tells the owners.
    pub attempt_timeout: std::time::Duration,
}

pub async fn run(
    job: NotifyJob,
    db: Data<DatabaseConnection>,
    notifier: Data<Arc<Notifier>>,
) -> Result<(), BoxDynError> {
    let endpoint_id = match &job {
        NotifyJob::Failing { endpoint_id, .. }
        | NotifyJob::Disabled { endpoint_id, .. }
        | NotifyJob::Recovered { endpoint_id } => endpoint_id,
        NotifyJob::Invitation { invitation_id, token } => return invite(&db, &notifier, invitation_id, token).await,
    };
    let endpoint_id: EndpointId = endpoint_id.parse()?;
    let Some(ep) = endpoint::Entity::find_by_id(endpoint_id).one(&*db).await? else {
        return Ok(()); // deleted meanwhile: nobody to tell about it
    };
    let now = chrono::Utc::now();
    let Verdict::Send { note_at } = worth_sending(&job, &ep, now) else {
        tracing::info!(endpoint = %ep.id, ?job, "health email not sent: stale or already told");
        return Ok(());
    };
    let owners: Vec<String> = user::Entity::find()
        .filter(user::Column::AccountId.eq(&ep.account_id))
        .filter(user::Column::Role.eq(entity::Role::Owner))
        .all(&*db)
        .await?
        .into_iter()
        .map(|u| u.email)
        .collect();
    let link = format!("{}{}", notifier.public_url, paths::endpoint(&ep.id));
    let email = match job {
        NotifyJob::Failing { last_error, .. } => {
            let failures = ep.consecutive_failures.max(FAILING_AFTER) as u32;
            failing_warning(&ep.url, failures, &last_error, notifier.attempt_timeout, &link, owners)
        }
        NotifyJob::Disabled { reason, .. } => disabled_notice(&ep.url, &reason, &link, owners),
        NotifyJob::Recovered { .. } => recovered_notice(&ep.url, &link, owners),
        NotifyJob::Invitation { .. } => unreachable!("handled above"),
    };
    notifier.mailer.send(&email).await?;
    if let Some(column) = note_at {
        endpoint::Entity::update_many()
            .col_expr(column, Expr::value(now))
            .filter(endpoint::Column::Id.eq(&ep.id))
            .exec(&*db)
            .await?;
    }
    tracing::info!(endpoint = %ep.id, subject = %email.subject, "notification sent");
    Ok(())
}

/// At most one failing warning per endpoint in this long, however often it flaps.
pub const WARN_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

#[derive(Debug)]
enum Verdict {
    Skip,
    /// Send it, and note the time in this column.
    Send {
        note_at: Option<endpoint::Column>,
    },
}

/// Whether a health email is still worth sending when its job runs, given the endpoint as it
/// is now. A flaky receiver turns its endpoint failing and back dozens of times a minute; the
/// owners hear of it once an hour, and of a recovery once per warning. A warning whose
/// endpoint recovered before it went out is stale; a disable is always told.
fn worth_sending(job: &NotifyJob, ep: &endpoint::Model, now: chrono::DateTime<chrono::Utc>) -> Verdict {
    let healthy = ep.status == entity::EndpointStatus::Healthy;
    let send = |yes: bool, column| if yes { Verdict::Send { note_at: Some(column) } } else { Verdict::Skip };
    match job {
        NotifyJob::Failing { .. } => {
            let warned_lately = ep.owners_warned_at.is_some_and(|at| now - at < WARN_EVERY);
            send(!healthy && !warned_lately, endpoint::Column::OwnersWarnedAt)
        }
        NotifyJob::Recovered { .. } => {
            let warned = ep.owners_warned_at.is_some_and(|w| ep.owners_told_recovered_at.is_none_or(|r| r < w));
            send(healthy && warned, endpoint::Column::OwnersToldRecoveredAt)
        }
        NotifyJob::Disabled { .. } | NotifyJob::Invitation { .. } => Verdict::Send { note_at: None },
    }
}

/// Mails an invitation's link, unless it was withdrawn, used or replaced meanwhile.
async fn invite(db: &DatabaseConnection, notifier: &Notifier, id: &str, token: &str) -> Result<(), BoxDynError> {
    let Some(inv) = invitation::Entity::find_by_id(id.parse::<InvitationId>()?).one(db).await? else {
        return Ok(()); // its account was deleted
    };
    if inv.accepted_at.is_some() || inv.revoked_at.is_some() {
        tracing::info!(invitation = %inv.id, "invitation no longer pending; not mailed");
        return Ok(());
    }
    let account = account::Entity::find_by_id(&inv.account_id).one(db).await?.map(|a| a.name);
    let inviter = match &inv.invited_by {
        Some(by) => user::Entity::find_by_id(by).one(db).await?.map(|u| u.email),
        None => None,
    };
    let link = format!("{}/invite/{token}", notifier.public_url);
    let email =
        invitation_email(&account.unwrap_or_default(), inviter.as_deref(), inv.role.as_str(), &link, &inv.email);
    notifier.mailer.send(&email).await?;
    tracing::info!(invitation = %inv.id, "invitation sent");
    Ok(())
}

/// The dashboard's `Outbox`: emails become jobs for the worker above.
pub struct EmailQueue {
    pub pool: sqlx::PgPool,
}

#[async_trait::async_trait]
impl Outbox for EmailQueue {
    async fn invitation(&self, invitation_id: &str, token: &str) -> Result<(), ServiceError> {
        let job = NotifyJob::Invitation { invitation_id: invitation_id.to_owned(), token: token.to_owned() };
        let mut storage: PostgresStorage<NotifyJob> = PostgresStorage::new(&self.pool);
        storage.push(job).await.map_err(ServiceError::internal)?;
        Ok(())
    }
}

/// The dispatcher's health changes become email jobs, queued with the change.
pub struct QueueNotifications;

impl HealthEvents for QueueNotifications {
    fn job_for(&self, endpoint_id: &str, change: &Change, last_error: &str) -> Option<QueuedJob> {
        let job = match change {
            Change::BecameFailing => {
                NotifyJob::Failing { endpoint_id: endpoint_id.to_owned(), last_error: last_error.to_owned() }
            }
            Change::Disable { reason } => {
                NotifyJob::Disabled { endpoint_id: endpoint_id.to_owned(), reason: reason.clone() }
            }
            Change::Recovered => NotifyJob::Recovered { endpoint_id: endpoint_id.to_owned() },
            Change::None => return None,
        };
        // The queue name and encoding `PostgresStorage<NotifyJob>` reads (its type name, JSON).
        let args = serde_json::to_vec(&job).ok()?;
        Some(QueuedJob { queue: std::any::type_name::<NotifyJob>(), args })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use entity::EndpointStatus;

    use super::*;

    fn endpoint(status: EndpointStatus) -> endpoint::Model {
        let now = Utc::now();
        endpoint::Model {
            id: EndpointId::generate(),
            account_id: entity::AccountId::generate(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            enabled: status != EndpointStatus::Disabled,
            status,
            disabled_reason: None,
            consecutive_failures: 5,
            rate_limit: 100,
            secret: String::new(),
            previous_secret: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            lease_until: None,
            lease_owner: None,
            breaker_until: None,
            last_error: None,
            status_since: None,
            failing_since: None,
            owners_warned_at: None,
            owners_told_recovered_at: None,
        }
    }

    fn failing() -> NotifyJob {
        NotifyJob::Failing { endpoint_id: "ep_1".into(), last_error: "HTTP 500".into() }
    }

    fn recovered() -> NotifyJob {
        NotifyJob::Recovered { endpoint_id: "ep_1".into() }
    }

    fn sends(v: Verdict) -> bool {
        matches!(v, Verdict::Send { .. })
    }

    #[test]
    fn a_flapping_endpoint_warns_once_an_hour() {
        let now = Utc::now();
        let mut ep = endpoint(EndpointStatus::Failing);
        assert!(matches!(
            worth_sending(&failing(), &ep, now),
            Verdict::Send { note_at: Some(endpoint::Column::OwnersWarnedAt) }
        ));
        ep.owners_warned_at = Some(now - TimeDelta::minutes(59));
        assert!(!sends(worth_sending(&failing(), &ep, now)), "warned 59 minutes ago");
        ep.owners_warned_at = Some(now - WARN_EVERY);
        assert!(sends(worth_sending(&failing(), &ep, now)), "an hour later it is news again");
        ep.owners_warned_at = None;
        ep.status = EndpointStatus::Healthy;
        assert!(!sends(worth_sending(&failing(), &ep, now)), "recovered before the warning went out");
        ep.status = EndpointStatus::Disabled;
        assert!(sends(worth_sending(&failing(), &ep, now)), "disabled since: the warning is still the story");
    }

    #[test]
    fn a_recovery_is_told_once_per_warning_and_only_while_healthy() {
        let now = Utc::now();
        let mut ep = endpoint(EndpointStatus::Healthy);
        assert!(!sends(worth_sending(&recovered(), &ep, now)), "never warned: nothing to take back");
        ep.owners_warned_at = Some(now - TimeDelta::minutes(10));
        assert!(matches!(
            worth_sending(&recovered(), &ep, now),
            Verdict::Send { note_at: Some(endpoint::Column::OwnersToldRecoveredAt) }
        ));
        ep.owners_told_recovered_at = Some(now - TimeDelta::minutes(5));
        assert!(!sends(worth_sending(&recovered(), &ep, now)), "this warning's recovery was told");
        ep.owners_told_recovered_at = None;
        ep.status = EndpointStatus::Failing;
        assert!(!sends(worth_sending(&recovered(), &ep, now)), "failing again by the time the job ran");
        let disabled = NotifyJob::Disabled { endpoint_id: "ep_1".into(), reason: "gone".into() };
        assert!(matches!(worth_sending(&disabled, &ep, now), Verdict::Send { note_at: None }));
    }
}
