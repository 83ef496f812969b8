use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::EndpointId,
    pub account_id: crate::ids::AccountId,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    pub status: crate::EndpointStatus,
    pub disabled_reason: Option<String>,
    /// Consecutive failed attempts; any 2xx resets it (SPEC §6).
    pub consecutive_failures: i32,
    /// Deliveries per second, 1–100.
    pub rate_limit: i32,
    /// `whsec_…`, encrypted when `WEBHOOKS_ENCRYPTION_KEY` is set.
    pub secret: String,
    /// The secret before the last rotation, valid until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The worker currently sending to this endpoint holds it until then; once released, the
    /// release time (claims take the longest-released endpoint first).
    pub lease_until: Option<DateTimeUtc>,
    pub lease_owner: Option<String>,
    /// Circuit breaker: while failing, no attempt before this time (SPEC §6).
    pub breaker_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    /// When `status` last changed; `None`: not since the endpoint was created.
    pub status_since: Option<DateTimeUtc>,
    /// When it stopped being healthy; `None` while healthy.
    pub failing_since: Option<DateTimeUtc>,
    /// When the owners were last warned that it is failing (one warning an hour at most).
    pub owners_warned_at: Option<DateTimeUtc>,
    /// When the owners were last told it recovered (once per warning).
    pub owners_told_recovered_at: Option<DateTimeUtc>,
}

/// The secrets that sign a request at `now`, as stored: the current one, and the previous one
/// while the overlap after a rotation lasts. The dashboard's test send and the dispatcher
/// both sign with this set.
pub fn signing_set<S>(
    current: S,
    previous: Option<S>,
    previous_until: Option<DateTimeUtc>,
    now: DateTimeUtc,
) -> Vec<S> {
    let mut set = vec![current];
    if let (Some(previous), Some(until)) = (previous, previous_until) {
        if until > now {
            set.push(previous);
        }
    }
    set
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;

    #[test]
    fn the_previous_secret_signs_only_until_its_overlap_ends() {
        let now = Utc::now();
        assert_eq!(signing_set("new", Some("old"), Some(now + Duration::hours(1)), now), ["new", "old"]);
        assert_eq!(signing_set("new", Some("old"), Some(now), now), ["new"]);
        assert_eq!(signing_set("new", Some("old"), None, now), ["new"]);
        assert_eq!(signing_set("new", None, Some(now + Duration::hours(1)), now), ["new"]);
    }
}
