//! Recording one attempt: the attempt row, the delivery's next state and the endpoint's
//! health, in one short transaction with the endpoint row locked.

use std::time::SystemTime;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::{AttemptId, EndpointStatus};
use serde_json::{Map, Value};
use sqlx::{PgPool, Row};

use super::{
    attempt::AttemptResult,
    health::{self, Change, Health},
    retry::{self, Decision},
    store::DueDelivery,
};
use crate::config::RetrySchedule;

#[derive(Debug)]
pub struct Recorded {
    pub change: Change,
    /// False once the endpoint is failing or disabled: stop sending to it for now.
    pub keep_sending: bool,
    pub last_error: String,
}

pub async fn record(
    pool: &PgPool,
    endpoint_id: &str,
    account_id: &str,
    delivery: &DueDelivery,
    result: &AttemptResult,
    started_at: DateTime<Utc>,
    schedule: &RetrySchedule,
) -> sqlx::Result<Recorded> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query("SELECT status, consecutive_failures, enabled FROM endpoints WHERE id = $1 FOR UPDATE")
        .bind(endpoint_id)
        .fetch_one(&mut *tx)
        .await?;
    let status: EndpointStatus = row.get::<String, _>("status").parse().unwrap_or(EndpointStatus::Healthy);
    let before = Health { status, consecutive_failures: row.get("consecutive_failures") };
    let enabled: bool = row.get("enabled");

    let failed_attempts = (delivery.attempt_count + 1) as u32;
    let decision = if result.success() {
        None
    } else {
        let retry_after = result.retry_after.as_deref().and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let jitter = retry::random_jitter_unit(&mut rand::thread_rng());
        Some(retry::decide(schedule, failed_attempts, result.status, retry_after, jitter))
    };
    let dead = matches!(decision, Some(Decision::Dead));
    let (after, change) = health::after_attempt(&before, result.success(), result.status, dead);
    let next_attempt_at = match decision {
        Some(Decision::Retry { after }) => Some(Utc::now() + ChronoDuration::from_std(after).unwrap_or(ChronoDuration::hours(24))),
        _ => None,
    };
    let delivery_status = match decision {
        None => "delivered",
        Some(Decision::Retry { .. }) => "pending",
        Some(Decision::Dead) => "failed",
    };
    let last_error = describe(result);

    insert_attempt(&mut tx, endpoint_id, account_id, delivery, result, started_at).await?;
    sqlx::query(
        "UPDATE deliveries SET status = $2, attempt_count = attempt_count + 1, next_attempt_at = $3, updated_at = now()
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(&delivery.id)
    .bind(delivery_status)
    .bind(next_attempt_at)
    .execute(&mut *tx)
    .await?;

    let disable_reason = match &change {
        Change::Disable { reason } => Some(reason.clone()),
        _ => None,
    };
    // While failing, the breaker stays open until this delivery's next try: one probe per
    // backoff step, the rest wait without spending attempts (SPEC §6).
    let breaker_until = if after.status == EndpointStatus::Failing { next_attempt_at } else { None };
    sqlx::query(
        "UPDATE endpoints SET status = $2, consecutive_failures = $3, breaker_until = $4,
             last_error = CASE WHEN $5 THEN last_error ELSE $6 END,
             enabled = enabled AND $7, disabled_reason = COALESCE($8, disabled_reason), updated_at = now()
         WHERE id = $1",
    )
    .bind(endpoint_id)
    .bind(after.status.as_str())
    .bind(after.consecutive_failures)
    .bind(breaker_until)
    .bind(result.success())
    .bind(&last_error)
    .bind(disable_reason.is_none())
    .bind(disable_reason)
    .execute(&mut *tx)
    .await?;
    // Delivered at commit: open delivery logs refresh (http/live.rs).
    sqlx::query("SELECT pg_notify('webhooks_attempts', $1)").bind(endpoint_id).execute(&mut *tx).await?;
    tx.commit().await?;
    let keep_sending = enabled && after.status == EndpointStatus::Healthy;
    Ok(Recorded { change, keep_sending, last_error })
}

async fn insert_attempt(
    tx: &mut sqlx::PgConnection,
    endpoint_id: &str,
    account_id: &str,
    delivery: &DueDelivery,
    result: &AttemptResult,
    started_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO attempts (id, account_id, delivery_id, endpoint_id, event_type, attempt_number, attempted_at,
             status_code, response_time_ms, success, error, request_headers, request_body, response_headers, response_body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(AttemptId::generate().to_string())
    .bind(account_id)
    .bind(&delivery.id)
    .bind(endpoint_id)
    .bind(&delivery.event_type)
    .bind(delivery.attempt_count + 1)
    .bind(started_at)
    .bind(result.status.map(i32::from))
    .bind(result.elapsed.as_millis().min(i32::MAX as u128) as i32)
    .bind(result.success())
    .bind(&result.error)
    .bind(headers_json(&result.request_headers))
    .bind(super::attempt::truncate_body(&delivery.payload))
    .bind(result.status.map(|_| headers_json(&result.response_headers)))
    .bind(&result.response_body)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn headers_json(headers: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (k, v) in headers {
        map.insert(k.to_lowercase(), Value::String(v.clone()));
    }
    Value::Object(map)
}

fn describe(result: &AttemptResult) -> String {
    match (&result.error, result.status) {
        (Some(error), _) => error.clone(),
        (None, Some(code)) => format!("HTTP {code}"),
        (None, None) => "no response".to_owned(),
    }
}
