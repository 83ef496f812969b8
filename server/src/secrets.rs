//! Random tokens and their one-way hashes: API keys, session tokens, password hashes.
//! Only hashes are stored; the clear value is shown once (keys) or lives in a cookie.
//! Webhook secrets, which must be read back to sign, are sealed instead (`secret_box`).

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use entity::tables::endpoint;
use rand::rngs::OsRng;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use service::secret_box;

pub use service::tokens::{new_api_key, random_token, token_hash};

pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Verifies against a stored PHC string. With no stored hash (unknown user) it still does
/// the work of one verification, so response time does not reveal which emails exist.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not-a-real-password").expect("hashing works"));
    let Ok(parsed) = PasswordHash::new(stored.unwrap_or(dummy)) else {
        return false;
    };
    let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && stored.is_some()
}

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
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("correct horse ", Some(&hash)));
        assert!(!verify_password("correct horse", None), "unknown user never verifies");
        assert!(!verify_password("x", Some("garbage")));
    }

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
