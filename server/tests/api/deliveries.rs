use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app_with_workers, TestApp},
    receiver::TestReceiver,
};

const PASSWORD: &str = "a long enough password";

fn event(t: &str, n: u32) -> Value {
    json!({ "type": t, "data": { "object": { "id": format!("obj_{n}") } } })
}

#[tokio::test]
async fn the_log_lists_filters_and_pages_deliveries_newest_first() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created", "task.deleted"], 100).await;
    let mut events: Vec<Value> = (0..55).map(|n| event("task.created", n)).collect();
    events.push(event("task.deleted", 99));
    let ids = app.publish(&key, json!({ "events": events })).await;
    receiver.wait_for(57).await;
    app.until("all are delivered", "SELECT bool_and(status = 'delivered') FROM deliveries").await;

    let page: Value = app.get_json(&key, &format!("/api/v1/endpoints/{ep}/deliveries")).await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 50);
    assert_eq!(data[0]["event_id"], ids[55].as_str(), "newest first");
    assert_eq!(data[0]["last_status_code"], 200);
    assert!(data[0]["last_response_time_ms"].is_number());
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = app.get_json(&key, &format!("/api/v1/endpoints/{ep}/deliveries?cursor={cursor}")).await;
    assert_eq!(next["data"].as_array().unwrap().len(), 6);
    assert!(next["next_cursor"].is_null());

    let deleted: Value =
        app.get_json(&key, &format!("/api/v1/endpoints/{ep}/deliveries?event_type=task.deleted")).await;
    assert_eq!(deleted["data"].as_array().unwrap().len(), 1);
    let failed: Value = app.get_json(&key, &format!("/api/v1/endpoints/{ep}/deliveries?status=failed")).await;
    assert_eq!(failed["data"], json!([]));
    let future: Value =
        app.get_json(&key, &format!("/api/v1/endpoints/{ep}/deliveries?since=2999-01-01T00:00:00Z")).await;
    assert_eq!(future["data"], json!([]));
}

#[tokio::test]
async fn bodies_are_cut_at_exactly_10_kb_with_a_marker_and_retry_and_replay_add_attempts() {
    let app = spawn_app_with_workers(|c| c.retry_schedule = server::config::parse_schedule("").unwrap()).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    receiver.set_body("r".repeat(10 * 1024 + 1));
    receiver.set_status(500);
    app.publish(&key, json!({ "type": "task.created", "data": { "object": { "big": "b".repeat(12 * 1024) } } })).await;
    app.until("the delivery is dead-lettered", "SELECT status = 'failed' FROM deliveries").await;
    let id: String = app.scalar("SELECT id FROM deliveries").await;

    let d: Value = app.get_json(&key, &format!("/api/v1/deliveries/{id}")).await;
    assert_eq!(d["status"], "failed");
    let attempt = &d["attempts"][0];
    let marker = server::delivery::attempt::TRUNCATION_MARKER;
    let response = attempt["response_body"].as_str().unwrap();
    assert_eq!(response, format!("{}{marker}", "r".repeat(10 * 1024)), "cut at exactly 10,240 bytes");
    let request = attempt["request_body"].as_str().unwrap();
    assert_eq!(request.len(), 10 * 1024 + marker.len());
    assert!(d["payload"].as_str().unwrap().len() > 12 * 1024, "the payload itself is kept whole");

    let replay = app.api(&key, Method::POST, &format!("/api/v1/deliveries/{id}/replay")).send().await.unwrap();
    assert_eq!(replay.status(), 422, "replay is for delivered ones");
    receiver.set_status(200);
    let retried = app.api(&key, Method::POST, &format!("/api/v1/deliveries/{id}/retry")).send().await.unwrap();
    assert_eq!(retried.status(), 200);
    app.until("the retry is delivered", "SELECT status = 'delivered' AND attempt_count = 2 FROM deliveries").await;
    let replayed = app.api(&key, Method::POST, &format!("/api/v1/deliveries/{id}/replay")).send().await.unwrap();
    assert_eq!(replayed.status(), 200);
    app.until("the replay is recorded", "SELECT attempt_count = 3 AND status = 'delivered' FROM deliveries").await;
    let got = receiver.received();
    let ids: Vec<_> = got[1..].iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| *i == ids[0]), "retry and replay keep the webhook-id");
    let _ = ep;
}

