//! `/metrics` and the batched recorder: counters move with real deliveries, the queue gauges
//! come from the database, and group-committed attempts are each written exactly once.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app_with, spawn_app_with_workers},
    receiver::TestReceiver,
};

const PASSWORD: &str = "a long enough password";

/// The value of an unlabelled sample, or of the labelled one given in full.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_attempts_and_read_the_queue_from_the_database() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    let before = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let successes_before = sample(&before, "webhooks_attempts_total{outcome=\"success\"}").unwrap_or(0.0);

    let events: Vec<Value> =
        (0..3).map(|n| json!({ "type": "task.completed", "data": { "object": { "n": n } } })).collect();
    app.publish(&key, json!({ "events": events })).await;
    app.until("all three are delivered", "SELECT count(*) = 3 FROM deliveries WHERE status = 'delivered'").await;

    let res = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    // Other tests share this process's counters, so these only ever grow by at least ours.
    let successes = sample(&text, "webhooks_attempts_total{outcome=\"success\"}").expect(&text);
    assert!(successes >= successes_before + 3.0, "{successes_before} → {successes}");
    assert!(sample(&text, "webhooks_first_attempt_delay_seconds_count").expect(&text) >= 3.0);
    assert!(sample(&text, "webhooks_attempt_duration_seconds_count").expect(&text) >= 3.0);
    assert!(sample(&text, "webhooks_events_ingested_total").expect(&text) >= 3.0);
    assert_eq!(sample(&text, "webhooks_queue_pending"), Some(0.0), "this app's database has nothing pending");
    assert_eq!(sample(&text, "webhooks_breakers_open"), Some(0.0));
    assert!(text.contains("# TYPE webhooks_queue_oldest_due_age_seconds gauge"));
}

#[tokio::test]
async fn queue_gauges_show_a_backlog_while_no_worker_runs() {
    let app = spawn_app_with(|_| {}).await; // no workers: what is published stays pending
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    let events: Vec<Value> =
        (0..4).map(|n| json!({ "type": "task.completed", "data": { "object": { "n": n } } })).collect();
    app.publish(&key, json!({ "events": events })).await;
    let text = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&text, "webhooks_queue_pending"), Some(4.0), "{text}");
    assert_eq!(sample(&text, "webhooks_queue_due"), Some(4.0));
    assert!(sample(&text, "webhooks_queue_oldest_due_age_seconds").unwrap() >= 0.0);
}

#[tokio::test]
async fn a_metrics_token_when_configured_is_required() {
    let app = spawn_app_with(|c| c.metrics_token = Some("scrape-me".into())).await;
    let res = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("WEBHOOKS_METRICS_TOKEN"));
    let wrong = app.client().get(app.url("/metrics")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = app.client().get(app.url("/metrics")).bearer_auth("scrape-me").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn batched_recording_writes_every_attempt_once_and_keeps_each_endpoint_in_order() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let mut endpoints = Vec::new();
    for _ in 0..4 {
        endpoints.push(app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await.0);
    }
    let mut published = Vec::new();
    for batch in 0..3 {
        let events: Vec<Value> = (0..25)
            .map(|n| json!({ "type": "task.completed", "data": { "object": { "n": batch * 25 + n } } }))
            .collect();
        published.extend(app.publish(&key, json!({ "events": events })).await);
    }
    let expected = published.len() * endpoints.len();
    app.until(
        "every delivery is delivered",
        &format!("SELECT count(*) = {expected} FROM deliveries WHERE status = 'delivered'"),
    )
    .await;

    let one_attempt_each: bool =
        app.scalar("SELECT bool_and(n = 1) FROM (SELECT count(*) AS n FROM attempts GROUP BY delivery_id) a").await;
    assert!(one_attempt_each, "every delivery has exactly one attempt row");
    let attempts: i64 = app.scalar("SELECT count(*) FROM attempts").await;
    assert_eq!(attempts as usize, expected);
    let health_ok: bool =
        app.scalar("SELECT bool_and(status = 'healthy' AND consecutive_failures = 0) FROM endpoints").await;
    assert!(health_ok);

    // At the receiver: each (endpoint path is shared, so by webhook-id) arrives once per
    // endpoint, and each endpoint's first attempts follow event order.
    let got = receiver.wait_for(expected + endpoints.len()).await; // + the reachability checks
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in got.iter().filter(|r| r.headers.contains_key("webhook-id")) {
        *seen.entry(r.headers["webhook-id"].to_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), published.len());
    assert!(seen.values().all(|n| *n == endpoints.len()), "each event reached each endpoint exactly once");
    for endpoint in &endpoints {
        let ordered: bool = app
            .scalar(&format!(
                "SELECT bool_and(ok) FROM (SELECT a.attempted_at >= lag(a.attempted_at) OVER (ORDER BY d.id) OR lag(a.attempted_at) OVER (ORDER BY d.id) IS NULL AS ok
                 FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE a.endpoint_id = '{endpoint}') x"
            ))
            .await;
        assert!(ordered, "first attempts to {endpoint} started in event order");
    }
}

