//! Tenant isolation and roles, route by route (issue 7 item 5): every REST route and every
//! server function that names an object is tried by another account (404, nothing changes)
//! and every server function that changes one by a read-only member (refused). The tables
//! are checked against the routes the app actually serves, so a new route without a row
//! fails here.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app_with_workers, TestApp},
    receiver::TestReceiver,
};

const PASSWORD: &str = "a long enough password";

/// Acme's objects, as an outsider would name them.
struct Objects {
    acme_key: String,
    endpoint: String,
    secret: String,
    delivery: String,
    event: String,
    bulk: String,
    api_key: String,
    /// Ada, the owner, as the team page names her.
    user: String,
    invitation: String,
}

async fn acme_with_one_of_everything(app: &TestApp, receiver: &TestReceiver) -> Objects {
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    service::accounts::create_user(&app.db, &acme.account_id, "mo@acme.test", PASSWORD, entity::Role::Member)
        .await
        .unwrap();
    app.create_account("Globex", "hank@globex.test", PASSWORD).await;
    let (endpoint, secret) = app.endpoint(&acme.api_key, &receiver.url(), &["task.created"], 100).await;
    app.publish(&acme.api_key, json!({ "type": "task.created", "data": { "object": { "id": "t1" } } })).await;
    app.until("delivered", "SELECT bool_and(status = 'delivered') FROM deliveries").await;
    let delivery: String = app.scalar("SELECT id FROM deliveries").await;
    let event: String = app.scalar("SELECT event_id FROM deliveries").await;
    let api_key: String =
        app.scalar(&format!("SELECT id FROM api_keys WHERE account_id = '{}'", acme.account_id)).await;
    let range = json!({ "since": "2020-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" });
    let res = app
        .api(&acme.api_key, Method::POST, &format!("/api/v1/endpoints/{endpoint}/bulk-retry"))
        .json(&range)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let bulk = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let user: String = app.scalar("SELECT id FROM users WHERE email = 'ada@acme.test'").await;
    let invitation = entity::InvitationId::generate().to_string();
    let sql = format!(
        "INSERT INTO invitations (id, account_id, email, role, token_hash, expires_at)
         VALUES ('{invitation}', '{}', 'new@acme.test', 'member', 'hash', now() + interval '7 days')
         RETURNING id",
        acme.account_id
    );
    app.scalar::<String>(&sql).await;
    Objects { acme_key: acme.api_key, endpoint, secret, delivery, event, bulk, api_key, user, invitation }
}

/// What Acme can see of its endpoint and delivery; must be identical before and after the
/// outsider's and the member's attempts.
async fn acme_state(app: &TestApp, o: &Objects) -> (Value, Value) {
    let secret: Value = app.get_json(&o.acme_key, &format!("/api/v1/endpoints/{}/secret", o.endpoint)).await;
    assert_eq!(secret["secret"], o.secret.as_str());
    let delivery: Value = app.get_json(&o.acme_key, &format!("/api/v1/deliveries/{}", o.delivery)).await;
    assert_eq!(delivery["status"], "delivered");
    (secret, delivery["attempts"].clone())
}

/// Ada's role and how many invitations are pending.
async fn team_state(app: &TestApp) -> (String, i64) {
    let role = app.scalar("SELECT role FROM users WHERE email = 'ada@acme.test'").await;
    (role, app.scalar("SELECT count(*) FROM invitations WHERE revoked_at IS NULL").await)
}