#[tokio::test]
async fn another_account_reaches_none_of_the_delivery_routes() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let other = app.create_account("Globex", "hank@globex.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    app.publish(&key, event("task.created", 1)).await;
    app.until("delivered", "SELECT bool_and(status = 'delivered') FROM deliveries").await;
    let id: String = app.scalar("SELECT id FROM deliveries").await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/endpoints/{ep}/deliveries")),
        (Method::GET, format!("/api/v1/deliveries/{id}")),
        (Method::POST, format!("/api/v1/deliveries/{id}/retry")),
        (Method::POST, format!("/api/v1/deliveries/{id}/replay")),
    ] {
        let res = app.api(&other, method.clone(), &path).send().await.unwrap();
        assert_eq!(res.status(), 404, "{method} {path}");
    }
    assert_eq!(app.scalar::<i32>("SELECT attempt_count FROM deliveries").await, 1, "nothing was re-sent");
}

/// An account with one endpoint that has been sent `n` events, all delivered.
async fn delivered(n: u32) -> (TestApp, TestReceiver, String) {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    let events: Vec<Value> = (1..=n).map(|i| event("task.created", i)).collect();
    app.publish(&key, json!({ "events": events })).await;
    let all = format!("SELECT count(*) = {n} AND bool_and(status = 'delivered') FROM deliveries");
    app.until("delivered", &all).await;
    (app, receiver, key)
}

#[tokio::test]
async fn pruning_removes_only_what_is_older_than_the_retention() {
    let (app, _receiver, _key) = delivered(2).await;
    let pool = app.db.get_postgres_connection_pool();
    // Age one delivery, its event and attempt by 40 days; leave the other as it is. The
    // event's id is made 40 days old too, as a row from before the day partitions would be.
    let old: String = app.scalar("SELECT min(id) FROM deliveries").await;
    let old_event = server::log_partitions::event_id_from(chrono::Utc::now() - chrono::Duration::days(40));
    for sql in [
        "UPDATE attempts SET attempted_at = now() - interval '40 days' WHERE delivery_id = $1",
        "UPDATE deliveries SET created_at = now() - interval '40 days', updated_at = now() - interval '40 days' WHERE id = $1",
        "UPDATE events SET created_at = now() - interval '40 days', id = $2 WHERE id = (SELECT event_id FROM deliveries WHERE id = $1)",
        "UPDATE deliveries SET event_id = $2 WHERE id = $1",
    ] {
        sqlx::query(sql).bind(&old).bind(&old_event).execute(pool).await.unwrap();
    }
    // The aged rows are older than the day partitions: they are in the catch-alls for before.
    let home = "SELECT tableoid::regclass::text FROM attempts WHERE delivery_id = (SELECT min(id) FROM deliveries)";
    assert_eq!(app.scalar::<String>(home).await, "attempts_before");
    let event_home = "SELECT tableoid::regclass::text FROM events WHERE created_at < now() - interval '1 day'";
    assert_eq!(app.scalar::<String>(event_home).await, "events_before");
    let deleted = |text: &str, table: &str| {
        let series = format!("webhooks_retention_deleted_total{{table=\"{table}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    let metrics = || async { app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let before = metrics().await;
    let pruned = prune_at(pool, chrono::Utc::now()).await;
    assert_eq!((pruned.attempt_days, pruned.attempts, pruned.deliveries, pruned.events), (0, 1, 1, 1));
    // Other tests share this process's counters: ours grow by at least what this run deleted.
    let after = metrics().await;
    for table in ["deliveries", "events", "attempts"] {
        assert!(deleted(&after, table) >= deleted(&before, table) + 1.0, "{table}: {after}");
    }
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 1);
    let again = prune_at(pool, chrono::Utc::now()).await;
    assert_eq!(again, server::retention::Pruned::default(), "nothing younger is touched");
}

const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// One unpaced retention run as if it were `now`, which must not find another under way.
async fn prune_at(pool: &sqlx::PgPool, now: chrono::DateTime<chrono::Utc>) -> server::retention::Pruned {
    let (_running, stop) = tokio::sync::watch::channel(false);
    server::retention::prune_at(pool, KEEP, now, server::retention::Pace::UNPACED, stop)
        .await
        .unwrap()
        .expect("no other retention run holds the lock")
}

/// Every process queues housekeeping; while one runs retention, another's run skips it
/// rather than contend for the same rows, and a finished run leaves the lock free.
#[tokio::test]
async fn one_retention_run_at_a_time_across_processes() {
    let (app, _receiver, _key) = delivered(1).await;
    let pool = app.db.get_postgres_connection_pool();
    let thirty_days_on = chrono::Utc::now() + chrono::Duration::days(30) + chrono::Duration::hours(1);
    // Another process's run, as PostgreSQL sees it: a session of its own holding the lock.
    let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database.url).await.unwrap();
    let take = "SELECT pg_try_advisory_lock($1)";
    let taken: bool = sqlx::query_scalar(take).bind(server::retention::LOCK).fetch_one(&mut other).await.unwrap();
    assert!(taken);
    let (_running, stop) = tokio::sync::watch::channel(false);
    let skipped = server::retention::prune_at(pool, KEEP, thirty_days_on, server::retention::Pace::UNPACED, stop).await;
    assert_eq!(skipped.unwrap(), None);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries").await, 1, "the skipped run deleted nothing");

    sqlx::query("SELECT pg_advisory_unlock($1)").bind(server::retention::LOCK).execute(&mut other).await.unwrap();
    assert_eq!(prune_at(pool, thirty_days_on).await.deliveries, 1);
    let free: bool = sqlx::query_scalar(take).bind(server::retention::LOCK).fetch_one(&mut other).await.unwrap();
    assert!(free, "the run gave the lock back");
}

