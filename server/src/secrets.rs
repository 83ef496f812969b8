//! Webhook secrets at start-up: the encryption key installed, secrets stored in clear sealed
//! (`service::secret_box`). Tokens and password hashes are `service::tokens` and
//! `service::passwords`, re-exported here for the tests.

use entity::tables::endpoint;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use service::secret_box;

pub use service::{
    passwords::{hash_password, verify_password},
    tokens::{new_api_key, random_token, token_hash},
};

/// Installs `WEBHOOKS_ENCRYPTION_KEY` for this process (SPEC §7), so the dashboard and the
/// dispatcher seal and open webhook secrets with it. Unset: secrets stay in clear.
pub fn install_encryption_key(config: &crate::config::Config) -> anyhow::Result<()> {
    if let Some(key) = &config.encryption_key {
        secret_box::install(key)?;
    }
    Ok(())
}

/// At start: with a key, encrypts the webhook secrets still stored in clear (rows written
/// before the key was set) and checks that the sealed ones open, so a wrong key stops the
/// start instead of failing every delivery; without a key, refuses to start if any secret is
/// sealed. Returns how many rows it encrypted.
pub async fn seal_stored_secrets(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let rows = endpoint::Entity::find().all(db).await?;
    if !secret_box::enabled() {
        let sealed = rows.iter().any(|r| secret_box::is_sealed(&r.secret));
        anyhow::ensure!(!sealed, secret_box::SecretBoxError::NoKey);
        return Ok(0);
    }
    let mut sealed = 0;
    for row in rows {
        let secret = secret_box::open(&row.secret)?;
        let previous = row.previous_secret.as_deref().map(secret_box::open).transpose()?;
        let clear_before = !secret_box::is_sealed(&row.secret)
            || row.previous_secret.as_deref().is_some_and(|p| !secret_box::is_sealed(p));
        if clear_before {
            let mut active: endpoint::ActiveModel = row.into();
            active.secret = Set(secret_box::seal(&secret));
            active.previous_secret = Set(previous.as_deref().map(secret_box::seal));
            active.update(db).await?;
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(sealed, "encrypted webhook secrets stored in clear");
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_distinct_and_hash_stably() {
        let (a, b) = (new_api_key(), new_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with("whk_") && a.len() == 4 + 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
    }
}