fn openapi_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn another_accounts_key_gets_404_on_every_rest_route_that_names_an_object() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let o = acme_with_one_of_everything(&app, &receiver).await;
    let globex_key = service::accounts::create_api_key(
        &app.db,
        &app.scalar::<String>("SELECT id FROM accounts WHERE name = 'Globex'").await.parse().unwrap(),
    )
    .await
    .unwrap();
    let before = acme_state(&app, &o).await;
    let range = json!({ "since": "2020-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" });
    let (ep, dlv, bulk) = (&o.endpoint, &o.delivery, &o.bulk);
    // (method, OpenAPI path, concrete path, body)
    let table = [
        ("GET", "/api/v1/endpoints/{id}", format!("/api/v1/endpoints/{ep}"), None),
        (
            "PATCH",
            "/api/v1/endpoints/{id}",
            format!("/api/v1/endpoints/{ep}"),
            Some(json!({ "description": "mine now", "enabled": false })),
        ),
        ("DELETE", "/api/v1/endpoints/{id}", format!("/api/v1/endpoints/{ep}"), None),
        ("GET", "/api/v1/endpoints/{id}/secret", format!("/api/v1/endpoints/{ep}/secret"), None),
        ("POST", "/api/v1/endpoints/{id}/secret/rotate", format!("/api/v1/endpoints/{ep}/secret/rotate"), None),
        (
            "POST",
            "/api/v1/endpoints/{id}/test",
            format!("/api/v1/endpoints/{ep}/test"),
            Some(json!({ "event_type": "task.created" })),
        ),
        ("GET", "/api/v1/endpoints/{id}/deliveries", format!("/api/v1/endpoints/{ep}/deliveries"), None),
        (
            "POST",
            "/api/v1/endpoints/{id}/bulk-retry",
            format!("/api/v1/endpoints/{ep}/bulk-retry"),
            Some(range.clone()),
        ),
        ("GET", "/api/v1/deliveries/{id}", format!("/api/v1/deliveries/{dlv}"), None),
        ("POST", "/api/v1/deliveries/{id}/retry", format!("/api/v1/deliveries/{dlv}/retry"), None),
        ("POST", "/api/v1/deliveries/{id}/replay", format!("/api/v1/deliveries/{dlv}/replay"), None),
        ("GET", "/api/v1/bulk-retries/{id}", format!("/api/v1/bulk-retries/{bulk}"), None),
        ("GET", "/api/v1/events/{id}", format!("/api/v1/events/{}", o.event), None),
        (
            "POST",
            "/api/v1/endpoints/{id}/recover",
            format!("/api/v1/endpoints/{ep}/recover"),
            Some(json!({ "since": "2020-01-01T00:00:00Z" })),
        ),
    ];
    for (method, _, path, body) in &table {
        let method: Method = method.parse().unwrap();
        let mut req = app.api(&globex_key, method.clone(), path);
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
    // The account-wide routes name no object: the outsider sees only its own (nothing).
    let list: Value = app.get_json(&globex_key, "/api/v1/endpoints").await;
    assert_eq!(list["data"], json!([]));
    // The event catalogue is the same for every account.
    let account_wide = [
        ("GET", "/api/v1/endpoints"),
        ("POST", "/api/v1/endpoints"),
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/event-types"),
    ];

    // Every operation the OpenAPI document lists has a row above.
    let doc: Value = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap().json().await.unwrap();
    let covered: BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .chain(account_wide.iter().map(|(m, p)| (m.to_string(), p.to_string())))
        .collect();
    let missing: Vec<_> = openapi_operations(&doc).difference(&covered).cloned().collect();
    assert!(missing.is_empty(), "REST operations without an access row: {missing:?}");

    assert_eq!(acme_state(&app, &o).await, before, "the outsider changed nothing");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 1, "nothing was re-sent");
}

