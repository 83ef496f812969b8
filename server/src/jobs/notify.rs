//! Emails about endpoint health, as apalis jobs so a slow or failing SMTP server never
//! holds up deliveries (SPEC §6: a warning when failing, a notice when disabled, and word
//! when it recovers).

use std::sync::Arc;

use apalis::prelude::*;
use entity::tables::{endpoint, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use crate::{
    delivery::{dispatcher::HealthEvents, health::Change, health::FAILING_AFTER, record::QueuedJob},
    notify::{disabled_notice, failing_warning, recovered_notice, Mailer},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NotifyJob {
    Failing { endpoint_id: String, last_error: String },
    Disabled { endpoint_id: String, reason: String },
    Recovered { endpoint_id: String },
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
    };
    let Some(ep) = endpoint::Entity::find_by_id(endpoint_id.as_str()).one(&*db).await? else {
        return Ok(()); // deleted meanwhile: nobody to tell about it
    };
    let owners: Vec<String> = user::Entity::find()
        .filter(user::Column::AccountId.eq(&ep.account_id))
        .filter(user::Column::Role.eq("owner"))
        .all(&*db)
        .await?
        .into_iter()
        .map(|u| u.email)
        .collect();
    let link = format!("{}/settings/webhooks/{}", notifier.public_url, ep.id);
    let email = match job {
        NotifyJob::Failing { last_error, .. } => {
            let failures = ep.consecutive_failures.max(FAILING_AFTER) as u32;
            failing_warning(&ep.url, failures, &last_error, notifier.attempt_timeout, &link, owners)
        }
        NotifyJob::Disabled { reason, .. } => disabled_notice(&ep.url, &reason, &link, owners),
        NotifyJob::Recovered { .. } => recovered_notice(&ep.url, &link, owners),
    };
    notifier.mailer.send(&email).await?;
    tracing::info!(endpoint = %ep.id, subject = %email.subject, "notification sent");
    Ok(())
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
