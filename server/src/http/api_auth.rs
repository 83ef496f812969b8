//! Authorization as a type: a REST handler that takes `ApiAccount` cannot run without a
//! valid account API key (`Authorization: Bearer whk_…`).

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};
use entity::AccountId;
use service::Actor;

use super::{error::ApiError, AppState};
use service::accounts;

use crate::secrets;

pub struct ApiAccount(pub AccountId);

impl ApiAccount {
    /// API keys act for the whole account and may change anything in it.
    pub fn actor(&self) -> Actor {
        Actor { account_id: self.0.clone(), can_write: true }
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim()).filter(|token| !token.is_empty())
}

/// Forgets revoked keys as soon as they are revoked, in any process (`REVOKED_CHANNEL`).
/// After a lost connection the whole cache is dropped: a revocation may have been missed.
/// Every request then looks its key up again, so a lost connection also makes ingest check
/// the database at once: if it is gone, those lookups are answered 503 without waiting.
pub async fn forget_revoked_keys(state: AppState) {
    use crate::wake::REVOKED_CHANNEL;
    let pool = state.db.get_postgres_connection_pool().clone();
    let cache = state.api_keys.clone();
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(REVOKED_CHANNEL).await.is_ok() {
                    cache.clear();
                    // `try_recv`, not `recv`: `recv` reconnects on its own and would hide the
                    // loss, and with it any revocation sent meanwhile.
                    while let Ok(Some(n)) = listener.try_recv().await {
                        cache.forget(&n.payload().to_owned());
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "API key revocations: LISTEN failed; retrying"),
        }
        cache.clear();
        state.ingest.check_database();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

impl FromRequestParts<AppState> for ApiAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        // Keyed by the key's hash: the cache holds no usable secret.
        let hash = secrets::token_hash(key);
        let now = std::time::Instant::now();
        if let Some(account) = state.api_keys.get(&hash, now) {
            return Ok(ApiAccount(account));
        }
        match state.db_lookup(accounts::account_for_api_key(&state.db, key)).await? {
            Some(account) => {
                state.api_keys.put(hash, account.clone(), now);
                Ok(ApiAccount(account))
            }
            None => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn token_of(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn only_a_non_empty_bearer_token_counts() {
        assert_eq!(token_of("Bearer whk_abc").as_deref(), Some("whk_abc"));
        assert_eq!(token_of("Bearer  whk_abc ").as_deref(), Some("whk_abc"));
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of("Basic dXNlcjpwdw=="), None);
        assert_eq!(token_of("whk_abc"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