/// A server function call as the browser makes it after hydration.
async fn call(app: &TestApp, client: &reqwest::Client, path: &str, body: &Value) -> (StatusCode, String) {
    let res = client.post(app.url(path)).json(body).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Every server function that names an object, with arguments naming Acme's objects.
fn server_fn_table(o: &Objects, receiver: &TestReceiver) -> Vec<(&'static str, Value, bool)> {
    let (ep, dlv) = (o.endpoint.as_str(), o.delivery.as_str());
    let input = json!({ "url": receiver.url(), "event_types": ["task.created"], "description": "mine now", "enabled": false, "rate_limit": 5 });
    let range = json!({ "since": "2020-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" });
    // (path, arguments, owners and admins only: it changes something or shows a secret)
    vec![
        ("/api/endpoints/get", json!({ "id": ep }), false),
        ("/api/endpoints/update", json!({ "id": ep, "input": input }), true),
        ("/api/endpoints/set-enabled", json!({ "id": ep, "enabled": false }), true),
        ("/api/endpoints/delete", json!({ "id": ep }), true),
        ("/api/endpoints/secret", json!({ "id": ep }), true),
        ("/api/endpoints/rotate-secret", json!({ "id": ep }), true),
        ("/api/endpoints/test", json!({ "id": ep, "event_type": "task.created" }), true),
        ("/api/endpoints/stats", json!({ "endpoint_id": ep, "days": 7 }), false),
        ("/api/deliveries/list", json!({ "endpoint_id": ep, "filter": {} }), false),
        ("/api/deliveries/get", json!({ "id": dlv }), false),
        ("/api/deliveries/resend", json!({ "id": dlv, "replay": true }), true),
        ("/api/deliveries/bulk-count", json!({ "endpoint_id": ep, "range": range }), false),
        ("/api/deliveries/bulk-start", json!({ "endpoint_id": ep, "range": range }), true),
        ("/api/deliveries/bulk-status", json!({ "id": o.bulk }), false),
        ("/api/deliveries/recover", json!({ "endpoint_id": ep, "since": "2020-01-01T00:00:00Z" }), true),
        ("/api/api-keys/revoke", json!({ "id": o.api_key }), true),
        ("/api/team/role", json!({ "id": o.user, "role": "member" }), true),
        ("/api/team/remove", json!({ "id": o.user }), true),
        ("/api/team/revoke-invite", json!({ "id": o.invitation }), true),
    ]
}

#[tokio::test]
async fn another_accounts_user_gets_not_found_from_every_server_function_that_names_an_object() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let o = acme_with_one_of_everything(&app, &receiver).await;
    let before = acme_state(&app, &o).await;
    let hank = app.client();
    app.login(&hank, "hank@globex.test", PASSWORD).await;

    let table = server_fn_table(&o, &receiver);
    for (path, args, _) in &table {
        let (status, body) = call(&app, &hank, path, args).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} for another account: {body}");
        assert_eq!(body, "\"NotFound\"", "{path}");
        assert!(!body.contains(&o.secret));
    }
    // Without a session it is 401 for each, before any lookup.
    for (path, args, _) in &table {
        let (status, body) = call(&app, &app.client(), path, args).await;
        assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, "\"Unauthorized\""), "{path}");
    }
    // The live log stream (session cookie, GET) names an endpoint too.
    let live = hank.get(app.url(&format!("/live/endpoints/{}", o.endpoint))).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::NOT_FOUND);
    // The account-wide ones show the outsider only its own account.
    let (status, list) = call(&app, &hank, "/api/endpoints/list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, "[]");

    // Every server function the app registers has a row, or names no object.
    let account_wide = [
        "/api/endpoints/list",
        "/api/endpoints/create",
        "/api/api-keys/list",
        "/api/api-keys/create",
        "/api/team/list",
        "/api/team/invite",
    ];
    let (_, team) = call(&app, &hank, "/api/team/list", &json!({})).await;
    assert!(!team.contains("acme.test"), "the outsider's team is its own: {team}");
    // Public: the invitation page asks before its visitor has an account; a token names the
    // invitation, and an unknown one reveals nothing.
    let public = ["/api/team/invitation"];
    let (status, body) = call(&app, &hank, "/api/team/invitation", &json!({ "token": o.invitation })).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "\"Unknown\""), "an id is not a token");
    let covered: BTreeSet<&str> = table.iter().map(|(p, _, _)| *p).chain(account_wide).chain(public).collect();
    let missing: Vec<_> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path)
        .filter(|p| !covered.contains(p) && !p.starts_with("/api/whoami"))
        .collect();
    assert!(missing.is_empty(), "server functions without an access row: {missing:?}");

    assert_eq!(acme_state(&app, &o).await, before, "the outsider changed nothing");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 1, "nothing re-sent or test-sent");
    assert_eq!(team_state(&app).await, ("owner".to_owned(), 1), "Acme's team is untouched");
}

