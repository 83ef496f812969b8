use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    helpers::{assert_signed, spawn_app, spawn_app_with, spawn_app_with_workers},
    receiver::{Reply, TestReceiver},
    smtp::SmtpSink,
};

const PASSWORD: &str = "a long enough password";

fn event(t: &str, n: u32) -> Value {
    json!({ "type": t, "data": { "object": { "id": format!("tsk_{n}"), "n": n } } })
}

#[tokio::test]
async fn an_accepted_event_is_delivered_with_its_exact_payload_bytes_and_both_signatures() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (_, secret) = app.endpoint(&acme.api_key, &receiver.url(), &["task.completed"], 100).await;

    // Raw bytes on purpose: the object's key order and spacing must survive as sent.
    let res = app
        .api(&acme.api_key, reqwest::Method::POST, "/api/v1/events")
        .header("content-type", "application/json")
        .body(r#"{"type":"task.completed","data":{"object":{"z": 1, "a": "ü"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let answer: Value = res.json().await.unwrap();
    let ids = [answer["ids"][0].as_str().unwrap().to_owned()];
    let got = receiver.wait_for(2).await; // the reachability check, then the delivery
    let request = &got[1];
    let stored: String = app.scalar(&format!("SELECT payload FROM events WHERE id = '{}'", ids[0])).await;
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        stored,
        "the body sent is the stored payload, byte for byte"
    );
    let prefix = format!(r#"{{"id":"{}","type":"task.completed","created":""#, ids[0]);
    assert!(stored.starts_with(&prefix), "{stored}");
    let suffix = format!(r#"Z","data":{{"object":{{"z": 1, "a": "ü"}}}},"account_id":"{}"}}"#, acme.account_id);
    assert!(stored.ends_with(&suffix), "{stored}");
    assert_eq!(request.headers["webhook-id"], ids[0].as_str());
    assert_eq!(request.headers["x-webhook-ratelimit-limit"], "100");
    assert_eq!(request.headers["x-webhook-ratelimit-remaining"], "99");
    assert_signed(request, &secret);
    app.until(
        "the delivery is recorded as delivered",
        "SELECT status = 'delivered' AND attempt_count = 1 FROM deliveries",
    )
    .await;
}

#[tokio::test]
async fn fan_out_creates_one_delivery_per_enabled_subscribed_endpoint() {
    let app = spawn_app_with(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (a, _) = app.endpoint(&key, &receiver.url(), &["task.completed", "task.created"], 100).await;
    let (b, _) = app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    app.endpoint(&key, &receiver.url(), &["user.joined"], 100).await;
    app.api(&key, reqwest::Method::PATCH, &format!("/api/v1/endpoints/{b}"))
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .unwrap();

    app.publish(
        &key,
        json!({ "events": [event("task.completed", 1), event("task.created", 2), event("payment.failed", 3)] }),
    )
    .await;
    let per_endpoint: Vec<(String, i64)> =
        sqlx::query_as("SELECT endpoint_id, count(*) FROM deliveries GROUP BY endpoint_id")
            .fetch_all(app.db.get_postgres_connection_pool())
            .await
            .unwrap();
    assert_eq!(per_endpoint, vec![(a, 2)]);
}

#[tokio::test]
async fn a_retried_ingest_request_is_a_no_op_returning_the_original_ids() {
    let app = spawn_app_with(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    let send = |body: Value| {
        app.api(&key, reqwest::Method::POST, "/api/v1/events").header("Idempotency-Key", "order-42").json(&body).send()
    };
    let first: Value = send(json!({ "events": [event("task.completed", 1), event("task.completed", 2)] }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = send(json!({ "events": [event("task.completed", 1), event("task.completed", 2)] })).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    // A client-supplied id makes a retry without a key a no-op too.
    let id = first["ids"][0].as_str().unwrap();
    let ids = app.publish(&key, json!({ "id": id, "type": "task.completed", "data": { "object": {} } })).await;
    assert_eq!(ids, vec![id.to_owned()]);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM events").await, 2);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries").await, 2);

    let other = app.create_account("Globex", "hank@globex.test", PASSWORD).await.api_key;
    let res = app
        .api(&other, reqwest::Method::POST, "/api/v1/events")
        .json(&json!({ "id": id, "type": "task.completed", "data": { "object": {} } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "another account cannot reuse an id");
}

#[tokio::test]
async fn bad_events_get_clear_4xx_answers_and_nothing_is_stored() {
    let app = spawn_app_with(|_| {}).await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let big = "x".repeat(300 * 1024);
    let object_size = format!("data.object is {} bytes; the limit is 262144 bytes", big.len() + r#"{"big":""}"#.len());
    let huge = "x".repeat(server::ingest::MAX_REQUEST_BYTES);
    let request_limit = format!("over the limit of {} bytes", server::ingest::MAX_REQUEST_BYTES);
    let cases = [
        (json!({ "type": "task.exploded", "data": { "object": {} } }), 422, "unknown event type"),
        (json!({ "type": "task.created", "data": { "object": "text" } }), 422, "must be a JSON object"),
        (json!({ "type": "task.created", "data": { "object": { "big": big } } }), 413, object_size.as_str()),
        (json!({ "events": [], "padding": huge }), 413, request_limit.as_str()),
        (json!({ "events": [] }), 422, "empty"),
    ];
    for (body, status, message) in cases {
        let res = app.api(&key, reqwest::Method::POST, "/api/v1/events").json(&body).send().await.unwrap();
        assert_eq!(res.status(), status);
        let text = res.text().await.unwrap();
        assert!(text.contains(message), "{text}");
    }
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn failed_attempts_follow_the_retry_schedule_then_dead_letter() {
    let app = spawn_app_with_workers(|c| c.retry_schedule = server::config::parse_schedule("1s,2s").unwrap()).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    receiver.set_status(500);
    app.publish(&key, event("task.completed", 1)).await;

    let got = receiver.wait_for(4).await; // check + 3 attempts
    let gaps: Vec<Duration> = got[1..].windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(900) && gaps[0] < Duration::from_millis(1800),
        "first retry after {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(1800) && gaps[1] < Duration::from_millis(3000),
        "second retry after {:?}",
        gaps[1]
    );
    let id = got[1].headers["webhook-id"].clone();
    assert!(got[2..].iter().all(|r| r.headers["webhook-id"] == id), "retries carry the same webhook-id");
    app.until("the delivery is dead-lettered", "SELECT status = 'failed' AND attempt_count = 3 FROM deliveries").await;
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts WHERE NOT success AND status_code = 500").await, 3);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM delivery_queue").await, 0, "a dead letter leaves the queue");
}

#[tokio::test]
async fn the_queue_holds_a_delivery_until_its_final_outcome_due_at_its_next_attempt() {
    let app = spawn_app_with_workers(|c| c.retry_schedule = server::config::parse_schedule("100ms").unwrap()).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    receiver.script([Reply { status: 503, retry_after: Some("30".into()), hang: false }]);
    app.publish(&key, event("task.completed", 1)).await;
    app.until("the first attempt is recorded", "SELECT attempt_count = 1 FROM deliveries").await;
    let (queued, due_later): (i64, bool) = sqlx::query_as(
        "SELECT count(*), bool_and(q.due_at = d.next_attempt_at AND q.due_at > now() + interval '20 seconds')
         FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id AND d.endpoint_id = q.endpoint_id",
    )
    .fetch_one(app.db.get_postgres_connection_pool())
    .await
    .unwrap();
    assert_eq!((queued, due_later), (1, true), "queued once, due when Retry-After says");

    // Resend now (SPEC §8): a retry of a pending delivery sends it at once.
    let id: String = app.scalar("SELECT id FROM deliveries").await;
    let res = app.api(&key, reqwest::Method::POST, &format!("/api/v1/deliveries/{id}/retry")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let sent = receiver.wait_for(3).await; // the check, the 503, the one sent now
    assert!(sent[2].at - sent[1].at < Duration::from_secs(20), "sent now, not when Retry-After said");
    app.until("the retry is delivered", "SELECT status = 'delivered' AND attempt_count = 2 FROM deliveries").await;
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM delivery_queue").await, 0, "a delivered one leaves the queue");
    let res = app.api(&key, reqwest::Method::POST, &format!("/api/v1/deliveries/{id}/retry")).send().await.unwrap();
    assert_eq!(res.status(), 422, "a delivered one is replayed, not retried");
}

#[tokio::test]
async fn a_manual_retry_starts_a_fresh_attempt_budget() {
    let app =
        spawn_app_with_workers(|c| c.retry_schedule = server::config::parse_schedule("100ms,100ms").unwrap()).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    receiver.set_status(500);
    app.publish(&key, event("task.completed", 1)).await;
    app.until("the delivery is dead-lettered", "SELECT status = 'failed' AND attempt_count = 3 FROM deliveries").await;

    let id: String = app.scalar("SELECT id FROM deliveries").await;
    let res = app.api(&key, reqwest::Method::POST, &format!("/api/v1/deliveries/{id}/retry")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // The retry gets the whole schedule again (3 attempts), not the one attempt left over.
    app.until("dead-lettered again", "SELECT status = 'failed' AND attempt_count = 6 FROM deliveries").await;
    let numbers: Vec<(i32,)> = sqlx::query_as("SELECT attempt_number FROM attempts ORDER BY attempt_number")
        .fetch_all(app.db.get_postgres_connection_pool())
        .await
        .unwrap();
    assert_eq!(numbers.into_iter().map(|(n,)| n).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6], "numbers keep counting");
}

#[tokio::test]
async fn retry_after_on_a_503_is_honoured_when_later_than_the_schedule() {
    let app = spawn_app_with_workers(|c| c.retry_schedule = server::config::parse_schedule("100ms").unwrap()).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    receiver.script([Reply { status: 503, retry_after: Some("2".into()), hang: false }]);
    app.publish(&key, event("task.completed", 1)).await;
    let got = receiver.wait_for(3).await;
    let gap = got[2].at - got[1].at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}, before Retry-After");
    app.until("the retry succeeded", "SELECT status = 'delivered' FROM deliveries").await;
}

#[tokio::test]
async fn first_attempts_to_an_endpoint_go_out_in_event_order() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 100).await;
    let mut sent = Vec::new();
    for batch in 0..3 {
        let events: Vec<Value> = (0..10).map(|n| event("task.updated", batch * 10 + n)).collect();
        sent.extend(app.publish(&key, json!({ "events": events })).await);
    }
    let got = receiver.wait_for(31).await;
    let order: Vec<String> = got[1..].iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned()).collect();
    assert_eq!(order, sent);
}

#[tokio::test]
async fn the_rate_limit_holds_over_every_one_second_window() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 5).await;
    let events: Vec<Value> = (0..16).map(|n| event("task.updated", n)).collect();
    app.publish(&key, json!({ "events": events })).await;
    let got = receiver.wait_for(17).await;
    let times: Vec<_> = got[1..].iter().map(|r| r.at).collect();
    for (i, t) in times.iter().enumerate() {
        let within = times[i..].iter().filter(|s| s.duration_since(*t) < Duration::from_secs(1)).count();
        assert!(within <= 5, "{within} deliveries within one second from #{i}");
    }
    let remaining: Vec<String> =
        got[1..6].iter().map(|r| r.headers["x-webhook-ratelimit-remaining"].to_str().unwrap().to_owned()).collect();
    assert_eq!(remaining, vec!["4", "3", "2", "1", "0"]);
}