/// On shutdown a run ends before its next batch instead of waiting out its pauses (the
/// job gets 30 s before it is dropped); what it left goes in a later run.
#[tokio::test]
async fn a_run_asked_to_stop_deletes_no_further_batch() {
    let (app, _receiver, _key) = delivered(1).await;
    let pool = app.db.get_postgres_connection_pool();
    let thirty_days_on = chrono::Utc::now() + chrono::Duration::days(30) + chrono::Duration::hours(1);
    let (shutdown, stop) = tokio::sync::watch::channel(false);
    shutdown.send_replace(true);
    let pace = server::retention::Pace::new(0.25).unwrap();
    let pruned = server::retention::prune_at(pool, KEEP, thirty_days_on, pace, stop).await.unwrap();
    assert_eq!(pruned.map(|p| (p.deliveries, p.events)), Some((0, 0)));
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(prune_at(pool, thirty_days_on).await.deliveries, 1, "the next run takes it, the lock is free");
}

/// Retention deletes finished deliveries as soon as they are past the cutoff (so each hourly
/// run takes an hour's worth), and drops a day of attempts and a day of events whole once
/// the day has ended before it, but not a day that straddles it.
#[tokio::test]
async fn a_day_of_attempts_and_events_is_dropped_whole_once_it_is_past_the_retention() {
    let (app, _receiver, _key) = delivered(2).await;
    let pool = app.db.get_postgres_connection_pool();
    let today = server::log_partitions::DayPartition::of(chrono::Utc::now());
    let (attempts_today, events_today) =
        (server::log_partitions::Log::Attempts.name(today), server::log_partitions::Log::Events.name(today));
    let home = |table: &str| format!("SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM {table}");
    assert_eq!(app.scalar::<String>(&home("attempts")).await, attempts_today);
    assert_eq!(app.scalar::<String>(&home("events")).await, events_today);

    let thirty_days_on = chrono::Utc::now() + chrono::Duration::days(30);
    let pruned = prune_at(pool, thirty_days_on - chrono::Duration::hours(1)).await;
    assert_eq!(pruned, server::retention::Pruned::default(), "nothing is past the cutoff yet");

    let pruned = prune_at(pool, thirty_days_on).await;
    assert_eq!((pruned.attempt_days, pruned.event_days, pruned.deliveries, pruned.events), (0, 0, 2, 0));
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 2, "today has not ended at the cutoff");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM events").await, 2, "nor for the events");

    let pruned = prune_at(pool, thirty_days_on + chrono::Duration::days(1)).await;
    assert_eq!(pruned, server::retention::Pruned { attempt_days: 1, event_days: 1, ..Default::default() });
    for log in server::log_partitions::Log::ALL {
        let left = server::log_partitions::existing(pool, log).await.unwrap();
        assert!(!left.contains(&log.name(today)), "{left:?}");
        assert_eq!(left.len(), 4, "before, default and the two days ahead: {left:?}");
    }
    for table in ["attempts", "deliveries", "events"] {
        assert_eq!(app.scalar::<i64>(&format!("SELECT count(*) FROM {table}")).await, 0, "{table}");
    }
}

