//! The server's implementation of the dashboard's `Engine` port (reachability check, test
//! send, bulk retry and recovery), holding the outbound HTTP clients, the SSRF guard and the
//! wake-ups it shares with the dispatcher.

use std::{sync::Arc, time::Duration};

use apalis::prelude::TaskSink;
use apalis_postgres::PostgresStorage;
use chrono::{DateTime, Utc};
use entity::api::{BulkRetry, BulkRetryRange};
use entity::{api::TestOutcome, endpoint_url::EndpointUrl, samples::sample_object, EventId, EventType};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use serde_json::value::to_raw_value;
use service::{
    bulk_retries,
    engine::{Engine, TestTarget, Unreachable},
    ServiceError,
};

use crate::{
    config::Config,
    delivery::{
        attempt::{self, AttemptRequest, Target},
        client::build_client,
        failure::describe_error,
        payload::payload_bytes,
        signing::WebhookSecret,
        ssrf::{AllowList, Guard},
    },
    wake::Wakers,
};

/// SPEC §7: the reachability check waits at most this long for any HTTP answer.
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct EnginePort {
    pool: sqlx::PgPool,
    guard: Arc<Guard>,
    probe: reqwest::Client,
    client: reqwest::Client,
    /// In-memory wake-ups of this process's dispatcher, shared with ingest.
    wakers: Wakers,
    /// How far back the log (and so a recovery) reaches: `WEBHOOKS_LOG_RETENTION`.
    retention: Duration,
}

impl EnginePort {
    pub fn new(config: &Config, pool: sqlx::PgPool) -> anyhow::Result<Self> {
        crate::secrets::install_encryption_key(config)?; // SPEC §7: serve and worker alike
        let allow = AllowList::parse(&config.allow_hosts).map_err(|e| anyhow::anyhow!("WEBHOOKS_ALLOW_HOSTS: {e}"))?;
        let guard = Arc::new(Guard::new(allow));
        let ca = config.extra_ca.as_deref();
        Ok(EnginePort {
            pool,
            probe: build_client(guard.clone(), ca, REACHABILITY_TIMEOUT)?,
            client: build_client(guard.clone(), ca, config.attempt_timeout)?,
            guard,
            wakers: Wakers::default(),
            retention: config.log_retention,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// The pool as the service layer takes it (a handle, no new connection).
    fn db(&self) -> DatabaseConnection {
        SqlxPostgresConnector::from_sqlx_postgres_pool(self.pool.clone())
    }
}

#[async_trait::async_trait]
impl Engine for EnginePort {
    async fn check_reachable(&self, url: &str) -> Result<(), Unreachable> {
        let parsed = EndpointUrl::parse(url).map_err(|e| Unreachable(e.to_string()))?;
        self.guard.resolve(&parsed).await.map_err(|e| Unreachable(e.to_string()))?;
        // Any HTTP answer proves DNS, TLS and a listening server; many receivers answer a
        // GET with 405, which is fine.
        match self.probe.get(parsed.as_str()).send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(Unreachable(describe_error(&err))),
        }
    }

    async fn send_test(&self, target: TestTarget, event_type: EventType) -> TestOutcome {
        let id = EventId::generate();
        let object = to_raw_value(&sample_object(event_type)).expect("a JSON value serialises");
        let created = Utc::now();
        let body = payload_bytes(id.as_str(), event_type.as_str(), created, &object, &target.account_id);
        let secrets: Vec<WebhookSecret> = target.secrets.iter().filter_map(|s| WebhookSecret::parse(s).ok()).collect();
        let limit = u32::try_from(target.rate_limit).unwrap_or(100);
        let result = attempt::send(
            &self.client,
            &self.guard,
            AttemptRequest {
                target: &Target::new(&target.url, &secrets),
                msg_id: id.as_str(),
                body: body.clone().into(),
                rate_limit: Some((limit, limit.saturating_sub(1))),
            },
        )
        .await;
        let sent = crate::delivery::record::TestSend {
            account_id: &target.account_id,
            endpoint_id: &target.endpoint_id,
            event_id: id.as_str(),
            event_type: event_type.as_str(),
            payload: &body,
            created,
            result: &result,
        };
        if let Err(err) = crate::delivery::record::write_test_send(&self.pool, &sent).await {
            // The receiver has its answer either way; only the log entry is missing.
            tracing::warn!(%err, endpoint = %target.endpoint_id, "a test send could not be logged");
        }
        TestOutcome {
            event_id: id.to_string(),
            success: result.success(),
            status_code: result.status,
            response_time_ms: result.elapsed.as_millis() as u64,
            body_excerpt: excerpt(result.response_body.as_deref().unwrap_or("")),
            error: result.error,
        }
    }

    fn new_secret(&self) -> String {
        WebhookSecret::generate().as_str().to_owned()
    }

    async fn bulk_retry_count(&self, endpoint_id: &str, range: &BulkRetryRange) -> Result<i64, ServiceError> {
        bulk_retries::count(&self.db(), endpoint_id, range).await.map_err(ServiceError::internal)
    }

    async fn bulk_retry_start(
        &self,
        account_id: &str,
        endpoint_id: &str,
        range: &BulkRetryRange,
    ) -> Result<BulkRetry, ServiceError> {
        let (bulk, created) =
            bulk_retries::create(&self.db(), account_id, endpoint_id, range).await.map_err(ServiceError::internal)?;
        if created {
            let mut storage: PostgresStorage<crate::jobs::bulk::BulkRetryJob> = PostgresStorage::new(&self.pool);
            storage
                .push(crate::jobs::bulk::BulkRetryJob { id: bulk.id.clone() })
                .await
                .map_err(ServiceError::internal)?;
        }
        Ok(bulk)
    }

    async fn bulk_retry_status(&self, account_id: &str, id: &str) -> Result<BulkRetry, ServiceError> {
        bulk_retries::get(&self.db(), account_id, id)
            .await
            .map_err(ServiceError::internal)?
            .ok_or(ServiceError::NotFound)
    }

    async fn recover_start(
        &self,
        account_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> Result<BulkRetry, ServiceError> {
        let oldest = Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        if since < oldest {
            let message = format!(
                "Recovery reaches back at most {} (the log retention); older events are deleted. Pick a later start.",
                humantime::format_duration(self.retention)
            );
            return Err(ServiceError::invalid("since", message));
        }
        let (job, created) = bulk_retries::create_recovery(&self.db(), account_id, endpoint_id, since)
            .await
            .map_err(ServiceError::internal)?;
        if created {
            let mut storage: PostgresStorage<crate::jobs::bulk::BulkRetryJob> = PostgresStorage::new(&self.pool);
            storage
                .push(crate::jobs::bulk::BulkRetryJob { id: job.id.clone() })
                .await
                .map_err(ServiceError::internal)?;
        }
        Ok(job)
    }
}

/// The first lines of a response body, for showing inline.
fn excerpt(body: &str) -> String {
    let mut out: String = body.lines().take(8).collect::<Vec<_>>().join("\n");
    if entity::body::truncate_at_char_boundary(&mut out, 600) {
        out.push('…');
    }
    out
}