#[tokio::test]
async fn a_failing_endpoint_is_warned_about_then_disabled_and_resumes_when_re_enabled() {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let app = spawn_app_with_workers(move |c| {
        // Ten tries for the first delivery: five turn the endpoint failing, five more probes
        // fail after the warning (`DISABLE_AFTER`). The last step is long so the breaker stays
        // open while the test publishes behind it.
        c.retry_schedule =
            server::config::parse_schedule("100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,3s").unwrap();
        c.smtp_url = Some(url);
    })
    .await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (id, _) = app.endpoint(&acme.api_key, &receiver.url(), &["task.completed"], 100).await;
    receiver.set_status(500);
    let first = app.publish(&acme.api_key, event("task.completed", 1)).await;

    let mails = smtp.wait_for(1).await;
    assert!(mails[0].to.iter().any(|t| t.contains("ada@acme.test")));
    assert!(mails[0].body().contains(&receiver.url()), "the warning names the endpoint");
    app.until("the endpoint is failing", &format!("SELECT status = 'failing' FROM endpoints WHERE id = '{id}'")).await;
    let show = || async {
        let res =
            app.api(&acme.api_key, reqwest::Method::GET, &format!("/api/v1/endpoints/{id}")).send().await.unwrap();
        res.json::<Value>().await.unwrap()
    };
    let failing = show().await;
    let health = &failing;
    assert!(health["consecutive_failures"].as_i64().unwrap() >= 5, "{failing}");
    assert_eq!(health["last_error"], "HTTP 500", "{failing}");
    assert!(health["next_attempt_at"].is_string(), "the breaker's next attempt is shown: {failing}");
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(at(&health["failing_since"]) > at(&failing["created_at"]), "{failing}");
    assert_eq!(health["failing_since"], health["status_since"], "it turned failing, and nothing since");

    // Queued while failing: waits behind the breaker instead of burning attempts.
    let queued = app.publish(&acme.api_key, event("task.completed", 2)).await;
    let mails = smtp.wait_for(2).await;
    assert!(mails[1].subject().unwrap_or_default().contains("disabled"), "{:?}", mails[1].subject());
    app.until(
        "the endpoint is disabled",
        &format!("SELECT status = 'disabled' AND NOT enabled FROM endpoints WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(
        app.scalar::<String>(&format!("SELECT status FROM deliveries WHERE event_id = '{}'", first[0])).await,
        "failed"
    );
    let disabled = show().await;
    assert!(disabled["disabled_reason"].as_str().is_some_and(|r| !r.is_empty()), "{disabled}");
    assert_eq!(disabled["failing_since"], health["failing_since"], "still unhealthy since it turned failing");
    assert!(at(&disabled["status_since"]) >= at(&health["status_since"]), "{disabled}");
    assert_eq!(disabled["next_attempt_at"], Value::Null, "a disabled endpoint waits for nobody");
    let queued_attempts: i32 =
        app.scalar(&format!("SELECT attempt_count FROM deliveries WHERE event_id = '{}'", queued[0])).await;
    assert!(queued_attempts <= 1, "the queued delivery spent {queued_attempts} attempts behind an open breaker");

    receiver.set_status(200);
    let res = app
        .api(&acme.api_key, reqwest::Method::PATCH, &format!("/api/v1/endpoints/{id}"))
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let enabled: Value = res.json().await.unwrap();
    assert_eq!((enabled["status"].as_str(), enabled["consecutive_failures"].as_i64()), (Some("healthy"), Some(0)));
    assert_eq!((&enabled["disabled_reason"], &enabled["failing_since"]), (&Value::Null, &Value::Null), "{enabled}");
    app.until(
        "the queued delivery flows after re-enabling",
        &format!("SELECT status = 'delivered' FROM deliveries WHERE event_id = '{}'", queued[0]),
    )
    .await;
}

/// The public `standardwebhooks` and `stripe` Python libraries verify a real delivery as
/// they are (SPEC §5). `scripts/test.sh` installs them and sets `WEBHOOKS_VERIFY_PYTHON`.
#[tokio::test]
async fn the_official_standardwebhooks_and_stripe_libraries_verify_a_real_delivery() {
    let Ok(python) = std::env::var("WEBHOOKS_VERIFY_PYTHON") else {
        eprintln!(
            "SKIPPED: set WEBHOOKS_VERIFY_PYTHON to a python with standardwebhooks and stripe (scripts/test.sh does)"
        );
        return;
    };
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (_, secret) = app.endpoint(&key, &receiver.url(), &["payment.failed"], 100).await;
    app.publish(&key, event("payment.failed", 7)).await;
    let request = receiver.wait_for(2).await.pop().unwrap();

    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature", "x-webhook-signature"]
            .iter()
            .map(|h| (h.to_string(), Value::String(request.headers[*h].to_str().unwrap().to_owned())))
            .collect();
    let captured = json!({ "secret": secret, "headers": headers, "body": std::str::from_utf8(&request.body).unwrap() });
    let file = std::env::temp_dir().join(format!("webhooks-captured-{}.json", std::process::id()));
    std::fs::write(&file, captured.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify/verify.py");
    let out = std::process::Command::new(python).arg(script).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign_every_delivery() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (id, old) = app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    let rotated: Value = app
        .api(&key, reqwest::Method::POST, &format!("/api/v1/endpoints/{id}/secret/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap();
    app.publish(&key, event("task.completed", 1)).await;
    let request = receiver.wait_for(2).await.pop().unwrap();
    assert_eq!(request.headers["webhook-signature"].to_str().unwrap().split(' ').count(), 2);
    assert_signed(&request, new);
    assert_signed(&request, &old);

    // Once the 24 h overlap is over only the new secret signs.
    sqlx::query("UPDATE endpoints SET previous_secret_expires_at = now() - interval '1 second'")
        .execute(app.db.get_postgres_connection_pool())
        .await
        .unwrap();
    app.publish(&key, event("task.completed", 2)).await;
    let request = receiver.wait_for(3).await.pop().unwrap();
    assert_eq!(request.headers["webhook-signature"].to_str().unwrap().split(' ').count(), 1);
    assert_signed(&request, new);
}

#[tokio::test]
async fn the_ingest_quota_answers_with_ratelimit_headers_and_a_429() {
    let app = spawn_app_with(|_| {}).await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    sqlx::query("UPDATE accounts SET ingest_rate_limit = 3")
        .execute(app.db.get_postgres_connection_pool())
        .await
        .unwrap();
    let send = |n: u32| {
        let events: Vec<Value> = (0..n).map(|i| event("task.created", i)).collect();
        app.api(&acme.api_key, reqwest::Method::POST, "/api/v1/events").json(&json!({ "events": events })).send()
    };
    // Within one second (the window is a wall-clock second, so try again if it rolled over).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let ok = send(2).await.unwrap();
        if ok.status() == 429 {
            continue; // the last round's second request used this second's window
        }
        assert_eq!(ok.status(), 202);
        assert_eq!(ok.headers()["ratelimit-limit"], "3");
        let refused = send(2).await.unwrap();
        if refused.status() == 202 {
            continue; // the second changed between the two requests
        }
        assert_eq!(ok.headers()["ratelimit-remaining"], "1");
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert!(refused.text().await.unwrap().contains("quota"));
        return;
    }
    panic!("never saw the quota refuse a request");
}

/// An app with no workers (so the outcomes a test writes are the only writers) and two
/// `task.completed` deliveries queued for one endpoint; returns it, the receiver, the
/// account and the endpoint id.
async fn two_queued_deliveries() -> (crate::helpers::TestApp, TestReceiver, service::accounts::CreatedAccount, String) {
    let app = spawn_app_with(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (endpoint_id, _) = app.endpoint(&acme.api_key, &receiver.url(), &["task.completed"], 100).await;
    app.publish(&acme.api_key, event("task.completed", 1)).await;
    app.publish(&acme.api_key, event("task.completed", 2)).await;
    (app, receiver, acme, endpoint_id)
}

/// The recorder retries a batch whose commit it could not confirm (PostgreSQL stopped right
/// after committing it: the outage scenario). Written again, a batch must change nothing:
/// no second attempt row, no second step of the attempt count, no second email job.
#[tokio::test]
async fn a_batch_written_again_after_a_lost_commit_answer_writes_nothing_twice() {
    use server::delivery::{
        attempt::AttemptResult,
        health::{Health, FAILING_AFTER},
        record::{self, Outcome},
        store::DueDelivery,
    };

    let (app, _receiver, acme, endpoint_id) = two_queued_deliveries().await;
    let pool = app.db.get_postgres_connection_pool();
    let due: Vec<(entity::DeliveryId, entity::EventId, String, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(
            "SELECT d.id, d.event_id, d.event_type, e.payload, d.created_at
         FROM deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    let schedule = server::config::parse_schedule("1h").unwrap();
    let outcome =
        |(id, event_id, event_type, payload, created_at): &(entity::DeliveryId, entity::EventId, String, String, _),
         status: u16,
         failures_before: i32| {
            let result = AttemptResult {
                status: Some(status),
                elapsed: Duration::from_millis(3),
                request_headers: vec![],
                response_headers: vec![],
                response_body: Some("answer".into()),
                retry_after: None,
                error: None,
            };
            let before = Health { consecutive_failures: failures_before, ..Health::healthy() };
            let plan = record::plan(&before, 0, None, &result, &schedule, 0.0, std::time::SystemTime::now());
            Outcome {
                endpoint_id: endpoint_id.parse().unwrap(),
                account_id: acme.account_id.clone(),
                delivery: DueDelivery {
                    id: id.clone(),
                    event_id: event_id.clone(),
                    event_type: event_type.clone(),
                    attempt_count: 0,
                    budget_from: 0,
                    previous_try_at: None,
                    payload: payload.clone().into(),
                    created_at: *created_at,
                    queue_row: None,
                },
                result,
                started_at: chrono::Utc::now(),
                plan,
                committed: None,
            }
        };
    let events = server::jobs::notify::QueueNotifications;
    let jobs = "SELECT count(*) FROM apalis.jobs WHERE job_type LIKE '%NotifyJob'";
    let jobs_before: i64 = app.scalar(jobs).await;

    // A failure that makes the endpoint failing: the transaction with the endpoint row and
    // the owners' email job.
    let failing = [outcome(&due[0], 500, FAILING_AFTER - 1)];
    assert!(failing[0].plan.endpoint_changed);
    for _ in 0..2 {
        record::write(pool, &events, &failing).await.unwrap();
    }
    let first = &due[0].0;
    assert_eq!(app.scalar::<i64>(&format!("SELECT count(*) FROM attempts WHERE delivery_id = '{first}'")).await, 1);
    assert_eq!(
        app.scalar::<String>(&format!("SELECT status || '/' || attempt_count FROM deliveries WHERE id = '{first}'"))
            .await,
        "pending/1"
    );
    assert_eq!(app.scalar::<i64>(jobs).await - jobs_before, 1, "one failing warning, not two");
    assert_eq!(app.scalar::<String>("SELECT status FROM endpoints").await, "failing");

    // A success: the one-statement path, which takes the delivery off the queue.
    let delivered = [outcome(&due[1], 200, 0)];
    assert!(!delivered[0].plan.endpoint_changed);
    for _ in 0..2 {
        record::write(pool, &events, &delivered).await.unwrap();
    }
    let second = &due[1].0;
    assert_eq!(app.scalar::<i64>(&format!("SELECT count(*) FROM attempts WHERE delivery_id = '{second}'")).await, 1);
    assert_eq!(
        app.scalar::<String>(&format!("SELECT status || '/' || attempt_count FROM deliveries WHERE id = '{second}'"))
            .await,
        "delivered/1"
    );
    let queued: i64 = app.scalar(&format!("SELECT count(*) FROM delivery_queue WHERE delivery_id = '{second}'")).await;
    assert_eq!(queued, 0);
}

/// The recorder looks for a delivery's queue row at the address the fetch read it from, but
/// takes the row there only while it is that delivery's: an address that now holds another
/// delivery's row (moved or reused since) falls back to the key, and that row stays queued.
#[tokio::test]
async fn the_recorder_takes_a_queue_row_at_its_address_only_while_it_is_the_deliverys() {
    use server::delivery::{
        attempt::AttemptResult,
        health::Health,
        record::{self, Outcome},
        store::DueDelivery,
    };

    let (app, _receiver, acme, endpoint_id) = two_queued_deliveries().await;
    let pool = app.db.get_postgres_connection_pool();
    let due: Vec<(entity::DeliveryId, entity::EventId, String, String)> = sqlx::query_as(
        "SELECT d.id, d.event_id, d.event_type, q.ctid::text FROM deliveries d
         JOIN delivery_queue q ON q.delivery_id = d.id ORDER BY d.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(due.len(), 2);
    let schedule = server::config::parse_schedule("1h").unwrap();
    let delivered = |(id, event_id, event_type, _): &(entity::DeliveryId, entity::EventId, String, String),
                     queue_row: &str| {
        let result = AttemptResult {
            status: Some(200),
            elapsed: Duration::from_millis(3),
            request_headers: vec![],
            response_headers: vec![],
            response_body: None,
            retry_after: None,
            error: None,
        };
        let plan = record::plan(&Health::healthy(), 0, None, &result, &schedule, 0.0, std::time::SystemTime::now());
        Outcome {
            endpoint_id: endpoint_id.parse().unwrap(),
            account_id: acme.account_id.clone(),
            delivery: DueDelivery {
                id: id.clone(),
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                attempt_count: 0,
                budget_from: 0,
                previous_try_at: None,
                payload: bytes::Bytes::from_static(b"{}"),
                created_at: chrono::Utc::now(),
                queue_row: Some(queue_row.to_owned()),
            },
            result,
            started_at: chrono::Utc::now(),
            plan,
            committed: None,
        }
    };
    let events = server::jobs::notify::QueueNotifications;
    let queued = || app.scalar::<String>("SELECT coalesce(string_agg(delivery_id, ','), '') FROM delivery_queue");

    // The second delivery's outcome, carrying the first's row address: the second's row goes.
    record::write(pool, &events, &[delivered(&due[1], &due[0].3)]).await.unwrap();
    assert_eq!(queued().await, due[0].0.to_string(), "the row at the stale address stays queued");
    // The first's, with its own address.
    record::write(pool, &events, &[delivered(&due[0], &due[0].3)]).await.unwrap();
    assert_eq!(queued().await, "");
    let states = "SELECT string_agg(status || '/' || attempt_count, ',' ORDER BY id) FROM deliveries";
    assert_eq!(app.scalar::<String>(states).await, "delivered/1,delivered/1");
}

/// SPEC §6: the owners warned that an endpoint is failing hear when it recovers.
#[tokio::test]
async fn owners_warned_of_a_failing_endpoint_are_told_when_it_recovers() {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let app = spawn_app_with_workers(move |c| {
        c.retry_schedule = server::config::parse_schedule("100ms,100ms,100ms,100ms,100ms,1s").unwrap();
        c.smtp_url = Some(url);
    })
    .await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (id, _) = app.endpoint(&acme.api_key, &receiver.url(), &["task.completed"], 100).await;
    receiver.set_status(500);
    app.publish(&acme.api_key, event("task.completed", 1)).await;
    let mails = smtp.wait_for(1).await;
    assert!(mails[0].subject().unwrap_or_default().contains("failing"), "{:?}", mails[0].subject());
    assert!(mails[0].body().contains("within 30s"), "the warning gives the configured attempt timeout");

    receiver.set_status(200);
    let mails = smtp.wait_for(2).await;
    let subject = mails[1].subject().unwrap_or_default();
    assert!(subject.contains("recovered") && subject.contains(&receiver.url()), "{subject}");
    assert!(mails[1].to.iter().any(|t| t.contains("ada@acme.test")));
    assert!(mails[1].body().contains(&format!("/settings/webhooks/{id}")), "links to the endpoint");
    app.until("the delivery went through", "SELECT status = 'delivered' FROM deliveries").await;
    let status: String = app.scalar(&format!("SELECT status FROM endpoints WHERE id = '{id}'")).await;
    assert_eq!(status, "healthy");

    // It flaps: failing and back within the hour. The owners were warned and told already.
    receiver.set_status(500);
    app.publish(&acme.api_key, event("task.completed", 2)).await;
    app.until("failing again", &format!("SELECT status = 'failing' FROM endpoints WHERE id = '{id}'")).await;
    receiver.set_status(200);
    app.until("recovered again", &format!("SELECT status = 'healthy' FROM endpoints WHERE id = '{id}'")).await;
    // A disable is always told; once every email job has run, it is the only new mail.
    receiver.set_status(410);
    app.publish(&acme.api_key, event("task.completed", 3)).await;
    smtp.wait_for(3).await;
    app.until(
        "every email job has run",
        "SELECT count(*) = 0 FROM apalis.jobs WHERE job_type LIKE '%NotifyJob' AND status <> 'Done'",
    )
    .await;
    let subjects: Vec<String> = smtp.messages().iter().map(|m| m.subject().unwrap_or_default()).collect();
    assert_eq!(subjects.len(), 3, "the flap sent no second warning or recovery: {subjects:?}");
    assert!(subjects[2].contains("disabled"), "{subjects:?}");
}

/// Every finished delivery leaves a dead queue row; without a vacuum they pile up under the
/// live ones and every fetch reads through them (this machine's PostgreSQL runs with
/// autovacuum off). Past the threshold the delivering process vacuums the queue itself.
#[tokio::test]
async fn a_queue_that_is_mostly_dead_rows_is_vacuumed_and_one_that_is_not_is_left_alone() {
    let app = spawn_app().await;
    let pool = app.db.get_postgres_connection_pool().clone();
    let stats = "SELECT n_dead_tup, vacuum_count + autovacuum_count FROM pg_stat_user_tables
                 WHERE relname = 'delivery_queue'";
    let mut conn = pool.acquire().await.unwrap();
    let rows = server::queue_vacuum::MIN_DEAD_ROWS + 1_000;
    add_queue_rows(&mut conn, "ep_vacuum", rows).await;
    sqlx::query("DELETE FROM delivery_queue WHERE endpoint_id = 'ep_vacuum'").execute(&mut *conn).await.unwrap();
    flush_statistics(&mut conn).await;
    drop(conn);
    let (dead, vacuums_before): (i64, i64) = sqlx::query_as(stats).fetch_one(&pool).await.unwrap();
    assert!(dead >= rows, "the deleted rows are counted dead: {dead}");

    assert!(
        server::queue_vacuum::vacuum_if_worth_it(&pool, &queue_stats(&pool).await).await.unwrap(),
        "{dead} dead rows, none live"
    );
    let (dead, vacuums): (i64, i64) = sqlx::query_as(stats).fetch_one(&pool).await.unwrap();
    assert_eq!((dead, vacuums), (0, vacuums_before + 1), "vacuumed once, nothing dead left");
    assert!(
        !server::queue_vacuum::vacuum_if_worth_it(&pool, &queue_stats(&pool).await).await.unwrap(),
        "nothing worth a second visit"
    );
}

/// The queue's statistics as the delivering process reads them for each check.
async fn queue_stats(pool: &sqlx::PgPool) -> server::queue_vacuum::QueueStats {
    server::queue_vacuum::QueueStats::read(pool).await.unwrap().expect("the queue table exists")
}

/// Adds `n` queue rows for a made-up endpoint (the queue has no foreign keys), due now.
async fn add_queue_rows(conn: &mut sqlx::PgConnection, endpoint: &str, n: i64) {
    sqlx::query(
        "INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at)
         SELECT $1, 'dl_' || n, now() FROM generate_series(1, $2) AS n",
    )
    .bind(endpoint)
    .bind(n)
    .execute(conn)
    .await
    .unwrap();
}

/// Statistics reach the shared view when a session flushes them (at most once a second
/// unless forced); the end of the statement after the force is the flush.
async fn flush_statistics(conn: &mut sqlx::PgConnection) {
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(&mut *conn).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
}

/// Leaves the queue as a drained one that was then vacuumed: pages on disk and `reltuples`
/// 0, so the planner believes it empty however full it grows. One connection, its
/// statistics flushed before the vacuum counts.
async fn vacuum_queue_while_empty(pool: &sqlx::PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    add_queue_rows(&mut conn, "ep_drained", 6_000).await;
    sqlx::query("DELETE FROM delivery_queue").execute(&mut *conn).await.unwrap();
    flush_statistics(&mut conn).await;
    sqlx::raw_sql("VACUUM (TRUNCATE false) delivery_queue").execute(&mut *conn).await.unwrap();
    let (reltuples,): (f32,) = sqlx::query_as("SELECT reltuples FROM pg_class WHERE relname = 'delivery_queue'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(reltuples, 0.0, "the vacuum left the planner believing the queue empty");
}

#[tokio::test]
async fn a_queue_vacuumed_while_empty_is_analyzed_once_it_fills_up_again() {
    let app = spawn_app().await;
    let pool = app.db.get_postgres_connection_pool().clone();
    let estimate = "SELECT reltuples::int8 FROM pg_class WHERE relname = 'delivery_queue'";
    vacuum_queue_while_empty(&pool).await;
    assert!(
        !server::queue_vacuum::analyze_if_misjudged(&pool, &queue_stats(&pool).await).await.unwrap(),
        "empty is right while it is empty"
    );

    // It fills up again into the same pages; the estimate stays at nothing until analyzed.
    let mut conn = pool.acquire().await.unwrap();
    add_queue_rows(&mut conn, "ep_estimate", 5_000).await;
    flush_statistics(&mut conn).await;
    drop(conn);
    assert!(
        server::queue_vacuum::analyze_if_misjudged(&pool, &queue_stats(&pool).await).await.unwrap(),
        "5,000 rows thought to be 0"
    );
    let (reltuples,): (i64,) = sqlx::query_as(estimate).fetch_one(&pool).await.unwrap();
    assert_eq!(reltuples, 5_000, "the planner knows the queue's size again");
    assert!(
        !server::queue_vacuum::analyze_if_misjudged(&pool, &queue_stats(&pool).await).await.unwrap(),
        "once is enough"
    );
}

/// The trap of `a_queue_vacuumed_while_empty_is_analyzed_once_it_fills_up_again`, with no
/// ANALYZE to get out of it: the recorder's completion statement must still look each
/// outcome's queue row up by its key rather than read the queue through (a nested loop with
/// the queue outside cost 1-2 s per 1,000-outcome flush in the bench's fan-out). What it
/// reads of the queue is counted by PostgreSQL's table statistics, not timed.
#[tokio::test]
async fn the_completion_statement_looks_each_outcome_up_however_small_the_planner_thinks_the_queue() {
    use server::delivery::{
        attempt::AttemptResult,
        dispatcher::HealthEvents,
        health::{Change, Health},
        record::{Outcome, Plan, QueuedJob},
        store::DueDelivery,
    };
    struct NoEmails;
    impl HealthEvents for NoEmails {
        fn job_for(&self, _: &str, _: &Change, _: &str) -> Option<QueuedJob> {
            None
        }
    }

    let app = spawn_app().await;
    let pool = app.db.get_postgres_connection_pool().clone();
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (endpoint_id, _) = app.endpoint(&acme.api_key, &receiver.url(), &["task.completed"], 100).await;

    vacuum_queue_while_empty(&pool).await;

    // It fills up again: 100 deliveries of ours among 5,000 other rows.
    let events: Vec<Value> = (0..100).map(|n| event("task.completed", n)).collect();
    app.publish(&acme.api_key, json!({ "events": events })).await;
    add_queue_rows(&mut pool.acquire().await.unwrap(), "ep_filler", 5_000).await;
    let due: Vec<(String, String, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, event_id, event_type, created_at FROM deliveries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(due.len(), 100);

    // Half delivered (their queue rows go), half failed with a retry in a minute (theirs move).
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let batch: Vec<Outcome> = due
        .into_iter()
        .enumerate()
        .map(|(i, (id, event_id, event_type, created_at))| {
            let delivered = i % 2 == 0;
            Outcome {
                endpoint_id: endpoint_id.parse().unwrap(),
                account_id: acme.account_id.clone(),
                delivery: DueDelivery {
                    id: id.parse().unwrap(),
                    event_id: event_id.parse().unwrap(),
                    event_type,
                    attempt_count: 0,
                    budget_from: 0,
                    previous_try_at: None,
                    payload: bytes::Bytes::from_static(b"{}"),
                    created_at,
                    queue_row: None,
                },
                result: AttemptResult {
                    status: Some(if delivered { 200 } else { 500 }),
                    elapsed: Duration::from_millis(3),
                    request_headers: vec![("content-type", "application/json".to_owned())],
                    response_headers: vec![],
                    response_body: None,
                    retry_after: None,
                    error: None,
                },
                started_at: chrono::Utc::now(),
                plan: Plan {
                    delivery_status: if delivered { "delivered" } else { "pending" },
                    next_attempt_at: (!delivered).then_some(later),
                    health: Health::healthy(),
                    change: Change::None,
                    breaker_until: None,
                    last_error: None,
                    endpoint_changed: false,
                },
                committed: None,
            }
        })
        .collect();

    // One connection, so the statistics of the write are the ones flushed after it.
    let one = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&app.database.url).await.unwrap();
    // Rows read from the queue, sequentially or through an index or by row address.
    let reads = "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_user_tables WHERE relname = 'delivery_queue'";
    let before = app.scalar::<i64>(reads).await;
    server::delivery::record::write(&one, &NoEmails, &batch).await.unwrap();
    flush_statistics(&mut one.acquire().await.unwrap()).await;
    let read = app.scalar::<i64>(reads).await - before;
    // Each outcome's row found by its key and then taken by its address: two reads at most.
    assert!(read <= 200, "the completion statement read {read} queue rows for 100 outcomes: the queue through");

    // And it did its work: 50 rows gone, 50 moved to their retry, the filler untouched.
    let (ours, moved, others): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE endpoint_id = $1), count(*) FILTER (WHERE endpoint_id = $1 AND due_at > now()),
                count(*) FILTER (WHERE endpoint_id = 'ep_filler')
         FROM delivery_queue",
    )
    .bind(&endpoint_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((ours, moved, others), (50, 50, 5_000));
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(statuses, vec![("delivered".to_owned(), 50), ("pending".to_owned(), 50)]);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 100);
}
