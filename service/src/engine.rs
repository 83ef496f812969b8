//! The narrow port through which the dashboard reaches the delivery machinery. Defined
//! here, implemented in the server crate (which alone links reqwest and the signer), and
//! provided to server functions as `Arc<dyn Engine>` through the Leptos context.

use chrono::{DateTime, Utc};
use entity::{
    api::{BulkRetry, BulkRetryRange, TestOutcome},
    EventType,
};

use crate::ServiceError;

/// Why an endpoint URL did not answer the reachability check, as the sentence the form shows
/// beside the field (the address was refused, did not resolve, TLS failed, no answer in time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

#[async_trait::async_trait]
pub trait Engine: Send + Sync + 'static {
    /// SPEC §7: DNS resolves to allowed addresses, TLS verifies, any HTTP answer within
    /// 10 s. `Err` says in a sentence for the user what failed.
    async fn check_reachable(&self, url: &str) -> Result<(), Unreachable>;

    /// Sends a signed sample event of `event_type`, exactly as a real delivery would be.
    async fn send_test(&self, target: TestTarget, event_type: EventType) -> TestOutcome;

    /// A fresh `whsec_…` secret.
    fn new_secret(&self) -> String;

    /// How many failed deliveries of the endpoint a bulk retry of `range` would resend.
    /// The endpoint has been checked to belong to the caller's account.
    async fn bulk_retry_count(&self, endpoint_id: &str, range: &BulkRetryRange) -> Result<i64, ServiceError>;

    /// Starts a bulk retry as a background job, or returns the same one already running.
    async fn bulk_retry_start(
        &self,
        account_id: &str,
        endpoint_id: &str,
        range: &BulkRetryRange,
    ) -> Result<BulkRetry, ServiceError>;

    async fn bulk_retry_status(&self, account_id: &str, id: &str) -> Result<BulkRetry, ServiceError>;

    /// Starts a recovery of the events since `since` the endpoint missed, as a background
    /// job, or returns the one already running for it. Refuses a `since` beyond the log
    /// retention (those events are gone). The endpoint has been checked to be the caller's.
    async fn recover_start(
        &self,
        account_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> Result<BulkRetry, ServiceError>;
}

/// What a test send needs to know about an endpoint.
#[derive(Debug, Clone)]
pub struct TestTarget {
    pub account_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secrets: Vec<String>,
    pub rate_limit: i32,
}