/// A row PostgreSQL refuses (here a NUL byte, which `text` cannot hold) must not hold up the
/// rest of its batch, nor be retried forever: it is stored without the receiver's answer.
#[tokio::test]
async fn a_row_the_database_refuses_does_not_block_its_batch() {
    use server::delivery::{attempt::AttemptResult, health::Health, record, store::DueDelivery};
    let app = spawn_app_with(|_| {}).await; // no workers: the test plays the dispatcher
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (endpoint, _) = app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    let events: Vec<Value> =
        (0..2).map(|n| json!({ "type": "task.completed", "data": { "object": { "n": n } } })).collect();
    app.publish(&key, json!({ "events": events })).await;
    let pool = app.db.get_postgres_connection_pool().clone();
    let rows: Vec<(entity::DeliveryId, entity::EventId, entity::AccountId, String)> =
        sqlx::query_as("SELECT d.id, d.event_id, d.account_id, ev.payload FROM deliveries d JOIN events ev ON ev.id = d.event_id ORDER BY d.id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let live = server::wake::Announcer::spawn(
        pool.clone(),
        server::wake::ATTEMPTS_CHANNEL,
        std::time::Duration::from_millis(100),
    );
    let (recorder, task) = record::spawn(
        pool.clone(),
        std::sync::Arc::new(crate::helpers::NoEvents),
        live,
        tokio::sync::watch::channel(false).1,
    );
    let healthy = Health::healthy();
    let mut waits = Vec::new();
    for (n, (id, event_id, account_id, payload)) in rows.into_iter().enumerate() {
        let result = AttemptResult {
            status: Some(200),
            elapsed: std::time::Duration::from_millis(3),
            request_headers: vec![],
            response_headers: vec![("x-answer".into(), "ok".into())],
            response_body: Some(if n == 0 { "bad\0byte".into() } else { "fine".into() }),
            retry_after: None,
            error: None,
        };
        let schedule = server::config::RetrySchedule(vec![]);
        let plan = record::plan(&healthy, 0, None, &result, &schedule, 0.0, std::time::SystemTime::now());
        let delivery = DueDelivery {
            id,
            event_id,
            event_type: "task.completed".into(),
            attempt_count: 0,
            budget_from: 0,
            previous_try_at: None,
            payload: payload.into(),
            created_at: chrono::Utc::now(),
            queue_row: None,
        };
        let outcome = record::Outcome {
            endpoint_id: endpoint.parse().unwrap(),
            account_id,
            delivery,
            result,
            started_at: chrono::Utc::now(),
            plan,
            committed: None,
        };
        waits.push(recorder.submit(outcome).await);
    }
    for w in waits {
        w.await.unwrap().expect("both outcomes are committed");
    }
    drop(recorder);
    task.await.unwrap();
    let delivered: i64 =
        app.scalar("SELECT count(*) FROM deliveries WHERE status = 'delivered' AND attempt_count = 1").await;
    assert_eq!(delivered, 2);
    let stored: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT response_body, error FROM attempts ORDER BY delivery_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored[0].0, None, "the refused answer is left out");
    assert!(stored[0].1.as_deref().unwrap_or_default().contains("could not be stored"), "{:?}", stored[0]);
    assert_eq!(stored[1], (Some("fine".into()), None), "its neighbour is stored as it was");
}
