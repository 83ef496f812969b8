//! Ingest under concurrency and overload: group commit keeps an endpoint's order, excess
//! requests are refused fast, and a batch recorded for an endpoint a user just disabled leaves
//! it disabled.

use std::time::Duration;

use entity::tables::ingest_quota_window;
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{spawn_app_with, spawn_app_with_workers},
    receiver::TestReceiver,
};

const PASSWORD: &str = "a long enough password";

fn event(n: u32) -> Value {
    json!({ "type": "task.updated", "data": { "object": { "n": n } } })
}

/// Concurrent single-event requests: each endpoint receives them in the order their
/// deliveries were created, which is the order they were committed in.
#[tokio::test]
async fn concurrent_requests_reach_the_endpoint_in_commit_order() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 100).await;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..40 {
        let request = app.api(&key, reqwest::Method::POST, "/api/v1/events").json(&event(n));
        requests.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = requests.join_all().await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let got = receiver.wait_for(41).await; // the reachability check, then the 40 events
    let arrived: Vec<String> = got[1..].iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned()).collect();
    let pool = app.db.get_postgres_connection_pool();
    let created: Vec<(String,)> =
        sqlx::query_as("SELECT event_id FROM deliveries ORDER BY id").fetch_all(pool).await.unwrap();
    let created: Vec<String> = created.into_iter().map(|(id,)| id).collect();
    assert_eq!(arrived, created, "first attempts follow delivery (commit) order");
}

/// With every ingest slot taken, a request is refused at once with 503, `Retry-After` and a
/// JSON error, and the request holding the slot still completes.
#[tokio::test]
async fn past_the_in_flight_limit_ingest_is_refused_fast_with_retry_after() {
    let app = spawn_app_with(|c| c.ingest_max_in_flight = 1).await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let body = serde_json::to_vec(&event(1)).unwrap();
    // A request whose body is still arriving holds the only slot.
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..5]).await.unwrap();
    // The server takes the slot when it has read the head; until then a second request may
    // still get through, so ask until it is refused (bounded).
    let mut refused = None;
    for n in 0..200 {
        let answer = app.api(&key, reqwest::Method::POST, "/api/v1/events").json(&event(100 + n)).send().await.unwrap();
        if answer.status() == 503 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status(), 202);
        tokio::task::yield_now().await;
    }
    let refused = refused.expect("a request past the limit was refused");
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "overloaded", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("retry after 1 s"), "{error}");
    // The slow request finishes and is accepted.
    slow.write_all(&body[5..]).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
}

/// Asks with a body that is refused as invalid (422) once admitted, so asking adds nothing to
/// the backlog, until the answer is `status`: 503 while the account is refused for capacity,
/// 422 while it is admitted (bounded: the admission verdict is read again every 500 ms).
async fn until_answer_is(app: &crate::helpers::TestApp, key: &str, status: u16) -> reqwest::Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = app.api(key, reqwest::Method::POST, "/api/v1/events").json(&json!({})).send().await.unwrap();
        if answer.status() == status {
            return answer;
        }
        assert!([422, 503].contains(&answer.status().as_u16()), "{}", answer.status());
        assert!(std::time::Instant::now() < deadline, "no {status} within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn batch(n: u32) -> Value {
    json!({ "events": (0..n).map(event).collect::<Vec<_>>() })
}

/// Past the floor, a backlog more than `ingest_max_lag` of the measured delivery rate (here
/// nothing is delivered, so the rate is 0) refuses the account with the most due with 503
/// `overloaded` and `Retry-After`; an account with nothing due is still admitted; and once the
/// busy account's endpoint is disabled its rows stop counting and it is admitted again.
#[tokio::test]
async fn past_the_delivery_rate_the_account_with_the_most_due_is_refused_and_others_are_not() {
    let app = spawn_app_with(|c| c.ingest_admit_floor = 10).await; // no workers: nothing drains
    let receiver = TestReceiver::start().await;
    let busy = app.create_account("Busy", "ada@busy.test", PASSWORD).await.api_key;
    let quiet = app.create_account("Quiet", "bob@quiet.test", PASSWORD).await.api_key;
    let (endpoint, _) = app.endpoint(&busy, &receiver.url(), &["task.updated"], 100).await;
    app.endpoint(&quiet, &receiver.url(), &["task.updated"], 100).await;
    let accepted = app.api(&busy, reqwest::Method::POST, "/api/v1/events").json(&batch(20)).send().await.unwrap();
    assert_eq!(accepted.status(), 202);

    let refused = until_answer_is(&app, &busy, 503).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "overloaded", "{error}");
    let refused = app.api(&busy, reqwest::Method::POST, "/api/v1/events").json(&event(99)).send().await.unwrap();
    assert_eq!(refused.status(), 503, "a valid event is refused too");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM events").await, 20, "nothing of a refused request is stored");
    // 5 due for the quiet account: within its share of the budget of 10.
    let answer = app.api(&quiet, reqwest::Method::POST, "/api/v1/events").json(&batch(5)).send().await.unwrap();
    assert_eq!(answer.status(), 202);

    // A disabled endpoint's deliveries are not due: the busy account is admitted again.
    let patch = app.api(&busy, reqwest::Method::PATCH, &format!("/api/v1/endpoints/{endpoint}"));
    assert_eq!(patch.json(&json!({ "enabled": false })).send().await.unwrap().status(), 200);
    until_answer_is(&app, &busy, 422).await;
    let answer = app.api(&busy, reqwest::Method::POST, "/api/v1/events").json(&event(100)).send().await.unwrap();
    assert_eq!(answer.status(), 202);
}