/// A day of events is kept while a delivery of one of its events is left: a pending one
/// keeps its payload whatever its age. The day's other events go by rows meanwhile, and the
/// day is dropped once the delivery is done and past the retention too.
#[tokio::test]
async fn a_day_of_events_stays_while_a_delivery_of_it_is_pending() {
    let (app, _receiver, _key) = delivered(3).await;
    let pool = app.db.get_postgres_connection_pool();
    let held: String = app.scalar("SELECT min(id) FROM deliveries").await;
    sqlx::query("UPDATE deliveries SET status = 'pending' WHERE id = $1").bind(&held).execute(pool).await.unwrap();
    let day_after_expiry = chrono::Utc::now() + chrono::Duration::days(31);
    let pruned = prune_at(pool, day_after_expiry).await;
    assert_eq!((pruned.event_days, pruned.deliveries, pruned.events), (0, 2, 2), "{pruned:?}");
    let left: String = app.scalar("SELECT string_agg(e.id, ',') FROM events e").await;
    let wanted: String = app.scalar("SELECT event_id FROM deliveries").await;
    assert_eq!(left, wanted, "the pending delivery's event is kept");
    // Its payload is still what a fetch reads.
    let mut due = vec![vec![server::delivery::store::DueDelivery {
        id: held.parse().unwrap(),
        event_id: wanted.parse().unwrap(),
        event_type: "task.created".into(),
        attempt_count: 1,
        budget_from: 0,
        previous_try_at: None,
        payload: Default::default(),
        created_at: chrono::Utc::now(),
        queue_row: None,
    }]];
    server::delivery::store::with_payloads(pool, &mut due).await.unwrap();
    assert!(std::str::from_utf8(&due[0][0].payload).unwrap().contains(&wanted));

    sqlx::query("UPDATE deliveries SET status = 'delivered'").execute(pool).await.unwrap();
    let pruned = prune_at(pool, day_after_expiry).await;
    assert_eq!((pruned.event_days, pruned.deliveries), (1, 1), "{pruned:?}");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM events").await, 0);
}

/// A day whose drop cannot get its lock within `lock_timeout` (5 s; a long read of that day,
/// say) is left for the next run; the run goes on, and the other log's expired day goes.
#[tokio::test]
async fn a_day_whose_drop_waits_on_a_lock_is_left_for_the_next_run() {
    let (app, _receiver, _key) = delivered(1).await;
    let pool = app.db.get_postgres_connection_pool();
    let today = server::log_partitions::DayPartition::of(chrono::Utc::now());
    let mut reader = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database.url).await.unwrap();
    let mut reading = sqlx::Connection::begin(&mut reader).await.unwrap();
    let read = format!("SELECT count(*) FROM {}", server::log_partitions::Log::Attempts.name(today));
    sqlx::query(sqlx::AssertSqlSafe(read)).execute(&mut *reading).await.unwrap();

    let day_after_expiry = chrono::Utc::now() + chrono::Duration::days(31);
    let pruned = prune_at(pool, day_after_expiry).await;
    assert_eq!((pruned.attempt_days, pruned.busy_days, pruned.event_days, pruned.deliveries), (0, 1, 1, 1));
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 1, "the busy day is still there");

    reading.rollback().await.unwrap();
    let pruned = prune_at(pool, day_after_expiry).await;
    assert_eq!(pruned, server::retention::Pruned { attempt_days: 1, ..Default::default() });
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 0);
}

/// The migration's SQL bound of a day of events is the server's: the day partitions it
/// made and the ones the server makes meet without a gap or an overlap.
#[tokio::test]
async fn the_migrations_event_days_and_the_servers_agree() {
    let app = crate::helpers::spawn_app().await;
    let pool = app.db.get_postgres_connection_pool();
    let today = server::log_partitions::DayPartition::of(chrono::Utc::now());
    let bound = "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname = $1";
    let made: String =
        sqlx::query_scalar(bound).bind(server::log_partitions::Log::Events.name(today)).fetch_one(pool).await.unwrap();
    let (from, until) = server::log_partitions::Log::Events.bounds(today);
    assert_eq!(made, format!("FOR VALUES FROM ({from}) TO ({until})"));
}