#[tokio::test]
async fn a_member_reads_but_every_server_function_that_changes_something_or_shows_a_secret_refuses() {
    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let o = acme_with_one_of_everything(&app, &receiver).await;
    let before = acme_state(&app, &o).await;
    let mo = app.client();
    app.login(&mo, "mo@acme.test", PASSWORD).await;

    let mut writes = vec![
        ("/api/endpoints/create", json!({ "input": { "url": receiver.url(), "event_types": ["task.created"] } })),
        ("/api/team/invite", json!({ "input": { "email": "x@acme.test", "role": "member" } })),
    ];
    for (path, args, privileged) in server_fn_table(&o, &receiver) {
        if privileged {
            writes.push((path, args));
        } else {
            let (status, body) = call(&app, &mo, path, &args).await;
            assert_eq!(status, StatusCode::OK, "a member reads {path}: {body}");
        }
    }
    assert_eq!(writes.len(), 15);
    for (path, args) in &writes {
        let (status, body) = call(&app, &mo, path, args).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} for a member: {body}");
        assert_eq!(body, "\"Forbidden\"", "{path}");
    }
    // SPEC §9: members never see a signing secret, not even in what they may read.
    for (path, args, _) in server_fn_table(&o, &receiver) {
        let (_, body) = call(&app, &mo, path, &args).await;
        assert!(!body.contains(&o.secret), "{path} shows a member the secret");
    }
    assert_eq!(acme_state(&app, &o).await, before, "the member changed nothing");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM endpoints").await, 1, "no endpoint created");
    assert_eq!(team_state(&app).await, ("owner".to_owned(), 1), "Acme's team is untouched");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 1, "nothing re-sent or test-sent");
}

/// SPEC §9: owners and admins create keys (shown once), see their last use and revoke them;
/// a revoked key stops working; members can do none of it.
#[tokio::test]
async fn an_owner_creates_lists_and_revokes_api_keys_and_a_member_gets_none_of_it() {
    let app = spawn_app_with_workers(|_| {}).await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    service::accounts::create_user(&app.db, &acme.account_id, "mo@acme.test", PASSWORD, entity::Role::Member)
        .await
        .unwrap();
    let ada = app.client();
    app.login(&ada, "ada@acme.test", PASSWORD).await;

    let (status, body) = call(&app, &ada, "/api/api-keys/create", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created["info"]["prefix"].as_str().unwrap()));
    let list_endpoints = || app.api(&key, Method::GET, "/api/v1/endpoints").send();
    assert_eq!(list_endpoints().await.unwrap().status(), StatusCode::OK, "the new key works");

    let (_, body) = call(&app, &ada, "/api/api-keys/list", &json!({})).await;
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 2, "the account's first key and the new one");
    let listed = list.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert!(listed["last_used_at"].is_string(), "its use is shown: {listed}");
    assert!(!body.contains(&key), "a list never shows a whole key");

    let mo = app.client();
    app.login(&mo, "mo@acme.test", PASSWORD).await;
    for path in ["/api/api-keys/list", "/api/api-keys/create"] {
        let (status, body) = call(&app, &mo, path, &json!({})).await;
        assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, "\"Forbidden\""), "{path}");
    }

    let (status, body) = call(&app, &ada, "/api/api-keys/revoke", &json!({ "id": id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["revoked_at"].is_string());
    // Processes cache a key for 5 s; the revocation's notification makes them forget it at
    // once, so it is refused well within the cache's lifetime (the key was used just above).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while list_endpoints().await.unwrap().status() != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "the revoked key still works after 1 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.api(&acme.api_key, Method::GET, "/api/v1/endpoints").send().await.unwrap().status(), StatusCode::OK);
}
