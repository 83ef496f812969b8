use chrono::Utc;
use entity::tables::{endpoint, session};
use sea_orm::{sea_query::Expr, ActiveValue::Set, EntityTrait};

use crate::helpers::{location, spawn_app};

const PASSWORD: &str = "a long enough password";

#[tokio::test]
async fn a_page_without_a_session_redirects_to_login_with_the_way_back() {
    let app = spawn_app().await;
    let res = app.client().get(app.url("/settings/webhooks")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Fsettings%2Fwebhooks");
}

#[tokio::test]
async fn logging_in_sets_a_hardened_cookie_and_opens_the_empty_webhooks_page() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let client = app.client();

    let res = app.login(&client, "Ada@Acme.test", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/settings/webhooks");
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("webhooks_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");

    let page = client.get(app.url("/settings/webhooks")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("No webhooks yet"), "empty state missing");
    assert!(html.contains("Add webhook"));
    assert!(html.contains("ada@acme.test"), "the shell names the user");
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_a_message_and_keeps_the_email() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let client = app.client();

    let res = app.login(&client, "ada@acme.test", "not the password").await;
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(to.starts_with("/login?error=invalid&email=ada%40acme.test"), "{to}");
    assert!(res.headers().get("set-cookie").is_none(), "no session on failure");

    let html = client.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Incorrect email or password."));
    assert!(html.contains("ada@acme.test"), "the typed email is kept");
}

#[tokio::test]
async fn an_unknown_user_gets_the_same_message_as_a_wrong_password() {
    let app = spawn_app().await;
    let client = app.client();
    let res = app.login(&client, "nobody@acme.test", PASSWORD).await;
    let to = location(&res);
    assert!(to.starts_with("/login?error=invalid"), "{to}");
    let html = client.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Incorrect email or password."));
}

#[tokio::test]
async fn an_expired_session_sends_the_user_to_login_saying_so() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let client = app.client();
    app.login(&client, "ada@acme.test", PASSWORD).await;
    let ok = client.get(app.url("/settings/webhooks")).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(Utc::now() - chrono::Duration::minutes(1)))
        .exec(&app.db)
        .await
        .unwrap();

    let res = client.get(app.url("/settings/webhooks")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(to.contains("reason=expired"), "{to}");
    let html = client.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Your session expired. Please log in again."));
}

#[tokio::test]
async fn logging_out_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let client = app.client();
    let res = app.login(&client, "ada@acme.test", PASSWORD).await;
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();

    let out = client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(location(&out), "/login?reason=logged_out");

    // Replaying the old cookie by hand must not work either.
    let replay = app.client().get(app.url("/settings/webhooks")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(replay.status(), 303);
}

#[tokio::test]
async fn a_user_sees_only_their_own_accounts_endpoints() {
    let app = spawn_app().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let globex = app.create_account("Globex", "hank@globex.test", PASSWORD).await;
    for (account, url) in
        [(&acme.account_id, "https://acme.example/hook"), (&globex.account_id, "https://globex.example/secret-hook")]
    {
        endpoint::Entity::insert(endpoint::ActiveModel {
            id: Set(entity::EndpointId::generate()),
            account_id: Set(account.clone()),
            url: Set(url.to_owned()),
            description: Set(String::new()),
            enabled: Set(true),
            status: Set(entity::EndpointStatus::Healthy),
            disabled_reason: Set(None),
            consecutive_failures: Set(0),
            rate_limit: Set(100),
            secret: Set("whsec_test".to_owned()),
            previous_secret: Set(None),
            previous_secret_expires_at: Set(None),
            created_at: Set(Utc::now()),
            updated_at: Set(Utc::now()),
            ..Default::default()
        })
        .exec(&app.db)
        .await
        .unwrap();
    }
    let client = app.client();
    app.login(&client, "ada@acme.test", PASSWORD).await;
    let html = client.get(app.url("/settings/webhooks")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("https://acme.example/hook"));
    assert!(!html.contains("globex"), "another account's endpoint leaked into the page");
}

#[tokio::test]
async fn the_login_redirect_never_leaves_the_site() {
    let app = spawn_app().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let res = app
        .client()
        .post(app.url("/login"))
        .form(&[("email", "ada@acme.test"), ("password", PASSWORD), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/settings/webhooks");
}

#[tokio::test]
async fn another_accounts_endpoint_page_is_not_found() {
    let app = spawn_app().await;
    let receiver = crate::receiver::TestReceiver::start().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let globex = app.create_account("Globex", "hank@globex.test", PASSWORD).await;
    let (id, secret) = app.endpoint(&globex.api_key, &receiver.url(), &["task.created"], 100).await;

    let client = app.client();
    app.login(&client, "ada@acme.test", PASSWORD).await;
    let html = client.get(app.url(&format!("/settings/webhooks/{id}"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Webhook not found"));
    assert!(!html.contains(&receiver.url()) && !html.contains(&secret));
    let res =
        client.post(app.url("/api/endpoints/secret")).json(&serde_json::json!({ "id": id })).send().await.unwrap();
    assert!(!res.status().is_success());
    assert!(!res.text().await.unwrap().contains(&secret));
}