/// A failure recorded for an endpoint a user disabled while its batch was in flight must not
/// turn it back into an enabled-looking `healthy`/`failing` endpoint.
#[tokio::test]
async fn an_outcome_recorded_after_a_user_disabled_the_endpoint_keeps_it_disabled() {
    use server::delivery::{attempt::AttemptResult, health::Health, record, store::DueDelivery};
    let app = spawn_app_with(|_| {}).await; // no workers: the test plays the dispatcher
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (endpoint, _) = app.endpoint(&key, &receiver.url(), &["task.updated"], 100).await;
    app.publish(&key, event(1)).await;
    let pool = app.db.get_postgres_connection_pool().clone();
    let (id, event_id, account_id, payload): (entity::DeliveryId, entity::EventId, entity::AccountId, String) =
        sqlx::query_as(
            "SELECT d.id, d.event_id, d.account_id, ev.payload FROM deliveries d JOIN events ev ON ev.id = d.event_id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
    // The batch was sent while the endpoint was enabled; the user disables it now.
    let patch = app.api(&key, reqwest::Method::PATCH, &format!("/api/v1/endpoints/{endpoint}"));
    assert_eq!(patch.json(&json!({ "enabled": false })).send().await.unwrap().status(), 200);
    let failed = AttemptResult {
        status: Some(500),
        elapsed: Duration::from_millis(3),
        request_headers: vec![],
        response_headers: vec![],
        response_body: Some("down".into()),
        retry_after: None,
        error: None,
    };
    let healthy = Health::healthy();
    let schedule = server::config::RetrySchedule(vec![Duration::from_secs(60)]);
    let plan = record::plan(&healthy, 0, None, &failed, &schedule, 0.0, std::time::SystemTime::now());
    assert!(plan.endpoint_changed, "a failure is written to the endpoint");
    let live = server::wake::Announcer::spawn(pool.clone(), server::wake::ATTEMPTS_CHANNEL, Duration::from_millis(100));
    let (recorder, task) = record::spawn(
        pool.clone(),
        std::sync::Arc::new(crate::helpers::NoEvents),
        live,
        tokio::sync::watch::channel(false).1,
    );
    let delivery = DueDelivery {
        id,
        event_id,
        event_type: "task.updated".into(),
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
        result: failed,
        started_at: chrono::Utc::now(),
        plan,
        committed: None,
    };
    recorder.submit(outcome).await.await.unwrap().expect("the outcome is committed");
    drop(recorder);
    task.await.unwrap();
    let got: Value = app
        .api(&key, reqwest::Method::GET, &format!("/api/v1/endpoints/{endpoint}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((got["enabled"].as_bool(), got["status"].as_str()), (Some(false), Some("disabled")), "{got}");
}

/// A shutdown during a database outage must not wait for the database: the recorder gives
/// up after its grace and tells the senders, so the process can stop.
#[tokio::test]
async fn a_shutdown_during_a_database_outage_does_not_wait_for_the_database() {
    use server::delivery::{attempt::AttemptResult, health::Health, record, store::DueDelivery};
    // Nothing listens on port 1 of loopback: every connection is refused, as in an outage.
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let live =
        server::wake::Announcer::spawn(unreachable.clone(), server::wake::ATTEMPTS_CHANNEL, Duration::from_millis(100));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (recorder, task) = record::spawn(unreachable, std::sync::Arc::new(crate::helpers::NoEvents), live, shutdown);
    let ok = AttemptResult {
        status: Some(200),
        elapsed: Duration::from_millis(3),
        request_headers: vec![],
        response_headers: vec![],
        response_body: None,
        retry_after: None,
        error: None,
    };
    let healthy = Health::healthy();
    let plan =
        record::plan(&healthy, 0, None, &ok, &server::config::RetrySchedule(vec![]), 0.0, std::time::SystemTime::now());
    let delivery = DueDelivery {
        id: entity::DeliveryId::generate(),
        event_id: entity::EventId::generate(),
        event_type: "task.updated".into(),
        attempt_count: 0,
        budget_from: 0,
        previous_try_at: None,
        payload: "{}".into(),
        created_at: chrono::Utc::now(),
        queue_row: None,
    };
    let outcome = record::Outcome {
        endpoint_id: entity::EndpointId::generate(),
        account_id: entity::AccountId::generate(),
        delivery,
        result: ok,
        started_at: chrono::Utc::now(),
        plan,
        committed: None,
    };
    let committed = recorder.submit(outcome).await;
    stop.send(true).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), committed).await.expect("the recorder gave up in time");
    assert!(answer.unwrap().is_err(), "the outcome is reported unrecorded, not silently dropped");
    drop(recorder);
    tokio::time::timeout(Duration::from_secs(30), task).await.expect("the recorder task ends").unwrap();
}

/// The outbox: `ingest::publish` inside the host application's own transaction stores the
/// events exactly when that transaction commits, and the workers deliver them.
#[tokio::test]
async fn outbox_publish_stores_events_only_when_the_callers_transaction_commits() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    app.endpoint(&acme.api_key, &receiver.url(), &["task.updated"], 100).await;
    let account = acme.account_id.clone();
    let pool = app.db.get_postgres_connection_pool();

    let rolled_back = server::ingest::parse_body(event(1).to_string().as_bytes()).unwrap();
    let mut tx = pool.begin().await.unwrap();
    server::ingest::publish(&mut tx, &account, &rolled_back).await.unwrap();
    tx.rollback().await.unwrap();

    let committed = server::ingest::parse_body(event(2).to_string().as_bytes()).unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap(); // the host's own change
    let ids = server::ingest::publish(&mut tx, &account, &committed).await.unwrap();
    tx.commit().await.unwrap();

    let got = receiver.wait_for(2).await; // the reachability check, then the committed event
    assert_eq!(got[1].headers["webhook-id"].to_str().unwrap(), ids[0].as_str());
    let stored: i64 = app.scalar("SELECT count(*) FROM events").await;
    assert_eq!(stored, 1, "the rolled-back event was never stored");
}

