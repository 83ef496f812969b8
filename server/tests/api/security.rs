//! Browser and secret hardening (issue 7 item 5): cross-site requests, login throttling,
//! session rotation, security headers, secrets kept out of logs and encrypted at rest.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use server::http::auth::{MAX_FAILURES_PER_EMAIL, MAX_FAILURES_PER_IP};

use crate::{
    helpers::{assert_signed, location, spawn_app, spawn_app_with_workers},
    receiver::TestReceiver,
};

const PASSWORD: &str = "a long enough password";
/// The one key every test in this process uses: the installed key is process-global.
pub const TEST_ENCRYPTION_KEY: &str = "dGVzdC1vbmx5LWtleS0zMi1ieXRlcy1sb25nLi4uLi4=";

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("webhooks_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

// ---- cross-site requests -------------------------------------------------------------

#[tokio::test]
async fn server_functions_refuse_a_foreign_origin_and_accept_their_own() {
    let app = spawn_app().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let client = app.client();
    app.login(&client, "ada@acme.test", PASSWORD).await;
    let create = json!({ "input": { "url": "https://example.invalid/hook", "event_types": ["task.created"] } });

    let foreign = [
        ("origin", "https://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("sec-fetch-site", "cross-site".to_owned()),
        ("referer", "https://evil.example/page".to_owned()),
    ];
    for (name, value) in &foreign {
        for path in ["/api/endpoints/list", "/api/endpoints/create", "/logout"] {
            let res = client.post(app.url(path)).header(*name, value).json(&create).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path} with {name}: {value}");
            let text = res.text().await.unwrap();
            assert!(text.starts_with("Cross-site request refused"), "{text}");
        }
    }
    let same = app.address.clone();
    let res = client.post(app.url("/api/endpoints/list")).header("origin", &same).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "same origin passes");
    let res = client.post(app.url("/api/endpoints/list")).header("sec-fetch-site", "same-origin").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = client.get(app.url("/settings/webhooks")).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "GETs change nothing and pass; the refused /logout kept the session");
    // A foreign page cannot log someone into an account either (login CSRF).
    let res = app
        .client()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", "ada@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&res).is_none());

    // The REST API authenticates by Bearer key, which a foreign page cannot send: unaffected.
    let res = app
        .api(&acme.api_key, Method::POST, "/api/v1/events")
        .header("origin", "https://evil.example")
        .json(&json!({ "type": "task.created", "data": { "object": {} } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM endpoints").await, 0, "no refused create got through");
}

// ---- login throttling ----------------------------------------------------------------

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_email_out_with_a_time_to_retry() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    app.create_account("Initech", "bob@initech.test", PASSWORD).await;
    let client = app.client();
    for n in 0..MAX_FAILURES_PER_EMAIL {
        let res = app.login(&client, "ada@acme.test", "wrong password").await;
        assert!(location(&res).starts_with("/login?error=invalid"), "failure {n}: {}", location(&res));
    }
    // Now even the right password is refused, with when to come back.
    let res = app.login(&client, "ADA@acme.test", PASSWORD).await;
    let to = location(&res);
    assert!(to.starts_with("/login?error=throttled&retry=15&"), "{to}");
    let retry_after: u64 = res.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((14 * 60..=15 * 60).contains(&retry_after), "{retry_after}");
    assert!(session_cookie(&res).is_none());
    let html = client.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Too many failed attempts. Try again in 15 minutes."), "the form says when");

    // Another account from the same address is not locked out by ada's failures.
    let res = app.login(&app.client(), "bob@initech.test", PASSWORD).await;
    assert_eq!(location(&res), "/settings/webhooks");
}

#[tokio::test]
async fn many_failures_from_one_address_lock_out_that_address() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let client = app.client();
    // Spread over distinct emails so that only the per-address limit can apply.
    for n in 0..MAX_FAILURES_PER_IP {
        let res = app.login(&client, &format!("guess{n}@acme.test"), "wrong password").await;
        assert!(location(&res).starts_with("/login?error=invalid"), "failure {n}");
    }
    let res = app.login(&client, "ada@acme.test", PASSWORD).await;
    assert!(location(&res).starts_with("/login?error=throttled"), "{}", location(&res));
}

// ---- session rotation ----------------------------------------------------------------

