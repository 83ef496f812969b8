use apalis::prelude::*;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::accounts;

/// Periodic cleanup of rows that have outlived their purpose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Housekeeping;

pub async fn run(_job: Housekeeping, db: Data<DatabaseConnection>) -> Result<(), BoxDynError> {
    let sessions = accounts::delete_expired_sessions(&db).await?;
    tracing::info!(expired_sessions = sessions, "housekeeping done");
    Ok(())
}