/// The days ahead are made before they come; an attempt that went to the default partition
/// because its day had none moves into the day's partition when it is made.
#[tokio::test]
async fn days_ahead_are_made_and_take_over_their_rows_from_the_default_partition() {
    let (app, _receiver, key) = delivered(1).await;
    let pool = app.db.get_postgres_connection_pool();
    let later = chrono::Utc::now() + chrono::Duration::days(10);
    sqlx::query("UPDATE attempts SET attempted_at = $1").bind(later).execute(pool).await.unwrap();
    let home = "SELECT tableoid::regclass::text FROM attempts";
    assert_eq!(app.scalar::<String>(home).await, "attempts_default", "no day partition so far ahead yet");

    let made = server::log_partitions::ensure(pool, later).await.unwrap();
    let wanted: Vec<_> = server::log_partitions::Log::ALL
        .into_iter()
        .flat_map(|log| server::log_partitions::wanted(later).into_iter().map(move |day| (log, day)))
        .collect();
    assert_eq!(made, wanted);
    let day = server::log_partitions::DayPartition::of(later);
    assert_eq!(app.scalar::<String>(home).await, server::log_partitions::Log::Attempts.name(day));
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts_default").await, 0);
    assert!(server::log_partitions::ensure(pool, later).await.unwrap().is_empty(), "made once");
    // Processes starting together race to make the same days: each is made once, none fails.
    let farther = later + chrono::Duration::days(10);
    let (a, b) =
        tokio::join!(server::log_partitions::ensure(pool, farther), server::log_partitions::ensure(pool, farther));
    assert_eq!(a.unwrap().len() + b.unwrap().len(), 6, "three days of each log");
    // The delivery's log still shows the attempt wherever it lives.
    let id: String = app.scalar("SELECT id FROM deliveries").await;
    let delivery: Value = app.get_json(&key, &format!("/api/v1/deliveries/{id}")).await;
    assert_eq!(delivery["attempts"].as_array().map(Vec::len), Some(1), "{delivery}");
}

#[tokio::test]
async fn the_live_stream_tells_the_owner_of_new_attempts_and_nobody_else() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    app.create_account("Globex", "hank@globex.test", PASSWORD).await;
    let (ep, _) = app.endpoint(&acme.api_key, &receiver.url(), &["task.created"], 100).await;

    let outsider = app.client();
    app.login(&outsider, "hank@globex.test", PASSWORD).await;
    let refused = outsider.get(app.url(&format!("/live/endpoints/{ep}"))).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    let anonymous = app.client().get(app.url(&format!("/live/endpoints/{ep}"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let owner = app.client();
    app.login(&owner, "ada@acme.test", PASSWORD).await;
    let mut stream = owner.get(app.url(&format!("/live/endpoints/{ep}"))).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    app.publish(&acme.api_key, event("task.created", 1)).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Some(chunk) = stream.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: attempt") {
                return text;
            }
        }
        text
    })
    .await
    .expect("no live event within 10 s");
    assert!(seen.contains(&format!("data: {ep}")), "{seen}");
}