#[tokio::test]
async fn logging_in_issues_a_new_session_and_ends_the_one_the_browser_had() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let page = |cookie: String| {
        let client = app.client();
        let url = app.url("/settings/webhooks");
        async move { client.get(url).header(header::COOKIE, cookie).send().await.unwrap().status() }
    };
    let first = session_cookie(&app.login(&app.client(), "ada@acme.test", PASSWORD).await).unwrap();
    assert_eq!(page(first.clone()).await, StatusCode::OK);

    // Logging in again from a browser that still holds `first`.
    let res = app
        .client()
        .post(app.url("/login"))
        .header(header::COOKIE, &first)
        .form(&[("email", "ada@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let second = session_cookie(&res).unwrap();
    assert_ne!(second, first);
    assert_eq!(page(second).await, StatusCode::OK);
    assert_eq!(page(first).await, StatusCode::SEE_OTHER, "the old token no longer works");

    // A value planted before login (session fixation) is never adopted.
    let planted = "webhooks_session=planted-by-someone-else".to_owned();
    let res = app
        .client()
        .post(app.url("/login"))
        .header(header::COOKIE, &planted)
        .form(&[("email", "ada@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_ne!(session_cookie(&res).unwrap(), planted);
    assert_eq!(page(planted).await, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM sessions").await, 2, "first was deleted");
}

// ---- security headers ----------------------------------------------------------------

#[tokio::test]
async fn dashboard_pages_carry_a_nonce_csp_and_anti_framing_headers() {
    let app = spawn_app().await;
    let res = app.client().get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("'wasm-unsafe-eval'")
            && csp.contains("object-src 'none'"),
        "{csp}"
    );
    let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("a nonce in the CSP").to_owned();
    let html = res.text().await.unwrap();
    // Every inline script (Leptos' hydration bootstrap) carries this response's nonce.
    let scripts: Vec<&str> = html.split("<script").skip(1).map(|s| s.split('>').next().unwrap()).collect();
    assert!(!scripts.is_empty());
    for attrs in scripts {
        assert!(attrs.contains(&format!("nonce=\"{nonce}\"")), "script without the nonce: <script{attrs}>");
    }
    let again = app.client().get(app.url("/login")).send().await.unwrap();
    assert!(
        !again.headers()["content-security-policy"].to_str().unwrap().contains(&nonce),
        "a fresh nonce per response"
    );

    // Not-found pages and the API get the headers too (the policy without a nonce at worst).
    for path in ["/no/such/page", "/api/v1/endpoints", "/healthz"] {
        let res = app.client().get(app.url(path)).send().await.unwrap();
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(res.headers()["x-frame-options"], "DENY", "{path}");
        assert!(
            res.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

// ---- secrets at rest -----------------------------------------------------------------

#[tokio::test]
async fn with_an_encryption_key_the_database_holds_no_clear_secret_and_deliveries_still_verify() {
    let app = spawn_app_with_workers(|c| c.encryption_key = Some(TEST_ENCRYPTION_KEY.to_owned())).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (ep, first) = app.endpoint(&acme.api_key, &receiver.url(), &["task.created"], 100).await;
    let rotated: Value = app
        .api(&acme.api_key, Method::POST, &format!("/api/v1/endpoints/{ep}/secret/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = rotated["secret"].as_str().unwrap().to_owned();

    let (stored, previous): (String, String) = sqlx::query_as("SELECT secret, previous_secret FROM endpoints")
        .fetch_one(app.db.get_postgres_connection_pool())
        .await
        .unwrap();
    for (column, clear) in [(&stored, &second), (&previous, &first)] {
        assert!(column.starts_with("enc:v1:"), "{column}");
        assert!(!column.contains(clear.trim_start_matches("whsec_")), "clear secret in the column");
    }

    // The dispatcher opens them: the delivery verifies with the current secret.
    app.publish(&acme.api_key, json!({ "type": "task.created", "data": { "object": { "id": "t1" } } })).await;
    let got = receiver.wait_for(2).await; // the reachability check, then the delivery
    assert_signed(&got[1], &second);
    assert_signed(&got[1], &first); // still in its 24 h overlap

    // Reveal shows the clear secret, over REST and in the dashboard.
    let shown: Value = app.get_json(&acme.api_key, &format!("/api/v1/endpoints/{ep}/secret")).await;
    assert_eq!(shown["secret"], second.as_str());
    let client = app.client();
    app.login(&client, "ada@acme.test", PASSWORD).await;
    let revealed = client
        .post(app.url("/api/endpoints/secret"))
        .json(&json!({ "id": ep }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(revealed, format!("\"{second}\""));
}

#[tokio::test]
async fn secrets_stored_in_clear_before_the_key_was_set_keep_working_and_get_sealed_at_start() {
    let app = spawn_app_with_workers(|c| c.encryption_key = Some(TEST_ENCRYPTION_KEY.to_owned())).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let (ep, _) = app.endpoint(&acme.api_key, &receiver.url(), &["task.created"], 100).await;
    // As a row written by a version without encryption would be.
    let legacy = "whsec_bGVnYWN5LWNsZWFyLXNlY3JldC0zMi1ieXRlcy4uLg==";
    sqlx::query("UPDATE endpoints SET secret = $1")
        .bind(legacy)
        .execute(app.db.get_postgres_connection_pool())
        .await
        .unwrap();

    app.publish(&acme.api_key, json!({ "type": "task.created", "data": { "object": { "id": "t1" } } })).await;
    assert_signed(&receiver.wait_for(2).await[1], legacy);

    assert_eq!(server::secrets::seal_stored_secrets(&app.db).await.unwrap(), 1, "the start-up step seals it");
    let stored: String = app.scalar("SELECT secret FROM endpoints").await;
    assert!(stored.starts_with("enc:v1:"));
    let shown: Value = app.get_json(&acme.api_key, &format!("/api/v1/endpoints/{ep}/secret")).await;
    assert_eq!(shown["secret"], legacy);
    assert_eq!(server::secrets::seal_stored_secrets(&app.db).await.unwrap(), 0, "idempotent");
}

// ---- secrets out of logs -------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn api_keys_secrets_passwords_and_session_tokens_never_reach_the_logs() {
    // This test's runtime is one thread, so a thread-scoped subscriber sees everything the
    // app does for it (HTTP handlers, dispatcher, jobs), at TRACE for our crates.
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,server=trace,app=trace,entity=trace,migration=info"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // With only one registered dispatcher, tracing-core caches each callsite's interest from
    // whichever thread hits it first; a parallel test's thread (no subscriber) would then
    // switch our callsites off. A second registered dispatcher makes the cache ask both.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let app = spawn_app_with_workers(|_| {}).await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let extra_key = service::accounts::create_api_key(&app.db, &acme.account_id).await.unwrap();
    let mut secrets = vec![acme.api_key.clone(), extra_key.clone(), PASSWORD.to_owned()];

    // Endpoints and rotations over REST ...
    let (ep, secret) = app.endpoint(&extra_key, &receiver.url(), &["task.created"], 100).await;
    secrets.push(secret);
    let rotated: Value = app
        .api(&acme.api_key, Method::POST, &format!("/api/v1/endpoints/{ep}/secret/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push(rotated["secret"].as_str().unwrap().to_owned());
    // ... and in the dashboard, with a wrong password first.
    let client = app.client();
    app.login(&client, "ada@acme.test", "a wrong password for the log").await;
    secrets.push("a wrong password for the log".to_owned());
    let res = app.login(&client, "ada@acme.test", PASSWORD).await;
    secrets.push(session_cookie(&res).unwrap().trim_start_matches("webhooks_session=").to_owned());
    let created: Value = client
        .post(app.url("/api/endpoints/create"))
        .json(&json!({ "input": { "url": receiver.url(), "event_types": ["task.created"] } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push(created["secret"].as_str().unwrap().to_owned());
    let id = created["id"].as_str().unwrap();
    let rotated = client
        .post(app.url("/api/endpoints/rotate-secret"))
        .json(&json!({ "id": id }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    secrets.push(rotated.trim_matches('"').to_owned());
    client.post(app.url("/api/endpoints/secret")).json(&json!({ "id": id })).send().await.unwrap();
    client
        .post(app.url("/api/endpoints/test"))
        .json(&json!({ "id": id, "event_type": "task.created" }))
        .send()
        .await
        .unwrap();

    // Publishing and delivering to both endpoints, signed with those secrets.
    app.publish(&acme.api_key, json!({ "type": "task.created", "data": { "object": { "id": "t1" } } })).await;
    app.until("delivered", "SELECT count(*) = 2 AND bool_and(status = 'delivered') FROM deliveries WHERE NOT test")
        .await;
    app.api(&acme.api_key, Method::GET, &format!("/api/v1/endpoints/{ep}/deliveries")).send().await.unwrap();
    // A failing key is logged as a failure, never as its value.
    app.api("whk_a-wrong-key-that-must-not-be-logged", Method::GET, "/api/v1/endpoints").send().await.unwrap();
    secrets.push("whk_a-wrong-key-that-must-not-be-logged".to_owned());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let logged_in = format!("logged in user_id={}", acme.user_id);
    assert!(text.contains(&logged_in) && text.contains("login refused"), "the capture works");
    assert!(text.contains(&format!("endpoint={ep}")), "the dispatcher's logs are captured too");
    assert!(text.lines().count() > 50, "at debug/trace there is plenty to look through");
    eprintln!(
        "log capture: {} lines, {} bytes, {} secret values checked",
        text.lines().count(),
        text.len(),
        secrets.len()
    );
    for secret in &secrets {
        // whsec_ secrets also without their prefix (the key material).
        for needle in [secret.as_str(), secret.trim_start_matches("whsec_").trim_start_matches("whk_")] {
            assert!(!text.contains(needle), "a secret reached the logs: …{}…", &needle[..8.min(needle.len())]);
        }
    }
}