/// Fairness: with more backlogged endpoints than dispatcher slots, an endpoint with a long
/// backlog yields its slot after each batch, so another endpoint's event goes out before the
/// long backlog is done.
#[tokio::test]
async fn a_long_backlog_does_not_starve_another_endpoint_of_the_only_slot() {
    let app = spawn_app_with_workers(|c| c.dispatch_concurrency = 1).await;
    let (busy, quiet) = (TestReceiver::start().await, TestReceiver::start().await);
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &busy.url(), &["task.updated"], 100).await;
    app.endpoint(&key, &quiet.url(), &["task.created"], 100).await;
    let mut events: Vec<Value> = (0..150).map(event).collect();
    events.push(json!({ "type": "task.created", "data": { "object": { "n": 0 } } }));
    app.publish(&key, json!({ "events": events })).await;
    let quiet_got = quiet.wait_for(2).await; // the reachability check, then its one event
    let busy_got = busy.wait_for(151).await;
    // The first batch holds 100 deliveries; the quiet endpoint's turn comes before the 51st
    // of the second batch at the latest.
    assert!(quiet_got[1].at < busy_got[150].at, "the quiet endpoint waited for the whole backlog");
}

/// The ingest quota is the account's, not each process's: what one server admitted counts
/// against what another may admit in the same second.
#[tokio::test]
async fn the_ingest_quota_holds_across_server_processes() {
    let app = spawn_app_with(|_| {}).await;
    let other = app.sibling().await;
    let created = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let key = created.api_key;
    sqlx::query("UPDATE accounts SET ingest_rate_limit = 4")
        .execute(app.db.get_postgres_connection_pool())
        .await
        .unwrap();
    let three: Value = json!({ "events": (0..3).map(event).collect::<Vec<_>>() });
    let post = |base: String| {
        let request = reqwest::Client::new().post(format!("{base}/api/v1/events")).bearer_auth(&key).json(&three);
        async move { request.send().await.unwrap() }
    };
    // Within one wall-clock second; if the second rolls over between the two, try again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let first = post(app.address.clone()).await;
        if first.status() == 429 {
            continue; // the last round's second request used this second's window
        }
        assert_eq!(first.status(), 202);
        let second = post(other.clone()).await;
        if second.status() == 202 {
            continue; // a new second: a new window
        }
        assert_eq!(second.status(), 429, "3 + 3 events pass the limit of 4 across the two servers");
        assert_eq!(second.headers()["retry-after"], "1");
        assert_eq!(second.headers()["ratelimit-limit"], "4");
        // The shared window holds the first server's reservation and not the refused one.
        let window = ingest_quota_window::Entity::find_by_id(&created.account_id)
            .one(&app.db)
            .await
            .unwrap()
            .expect("the account's shared quota window");
        assert!((3..=4).contains(&window.used), "reserved in the window: {}", window.used);
        return;
    }
    panic!("the second server never refused: each process kept a quota of its own");
}
