use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, KeyInit, Mac};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp},
    receiver::{acceptor, test_ca, ServedCert, TestReceiver},
};

const PASSWORD: &str = "a long enough password";

async fn create(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.api(key, Method::POST, "/api/v1/endpoints").json(&body).send().await.unwrap()
}

async fn error_message(res: reqwest::Response) -> String {
    let body: Value = res.json().await.unwrap();
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_endpoint_lifecycle_works_through_the_api() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;

    let res = create(
        &app,
        &key,
        json!({
            "url": receiver.url(), "description": "CRM sync",
            "event_types": ["task.completed", "project.created", "task.completed"]
        }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ep_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["event_types"], json!(["project.created", "task.completed"]));
    assert_eq!(created["status"], "healthy");
    assert_eq!(created["rate_limit"], 100);
    assert_eq!(created["enabled"], true);
    assert_eq!(receiver.received().len(), 1, "the reachability check reached the receiver once");

    let list: Value = app.get_json(&key, "/api/v1/endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("secret").is_none(), "lists never carry secrets");

    let patched: Value = app
        .api(&key, Method::PATCH, &format!("/api/v1/endpoints/{id}"))
        .json(&json!({ "description": "ERP sync", "rate_limit": 10, "enabled": false }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["description"], "ERP sync");
    assert_eq!(patched["rate_limit"], 10);
    assert_eq!(patched["status"], "disabled");
    assert_eq!(patched["event_types"], json!(["project.created", "task.completed"]), "PATCH keeps absent fields");
    assert_eq!(receiver.received().len(), 1, "an unchanged URL is not checked again");

    let secret: Value = app.get_json(&key, &format!("/api/v1/endpoints/{id}/secret")).await;
    assert_eq!(secret["secret"], created["secret"]);
    let rotated: Value = app
        .api(&key, Method::POST, &format!("/api/v1/endpoints/{id}/secret/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(rotated["secret"], created["secret"]);

    let deleted = app.api(&key, Method::DELETE, &format!("/api/v1/endpoints/{id}")).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.api(&key, Method::GET, &format!("/api/v1/endpoints/{id}")).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_input_gets_a_422_that_says_what_to_fix() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let cases = [
        (json!({ "url": receiver.url().replace("https", "http"), "event_types": ["task.created"] }), "https://"),
        (json!({ "url": receiver.url(), "event_types": [] }), "Select at least one event."),
        (json!({ "url": receiver.url(), "event_types": ["task.created"], "rate_limit": 500 }), "between 1 and 100"),
        (json!({ "url": "https://user:pw@localhost/", "event_types": ["task.created"] }), "username or password"),
        (json!({ "url": receiver.url(), "event_types": ["task.exploded"] }), "task.exploded"),
    ];
    for (body, expected) in cases {
        let res = create(&app, &key, body.clone()).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = error_message(res).await;
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert!(receiver.received().is_empty(), "invalid input never triggers a request");
    let list: Value = app.get_json(&key, "/api/v1/endpoints").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn unreachable_and_blocked_urls_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    // Port 1 on loopback (allowed in tests): nothing listens there.
    let refused = create(&app, &key, json!({ "url": "https://127.0.0.1:1/", "event_types": ["task.created"] })).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(refused).await.contains("Connection refused"));

    // Never connected to: the guard refuses these before any connection is attempted.
    for (url, reason) in [
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[fd00::1]/hook", "unique local"),
    ] {
        let res = create(&app, &key, json!({ "url": url, "event_types": ["task.created"] })).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let message = error_message(res).await.to_lowercase();
        assert!(message.contains(reason), "{url}: {message}");
    }
}

#[tokio::test]
async fn a_receiver_with_an_untrusted_certificate_is_a_tls_error() {
    let app = spawn_app_with(|config| config.extra_ca = None).await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let res = create(&app, &key, json!({ "url": receiver.url(), "event_types": ["task.created"] })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = error_message(res).await;
    assert!(
        message.contains("TLS certificate not trusted: it is not issued by a certificate authority we trust"),
        "{message}"
    );
}

/// Each certificate fault a receiver's operator can make, as the URL field shows it: what is
/// wrong in words, never rustls' variant names.
#[tokio::test]
async fn certificate_faults_are_named_in_words_beside_the_url() {
    // A CA certificate served as the server's own; the app trusts it, as an operator who
    // added their own CA would.
    let mut rogue = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    rogue.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let rogue_key = KeyPair::generate().unwrap();
    let rogue_cert = rogue.self_signed(&rogue_key).unwrap();
    let bundle = std::env::temp_dir().join(format!("webhooks-test-rogue-{}.pem", std::process::id()));
    std::fs::write(&bundle, std::fs::read_to_string(&test_ca().pem_path).unwrap() + &rogue_cert.pem()).unwrap();
    let app = spawn_app_with(|config| config.extra_ca = Some(bundle.clone())).await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;

    let mut expired = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    expired.not_before = rcgen::date_time_ymd(2019, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2020, 1, 2);
    let elsewhere = CertificateParams::new(vec!["elsewhere.test".to_owned()]).unwrap();
    let ca_as_server = ServedCert { chain: vec![rogue_cert.der().clone()], key_pem: rogue_key.serialize_pem() };
    let cases = [
        (test_ca().issue(expired), "TLS certificate expired on 2020-01-02 00:00 UTC."),
        (test_ca().issue(elsewhere), "TLS certificate is for another host: it names elsewhere.test, not localhost."),
        (ca_as_server, "TLS certificate is a CA certificate"),
    ];
    for (cert, expected) in cases {
        let receiver = TestReceiver::start_with(acceptor(&cert)).await;
        let res = create(&app, &key, json!({ "url": receiver.url(), "event_types": ["task.created"] })).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{expected}");
        let message = error_message(res).await;
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(receiver.received().is_empty(), "no request crosses a rejected handshake");
    }

    // Plain HTTP on the port of an https:// URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut hello = [0u8; 512];
            let _ = tcp.read(&mut hello).await;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    });
    let url = format!("https://localhost:{port}/hook");
    let res = create(&app, &key, json!({ "url": url, "event_types": ["task.created"] })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = error_message(res).await;
    assert!(message.contains("not in TLS. Is it serving plain HTTP on this port?"), "{message}");

    let list: Value = app.get_json(&key, "/api/v1/endpoints").await;
    assert_eq!(list["data"], json!([]), "no endpoint is saved against a failed handshake");
    let _ = std::fs::remove_file(bundle);
}

#[tokio::test]
async fn a_test_send_is_signed_like_a_real_delivery() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let created: Value = create(&app, &key, json!({ "url": receiver.url(), "event_types": ["task.completed"] }))
        .await
        .json()
        .await
        .unwrap();
    let (id, secret) = (created["id"].as_str().unwrap(), created["secret"].as_str().unwrap());

    receiver.set_status(202);
    let outcome: Value = app
        .api(&key, Method::POST, &format!("/api/v1/endpoints/{id}/test"))
        .json(&json!({ "event_type": "payment.failed" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["success"], true);
    assert_eq!(outcome["status_code"], 202);
    assert!(outcome["body_excerpt"].as_str().unwrap().contains("received"));

    let request = receiver.wait_for(2).await.pop().unwrap();
    let body = std::str::from_utf8(&request.body).unwrap();
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["type"], "payment.failed");
    assert_eq!(payload["data"]["object"]["status"], "failed");
    let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("webhook-id"), payload["id"].as_str().unwrap());
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(request.path, "/hook");

    // Standard Webhooks, verified here with hmac directly: key = base64 after `whsec_`.
    let key_bytes = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let signed = format!("{}.{}.{}", header("webhook-id"), header("webhook-timestamp"), body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes).unwrap();
    mac.update(signed.as_bytes());
    assert_eq!(header("webhook-signature"), format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));

    // Stripe-style: key = the secret string itself, over "<t>.<body>".
    let t = header("webhook-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(header("x-webhook-signature"), format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes())));

    // Logged (issue 12): the event and a test delivery with its one attempt, byte for byte.
    assert_eq!(outcome["event_id"], payload["id"]);
    let event: Value = app.get_json(&key, &format!("/api/v1/events/{}", payload["id"].as_str().unwrap())).await;
    assert_eq!(event["payload"], body, "the payload as sent");
    let delivery = &event["deliveries"][0];
    assert_eq!((delivery["test"].as_bool(), delivery["status"].as_str()), (Some(true), Some("delivered")), "{event}");
    assert_eq!(delivery["last_status_code"], 202);
    let detail: Value = app.get_json(&key, &format!("/api/v1/deliveries/{}", delivery["id"].as_str().unwrap())).await;
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(detail["attempts"][0]["request_body"], body);
    // The attempt shows the headers exactly as the receiver got them.
    let shown = detail["attempts"][0]["request_headers"].as_object().unwrap();
    let sent = [
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-signature",
        "x-webhook-ratelimit-limit",
        "x-webhook-ratelimit-remaining",
    ];
    for name in sent {
        assert_eq!(shown.get(name).and_then(Value::as_str), Some(header(name).as_str()), "{name} in {shown:?}");
    }
    assert_eq!(shown.len(), sent.len(), "{shown:?}");
    let queued: i64 = app.scalar("SELECT count(*) FROM delivery_queue").await;
    assert_eq!(queued, 0, "a test is sent once, not queued for retries");
    let status: String = app.scalar(&format!("SELECT status FROM endpoints WHERE id = '{id}'")).await;
    assert_eq!(status, "healthy");
}

#[tokio::test]
async fn another_accounts_key_finds_none_of_the_endpoint_routes() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let owner_key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let other_key = app.create_account("Globex", "hank@globex.test", PASSWORD).await.api_key;
    let created: Value = create(&app, &owner_key, json!({ "url": receiver.url(), "event_types": ["task.completed"] }))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let routes = [
        (Method::GET, format!("/api/v1/endpoints/{id}"), None),
        (Method::PATCH, format!("/api/v1/endpoints/{id}"), Some(json!({ "description": "mine now" }))),
        (Method::DELETE, format!("/api/v1/endpoints/{id}"), None),
        (Method::GET, format!("/api/v1/endpoints/{id}/secret"), None),
        (Method::POST, format!("/api/v1/endpoints/{id}/secret/rotate"), None),
        (Method::POST, format!("/api/v1/endpoints/{id}/test"), Some(json!({ "event_type": "task.created" }))),
    ];
    for (method, path, body) in routes {
        let mut req = app.api(&other_key, method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    let list: Value = app.get_json(&other_key, "/api/v1/endpoints").await;
    assert_eq!(list["data"], json!([]));
    let still: Value = app.get_json(&owner_key, &format!("/api/v1/endpoints/{id}/secret")).await;
    assert_eq!(still["secret"], created["secret"], "nothing changed");
}

#[tokio::test]
async fn requests_without_a_valid_key_get_a_json_401() {
    let app = spawn_app().await;
    for key in ["", "whk_not_a_key"] {
        let res = app.api(key, Method::GET, "/api/v1/endpoints").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(error_message(res).await.contains("Bearer"));
    }
}

#[tokio::test]
async fn a_member_can_read_but_not_change_endpoints_through_the_dashboard() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    service::accounts::create_user(&app.db, &acme.account_id, "mo@acme.test", PASSWORD, entity::Role::Member)
        .await
        .unwrap();
    let created: Value =
        create(&app, &acme.api_key, json!({ "url": receiver.url(), "event_types": ["task.completed"] }))
            .await
            .json()
            .await
            .unwrap();
    let id = created["id"].as_str().unwrap();

    let client = app.client();
    app.login(&client, "mo@acme.test", PASSWORD).await;
    let list = client.post(app.url("/api/endpoints/list")).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert!(list.text().await.unwrap().contains(id), "members read");

    let input = json!({ "url": receiver.url(), "event_types": ["task.created"] });
    let attempts = [
        ("/api/endpoints/create", json!({ "input": input })),
        ("/api/endpoints/update", json!({ "id": id, "input": input })),
        ("/api/endpoints/set-enabled", json!({ "id": id, "enabled": false })),
        ("/api/endpoints/delete", json!({ "id": id })),
        ("/api/endpoints/rotate-secret", json!({ "id": id })),
        ("/api/endpoints/test", json!({ "id": id, "event_type": "task.created" })),
    ];
    for (path, body) in attempts {
        let res = client.post(app.url(path)).json(&body).send().await.unwrap();
        assert!(!res.status().is_success(), "{path} succeeded for a member");
        let text = res.text().await.unwrap();
        assert!(text.contains("Forbidden"), "{path}: {text}");
    }
    let after: Value = app.get_json(&acme.api_key, &format!("/api/v1/endpoints/{id}/secret")).await;
    assert_eq!(after["secret"], created["secret"]);
    assert_eq!(after["enabled"], true);
    assert_eq!(after["event_types"], json!(["task.completed"]));
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoint_routes() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    for path in [
        "/api/v1/endpoints",
        "/api/v1/endpoints/{id}",
        "/api/v1/endpoints/{id}/secret/rotate",
        "/api/v1/endpoints/{id}/test",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["components"]["schemas"].get("EndpointInput").is_some());
}