#[tokio::test]
async fn a_bulk_retry_started_twice_resends_each_failed_delivery_once() {
    let app = crate::helpers::spawn_app().await; // no workers: the job is driven by hand
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    app.publish(
        &key,
        json!({ "events": [event("task.created", 1), event("task.created", 2), event("task.created", 3)] }),
    )
    .await;
    let pool = app.db.get_postgres_connection_pool();
    sqlx::query("UPDATE deliveries SET status = 'failed', attempt_count = 6, next_attempt_at = NULL, updated_at = now() - interval '1 minute'")
        .execute(pool).await.unwrap();
    sqlx::query("DELETE FROM delivery_queue").execute(pool).await.unwrap(); // dead-lettered: off the queue
    sqlx::query("UPDATE deliveries SET status = 'delivered' WHERE id = (SELECT min(id) FROM deliveries)")
        .execute(pool)
        .await
        .unwrap();

    let range = json!({ "since": "2000-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" });
    let start = || app.api(&key, Method::POST, &format!("/api/v1/endpoints/{ep}/bulk-retry")).json(&range).send();
    let first: Value = start().await.unwrap().json().await.unwrap();
    let second: Value = start().await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], second["id"], "the running bulk retry is returned, not a second one");
    assert_eq!(first["total"], 2, "only failed deliveries count");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM bulk_retries").await, 1);

    let id = first["id"].as_str().unwrap();
    server::bulk_retry::run(pool, id).await.unwrap();
    server::bulk_retry::run(pool, id).await.unwrap(); // a job that runs twice after a crash
    let status: Value = app.get_json(&key, &format!("/api/v1/bulk-retries/{id}")).await;
    assert_eq!((status["done"].as_i64(), status["state"].as_str()), (Some(2), Some("finished")));
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries WHERE status = 'pending'").await, 2);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM delivery_queue").await, 2, "both are back on the queue, once");
    assert_eq!(
        app.scalar::<i64>("SELECT count(*) FROM deliveries WHERE status = 'delivered'").await,
        1,
        "delivered ones are left alone"
    );

    let other = app.create_account("Globex", "hank@globex.test", PASSWORD).await.api_key;
    let res =
        app.api(&other, Method::POST, &format!("/api/v1/endpoints/{ep}/bulk-retry")).json(&range).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = app.api(&other, Method::GET, &format!("/api/v1/bulk-retries/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let backwards = json!({ "since": "2999-01-01T00:00:00Z", "until": "2000-01-01T00:00:00Z" });
    let res = app
        .api(&key, Method::POST, &format!("/api/v1/endpoints/{ep}/bulk-retry"))
        .json(&backwards)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

/// Issue 12: the log says when deliveries wait behind the endpoint's rate limit: more due
/// than it sends in a second. Held endpoints give their hold as the reason instead.
#[tokio::test]
async fn the_log_says_the_endpoint_is_throttled_when_more_are_due_than_its_rate_limit_sends_in_a_second() {
    let app = crate::helpers::spawn_app().await; // no workers: what is published stays due
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (slow, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 2).await;
    let (fast, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    app.publish(
        &key,
        json!({ "events": [event("task.created", 1), event("task.created", 2), event("task.created", 3)] }),
    )
    .await;
    let page = |ep: String, query: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            let res =
                app.api(&key, Method::GET, &format!("/api/v1/endpoints/{ep}/deliveries{query}")).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let slow_page = page(slow.clone(), "").await;
    assert_eq!(slow_page["throttled"], json!({ "due": 3, "rate_limit": 2 }), "{slow_page}");
    assert_eq!(page(fast.clone(), "").await.get("throttled"), None, "3 due at 100/s go within a second");

    app.api(&key, Method::PATCH, &format!("/api/v1/endpoints/{slow}"))
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(page(slow, "").await.get("throttled"), None, "a disabled endpoint is held, not throttled");
}

/// Issue 12: bulk retry takes a status (failed, or pending waiting for a retry) and event
/// types; the same range with other filters is another bulk retry.
#[tokio::test]
async fn a_bulk_retry_resends_only_the_status_and_event_types_it_names() {
    let app = crate::helpers::spawn_app().await; // no workers: the job is driven by hand
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created", "task.deleted"], 100).await;
    let events =
        [event("task.created", 1), event("task.created", 2), event("task.deleted", 3), event("task.deleted", 4)];
    app.publish(&key, json!({ "events": events })).await;
    let pool = app.db.get_postgres_connection_pool();
    sqlx::query("UPDATE deliveries SET status = 'failed', attempt_count = 6, next_attempt_at = NULL, updated_at = now() - interval '1 minute'")
        .execute(pool).await.unwrap();
    sqlx::query("DELETE FROM delivery_queue").execute(pool).await.unwrap();
    // One task.deleted delivery waits two hours for its third attempt.
    let waiting: String = app.scalar("SELECT max(id) FROM deliveries WHERE event_type = 'task.deleted'").await;
    sqlx::query("UPDATE deliveries SET status = 'pending', attempt_count = 2, next_attempt_at = now() + interval '2 hours' WHERE id = $1")
        .bind(&waiting).execute(pool).await.unwrap();
    sqlx::query("INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at) SELECT endpoint_id, id, next_attempt_at FROM deliveries WHERE id = $1")
        .bind(&waiting).execute(pool).await.unwrap();

    let start =
        |body: Value| app.api(&key, Method::POST, &format!("/api/v1/endpoints/{ep}/bulk-retry")).json(&body).send();
    let (since, until) = ("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z");
    let created: Value = start(json!({ "since": since, "until": until, "event_types": ["task.created"] }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["total"], 2, "{created}");
    assert_eq!((created["status"].as_str(), created["event_types"].clone()), (Some("failed"), json!(["task.created"])));
    let pending: Value =
        start(json!({ "since": since, "until": until, "status": "pending" })).await.unwrap().json().await.unwrap();
    assert_ne!(pending["id"], created["id"], "other filters, another bulk retry, though both run");
    assert_eq!(pending["total"], 1, "only the delivery waiting for a retry: {pending}");

    server::bulk_retry::run(pool, created["id"].as_str().unwrap()).await.unwrap();
    let resent = "SELECT string_agg(d.event_type || ':' || d.status, ',' ORDER BY d.id) FROM deliveries d
                  JOIN delivery_queue q ON q.delivery_id = d.id WHERE q.due_at <= now()";
    assert_eq!(app.scalar::<String>(resent).await, "task.created:pending,task.created:pending");
    assert_eq!(
        app.scalar::<String>(&format!(
            "SELECT status FROM deliveries WHERE id <> '{waiting}' AND event_type = 'task.deleted'"
        ))
        .await,
        "failed"
    );

    server::bulk_retry::run(pool, pending["id"].as_str().unwrap()).await.unwrap();
    let (due_now, budget_from): (bool, i32) = sqlx::query_as(
        "SELECT q.due_at <= now(), d.budget_from FROM deliveries d JOIN delivery_queue q ON q.delivery_id = d.id WHERE d.id = $1",
    )
    .bind(&waiting)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(due_now, "the waiting delivery is sent now, not in two hours");
    assert_eq!(budget_from, 2, "with a fresh attempt budget");

    let res = start(json!({ "since": since, "until": until, "status": "delivered" })).await.unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("replay"), "{body}");
}

#[tokio::test]
async fn a_bulk_retry_started_again_as_the_first_one_finishes_never_fails() {
    let app = crate::helpers::spawn_app().await; // no workers: the job is driven by hand
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    let pool = app.db.get_postgres_connection_pool();
    let range = json!({ "since": "2000-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" });
    let start = || app.api(&key, Method::POST, &format!("/api/v1/endpoints/{ep}/bulk-retry")).json(&range).send();
    // Each round: a bulk retry runs, and a second start races the job that finishes it. The
    // second start gets the running one or, once it finished, a new one: never an error.
    for round in 0..40 {
        let first: Value = start().await.unwrap().json().await.unwrap();
        let id = first["id"].as_str().unwrap().to_owned();
        let (second, ran) = tokio::join!(start(), server::bulk_retry::run(pool, &id));
        ran.unwrap();
        let second = second.unwrap();
        assert!(second.status().is_success(), "round {round}: {} {}", second.status(), second.text().await.unwrap());
        let body: Value = second.json().await.unwrap();
        let next = body["id"].as_str().unwrap().to_owned();
        server::bulk_retry::run(pool, &next).await.unwrap(); // free the range for the next round
    }
}

/// SPEC §11: "what happened to event X" across endpoints, and the log searched by event id.
#[tokio::test]
async fn an_event_is_found_by_id_with_its_deliveries_to_every_endpoint() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (first, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    let (second, _) = app.endpoint(&key, &receiver.url(), &["task.created", "task.deleted"], 100).await;
    let ids = app.publish(&key, json!({ "events": [event("task.created", 1), event("task.created", 2)] })).await;
    receiver.wait_for(2 + 4).await; // two reachability checks, then 2 events × 2 endpoints
    app.until("all are recorded", "SELECT bool_and(status = 'delivered') FROM deliveries").await;

    let res = app.api(&key, Method::GET, &format!("/api/v1/events/{}", ids[1])).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let found: Value = res.json().await.unwrap();
    assert_eq!(found["id"], ids[1].as_str());
    assert_eq!(found["type"], "task.created");
    let payload: Value = serde_json::from_str(found["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["object"]["id"], "obj_2");
    let mut endpoints: Vec<&str> =
        found["deliveries"].as_array().unwrap().iter().map(|d| d["endpoint_id"].as_str().unwrap()).collect();
    endpoints.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(endpoints, expected, "one delivery per subscribed endpoint");
    for d in found["deliveries"].as_array().unwrap() {
        assert_eq!(d["event_id"], ids[1].as_str());
        assert_eq!((d["status"].as_str(), d["last_status_code"].as_i64()), (Some("delivered"), Some(200)));
    }

    // The log of one endpoint, searched by the id: that event's delivery only.
    let page: Value = app.get_json(&key, &format!("/api/v1/endpoints/{first}/deliveries?event_id={}", ids[0])).await;
    let listed: Vec<&str> = page["data"].as_array().unwrap().iter().map(|d| d["event_id"].as_str().unwrap()).collect();
    assert_eq!(listed, vec![ids[0].as_str()]);

    // Unknown, or another account's: the same 404.
    let other = app.create_account("Other", "bo@other.test", PASSWORD).await.api_key;
    for (k, id) in [(&key, "evt_2QbX9tHk7mN4pR8sV1wY3z"), (&other, ids[1].as_str())] {
        let res = app.api(k, Method::GET, &format!("/api/v1/events/{id}")).send().await.unwrap();
        assert_eq!(res.status(), 404);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn the_event_catalogue_gives_each_type_a_group_description_and_sample_payload() {
    let app = crate::helpers::spawn_app_with(|_| {}).await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let res = app.api(&key, Method::GET, "/api/v1/event-types").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let types = list["data"].as_array().unwrap();
    assert_eq!(types.len(), 19);
    let failed = types.iter().find(|t| t["name"] == "payment.failed").expect("payment.failed is listed");
    assert_eq!(failed["group"], "Billing");
    assert!(failed["description"].as_str().unwrap().contains("declined"));
    assert_eq!(failed["sample"]["type"], "payment.failed");
    assert_eq!(failed["sample"]["data"]["object"]["failure_reason"], "card_declined");
    let unauthenticated = reqwest::get(app.url("/api/v1/event-types")).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

/// SPEC §8 "recover since T": the events an endpoint missed while disabled are sent once it
/// is back, oldest first, and recovering again sends nothing twice.
#[tokio::test]
async fn recovery_sends_what_a_disabled_endpoint_missed_once() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (ep, _) = app.endpoint(&key, &receiver.url(), &["task.created"], 100).await;
    let set_enabled = |enabled: bool| {
        let req = app.api(&key, Method::PATCH, &format!("/api/v1/endpoints/{ep}")).json(&json!({ "enabled": enabled }));
        async move { assert_eq!(req.send().await.unwrap().status(), 200) }
    };
    let recover = |since: chrono::DateTime<chrono::Utc>| {
        let req =
            app.api(&key, Method::POST, &format!("/api/v1/endpoints/{ep}/recover")).json(&json!({ "since": since }));
        async move { req.send().await.unwrap() }
    };
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    set_enabled(false).await;
    let missed = app
        .publish(
            &key,
            json!({ "events": [event("task.created", 1), event("task.created", 2), event("task.created", 3)] }),
        )
        .await;
    app.publish(&key, event("task.deleted", 4)).await; // not subscribed: never recovered
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries").await, 0, "a disabled endpoint is skipped");

    let res = recover(an_hour_ago).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Re-enable"), "{body}");

    set_enabled(true).await;
    let live = app.publish(&key, event("task.created", 5)).await;
    receiver.wait_for(2).await; // the reachability check, then the live event
    let res = recover(an_hour_ago).await;
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    assert_eq!((job["kind"].as_str(), job["total"].as_i64()), (Some("recover"), Some(3)), "{job}");
    let finished = until_finished(&app, &key, job["id"].as_str().unwrap()).await;
    assert_eq!(finished["done"], 3);

    let got = receiver.wait_for(5).await;
    let id_of = |r: &crate::receiver::Received| r.headers["webhook-id"].to_str().unwrap().to_owned();
    let sent: Vec<String> = got[2..].iter().map(id_of).collect();
    assert_eq!(sent, missed, "the missed events, oldest first, after the live one");
    assert_eq!(id_of(&got[1]), live[0]);
    app.until(
        "the recovered ones are delivered",
        "SELECT count(*) = 4 AND bool_and(status = 'delivered') FROM deliveries",
    )
    .await;

    // Again: nothing is missing any more.
    let again: Value = recover(an_hour_ago).await.json().await.unwrap();
    assert_eq!(again["total"], 0, "{again}");
    until_finished(&app, &key, again["id"].as_str().unwrap()).await;
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries").await, 4, "nothing sent twice");

    // Before the log retention (30 days) the events are gone; the future has none.
    for since in [chrono::Utc::now() - chrono::Duration::days(31), chrono::Utc::now() + chrono::Duration::hours(1)] {
        let res = recover(since).await;
        assert_eq!(res.status(), 422, "since {since}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().starts_with("since: "), "{body}");
    }
}

async fn until_finished(app: &crate::helpers::TestApp, key: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = app.get_json(key, &format!("/api/v1/bulk-retries/{id}")).await;
        if status["state"] == "finished" {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "the job never finished: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
